//! XGBoost models: readers for every format SageMaker and Python xgboost write (JSON,
//! UBJSON, the legacy binary, pickled Boosters), one in-memory [`Forest`], bit-exact
//! prediction, writers, and `model.tar.gz`.
//!
//! Knows nothing of HTTP, S3 or SageMaker's paths: callers hand it bytes or directories.

pub mod archive;
pub mod forest;
pub mod learner;
pub mod legacy;
pub mod pickle;
pub mod value;

use std::path::{Path, PathBuf};

pub use forest::{Forest, Matrix, Objective, TreeLimit, Version};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model is not valid: {0}")]
    Invalid(String),
    #[error("{0}")]
    UnknownFormat(String),
    #[error("`{}`: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` holds no model file", path.display())]
    NoModel { path: PathBuf },
    #[error("archive `{}`: {problem}", path.display())]
    Archive { path: PathBuf, problem: String },
    #[error("the ensemble mixes models: `{first}` and `{other}` differ in {what}")]
    Mismatch { first: String, other: String, what: String },
}

/// The encoding a model was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Ubjson,
    LegacyBinary,
    /// A pickled Booster whose handle held a legacy binary (0.90 to 1.3).
    PickleLegacyBinary,
    /// A pickled Booster whose handle held a JSON or UBJSON snapshot (1.4 and later).
    PickleJson,
    PickleUbjson,
}

/// A model read from bytes: the forest and where it came from.
#[derive(Debug, Clone)]
pub struct Model {
    pub forest: Forest,
    pub format: Format,
}

/// Detect the format from the bytes (never the name) and read the model.
pub fn load(bytes: &[u8]) -> Result<Model, ModelError> {
    if bytes.first() == Some(&0x80) {
        let unpickled = pickle::unpickle(bytes)?;
        let (mut forest, format) = load_handle(&unpickled.handle)?;
        if unpickled.best_ntree_limit.is_some() {
            forest.best_ntree_limit = unpickled.best_ntree_limit;
        }
        return Ok(Model { forest, format });
    }
    let format = sniff(bytes).ok_or_else(|| unknown(bytes))?;
    let forest = match format {
        Format::Json => from_document(&value::parse_json(bytes).map_err(|e| invalid("JSON", e))?)?,
        Format::Ubjson => from_document(&value::parse_ubjson(bytes).map_err(|e| invalid("UBJSON", e))?)?,
        _ => legacy::read(bytes)?,
    };
    Ok(Model { forest, format })
}

fn invalid(what: &str, e: value::ParseError) -> ModelError {
    ModelError::Invalid(format!("{what} {e}"))
}

fn unknown(bytes: &[u8]) -> ModelError {
    let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    ModelError::UnknownFormat(format!(
        "not an XGBoost model: the bytes are not JSON, UBJSON, a legacy binary model or a pickle \
         ({} bytes, starting {head})",
        bytes.len()
    ))
}

fn sniff(bytes: &[u8]) -> Option<Format> {
    let first_non_space = bytes.iter().position(|b| !b.is_ascii_whitespace());
    match bytes {
        [b'{', b'i' | b'U' | b'I' | b'l' | b'L', ..] => Some(Format::Ubjson),
        [b'b', b'i', b'n', b'f', ..] => Some(Format::LegacyBinary),
        _ if first_non_space.is_some_and(|i| bytes[i] == b'{') => Some(Format::Json),
        // 0.90 and 1.0 wrote the binary without `binf`: a 136-byte parameter block that
        // starts with a float base score. Let the reader decide.
        _ if bytes.len() >= 136 + 16 => Some(Format::LegacyBinary),
        _ => None,
    }
}

/// A pickled Booster's handle: `CONFIG-offset:` + binary + config (1.0 to 1.3), a JSON or
/// UBJSON `{Config, Model}` snapshot (1.4 and later), or a bare legacy binary (0.90).
fn load_handle(handle: &[u8]) -> Result<(Forest, Format), ModelError> {
    const CONFIG_OFFSET: &[u8] = b"CONFIG-offset:";
    if let Some(rest) = handle.strip_prefix(CONFIG_OFFSET) {
        let len = rest.get(..8).map(|b| i64::from_le_bytes(b.try_into().unwrap()));
        let binary = len
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| rest.get(8..8usize.checked_add(n)?))
            .ok_or_else(|| ModelError::Invalid("pickle: the CONFIG-offset snapshot is cut short".into()))?;
        return Ok((legacy::read(binary)?, Format::PickleLegacyBinary));
    }
    match sniff(handle) {
        Some(Format::Ubjson) => {
            let doc = value::parse_ubjson(handle).map_err(|e| invalid("pickle UBJSON", e))?;
            Ok((from_document(&doc)?, Format::PickleUbjson))
        }
        Some(Format::Json) => {
            let doc = value::parse_json(handle).map_err(|e| invalid("pickle JSON", e))?;
            Ok((from_document(&doc)?, Format::PickleJson))
        }
        _ => Ok((legacy::read(handle)?, Format::PickleLegacyBinary)),
    }
}

/// A learner document, or a `{Config, Model}` snapshot holding one.
fn from_document(doc: &value::Value) -> Result<Forest, ModelError> {
    match (doc.get("learner"), doc.get("Model")) {
        (None, Some(model)) => learner::from_document(model),
        _ => learner::from_document(doc),
    }
}

/// Save as UBJSON, the layout current XGBoost writes (`xgboost-model`).
pub fn to_ubjson(forest: &Forest) -> Vec<u8> {
    let mut out = Vec::new();
    value::write_ubjson(&learner::to_document(forest), &mut out);
    out
}

/// Save as XGBoost JSON.
pub fn to_json(forest: &Forest) -> String {
    let mut out = String::new();
    value::write_json(&learner::to_document(forest), &mut out);
    out
}

/// One model file of an ensemble.
#[derive(Debug, Clone)]
pub struct Member {
    /// The file, or `archive!entry` for a file inside a `.tar.gz`.
    pub name: String,
    pub model: Model,
}

/// The models of a model directory. SageMaker's server loads every regular, non-hidden file
/// and, with several, averages their predictions (majority vote for `multi:softmax` and
/// `binary:hinge`).
#[derive(Debug, Clone)]
pub struct Ensemble {
    pub members: Vec<Member>,
    /// Made on first use: see [`Ensemble::projection`].
    projection: std::sync::OnceLock<Box<Projection>>,
}

/// The features an ensemble's splits read, and the ensemble renumbered onto them. Sparse
/// rows (libsvm, sparse RecordIO) are predicted on those columns alone: memory per row does
/// not grow with `num_feature`, which hashed features make as large as 2^31. The
/// comparisons are the same, so the predictions are too.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Sorted original feature indices; column `k` of a projected row is feature `used[k]`.
    pub used: Vec<u32>,
    pub ensemble: Ensemble,
}

impl Projection {
    /// The projected column of feature `index`, if any split reads it.
    pub fn column(&self, index: u64) -> Option<usize> {
        u32::try_from(index).ok().and_then(|i| self.used.binary_search(&i).ok())
    }

    /// Columns per projected row (at least one).
    pub fn width(&self) -> usize {
        self.used.len().max(1)
    }
}

/// The most bytes one model archive may unpack to.
pub const MAX_ARCHIVE_BYTES: u64 = 4 << 30;

impl Ensemble {
    /// Load a model file, a `model.tar.gz`, or a directory of either. Archives are read in
    /// memory, never unpacked to disk.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let files = Self::candidate_files(path)?;
        Self::load_files(path, files)
    }

    /// The files [`Ensemble::load`] reads for `path`: the path itself when it is a file,
    /// else the directory's regular, non-hidden files (links followed), sorted.
    pub fn candidate_files(path: &Path) -> Result<Vec<PathBuf>, ModelError> {
        let io = |source| ModelError::Io { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_dir() {
            return Ok(vec![path.to_path_buf()]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let p = entry.path();
            if !name.to_string_lossy().starts_with('.') && std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                files.push(p);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Load `files` (from [`Ensemble::candidate_files`]) as the models of `path`.
    pub fn load_files(path: &Path, files: Vec<PathBuf>) -> Result<Self, ModelError> {
        let mut members = Vec::new();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|source| ModelError::Io { path: file.clone(), source })?;
            if archive::is_gzip_tar(&bytes) {
                for (entry, content) in archive::read_files(&bytes, &file, MAX_ARCHIVE_BYTES)? {
                    let name = format!("{}!{entry}", file.display());
                    let model = load(&content)
                        .map_err(|e| ModelError::File { path: PathBuf::from(&name), source: Box::new(e) })?;
                    members.push(Member { name, model });
                }
            } else {
                let model = load(&bytes).map_err(|e| ModelError::File { path: file.clone(), source: Box::new(e) })?;
                members.push(Member { name: file.display().to_string(), model });
            }
        }
        if members.is_empty() {
            return Err(ModelError::NoModel { path: path.to_path_buf() });
        }
        let ensemble = Self::new(members);
        ensemble.check_compatible()?;
        Ok(ensemble)
    }

    pub fn new(members: Vec<Member>) -> Self {
        Self { members, projection: std::sync::OnceLock::new() }
    }

    /// See [`Forest::compact`].
    pub fn compact(&mut self) {
        for member in &mut self.members {
            member.model.forest.compact();
        }
        self.members.shrink_to_fit();
    }

    /// Bytes the models hold on the heap ([`Forest::heap_bytes`]), without the projection.
    pub fn heap_bytes(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.name.capacity() + std::mem::size_of::<Member>() + m.model.forest.heap_bytes())
            .sum()
    }

    /// The projection, if a sparse request has made it.
    pub fn made_projection(&self) -> Option<&Projection> {
        self.projection.get().map(|p| &**p)
    }

    /// The ensemble on the features its splits read (made once).
    pub fn projection(&self) -> &Projection {
        self.projection.get_or_init(|| {
            let mut used: Vec<u32> = self
                .members
                .iter()
                .flat_map(|m| m.model.forest.trees.iter())
                .flat_map(|t| t.nodes.iter().filter(|n| !n.is_leaf()).map(|n| n.feature() as u32))
                .collect();
            used.sort_unstable();
            used.dedup();
            let members = self
                .members
                .iter()
                .map(|m| {
                    let mut model = m.model.clone();
                    for tree in &mut model.forest.trees {
                        for node in tree.nodes.iter_mut().filter(|n| !n.is_leaf()) {
                            let column = used.binary_search(&(node.feature() as u32)).expect("collected above");
                            node.set_feature(column as u32);
                        }
                    }
                    model.forest.num_feature = used.len().max(1);
                    Member { name: m.name.clone(), model }
                })
                .collect();
            Box::new(Projection { used, ensemble: Self::new(members) })
        })
    }

    fn check_compatible(&self) -> Result<(), ModelError> {
        let first = &self.members[0];
        for other in &self.members[1..] {
            let (a, b) = (&first.model.forest, &other.model.forest);
            let what = if a.objective != b.objective {
                "objective"
            } else if a.num_groups != b.num_groups {
                "number of outputs"
            } else {
                continue;
            };
            return Err(ModelError::Mismatch {
                first: first.name.clone(),
                other: other.name.clone(),
                what: what.into(),
            });
        }
        Ok(())
    }

    pub fn first(&self) -> &Forest {
        &self.members[0].model.forest
    }

    /// Features the models expect (the largest of the members').
    pub fn num_feature(&self) -> usize {
        self.members.iter().map(|m| m.model.forest.num_feature).max().unwrap_or(0)
    }

    pub fn outputs_per_row(&self) -> usize {
        self.first().outputs_per_row()
    }

    /// Predictions (`rows x outputs_per_row`) by SageMaker's ensemble rule.
    pub fn predict(&self, rows: &Matrix<'_>, limit: TreeLimit) -> Vec<f32> {
        self.predict_on(rows, limit, crate::parallel::cores())
    }

    /// The same, using at most `threads` threads.
    pub fn predict_on(&self, rows: &Matrix<'_>, limit: TreeLimit, threads: usize) -> Vec<f32> {
        if self.members.len() == 1 {
            return self.first().predict_on(rows, limit, threads);
        }
        let all: Vec<Vec<f32>> = self.members.iter().map(|m| m.model.forest.predict_on(rows, limit, threads)).collect();
        let vote = matches!(self.first().objective, Objective::SoftMax | Objective::Hinge);
        (0..all[0].len())
            .map(|i| {
                if vote {
                    majority(all.iter().map(|p| p[i]))
                } else {
                    // Averaged in f64, as numpy's mean over float32 predictions accumulates.
                    (all.iter().map(|p| f64::from(p[i])).sum::<f64>() / all.len() as f64) as f32
                }
            })
            .collect()
    }

    /// Raw margins of the first model (`rows x groups`).
    pub fn margins(&self, rows: &Matrix<'_>, limit: TreeLimit) -> Vec<f32> {
        self.first().margins(rows, limit)
    }
}

/// The most frequent label; the smallest among ties, as `scipy.stats.mode`.
fn majority(labels: impl Iterator<Item = f32>) -> f32 {
    let mut counts: Vec<(f32, usize)> = Vec::new();
    for label in labels {
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, c)) => *c += 1,
            None => counts.push((label, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
    counts[0].0
}

//! The preprocess step: raw tabular data to train/validation/test splits for XGBoost (CSV,
//! no header, label first) and the fitted transform as `preprocessing.json`.
//!
//! Order matters: split first, then fit on the training rows only, so that no statistic of
//! validation or test rows leaks into the features.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::contract::MlRoot;
use crate::contract::failure::{Fault, StepError};
use crate::data::DataError;
use crate::data::files;
use crate::features::fit::TableEncoder;
use crate::features::{FitError, FittedTransform, Ratios, Schema, SchemaError, Split, SplitError, Table};
use crate::storage::{Location, LocationError};

/// The four data sets, each in its own output directory so that no S3 prefix holds another.
pub const SPLITS: [&str; 4] = ["train", "validation", "test_set_1", "test_set_2"];
/// The processing output holding `preprocessing.json`.
pub const ARTIFACTS: &str = "artifacts";
pub const TRANSFORM_FILE: &str = "preprocessing.json";

#[derive(Debug, Clone)]
pub struct Config {
    /// A file or directory (`PATH` or `file://`), or an S3 object or prefix (`s3://`), which is
    /// downloaded first as SageMaker's processing input would be.
    pub input: String,
    /// Holds `train/`, `validation/`, `test_set_1/`, `test_set_2/` and `artifacts/`.
    pub output_dir: PathBuf,
    /// A schema file; Auto MPG's when `None`.
    pub schema: Option<PathBuf>,
    pub seed: u64,
    pub ratios: Ratios,
}

impl Config {
    /// SageMaker's processing paths under `ml`: input from `processing/input`, outputs in
    /// `processing/`.
    pub fn sagemaker_defaults(ml: &MlRoot) -> Self {
        Self {
            input: ml.processing_path("input").to_string_lossy().into_owned(),
            output_dir: ml.processing_dir(),
            schema: None,
            seed: 42,
            ratios: Ratios::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("--input-data: {0}")]
    Store(#[from] crate::storage::StoreError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error(transparent)]
    Fit(#[from] FitError),
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StepError for Error {
    fn fault(&self) -> Fault {
        match self {
            Self::Write { .. } => Fault::Internal,
            Self::Store(err) if err.is_transient() || matches!(err, crate::storage::StoreError::Io { .. }) => {
                Fault::Internal
            }
            _ => Fault::User,
        }
    }
}

/// Row counts, as written to `preprocessing.json` and logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    pub read: u64,
    pub dropped_without_label: u64,
    pub train: usize,
    pub validation: usize,
    pub test_set_1: usize,
    pub test_set_2: usize,
}

/// `preprocessing.json`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub format_version: u32,
    pub generator: String,
    #[serde(flatten)]
    pub transform: &'a FittedTransform,
    pub label_first: bool,
    pub schema: &'a Schema,
    pub seed: u64,
    pub ratios: Ratios,
    pub rows: RowCounts,
    pub inputs: &'a [crate::features::table::SourceFile],
    /// SHA-256 over the per-file digests in order: one fingerprint of the whole input.
    pub input_sha256: String,
}

/// An S3 input downloaded into a hidden directory beside the outputs (a FROM-scratch image has
/// no /tmp), removed when the step ends.
struct S3Input {
    dir: PathBuf,
    /// Each downloaded file and the object it came from, so that the report names the object.
    origins: Vec<(PathBuf, String)>,
}

impl S3Input {
    fn fetch(uri: &str, output_dir: &Path) -> Result<Self, Error> {
        let dir = output_dir.join(format!(".s3-input-{}", std::process::id()));
        let mut fetched = Self { dir, origins: Vec::new() };
        let storage = crate::storage::Storage::s3()?;
        let found = storage.fetch(uri, &fetched.dir)?;
        fetched.origins = found.iter().map(|f| (fetched.dir.join(&f.relative), f.location.to_string())).collect();
        tracing::info!(
            uri,
            objects = found.len(),
            bytes = found.iter().map(|f| f.size).sum::<u64>(),
            "downloaded the input"
        );
        Ok(fetched)
    }
}

impl Drop for S3Input {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(config: &Config) -> Result<RowCounts, Error> {
    let started = Instant::now();
    let schema = match &config.schema {
        Some(path) => Schema::load(path)?,
        None => Schema::auto_mpg(),
    };
    config.ratios.validate()?;
    let download = match Location::parse(&config.input)? {
        Location::Local(path) => Err(path),
        Location::S3 { .. } => Ok(S3Input::fetch(&config.input, &config.output_dir)?),
    };
    let input = match &download {
        Ok(fetched) => fetched.dir.clone(),
        Err(path) => path.clone(),
    };
    let input_files = files::list_files(&input)?;
    tracing::info!(input = %input.display(), files = input_files.len(), "reading input");

    let mut table = Table::read(&schema, &input_files)?;
    if let Ok(fetched) = &download {
        for source in &mut table.sources {
            if let Some((_, uri)) = fetched.origins.iter().find(|(path, _)| *path == source.path) {
                source.path = PathBuf::from(uri);
            }
        }
    }
    let split = Split::new(table.len(), config.ratios, config.seed)?;
    let fitted = FittedTransform::fit(&schema, &table, &split.train)?;
    let rows = RowCounts {
        read: table.sources.iter().map(|s| s.rows).sum(),
        dropped_without_label: table.dropped_without_label(),
        train: split.train.len(),
        validation: split.validation.len(),
        test_set_1: split.test_set_1.len(),
        test_set_2: split.test_set_2.len(),
    };
    tracing::info!(
        read = rows.read,
        dropped_without_label = rows.dropped_without_label,
        features = fitted.feature_count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read and fitted"
    );

    let report = Report {
        format_version: 1,
        generator: concat!("sagestep-preprocess ", env!("CARGO_PKG_VERSION")).to_string(),
        transform: &fitted,
        label_first: true,
        schema: &schema,
        seed: config.seed,
        ratios: config.ratios,
        rows: rows.clone(),
        inputs: &table.sources,
        input_sha256: combined_digest(&table),
    };
    write_outputs(&config.output_dir, &table, &fitted, &split, &report)?;

    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        train = rows.train,
        validation = rows.validation,
        test_set_1 = rows.test_set_1,
        test_set_2 = rows.test_set_2,
        seconds,
        rows_per_second = (rows.read as f64 / seconds) as u64,
        output = %config.output_dir.display(),
        "preprocessing complete"
    );
    Ok(rows)
}

fn combined_digest(table: &Table) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for source in &table.sources {
        hasher.update(source.sha256.as_bytes());
    }
    files::hex(&hasher.finalize())
}

/// Write every output to a hidden temporary file beside its final name, then rename them all:
/// outputs appear whole or not at all. On failure the temporary files are removed.
fn write_outputs(
    output_dir: &Path,
    table: &Table,
    fitted: &FittedTransform,
    split: &Split,
    report: &Report<'_>,
) -> Result<(), Error> {
    let mut staged = Staged::default();
    let result = (|| {
        let encoder = TableEncoder::new(fitted, table);
        let sets = [
            (SPLITS[0], &split.train, true),
            (SPLITS[1], &split.validation, true),
            (SPLITS[2], &split.test_set_1, true),
            (SPLITS[3], &split.test_set_2, false),
        ];
        for (name, rows, with_label) in sets {
            let path = output_dir.join(name).join(format!("{name}.csv"));
            let tmp = write_staged(&path, |out| write_rows(&encoder, rows, with_label, out))?;
            staged.push(tmp, path);
        }
        let path = output_dir.join(ARTIFACTS).join(TRANSFORM_FILE);
        let tmp = write_staged(&path, |out| {
            serde_json::to_writer_pretty(&mut *out, report).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        })?;
        staged.push(tmp, path);
        Ok(())
    })();
    match result {
        Ok(()) => staged.commit(),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    }
}

/// Rows formatted per block, on every core, and written in order.
const BLOCK_ROWS: usize = 32 * 1024;

fn write_rows(encoder: &TableEncoder<'_>, rows: &[u32], with_label: bool, out: &mut impl Write) -> std::io::Result<()> {
    let threads = crate::parallel::cores();
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); threads];
    for round in rows.chunks(BLOCK_ROWS * threads) {
        std::thread::scope(|scope| {
            for (block, buffer) in round.chunks(BLOCK_ROWS).zip(buffers.iter_mut()) {
                scope.spawn(move || {
                    buffer.clear();
                    for &row in block {
                        encoder.write_row(row, with_label, buffer);
                    }
                });
            }
        });
        let used = round.len().div_ceil(BLOCK_ROWS);
        for buffer in &buffers[..used] {
            out.write_all(buffer)?;
        }
    }
    Ok(())
}

/// Temporary files waiting to be renamed to their final paths.
#[derive(Default)]
struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    fn push(&mut self, tmp: PathBuf, path: PathBuf) {
        self.files.push((tmp, path));
    }

    fn commit(mut self) -> Result<(), Error> {
        for (tmp, path) in std::mem::take(&mut self.files) {
            std::fs::rename(&tmp, &path).map_err(|source| Error::Write { path, source })?;
        }
        Ok(())
    }

    fn discard(mut self) {
        for (tmp, _) in std::mem::take(&mut self.files) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Write `path`'s content to `.<name>.partial` beside it, flushed and synced; return that path.
fn write_staged(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<PathBuf, Error> {
    let write_err = |source| Error::Write { path: path.to_path_buf(), source };
    let dir = path.parent().expect("output paths have a parent");
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let tmp = crate::storage::partial_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(source) => {
            let _ = std::fs::remove_file(&tmp);
            Err(write_err(source))
        }
    }
}

//! The preprocess step: raw tabular data to train/validation/test splits for XGBoost (CSV,
//! no header, label first) and the fitted transform as `preprocessing.json`.
//!
//! Streaming passes over the input, so memory does not grow with it: the split's counting
//! passes find the cuts that give each set its exact size (rows ordered by a seeded hash of
//! their parsed values); the first full pass assigns each row to its set and gathers the
//! statistics of the training rows (counts, moments, exact value counts for medians, categories); the
//! second applies the fitted transform and writes. Only training rows are fitted, so no
//! statistic of validation or test rows leaks into the features.
//!
//! Several instances (`resourceconfig.json`) each read their share of the objects
//! (`ShardedByS3Key`; replicated objects dealt among their holders, a large one cut into
//! ranges of cells, one per holder: `deal`, `ranges`) and exchange their statistics through
//! the job's collective: every statistic merges exactly or in a fixed order (cells in cell
//! order, objects in key order), so `preprocessing.json` is the same bytes for any number of
//! instances and any assignment of objects to them. Each host writes its own part files; the
//! first host writes `preprocessing.json`.

mod deal;
mod exchange;
mod output;
mod ranges;
mod scan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::cluster::{self, ClusterError, Collective, Hosts};
use crate::contract::MlRoot;
use crate::contract::failure::{Fault, StepError};
use crate::data::DataError;
use crate::data::files;
use crate::features::cells::CELL_BYTES;
use crate::features::fit::{MAX_CATEGORIES, NumericFit, RowEncoder};
use crate::features::reader::{self, Columns, Object, SourceFile};
use crate::features::split::{self, Assigner, Cut, CutSearch, CutStep};
use crate::features::stats::{MedianSearch, MedianStep, Moments, ValueCounts};
use crate::features::{FitError, FittedTransform, Ratios, Schema, SchemaError, Set, SplitError};
use crate::storage::{Location, LocationError};

use exchange::Together;
use scan::{HostStats, ObjectStats, SplitCounts};

/// The four data sets, each in its own output directory so that no S3 prefix holds another.
pub const SPLITS: [&str; 4] = ["train", "validation", "test_set_1", "test_set_2"];
/// The processing output holding `preprocessing.json`.
pub const ARTIFACTS: &str = "artifacts";
pub const TRANSFORM_FILE: &str = "preprocessing.json";

/// Distinct values counted exactly per host, over all numeric columns, before counts are
/// coarsened (16 bytes each in a gather, about 40 in memory).
pub const MEDIAN_BUDGET: usize = 1 << 19;
/// The fewest a column gets, however many columns share the budget: a pass then narrows the
/// median's interval at least eightfold.
const MIN_COLUMN_BUDGET: usize = 64;
/// Counting passes for medians at most (64-bit keys, at least 3 bits a pass).
const MAX_MEDIAN_PASSES: usize = 24;

#[derive(Debug, Clone)]
pub struct Config {
    /// The job's `/opt/ml` tree: logs name paths as the container sees them.
    pub ml: MlRoot,
    /// A file or directory (`PATH` or `file://`), or an S3 object or prefix (`s3://`), which is
    /// downloaded first as SageMaker's processing input would be.
    pub input: String,
    /// Holds `train/`, `validation/`, `test_set_1/`, `test_set_2/` and `artifacts/`.
    pub output_dir: PathBuf,
    /// A schema file; Auto MPG's when `None`.
    pub schema: Option<PathBuf>,
    pub seed: u64,
    pub ratios: Ratios,
    /// `resourceconfig.json`: the instances of the job (absent: one).
    pub resource_config: PathBuf,
    /// `processingjobconfig.json`: the job's name, which hosts check when they connect.
    pub job_config: PathBuf,
    /// Distinct values per host counted exactly in one pass, shared by the numeric columns;
    /// past it, medians take more passes (they stay exact).
    pub median_budget: usize,
    /// Bytes per cell of the grid objects are read on (`features::cells`); the same on every host.
    pub cell_bytes: u64,
}

impl Config {
    /// SageMaker's processing paths under `ml`: input from `processing/input`, outputs in
    /// `processing/`, instances from `config/resourceconfig.json`.
    pub fn sagemaker_defaults(ml: &MlRoot) -> Self {
        Self {
            ml: ml.clone(),
            input: ml.processing_path("input").to_string_lossy().into_owned(),
            output_dir: ml.processing_dir(),
            schema: None,
            seed: 42,
            ratios: Ratios::default(),
            resource_config: ml.processing_resource_config(),
            job_config: ml.processing_job_config(),
            median_budget: MEDIAN_BUDGET,
            cell_bytes: CELL_BYTES,
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
    #[error("the instances of the job: {0}")]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Config(String),
    /// Another host failed; its message.
    #[error("host `{host}` failed: {message}")]
    Peer { host: String, message: String, fault: Fault },
    #[error("host `{host}` sent statistics this host cannot read: {problem}")]
    Garbled { host: String, problem: String },
    #[error("the medians were not found in {MAX_MEDIAN_PASSES} counting passes")]
    MedianPasses,
    #[error(
        "the input changed while it was read: the first pass found {first:?} rows in train, validation, \
         test_set_1 and test_set_2, the second {second:?}"
    )]
    Changed { first: [u64; 4], second: [u64; 4] },
}

impl StepError for Error {
    fn fault(&self) -> Fault {
        match self {
            Self::Write { .. } | Self::Garbled { .. } | Self::MedianPasses => Fault::Internal,
            Self::Store(err) if err.is_transient() || matches!(err, crate::storage::StoreError::Io { .. }) => {
                Fault::Internal
            }
            Self::Cluster(err) if !err.is_config() => Fault::Internal,
            Self::Peer { fault, .. } => *fault,
            _ => Fault::User,
        }
    }
}

/// Row counts over every host, as written to `preprocessing.json` and logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    pub read: u64,
    pub dropped_without_label: u64,
    pub train: u64,
    pub validation: u64,
    pub test_set_1: u64,
    pub test_set_2: u64,
}

/// `preprocessing.json`: nothing in it depends on the number of hosts.
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
    /// How rows were assigned to sets.
    pub split: &'static str,
    /// How medians were found.
    pub median: &'static str,
    pub rows: RowCounts,
    /// Every object read, by key.
    pub inputs: Vec<SourceFile>,
    /// SHA-256 over the per-object digests in key order: one fingerprint of the whole input.
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

/// What a host sets out with: the schema, the split, its input objects.
struct Setup {
    schema: Schema,
    assigner: Assigner,
    objects: Vec<Object>,
    /// The objects' keys and sizes, as the deal needs them.
    held: Vec<deal::Held>,
    /// Why this host has no objects, when it has none (the message if no host has any).
    none: Option<DataError>,
    _download: Option<S3Input>,
}

fn setup(config: &Config, world: usize) -> Result<Setup, Error> {
    let schema = match &config.schema {
        Some(path) => Schema::load(path)?,
        None => Schema::auto_mpg(),
    };
    let assigner = Assigner::new(config.ratios, config.seed)?;
    let download = match Location::parse(&config.input)? {
        Location::Local(_) => None,
        Location::S3 { .. } => Some(S3Input::fetch(&config.input, &config.output_dir)?),
    };
    let root = match (&download, Location::parse(&config.input)?) {
        (Some(fetched), _) => fetched.dir.clone(),
        (None, Location::Local(path)) => path,
        (None, Location::S3 { .. }) => unreachable!("an S3 input is downloaded"),
    };
    let (objects, none) = match files::list_files(&root) {
        Ok(list) => (list, None),
        // With several hosts, one may have no share of the objects (more instances than
        // objects); the job fails only if no host has any.
        Err(e @ (DataError::Missing { .. } | DataError::NoFiles { .. })) if world > 1 => (Vec::new(), Some(e)),
        Err(e) => return Err(e.into()),
    };
    let objects = objects
        .into_iter()
        .map(|file| {
            // The key: the path below the input (a single file: its name), as S3 keys sit
            // below the input's prefix.
            let key = match file.strip_prefix(&root) {
                Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
                _ => file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            };
            let name = download
                .as_ref()
                .and_then(|d| d.origins.iter().find(|(path, _)| *path == file).map(|(_, uri)| uri.clone()))
                .unwrap_or_else(|| key.clone());
            Object { file, key, name, cell_bytes: config.cell_bytes, range: None }
        })
        .collect::<Vec<_>>();
    let held = objects
        .iter()
        .map(|o| {
            let bytes = std::fs::metadata(&o.file).map_err(|e| DataError::io(&o.file, e))?.len();
            let gzip = files::is_gzip(&o.file)?;
            Ok(deal::Held { key: o.key.clone(), bytes, gzip })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Setup { schema, assigner, objects, held, none, _download: download })
}

/// Join the other hosts of the job (none: the world of one).
fn join(config: &Config) -> Result<(Hosts, Box<dyn Collective>), Error> {
    let hosts = Hosts::read(&config.resource_config)?;
    if hosts.world() == 1 {
        return Ok((hosts, Box::new(cluster::Local)));
    }
    let settings = cluster::Settings::from_env().map_err(Error::Config)?;
    let job = job_name(&config.job_config);
    // Hosts must agree on everything that decides the output.
    let schema = config.schema.as_ref().map(|p| std::fs::read(p).unwrap_or_else(|e| e.to_string().into_bytes()));
    let mut fingerprint =
        format!("seed {} ratios {:?} cells {}\n", config.seed, config.ratios, config.cell_bytes).into_bytes();
    fingerprint.extend(schema.unwrap_or_else(|| b"auto-mpg".to_vec()));
    let collective = cluster::join(&hosts, &job, cluster::fingerprint(&fingerprint), &settings)?;
    Ok((hosts, collective))
}

fn job_name(path: &Path) -> String {
    #[derive(serde::Deserialize)]
    struct JobConfig {
        #[serde(rename = "ProcessingJobName")]
        name: Option<String>,
    }
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<JobConfig>(&bytes).ok())
        .and_then(|c| c.name)
        .unwrap_or_default()
}

pub fn run(config: &Config) -> Result<RowCounts, Error> {
    let started = Instant::now();
    // Chunks of megabytes are freed and allocated again many times a second: kept, their
    // pages need not be zeroed by the kernel again.
    crate::retain_freed_memory(1000);
    let (hosts, collective) = join(config)?;
    let team = Together::new(&*collective, &hosts);
    // Every later failure is told to the other hosts at the next exchange, so that they fail
    // with its message instead of waiting.
    let setup = setup(config, hosts.world());
    let (mut setup, keys) = team.share(setup, |s| deal::encode(&s.held))?;
    let (objects, cut) = my_objects(&hosts, &mut setup, &keys, config.cell_bytes)?;
    let schema = &setup.schema;
    let columns = Columns::new(schema);
    let objects = ranges::locate(&team, &hosts, &columns, objects, cut)?;
    tracing::info!(host = %hosts.current, hosts = hosts.world(), objects = objects.len(), "reading input");

    let (assigner, sizes) = split(&team, &hosts, &columns, setup.assigner, &objects, &config.ratios)?;
    let budget = (config.median_budget / columns.numeric.len().max(1)).max(MIN_COLUMN_BUDGET);
    let first_pass = scan::statistics(&columns, &assigner, &objects, budget);
    let (mine, all) = team.share(first_pass, |s| s.encode())?;
    let global = combine(&hosts, &all, &columns, budget)?;
    let rows = global.counts();
    let counted = [rows.train, rows.validation, rows.test_set_1, rows.test_set_2];
    if counted != sizes {
        return Err(Error::Changed { first: sizes, second: counted });
    }
    let numeric = medians(&team, &hosts, &columns, &assigner, &objects, &global, budget)?;
    let categories = global
        .categories
        .iter()
        .map(|set| set.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect())
        .collect();
    let fitted = FittedTransform::from_stats(schema, &numeric, categories);
    tracing::info!(
        read = rows.read,
        dropped_without_label = rows.dropped_without_label,
        features = fitted.feature_count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fitted"
    );

    let report = (hosts.rank() == 0).then(|| Report {
        format_version: 2,
        generator: concat!("sagestep-preprocess ", env!("CARGO_PKG_VERSION")).to_string(),
        transform: &fitted,
        label_first: true,
        schema,
        seed: config.seed,
        ratios: config.ratios,
        split: "exact sizes: round(ratio x rows) for train and validation (half away from zero), test the rest, \
                test_set_1 floor(test / 2); rows ordered by a seeded hash of their parsed values (equal rows by \
                object and position) and cut at those sizes",
        median: "exact (numpy's: the mean of the two middle values for an even count)",
        rows: rows.clone(),
        input_sha256: combined_digest(&global.objects),
        inputs: global.objects.iter().map(|o| o.source.clone()).collect(),
    });
    let names = output::Names::new(&config.output_dir, &hosts);
    let staged = output::write(
        &names,
        &columns,
        &assigner,
        &objects,
        &RowEncoder::new(&fitted),
        &mine.set_counts(),
        report.as_ref(),
    );
    // Nobody renames until every host has staged its files whole.
    let (staged, _) = team.share(staged, |_| Vec::new())?;
    staged.commit()?;

    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        train = rows.train,
        validation = rows.validation,
        test_set_1 = rows.test_set_1,
        test_set_2 = rows.test_set_2,
        seconds,
        rows_per_second = (mine.rows() as f64 / seconds) as u64,
        output = %config.ml.shown(&config.output_dir.to_string_lossy()),
        "preprocessing complete"
    );
    Ok(rows)
}

/// The objects (or ranges of them) this host reads, dealt from every host's list of what it
/// holds; and whether the deal cut any object into ranges.
fn my_objects(
    hosts: &Hosts,
    setup: &mut Setup,
    held: &[Vec<u8>],
    cell_bytes: u64,
) -> Result<(Vec<Object>, bool), Error> {
    let held = held
        .iter()
        .enumerate()
        .map(|(rank, bytes)| {
            deal::decode(bytes).map_err(|problem| Error::Garbled { host: hosts.hosts[rank].clone(), problem })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if held.iter().all(Vec::is_empty) {
        return Err(setup
            .none
            .take()
            .map_or_else(|| Error::Config("no host has any input object".into()), Error::from));
    }
    let dealt = deal::deal(&held, cell_bytes).map_err(|m| {
        Error::Config(format!(
            "the input object `{}` is {} bytes on host `{}` but {} bytes on host `{}`: the hosts must see the same \
             object under one key",
            m.key, m.first.1, hosts.hosts[m.first.0], m.second.1, hosts.hosts[m.second.0]
        ))
    })?;
    let cut = dealt.iter().flatten().any(|share| share.cells.is_some());
    let mut objects = Vec::new();
    for share in &dealt[hosts.rank()] {
        let Some(object) = setup.objects.iter().find(|o| o.key == share.key) else { continue };
        let range = share.cells.clone().map(|cells| reader::Range { cells, line: 1, row: 0 });
        objects.push(Object { range, ..object.clone() });
    }
    let whole = objects.iter().filter(|o| o.range.is_none()).count();
    if whole < setup.objects.len() {
        tracing::info!(
            ranges = objects.len() - whole,
            skipped = setup.objects.len() - objects.len(),
            "objects other hosts hold too are read there or by ranges of lines, as dealt"
        );
    }
    Ok((objects, cut))
}

/// The split's cuts, found exactly: counting passes over every host's row keys (a radix
/// select, 16 bits a pass; one or two passes unless many rows share values at a cut), and
/// the sets' sizes.
fn split(
    team: &Together<'_>,
    hosts: &Hosts,
    columns: &Columns,
    assigner: Assigner,
    objects: &[Object],
    ratios: &Ratios,
) -> Result<(Assigner, [u64; 4]), Error> {
    let gather = |searches: &[CutSearch]| -> Result<SplitCounts, Error> {
        let local = scan::split_counts(columns, &assigner, objects, searches);
        let (_, all) = team.share(local, SplitCounts::encode)?;
        let mut total = SplitCounts { labelled: 0, counts: vec![vec![0u64; split::DIGITS]; searches.len()] };
        for (rank, bytes) in all.iter().enumerate() {
            let theirs = SplitCounts::decode(bytes)
                .map_err(|problem| Error::Garbled { host: hosts.hosts[rank].clone(), problem })?;
            total.labelled += theirs.labelled;
            for (t, c) in total.counts.iter_mut().zip(theirs.counts) {
                t.iter_mut().zip(c).for_each(|(t, c)| *t += c);
            }
        }
        Ok(total)
    };
    // The first pass counts every key by its top digit, for all three cuts at once.
    let top = CutSearch::new(1, 2).expect("an open search");
    let first = gather(&[top])?;
    let n = first.labelled;
    let sizes = split::sizes(ratios, n);
    ratios.check_counts(&sizes)?;
    let ranks = [sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]];
    let mut cuts = [Cut::All; 3];
    let mut open: Vec<(usize, CutSearch)> = Vec::new();
    for (i, &rank) in ranks.iter().enumerate() {
        match CutSearch::new(rank, n) {
            Err(cut) => cuts[i] = cut,
            Ok(search) => match search.step(&first.counts[0])? {
                CutStep::Found(cut) => cuts[i] = cut,
                CutStep::Narrowed(next) => open.push((i, next)),
            },
        }
    }
    let mut passes = 1;
    while !open.is_empty() {
        passes += 1;
        let searches: Vec<CutSearch> = open.iter().map(|(_, s)| *s).collect();
        let counted = gather(&searches)?;
        if counted.labelled != n {
            return Err(Error::Changed { first: sizes, second: [counted.labelled, 0, 0, 0] });
        }
        let mut still = Vec::new();
        for ((i, search), counts) in open.into_iter().zip(&counted.counts) {
            match search.step(counts)? {
                CutStep::Found(cut) => cuts[i] = cut,
                CutStep::Narrowed(next) => still.push((i, next)),
            }
        }
        open = still;
    }
    tracing::info!(
        rows = n,
        passes,
        train = sizes[0],
        validation = sizes[1],
        test_set_1 = sizes[2],
        test_set_2 = sizes[3],
        "split found"
    );
    Ok((assigner.with_cuts(cuts), sizes))
}

/// Every host's statistics, merged: objects in key order, moments merged in that order,
/// value counts and categories merged exactly.
struct Global {
    objects: Vec<ObjectStats>,
    present: Vec<Moments>,
    values: Vec<ValueCounts>,
    categories: Vec<BTreeSet<Vec<u8>>>,
}

impl Global {
    fn counts(&self) -> RowCounts {
        let sum = |f: &dyn Fn(&ObjectStats) -> u64| self.objects.iter().map(f).sum::<u64>();
        RowCounts {
            read: sum(&|o| o.source.rows),
            dropped_without_label: sum(&|o| o.source.dropped_without_label),
            train: sum(&|o| o.sets[Set::Train as usize]),
            validation: sum(&|o| o.sets[Set::Validation as usize]),
            test_set_1: sum(&|o| o.sets[Set::TestSet1 as usize]),
            test_set_2: sum(&|o| o.sets[Set::TestSet2 as usize]),
        }
    }
}

fn combine(hosts: &Hosts, all: &[Vec<u8>], columns: &Columns, budget: usize) -> Result<Global, Error> {
    let mut objects: Vec<ObjectStats> = Vec::new();
    let mut values = vec![ValueCounts::default(); columns.numeric.len()];
    let mut categories = vec![BTreeSet::new(); columns.categorical.len()];
    for (rank, bytes) in all.iter().enumerate() {
        let garbled = |problem: String| Error::Garbled { host: hosts.hosts[rank].clone(), problem };
        let stats = HostStats::decode(bytes, columns).map_err(garbled)?;
        objects.extend(stats.objects);
        for (merged, counts) in values.iter_mut().zip(&stats.values) {
            merged.merge(counts, budget);
        }
        for (c, (merged, seen)) in categories.iter_mut().zip(stats.categories).enumerate() {
            merged.extend(seen);
            if merged.len() > MAX_CATEGORIES {
                let column = columns.names[columns.categorical[c]].clone();
                return Err(FitError::TooManyCategories { column, max: MAX_CATEGORIES }.into());
            }
        }
    }
    // Ranges of one object, in cell order, joined into the object.
    objects.sort_by(|a, b| a.key.cmp(&b.key).then(a.first_cell.cmp(&b.first_cell)));
    let mut joined: Vec<ObjectStats> = Vec::with_capacity(objects.len());
    for object in objects {
        match joined.last_mut() {
            Some(last) if last.key == object.key => last.join(object),
            _ => joined.push(object),
        }
    }
    let mut present = vec![Moments::default(); columns.numeric.len()];
    for object in &joined {
        if object.source.rows == 0 {
            return Err(DataError::Empty { path: PathBuf::from(&object.source.path) }.into());
        }
        for (merged, m) in present.iter_mut().zip(&object.folded(columns.numeric.len())) {
            merged.merge(m);
        }
    }
    Ok(Global { objects: joined, present, values, categories })
}

/// Each numeric column's median, exactly: more counting passes over the input, inside the
/// interval the middle ranks fell in, until the counts resolve single values.
#[allow(clippy::too_many_arguments)]
fn medians(
    team: &Together<'_>,
    hosts: &Hosts,
    columns: &Columns,
    assigner: &Assigner,
    objects: &[Object],
    global: &Global,
    budget: usize,
) -> Result<Vec<NumericFit>, Error> {
    let train = global.objects.iter().map(|o| o.sets[Set::Train as usize]).sum::<u64>();
    let mut found: Vec<Option<f64>> = vec![None; columns.numeric.len()];
    let mut searches: Vec<MedianSearch> = Vec::new();
    for (n, present) in global.present.iter().enumerate() {
        if present.count == 0 {
            let column = columns.names[columns.numeric[n]].clone();
            return Err(FitError::NoValues { column, rows: train }.into());
        }
        searches.push(MedianSearch::new(present.count));
    }
    let mut counts: Vec<Option<ValueCounts>> = global.values.iter().cloned().map(Some).collect();
    for pass in 0..MAX_MEDIAN_PASSES {
        for (n, search) in searches.iter_mut().enumerate() {
            if let (None, Some(c)) = (found[n], counts[n].take()) {
                match search.step(&c) {
                    MedianStep::Found(m) => found[n] = Some(m),
                    MedianStep::Narrowed(next) => *search = next,
                }
            }
        }
        let open: Vec<(usize, MedianSearch)> =
            searches.iter().enumerate().filter(|(n, _)| found[*n].is_none()).map(|(n, s)| (n, *s)).collect();
        if open.is_empty() {
            let fits = found
                .iter()
                .zip(&global.present)
                .map(|(m, &present)| NumericFit { rows: train, present, median: m.expect("found") })
                .collect();
            return Ok(fits);
        }
        tracing::info!(pass = pass + 2, columns = open.len(), "counting again inside the medians' intervals");
        let local = scan::narrowed_counts(columns, assigner, objects, &open, budget);
        let (_, all) = team.share(local, |c| exchange::encode_counts(c))?;
        let mut merged = vec![ValueCounts::default(); open.len()];
        for (rank, bytes) in all.iter().enumerate() {
            let theirs = exchange::decode_counts(bytes, open.len())
                .map_err(|problem| Error::Garbled { host: hosts.hosts[rank].clone(), problem })?;
            for (m, t) in merged.iter_mut().zip(&theirs) {
                m.merge(t, budget);
            }
        }
        for ((n, _), c) in open.iter().zip(merged) {
            counts[*n] = Some(c);
        }
    }
    Err(Error::MedianPasses)
}

fn combined_digest(objects: &[ObjectStats]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for object in objects {
        hasher.update(object.source.sha256.as_bytes());
    }
    files::hex(&hasher.finalize())
}

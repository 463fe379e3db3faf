//! The monitor step: Model Monitor's data-quality analyzer as a processing job.
//!
//! - **Baseline** (no `baseline_constraints` or `baseline_statistics`): profile the data set
//!   under `dataset_source` and write `statistics.json` and suggested `constraints.json` to
//!   `output_path`, in the AWS analyzer's layout (Deequ's names, types and KLL sketches).
//! - **Check** (either given): the same files for the new data, plus
//!   `constraint_violations.json` against the baseline and `monitoring_summary.json`
//!   (`{"violation_count": N, ...}`, for a pipeline's PropertyFile).
//!
//! Exit 0 for Completed and CompletedWithViolations alike (as AWS's own BYOC examples do),
//! with the status first in `/opt/ml/output/message`; bad input exits 1 with the reason there.
//!
//! Modules: `settings` (the environment contract), `dataset` (reading), `infer` (Deequ's
//! types), `kll` (Deequ's sketch), `distinct` (value counts), `stats` (`statistics.json`),
//! `constraints` (`constraints.json`), `check` (violations), `cloudwatch` (metrics file).

pub mod check;
pub mod cloudwatch;
pub mod constraints;
pub mod dataset;
pub mod distinct;
pub mod infer;
pub mod kll;
pub mod merge;
pub mod model_quality;
pub mod settings;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::contract::MlRoot;
use crate::contract::failure::{Fault, StepError};
use check::{Baseline, Drift};
use settings::{Given, Settings};
use stats::{BaselineStatistics, Statistics};

pub const STATISTICS_FILE: &str = "statistics.json";
pub const CONSTRAINTS_FILE: &str = "constraints.json";
pub const VIOLATIONS_FILE: &str = "constraint_violations.json";
pub const SUMMARY_FILE: &str = "monitoring_summary.json";
/// Relative to the `/opt/ml` root.
pub const CLOUDWATCH_FILE: &str = "output/metrics/cloudwatch/cloudwatch_metrics.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{name}` is not set: {hint}")]
    Missing { name: &'static str, hint: &'static str },
    #[error(
        "`dataset_format` must be a JSON object naming one format, such as {{\"csv\": {{\"header\": true}}}}, \
         {{\"json\": {{\"lines\": true}}}} or {{\"parquet\": {{}}}}: {problem}. Given: `{given}`"
    )]
    Format { given: String, problem: String },
    #[error("{what} is not supported by this image: {why}")]
    Unsupported { what: String, why: String },
    #[error("{0}")]
    Setting(String),
    #[error("no data under `dataset_source` `{}`{detail}", path.display())]
    NoData { path: PathBuf, detail: String },
    #[error("{}, line {line}: {problem}", file.display())]
    Malformed { file: PathBuf, line: u64, problem: String },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data set has {given} columns but the baseline has {expected} (`{}`): without a header the columns \
         are matched by position, so the counts must agree",
        path.display()
    )]
    ColumnCount { path: PathBuf, given: usize, expected: usize },
    #[error("the baseline `{name}` file `{}` {problem}", path.display())]
    Baseline { name: &'static str, path: PathBuf, problem: String },
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
            _ => Fault::User,
        }
    }
}

/// `monitoring_summary.json`, and what the step reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `Completed` or `CompletedWithViolations`.
    pub status: &'static str,
    /// `baseline` or `check`.
    pub mode: &'static str,
    pub item_count: u64,
    pub feature_count: usize,
    pub violation_count: usize,
    pub violations_by_check: BTreeMap<String, usize>,
    /// The features with a violation, sorted and joined by `, ` (empty when none): for a
    /// pipeline's Fail message, which can quote a string but not walk an array.
    pub violating_features: String,
    pub drift: Vec<Drift>,
}

impl Summary {
    /// The first line of `/opt/ml/output/message`.
    pub fn message(&self, violations: &check::Violations) -> String {
        match (self.mode, self.violation_count) {
            ("baseline", _) => format!(
                "Completed: baseline of {} rows and {} features (statistics.json, constraints.json)",
                self.item_count, self.feature_count
            ),
            (_, 0) => format!("Completed: no violations in {} rows against the baseline", self.item_count),
            _ => {
                let mut by_check: BTreeMap<String, Vec<&str>> = BTreeMap::new();
                for v in &violations.violations {
                    let kind = serde_json::to_value(v.constraint_check_type).ok();
                    let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("?").to_string();
                    by_check.entry(kind).or_default().push(&v.feature_name);
                }
                let parts: Vec<String> = by_check
                    .iter()
                    .map(|(kind, features)| {
                        let shown: Vec<&str> = features.iter().take(5).copied().collect();
                        let more = if features.len() > 5 {
                            format!(" and {} more", features.len() - 5)
                        } else {
                            String::new()
                        };
                        format!("{kind} ({}{more})", shown.join(", "))
                    })
                    .collect();
                let noun = if self.violation_count == 1 { "violation" } else { "violations" };
                format!(
                    "CompletedWithViolations: {} {noun} in {} rows: {}",
                    self.violation_count,
                    self.item_count,
                    parts.join("; ")
                )
            }
        }
    }
}

/// Run one monitoring (or baselining) job: read the settings, the baseline and the data set,
/// write every output, then the message.
pub fn run(ml: &MlRoot, given: &Given) -> Result<Summary, Error> {
    let settings = Settings::resolve(ml, given)?;
    if let Some(method) = &settings.categorical_drift_method {
        check::check_categorical_method(method).map_err(Error::Setting)?;
    }
    let baseline = load_baseline(&settings)?;
    let domains = baseline.as_ref().map(Baseline::domains).unwrap_or_default();
    let data = dataset::profile(&settings.source, settings.format, settings.skip_columns, &domains)?;
    tracing::info!(rows = data.rows, columns = data.columns.len(), files = data.files.len(), "data set read");
    if let Some(baseline) = &baseline {
        let expected = baseline.feature_names().len();
        if data.positional && expected != data.columns.len() {
            return Err(Error::ColumnCount { path: data.files[0].clone(), given: data.columns.len(), expected });
        }
    }

    let statistics = Statistics::new(data.rows, &data.columns);
    let suggested = constraints::suggest(data.rows, &data.columns);
    let report = match &baseline {
        Some(b) => Some(
            check::check(b, &data.columns, data.rows, settings.categorical_drift_method.as_deref())
                .map_err(Error::Setting)?,
        ),
        None => None,
    };
    let violations = report.as_ref().map(|r| r.violations.clone()).unwrap_or_default();
    let mut by_check = BTreeMap::new();
    for v in &violations.violations {
        let kind = serde_json::to_value(v.constraint_check_type).expect("serializes");
        *by_check.entry(kind.as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
    }
    let summary = Summary {
        status: if violations.violations.is_empty() { "Completed" } else { "CompletedWithViolations" },
        mode: if report.is_some() { "check" } else { "baseline" },
        item_count: data.rows,
        feature_count: data.columns.len(),
        violation_count: violations.violations.len(),
        violations_by_check: by_check,
        violating_features: violations
            .violations
            .iter()
            .map(|v| v.feature_name.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        drift: report.as_ref().map(|r| r.drift.clone()).unwrap_or_default(),
    };

    let mut staged = Staged::default();
    let result = (|| {
        staged.json(&settings.output, STATISTICS_FILE, &statistics)?;
        staged.json(&settings.output, CONSTRAINTS_FILE, &suggested)?;
        if report.is_some() {
            staged.json(&settings.output, VIOLATIONS_FILE, &violations)?;
            staged.json(&settings.output, SUMMARY_FILE, &summary)?;
        }
        if settings.publish_metrics {
            let context = cloudwatch::Context {
                endpoint: settings.endpoint_name.as_deref(),
                schedule: settings.schedule_name.as_deref(),
                timestamp: settings.end_time.clone().unwrap_or_else(now),
            };
            staged.bytes(
                &ml.root().join(CLOUDWATCH_FILE),
                cloudwatch::lines(&statistics, &summary.drift, &context).into_bytes(),
            )?;
        }
        staged.commit()
    })();
    if let Err(e) = result {
        staged.discard();
        return Err(e);
    }
    let message = summary.message(&violations);
    tracing::info!(output = %ml.shown(&settings.output.to_string_lossy()), "{message}");
    let path = ml.processing_message_file();
    if let Err(e) = crate::storage::write_atomic(&path, message.as_bytes()) {
        tracing::warn!(path = %path.display(), "could not write the message: {e}");
    }
    Ok(summary)
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    cloudwatch::utc(secs)
}

/// The baseline files named by the settings; a directory means the file of the usual name in it.
fn load_baseline(settings: &Settings) -> Result<Option<Baseline>, Error> {
    if settings.baseline_constraints.is_none() && settings.baseline_statistics.is_none() {
        return Ok(None);
    }
    let constraints = match &settings.baseline_constraints {
        Some(path) => Some(read_json(settings::names::BASELINE_CONSTRAINTS, path, CONSTRAINTS_FILE)?),
        None => None,
    };
    let statistics: Option<BaselineStatistics> = match &settings.baseline_statistics {
        Some(path) => {
            let statistics: BaselineStatistics =
                read_json(settings::names::BASELINE_STATISTICS, path, STATISTICS_FILE)?;
            // Rebuild every sketch now, so that a corrupt one is reported before the data is read.
            for feature in &statistics.features {
                let check = feature.sketch().and_then(|_| feature.categories());
                check.map_err(|problem| Error::Baseline {
                    name: settings::names::BASELINE_STATISTICS,
                    path: path.clone(),
                    problem: format!("is corrupt: {problem}"),
                })?;
            }
            Some(statistics)
        }
        None => None,
    };
    if constraints.is_none() {
        tracing::warn!("no baseline constraints: only the drift check runs, with the default thresholds");
    }
    if statistics.is_none() {
        tracing::warn!("no baseline statistics: the drift check is skipped");
    }
    Ok(Some(Baseline { constraints, statistics }))
}

fn read_json<T: serde::de::DeserializeOwned>(name: &'static str, path: &Path, default_name: &str) -> Result<T, Error> {
    let path = if path.is_dir() { path.join(default_name) } else { path.to_path_buf() };
    let fail = |problem: String| Error::Baseline { name, path: path.clone(), problem };
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(fail("does not exist".into())),
        Err(e) => return Err(fail(format!("cannot be read: {e}"))),
    };
    serde_json::from_slice(&text).map_err(|e| fail(format!("is corrupt: {e}")))
}

/// Outputs written beside their final names and renamed once all are written.
#[derive(Default)]
struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    fn json<T: Serialize>(&mut self, dir: &Path, name: &str, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(value).expect("outputs serialize");
        self.bytes(&dir.join(name), text.into_bytes())
    }

    fn bytes(&mut self, path: &Path, bytes: Vec<u8>) -> Result<(), Error> {
        use std::io::Write;
        let write = |source| Error::Write { path: path.to_path_buf(), source };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.partial"));
        self.files.push((tmp.clone(), path.to_path_buf()));
        let mut file = std::fs::File::create(&tmp).map_err(write)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(write)
    }

    fn commit(&mut self) -> Result<(), Error> {
        for (tmp, path) in std::mem::take(&mut self.files) {
            std::fs::rename(&tmp, &path).map_err(|source| Error::Write { path, source })?;
        }
        Ok(())
    }

    fn discard(self) {
        for (tmp, _) in self.files {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

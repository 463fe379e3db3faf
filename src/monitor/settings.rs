//! Model Monitor's processing contract: the environment variables (all strings), read from
//! the process environment first and from `/opt/ml/config/processingjobconfig.json`'s
//! `Environment` second (SageMaker sets both; a local run may have either).
//!
//! Paths under `/opt/ml/` are mapped onto the `/opt/ml` root (`SAGESTEP_ML_ROOT`), so the same
//! values work in the image and as a local process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Error;
use crate::contract::MlRoot;

/// The environment variable names of Model Monitor's contract.
pub mod names {
    pub const DATASET_FORMAT: &str = "dataset_format";
    pub const DATASET_SOURCE: &str = "dataset_source";
    pub const OUTPUT_PATH: &str = "output_path";
    pub const BASELINE_CONSTRAINTS: &str = "baseline_constraints";
    pub const BASELINE_STATISTICS: &str = "baseline_statistics";
    pub const PUBLISH_CLOUDWATCH_METRICS: &str = "publish_cloudwatch_metrics";
    pub const CATEGORICAL_DRIFT_METHOD: &str = "categorical_drift_method";
    pub const ENDPOINT_NAME: &str = "sagemaker_endpoint_name";
    pub const SCHEDULE_NAME: &str = "sagemaker_monitoring_schedule_name";
    pub const END_TIME: &str = "end_time";
    /// Python hooks of AWS's own analyzer: refused (this image runs no Python).
    pub const RECORD_PREPROCESSOR_SCRIPT: &str = "record_preprocessor_script";
    pub const POST_ANALYTICS_PROCESSOR_SCRIPT: &str = "post_analytics_processor_script";
    /// sagestep's own: drop the first N columns of every CSV row (a training set's label)
    /// before profiling, so that a baseline matches feature-only data.
    pub const SKIP_COLUMNS: &str = "SAGESTEP_SKIP_COLUMNS";
}

/// How the data set is encoded (`dataset_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// Comma-separated; with a header row, or columns named `_c0`, `_c1`, ... (Spark's names).
    Csv {
        header: bool,
    },
    /// JSON objects, one per line (`lines`), or each file one object or an array of them.
    Json {
        lines: bool,
    },
    Parquet,
}

impl DatasetFormat {
    /// Parse `dataset_format`: `{"csv": {"header": true, "output_columns_position": "START"}}`,
    /// `{"json": {"lines": true}}` (`line` also read), `{"parquet": {}}`. Booleans may be
    /// JSON booleans or strings.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |problem: &str| Error::Format { given: text.into(), problem: problem.into() };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let object = value.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let mut entries = object.iter();
        let (Some((name, options)), None) = (entries.next(), entries.next()) else {
            return Err(bad("it must name exactly one format"));
        };
        let options = match options {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(o) => o.clone(),
            _ => return Err(bad(&format!("the options of `{name}` must be an object"))),
        };
        let flag = |key: &str, default: bool| -> Result<bool, Error> {
            match options.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(serde_json::Value::Bool(b)) => Ok(*b),
                Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
                Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
                Some(other) => Err(bad(&format!("`{name}.{key}` must be true or false, not {other}"))),
            }
        };
        match name.as_str() {
            "csv" => {
                match options.get("output_columns_position") {
                    None => {}
                    Some(serde_json::Value::String(p)) if p == "START" || p == "END" => {}
                    Some(other) => {
                        return Err(bad(&format!("`csv.output_columns_position` must be START or END, not {other}")));
                    }
                }
                Ok(Self::Csv { header: flag("header", false)? })
            }
            "json" => {
                let lines = if options.contains_key("lines") { flag("lines", true)? } else { flag("line", true)? };
                Ok(Self::Json { lines })
            }
            "parquet" => Ok(Self::Parquet),
            "sagemakerCaptureJson" => Err(Error::Unsupported {
                what: "`dataset_format` `sagemakerCaptureJson` (endpoint data capture)".into(),
                why: "give the captured features as CSV, JSON lines or Parquet".into(),
            }),
            other => Err(bad(&format!("unknown format `{other}`"))),
        }
    }
}

/// Values given on the command line or in the process environment (`None` when absent).
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub values: HashMap<&'static str, String>,
}

impl Given {
    pub fn set(&mut self, name: &'static str, value: Option<String>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.values.insert(name, v);
        }
    }
}

/// The resolved settings of one job.
#[derive(Debug, Clone)]
pub struct Settings {
    pub format: DatasetFormat,
    pub source: PathBuf,
    pub output: PathBuf,
    pub baseline_constraints: Option<PathBuf>,
    pub baseline_statistics: Option<PathBuf>,
    pub publish_metrics: bool,
    pub categorical_drift_method: Option<String>,
    pub endpoint_name: Option<String>,
    pub schedule_name: Option<String>,
    pub end_time: Option<String>,
    pub skip_columns: usize,
}

impl Settings {
    pub fn resolve(ml: &MlRoot, given: &Given) -> Result<Self, Error> {
        let job = job_environment(ml)?;
        let get = |name: &str| -> Option<String> {
            given.values.get(name).cloned().or_else(|| job.get(name).cloned()).filter(|v| !v.is_empty())
        };
        for script in [names::RECORD_PREPROCESSOR_SCRIPT, names::POST_ANALYTICS_PROCESSOR_SCRIPT] {
            if let Some(path) = get(script) {
                return Err(Error::Unsupported {
                    what: format!("`{script}` (`{path}`)"),
                    why: "it is a Python hook of AWS's analyzer and this image runs no Python".into(),
                });
            }
        }
        let format_text = get(names::DATASET_FORMAT).ok_or(Error::Missing {
            name: names::DATASET_FORMAT,
            hint: "give the data set's encoding, e.g. {\"csv\": {\"header\": true}}",
        })?;
        let source = get(names::DATASET_SOURCE).ok_or(Error::Missing {
            name: names::DATASET_SOURCE,
            hint: "give the directory holding the data set, e.g. /opt/ml/processing/input/data",
        })?;
        let path = |v: String| map_path(ml, &v);
        let publish = get(names::PUBLISH_CLOUDWATCH_METRICS);
        let publish_metrics = match publish.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("Enabled") => true,
            Some(v) if v.eq_ignore_ascii_case("Disabled") => false,
            Some(v) => {
                return Err(Error::Setting(format!(
                    "`publish_cloudwatch_metrics` must be `Enabled` or `Disabled`. Given: `{v}`"
                )));
            }
        };
        let format = DatasetFormat::parse(&format_text)?;
        let skip_columns = match get(names::SKIP_COLUMNS) {
            None => 0,
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                Error::Setting(format!("`{}` must be a whole number of columns. Given: `{v}`", names::SKIP_COLUMNS))
            })?,
        };
        if skip_columns > 0 && !matches!(format, DatasetFormat::Csv { .. }) {
            return Err(Error::Setting(format!("`{}` applies to CSV data sets only", names::SKIP_COLUMNS)));
        }
        Ok(Self {
            format,
            skip_columns,
            source: path(source),
            output: get(names::OUTPUT_PATH).map_or_else(|| ml.processing_path("output"), path),
            baseline_constraints: get(names::BASELINE_CONSTRAINTS).map(path),
            baseline_statistics: get(names::BASELINE_STATISTICS).map(path),
            publish_metrics,
            categorical_drift_method: get(names::CATEGORICAL_DRIFT_METHOD),
            endpoint_name: get(names::ENDPOINT_NAME),
            schedule_name: get(names::SCHEDULE_NAME),
            end_time: get(names::END_TIME),
        })
    }
}

/// `Environment` of `processingjobconfig.json`, empty when the file is absent.
pub(super) fn job_environment(ml: &MlRoot) -> Result<HashMap<String, String>, Error> {
    let path = ml.processing_job_config();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => return Err(Error::Read { path, source }),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Setting(format!("`{}` is not valid JSON: {e}", path.display())))?;
    let Some(env) = value.get("Environment").and_then(|e| e.as_object()) else { return Ok(HashMap::new()) };
    Ok(env.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
}

/// `/opt/ml/...` onto the job's root; other paths as given.
pub fn map_path(ml: &MlRoot, value: &str) -> PathBuf {
    ml.map(Path::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_the_sdk_and_the_docs_write_them() {
        let csv = DatasetFormat::parse(r#"{"csv": {"header": true, "output_columns_position": "START"}}"#).unwrap();
        assert_eq!(csv, DatasetFormat::Csv { header: true });
        assert_eq!(
            DatasetFormat::parse(r#"{"csv": {"header": "False"}}"#).unwrap(),
            DatasetFormat::Csv { header: false }
        );
        assert_eq!(DatasetFormat::parse(r#"{"json": {"line": false}}"#).unwrap(), DatasetFormat::Json { lines: false });
        assert_eq!(DatasetFormat::parse(r#"{"json": {"lines": true}}"#).unwrap(), DatasetFormat::Json { lines: true });
        assert_eq!(DatasetFormat::parse(r#"{"parquet": {}}"#).unwrap(), DatasetFormat::Parquet);
        for bad in
            ["csv", "{}", r#"{"csv": {}, "json": {}}"#, r#"{"tsv": {}}"#, r#"{"csv": {"header": 1}}"#, r#"{"csv": 3}"#]
        {
            let err = DatasetFormat::parse(bad).unwrap_err().to_string();
            assert!(err.contains("`dataset_format`") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn maps_opt_ml_paths_onto_the_root() {
        let ml = MlRoot::new("/tmp/job");
        assert_eq!(map_path(&ml, "/opt/ml/processing/input"), Path::new("/tmp/job/processing/input"));
        assert_eq!(map_path(&ml, "/data/x"), Path::new("/data/x"));
        assert_eq!(map_path(&MlRoot::new("/opt/ml"), "/opt/ml/processing"), Path::new("/opt/ml/processing"));
    }
}

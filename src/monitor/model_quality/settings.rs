//! The model-quality job's environment (all strings; spec part 3.1), read as the data-quality
//! job's are: the process environment first, `processingjobconfig.json`'s `Environment` second.
//!
//! - `analysis_type=MODEL_QUALITY`, `problem_type` (`Regression`, `BinaryClassification`,
//!   `MulticlassClassification`).
//! - `inference_attribute` (the predicted label or value), `probability_attribute` (the score),
//!   `probability_threshold_attribute` (a string such as `"0.5"`), `ground_truth_attribute`.
//! - `dataset_format`: `{"csv": {"header": ...}}` (attributes are header names, or `_cN` and
//!   `N` without a header), `{"json": {"lines": ...}}` (keys or paths such as
//!   `predictions[0].score`), or a merge job's output, `{"sagemakerMergeJson":
//!   {"captureIndexNames": ["endpointOutput"]}}` (attributes index the captured output: a
//!   0-based column of CSV data, a path into JSON data; the ground truth is the merged
//!   `groundTruthData`, indexed by `ground_truth_attribute` when that is set).
//! - `dataset_source`, `output_path`, `baseline_constraints`, `publish_cloudwatch_metrics`,
//!   `sagemaker_endpoint_name`, `sagemaker_monitoring_schedule_name`, `start_time`,
//!   `end_time`, `metric_time` (the metrics' timestamp; else `end_time`, else now).

use std::collections::HashMap;
use std::path::PathBuf;

use super::super::Error;
use super::super::settings::{Given, job_environment, map_path, names as common};
use super::ProblemType;
use crate::contract::MlRoot;

pub mod names {
    pub const ANALYSIS_TYPE: &str = "analysis_type";
    pub const MODEL_QUALITY: &str = "MODEL_QUALITY";
    pub const PROBLEM_TYPE: &str = "problem_type";
    pub const INFERENCE_ATTRIBUTE: &str = "inference_attribute";
    pub const PROBABILITY_ATTRIBUTE: &str = "probability_attribute";
    pub const PROBABILITY_THRESHOLD_ATTRIBUTE: &str = "probability_threshold_attribute";
    pub const GROUND_TRUTH_ATTRIBUTE: &str = "ground_truth_attribute";
    pub const START_TIME: &str = "start_time";
    pub const METRIC_TIME: &str = "metric_time";
}

/// Which captured payload a merged record's attributes index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    EndpointOutput,
    EndpointInput,
}

impl Capture {
    pub fn key(self) -> &'static str {
        match self {
            Self::EndpointOutput => "endpointOutput",
            Self::EndpointInput => "endpointInput",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv { header: bool },
    Json { lines: bool },
    Merged { capture: Capture },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub inference: Option<String>,
    pub probability: Option<String>,
    pub threshold: Option<f64>,
    pub ground_truth: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub problem: ProblemType,
    pub format: Format,
    pub attributes: Attributes,
    pub source: PathBuf,
    pub output: PathBuf,
    pub baseline_constraints: Option<PathBuf>,
    pub publish_metrics: bool,
    pub endpoint_name: Option<String>,
    pub schedule_name: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub metric_time: Option<String>,
}

/// Whether `analysis_type` asks for model quality (else the data-quality analysis runs).
pub fn is_model_quality(ml: &MlRoot, given: &Given) -> Result<bool, Error> {
    let env = Env::read(ml, given)?;
    Ok(env.get(names::ANALYSIS_TYPE).is_some_and(|v| v == names::MODEL_QUALITY))
}

struct Env<'a> {
    given: &'a Given,
    job: HashMap<String, String>,
}

impl<'a> Env<'a> {
    fn read(ml: &MlRoot, given: &'a Given) -> Result<Self, Error> {
        Ok(Self { given, job: job_environment(ml)? })
    }

    fn get(&self, name: &str) -> Option<String> {
        let value = self.given.values.get(name).or_else(|| self.job.get(name));
        value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str, hint: &'static str) -> Result<String, Error> {
        self.get(name).ok_or(Error::Missing { name, hint })
    }
}

impl Job {
    pub fn resolve(ml: &MlRoot, given: &Given) -> Result<Self, Error> {
        let env = Env::read(ml, given)?;
        let problem_text =
            env.required(names::PROBLEM_TYPE, "give Regression, BinaryClassification or MulticlassClassification")?;
        let problem = ProblemType::parse(&problem_text).map_err(Error::Setting)?;
        let format = parse_format(
            &env.required(common::DATASET_FORMAT, "give the data set's encoding, e.g. {\"csv\": {\"header\": true}}")?,
        )?;
        let source = env.required(
            common::DATASET_SOURCE,
            "give the directory holding predictions and labels, e.g. /opt/ml/processing/input/baseline_dataset_input",
        )?;
        let threshold = match env.get(names::PROBABILITY_THRESHOLD_ATTRIBUTE) {
            None => None,
            Some(text) => Some(text.parse::<f64>().ok().filter(|t| t.is_finite()).ok_or_else(|| {
                Error::Setting(format!(
                    "`probability_threshold_attribute` must be a number such as 0.5. Given: `{text}`"
                ))
            })?),
        };
        let attributes = Attributes {
            inference: env.get(names::INFERENCE_ATTRIBUTE),
            probability: env.get(names::PROBABILITY_ATTRIBUTE),
            threshold,
            ground_truth: env.get(names::GROUND_TRUTH_ATTRIBUTE),
        };
        check_attributes(problem, format, &attributes)?;
        let publish_metrics = match env.get(common::PUBLISH_CLOUDWATCH_METRICS).as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("Enabled") => true,
            Some(v) if v.eq_ignore_ascii_case("Disabled") => false,
            Some(v) => {
                return Err(Error::Setting(format!(
                    "`publish_cloudwatch_metrics` must be `Enabled` or `Disabled`. Given: `{v}`"
                )));
            }
        };
        let path = |v: String| map_path(ml, &v);
        Ok(Self {
            problem,
            format,
            attributes,
            source: path(source),
            output: env.get(common::OUTPUT_PATH).map_or_else(|| ml.processing_path("output"), path),
            baseline_constraints: env.get(common::BASELINE_CONSTRAINTS).map(path),
            publish_metrics,
            endpoint_name: env.get(common::ENDPOINT_NAME),
            schedule_name: env.get(common::SCHEDULE_NAME),
            start_time: env.get(names::START_TIME),
            end_time: env.get(common::END_TIME),
            metric_time: env.get(names::METRIC_TIME),
        })
    }
}

/// What each problem type needs (the rules of Amazon's own imitation, amzn/MonitoringCustomMetrics).
fn check_attributes(problem: ProblemType, format: Format, a: &Attributes) -> Result<(), Error> {
    let missing = |name: &'static str, hint: &'static str| Error::Missing { name, hint };
    if a.ground_truth.is_none() && !matches!(format, Format::Merged { .. }) {
        return Err(missing(names::GROUND_TRUTH_ATTRIBUTE, "name the column holding the actual labels or values"));
    }
    match problem {
        ProblemType::Regression | ProblemType::MulticlassClassification if a.inference.is_none() => Err(missing(
            names::INFERENCE_ATTRIBUTE,
            "name the column (or captured output index) holding the model's predictions",
        )),
        ProblemType::BinaryClassification if a.inference.is_none() && a.probability.is_none() => Err(missing(
            names::INFERENCE_ATTRIBUTE,
            "a BinaryClassification job needs `inference_attribute` (the predicted label) or \
             `probability_attribute` with `probability_threshold_attribute`",
        )),
        ProblemType::BinaryClassification if a.inference.is_none() && a.threshold.is_none() => Err(missing(
            names::PROBABILITY_THRESHOLD_ATTRIBUTE,
            "without `inference_attribute` the predicted label is `probability > threshold`: give the threshold, e.g. 0.5",
        )),
        _ => Ok(()),
    }
}

/// `dataset_format` as the SDK and the scheduler write it.
pub fn parse_format(text: &str) -> Result<Format, Error> {
    let bad = |problem: String| Error::Format { given: text.into(), problem };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let object = value.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    let mut entries = object.iter();
    let (Some((name, options)), None) = (entries.next(), entries.next()) else {
        return Err(bad("it must name exactly one format".into()));
    };
    let flag = |key: &str, default: bool| -> Result<bool, Error> {
        match options.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(bad(format!("`{name}.{key}` must be true or false, not {other}"))),
        }
    };
    match name.as_str() {
        "csv" => Ok(Format::Csv { header: flag("header", false)? }),
        "json" => {
            let lines = if options.get("lines").is_some() { flag("lines", true)? } else { flag("line", true)? };
            Ok(Format::Json { lines })
        }
        "sagemakerMergeJson" => {
            let names = options.get("captureIndexNames").and_then(|n| n.as_array());
            let names: Vec<&str> = names.map(|n| n.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            match names.as_slice() {
                [] | ["endpointOutput"] => Ok(Format::Merged { capture: Capture::EndpointOutput }),
                ["endpointInput"] => Ok(Format::Merged { capture: Capture::EndpointInput }),
                other => Err(bad(format!(
                    "`sagemakerMergeJson.captureIndexNames` must be [\"endpointOutput\"] or [\"endpointInput\"], not {other:?}"
                ))),
            }
        }
        "parquet" | "sagemakerCaptureJson" => Err(Error::Unsupported {
            what: format!("`dataset_format` `{name}` for a MODEL_QUALITY analysis"),
            why: "give predictions and labels as CSV or JSON lines, or the ground-truth merge's output (sagemakerMergeJson)"
                .into(),
        }),
        other => Err(bad(format!("unknown format `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_sdk_and_the_scheduler_write() {
        let f = parse_format(r#"{"csv": {"header": true, "output_columns_position": "START"}}"#).unwrap();
        assert_eq!(f, Format::Csv { header: true });
        let f = parse_format(r#"{"sagemakerMergeJson":{"captureIndexNames":["endpointOutput"]}}"#).unwrap();
        assert_eq!(f, Format::Merged { capture: Capture::EndpointOutput });
        assert_eq!(parse_format(r#"{"json": {"lines": "true"}}"#).unwrap(), Format::Json { lines: true });
        let err = parse_format(r#"{"parquet": {}}"#).unwrap_err().to_string();
        assert!(err.contains("MODEL_QUALITY"), "{err}");
        let err = parse_format(r#"{"sagemakerMergeJson":{"captureIndexNames":["x"]}}"#).unwrap_err().to_string();
        assert!(err.contains("captureIndexNames"), "{err}");
    }

    #[test]
    fn each_problem_type_needs_its_attributes() {
        let csv = Format::Csv { header: true };
        let with = |inference: Option<&str>, probability: Option<&str>, threshold: Option<f64>| Attributes {
            inference: inference.map(Into::into),
            probability: probability.map(Into::into),
            threshold,
            ground_truth: Some("label".into()),
        };
        assert!(check_attributes(ProblemType::Regression, csv, &with(Some("p"), None, None)).is_ok());
        let err = check_attributes(ProblemType::Regression, csv, &with(None, Some("p"), None)).unwrap_err();
        assert!(err.to_string().contains("`inference_attribute`"), "{err}");
        let binary = ProblemType::BinaryClassification;
        assert!(check_attributes(binary, csv, &with(None, Some("p"), Some(0.5))).is_ok());
        let err = check_attributes(binary, csv, &with(None, Some("p"), None)).unwrap_err();
        assert!(err.to_string().contains("`probability_threshold_attribute`"), "{err}");
        let no_truth = Attributes { ground_truth: None, ..with(Some("p"), None, None) };
        assert!(check_attributes(binary, csv, &no_truth).is_err());
        assert!(check_attributes(binary, Format::Merged { capture: Capture::EndpointOutput }, &no_truth).is_ok());
    }
}

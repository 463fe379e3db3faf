//! One model-quality processing job: read the pairs, compute the metrics, write
//! `statistics.json` and the suggested `constraints.json` to `output_path` and, with
//! `baseline_constraints`, `constraint_violations.json` and `monitoring_summary.json`; with
//! `publish_cloudwatch_metrics=Enabled`, every finite scalar metric to
//! `/opt/ml/output/metrics/cloudwatch/cloudwatch_metrics.jsonl` (dimensions `Endpoint` and
//! `MonitoringSchedule`; the platform files them under `aws/sagemaker/Endpoints/model-metrics`,
//! or `aws/sagemaker/ModelMonitoring/model-metrics` for batch) and one EMF line in the log.
//! Exit 0 for Completed and CompletedWithViolations alike, as the data-quality job does.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::super::settings::Given;
use super::super::{CLOUDWATCH_FILE, CONSTRAINTS_FILE, Error, STATISTICS_FILE, SUMMARY_FILE, Staged, VIOLATIONS_FILE};
use super::binary::Binary;
use super::constraints::{self, Baseline, Violations};
use super::multiclass::Multiclass;
use super::regression::Regression;
use super::rows::{self, Pair};
use super::settings::Job;
use super::{Metrics, ProblemType, Statistics, labels};
use crate::contract::MlRoot;

/// The CloudWatch namespace of an endpoint's model metrics (no leading slash).
pub const ENDPOINT_NAMESPACE: &str = "aws/sagemaker/Endpoints/model-metrics";
/// ... and of a batch transform's.
pub const BATCH_NAMESPACE: &str = "aws/sagemaker/ModelMonitoring/model-metrics";

/// `monitoring_summary.json`, and what the step reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub status: &'static str,
    /// `baseline` or `check`.
    pub mode: &'static str,
    pub problem_type: &'static str,
    pub item_count: u64,
    pub violation_count: usize,
    /// The violated metrics, joined by `, `.
    pub violating_metrics: String,
}

/// The metrics of one problem type, fed a row at a time.
enum Analyzer {
    Regression(Regression),
    Binary { tally: Binary, threshold: Option<f64> },
    Multiclass(Multiclass),
}

impl Analyzer {
    fn new(problem: ProblemType, threshold: Option<f64>, scratch: &Path) -> Self {
        match problem {
            ProblemType::Regression => Self::Regression(Regression::default()),
            ProblemType::BinaryClassification => Self::Binary { tally: Binary::new(scratch), threshold },
            ProblemType::MulticlassClassification => Self::Multiclass(Multiclass::default()),
        }
    }

    fn add(&mut self, pair: Pair<'_>) -> Result<(), String> {
        let prediction = pair.prediction.as_deref();
        match self {
            Self::Regression(r) => {
                r.add(number(&pair.truth, "ground truth")?, number(prediction.unwrap_or_default(), "prediction")?);
                Ok(())
            }
            Self::Binary { tally, threshold } => {
                let actual = binary_label(&pair.truth, "ground truth")?;
                let probability = pair.probability.as_deref().map(|p| number(p, "probability")).transpose()?;
                let predicted = match (prediction, probability, *threshold) {
                    (Some(p), _, _) => binary_label(p, "prediction")?,
                    (None, Some(p), Some(t)) => p > t,
                    _ => {
                        return Err(
                            "no prediction: set `inference_attribute` or a probability with its threshold".into()
                        );
                    }
                };
                let score = probability.unwrap_or(f64::from(u8::from(predicted)));
                tally.add(actual, predicted, score).map_err(|e| format!("cannot write the scores' scratch file: {e}"))
            }
            Self::Multiclass(m) => {
                let label = |text: &str, what: &str| {
                    if text.trim().is_empty() { Err(format!("the {what} is empty")) } else { Ok(()) }
                };
                label(&pair.truth, "ground truth")?;
                label(prediction.unwrap_or_default(), "prediction")?;
                m.add(&pair.truth, prediction.unwrap_or_default()).map_err(|e| e.to_string())
            }
        }
    }

    fn finish(self) -> Result<Statistics, Error> {
        let (item_count, metrics) = match self {
            Self::Regression(r) => (r.rows(), Metrics::Regression(r.finish())),
            Self::Binary { tally, .. } => {
                let rows = tally.rows();
                let finished =
                    tally.finish().map_err(|source| Error::Write { path: "scores scratch".into(), source })?;
                (rows, Metrics::Binary(finished))
            }
            Self::Multiclass(m) => (m.rows(), Metrics::Multiclass(m.finish())),
        };
        Ok(Statistics { item_count, metrics })
    }
}

fn number(text: &str, what: &str) -> Result<f64, String> {
    let value = text.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    value.ok_or_else(|| format!("the {what} `{text}` is not a finite number"))
}

/// `0`/`1` in any numeric spelling, or `false`/`true`.
fn binary_label(text: &str, what: &str) -> Result<bool, String> {
    match labels::canonical(text).as_ref() {
        "1" => Ok(true),
        "0" => Ok(false),
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!("the {what} `{text}` is no BinaryClassification label: expected 0 or 1")),
    }
}

/// Where the scores may spill: `TMPDIR`, else `/tmp`, else beside the job's inputs.
fn scratch(ml: &MlRoot) -> PathBuf {
    if let Some(dir) = std::env::var_os("TMPDIR").map(PathBuf::from).filter(|d| d.is_dir()) {
        return dir;
    }
    let tmp = Path::new("/tmp");
    if tmp.is_dir() { tmp.to_path_buf() } else { ml.processing_path(".sagestep-scratch") }
}

pub fn run(ml: &MlRoot, given: &Given) -> Result<Summary, Error> {
    let job = Job::resolve(ml, given)?;
    let baseline: Option<Baseline> = match &job.baseline_constraints {
        Some(path) => {
            Some(super::super::read_json(super::super::settings::names::BASELINE_CONSTRAINTS, path, CONSTRAINTS_FILE)?)
        }
        None => None,
    };
    let mut analyzer = Analyzer::new(job.problem, job.attributes.threshold, &scratch(ml));
    let read = rows::read(&job, &mut |pair| analyzer.add(pair))?;
    tracing::info!(rows = read.rows, files = read.files, outside_window = read.outside_window, "pairs read");
    if read.rows == 0 {
        let detail = format!(
            ": {} file(s) but no rows{}",
            read.files,
            if read.outside_window > 0 {
                format!(" in [start_time, end_time) ({} outside it)", read.outside_window)
            } else {
                String::new()
            }
        );
        return Err(Error::NoData { path: job.source.clone(), detail });
    }
    let statistics = analyzer.finish()?;
    let suggested = constraints::suggest(&statistics);
    let violations = match (&baseline, &job.baseline_constraints) {
        (Some(b), Some(path)) => Some(constraints::check(b, &statistics).map_err(|problem| Error::Baseline {
            name: super::super::settings::names::BASELINE_CONSTRAINTS,
            path: path.clone(),
            problem,
        })?),
        _ => None,
    };
    let summary = summarize(&statistics, violations.as_ref());
    write_outputs(ml, &job, &statistics, &suggested, violations.as_ref(), &summary)?;
    let message = message(&summary, violations.as_ref());
    tracing::info!(output = %ml.shown(&job.output.to_string_lossy()), "{message}");
    let path = ml.processing_message_file();
    if let Err(e) = crate::storage::write_atomic(&path, message.as_bytes()) {
        tracing::warn!(path = %path.display(), "could not write the message: {e}");
    }
    Ok(summary)
}

fn summarize(statistics: &Statistics, violations: Option<&Violations>) -> Summary {
    let list = violations.map(|v| v.violations.as_slice()).unwrap_or_default();
    Summary {
        status: if list.is_empty() { "Completed" } else { "CompletedWithViolations" },
        mode: if violations.is_some() { "check" } else { "baseline" },
        problem_type: statistics.problem_type().name(),
        item_count: statistics.item_count,
        violation_count: list.len(),
        violating_metrics: list.iter().map(|v| v.metric_name.as_str()).collect::<Vec<_>>().join(", "),
    }
}

fn message(summary: &Summary, violations: Option<&Violations>) -> String {
    let list = violations.map(|v| v.violations.as_slice()).unwrap_or_default();
    match (summary.mode, list) {
        ("baseline", _) => format!(
            "Completed: {} baseline of {} rows (statistics.json, constraints.json)",
            summary.problem_type, summary.item_count
        ),
        (_, []) => format!("Completed: no violations in {} rows against the baseline", summary.item_count),
        (_, list) => {
            let described: Vec<&str> = list.iter().map(|v| v.description.as_str()).collect();
            format!(
                "CompletedWithViolations: {} violation(s) in {} rows: {}",
                list.len(),
                summary.item_count,
                described.join("; ")
            )
        }
    }
}

fn write_outputs(
    ml: &MlRoot,
    job: &Job,
    statistics: &Statistics,
    suggested: &constraints::Suggested,
    violations: Option<&Violations>,
    summary: &Summary,
) -> Result<(), Error> {
    let mut staged = Staged::default();
    let result = (|| {
        staged.json(&job.output, STATISTICS_FILE, statistics)?;
        staged.json(&job.output, CONSTRAINTS_FILE, suggested)?;
        if let Some(violations) = violations {
            staged.json(&job.output, VIOLATIONS_FILE, violations)?;
            staged.json(&job.output, SUMMARY_FILE, summary)?;
        }
        if job.publish_metrics {
            let timestamp = job.metric_time.clone().or_else(|| job.end_time.clone()).unwrap_or_else(super::super::now);
            let (lines, emf) = cloudwatch(job, statistics, &timestamp);
            staged.bytes(&ml.root().join(CLOUDWATCH_FILE), lines.into_bytes())?;
            println!("{emf}");
        }
        staged.commit()
    })();
    if let Err(e) = result {
        staged.discard();
        return Err(e);
    }
    Ok(())
}

/// The BYOC metrics file's lines, and the same figures as one EMF line.
fn cloudwatch(job: &Job, statistics: &Statistics, timestamp: &str) -> (String, String) {
    let mut dimensions = Vec::new();
    if let Some(endpoint) = &job.endpoint_name {
        dimensions.push(json!({"Name": "Endpoint", "Value": endpoint}));
    }
    if let Some(schedule) = &job.schedule_name {
        dimensions.push(json!({"Name": "MonitoringSchedule", "Value": schedule}));
    }
    let finite: Vec<(&str, f64)> =
        statistics.scalars().into_iter().map(|(n, m)| (n, m.value)).filter(|(_, v)| v.is_finite()).collect();
    let mut lines = String::new();
    for (name, value) in &finite {
        let mut line = json!({"MetricName": name, "Timestamp": timestamp, "Value": value});
        if !dimensions.is_empty() {
            line["Dimensions"] = json!(dimensions);
        }
        lines += &line.to_string();
        lines.push('\n');
    }
    let namespace = if job.endpoint_name.is_some() { ENDPOINT_NAMESPACE } else { BATCH_NAMESPACE };
    let names: Vec<&str> = dimensions.iter().filter_map(|d| d["Name"].as_str()).collect();
    let millis = crate::clock::parse_rfc3339(timestamp).map_or(0, |s| (s * 1000.0) as u64);
    let mut emf = json!({"_aws": {"Timestamp": millis, "CloudWatchMetrics": [{
        "Namespace": namespace,
        "Dimensions": [names],
        "Metrics": finite.iter().map(|(n, _)| json!({"Name": n, "Unit": "None"})).collect::<Vec<_>>(),
    }]}});
    for d in &dimensions {
        emf[d["Name"].as_str().unwrap_or_default()] = d["Value"].clone();
    }
    for (name, value) in &finite {
        emf[*name] = json!(value);
    }
    (lines, emf.to_string())
}

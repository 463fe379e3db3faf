//! What a run's report shows, read from the store: the execution record, and the files its
//! steps left beside their outputs. Steps are recognised by what they produced, not by their
//! names: a tuning step by its training job summaries, an evaluation by `evaluation.json`
//! (with `evaluation_predictions.csv`), a data-quality check by `monitoring_summary.json`.

use serde_json::Value;

use crate::evaluate::{EVALUATION_FILE, PREDICTIONS_FILE};
use crate::monitor::SUMMARY_FILE;
use crate::pipeline::jobs::text;
use crate::pipeline::usage::{JobUsage, Resources};
use crate::storage::{Storage, StoreError};

/// Everything the page is made of.
#[derive(Debug, Default)]
pub struct Run {
    /// The execution record (`executions/<id>.json`), as stored.
    pub record: Value,
    pub steps: Vec<StepRow>,
    pub tunings: Vec<Tuning>,
    pub evaluations: Vec<Evaluation>,
    pub checks: Vec<Check>,
    /// Files a step should have left but that could not be read (shown, not fatal).
    pub missing: Vec<String>,
}

/// One step of the record.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub name: String,
    pub kind: String,
    pub status: String,
    /// Seconds from the execution's start.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub attempts: u64,
    pub cache_hit_from: Option<String>,
    pub error: Option<String>,
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone)]
pub struct Tuning {
    pub step: String,
    pub objective: String,
    pub objective_type: String,
    pub static_hyperparameters: Vec<(String, String)>,
    /// Best first, as the step reports them.
    pub jobs: Vec<TrainingJob>,
}

#[derive(Debug, Clone)]
pub struct TrainingJob {
    pub name: String,
    pub status: String,
    pub objective: Option<f64>,
    pub hyperparameters: Vec<(String, String)>,
    pub failure: Option<String>,
    pub usage: Option<JobUsage>,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub step: String,
    /// `(group, metric, value, standard deviation)`, e.g. `regression_metrics`, `mse`.
    pub metrics: Vec<(String, String, f64, Option<f64>)>,
    pub classification: bool,
    pub labels: Vec<f64>,
    pub predictions: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub step: String,
    pub status: String,
    pub violation_count: u64,
    /// `(feature, distance, threshold, method)`.
    pub drift: Vec<(String, f64, f64, String)>,
    /// `(feature, check type, description)`.
    pub violations: Vec<(String, String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("no execution `{id}` in {store}")]
    NoExecution { id: String, store: String },
    #[error("the record of execution `{id}` is not JSON: {source}")]
    Record { id: String, source: serde_json::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Read execution `id` and what its steps produced.
pub fn gather(storage: &Storage, id: &str) -> Result<Run, GatherError> {
    let bytes = storage
        .state_read(&format!("executions/{id}.json"))?
        .ok_or_else(|| GatherError::NoExecution { id: id.to_string(), store: storage.describe() })?;
    let record: Value =
        serde_json::from_slice(&bytes).map_err(|source| GatherError::Record { id: id.to_string(), source })?;
    let mut run = from_record(record);
    let steps: Vec<Value> = run.record["steps"].as_array().cloned().unwrap_or_default();
    for step in &steps {
        let name = step["name"].as_str().unwrap_or("?").to_string();
        let properties = &step["properties"];
        for (output, uri) in outputs(properties) {
            let read = |file: &str| storage.read(&format!("{}/{file}", uri.trim_end_matches('/')));
            if let Ok(bytes) = read(EVALUATION_FILE) {
                let rows = read(PREDICTIONS_FILE);
                if rows.is_err() {
                    run.missing.push(format!("{name}: {output}/{PREDICTIONS_FILE}"));
                }
                run.evaluations.push(evaluation(&name, &bytes, rows.ok().as_deref()));
            }
            if let Ok(bytes) = read(SUMMARY_FILE) {
                let violations = read("constraint_violations.json").ok();
                run.checks.push(check(&name, &bytes, violations.as_deref()));
            }
        }
    }
    Ok(run)
}

/// The parts that come from the record alone.
pub fn from_record(record: Value) -> Run {
    let start = record["start"].as_str().and_then(crate::clock::parse_rfc3339);
    let offset = |v: &Value| Some(v.as_str().and_then(crate::clock::parse_rfc3339)? - start?);
    let mut run = Run::default();
    for step in record["steps"].as_array().into_iter().flatten() {
        let row = StepRow {
            name: step["name"].as_str().unwrap_or("?").to_string(),
            kind: step["type"].as_str().unwrap_or("?").to_string(),
            status: step["status"].as_str().unwrap_or("?").to_string(),
            start: offset(&step["start"]),
            end: offset(&step["end"]),
            attempts: step["attempts"].as_u64().unwrap_or(0),
            cache_hit_from: step["cache_hit_from"].as_str().map(str::to_string),
            error: step["error"].as_str().map(str::to_string),
            resources: serde_json::from_value(step["resources"].clone()).ok(),
        };
        if let Some(tuning) = tuning(&row, &step["properties"]) {
            run.tunings.push(tuning);
        }
        run.steps.push(row);
    }
    run.record = record;
    run
}

/// A processing step's outputs: `(OutputName, S3Uri)`.
fn outputs(properties: &Value) -> Vec<(String, String)> {
    properties
        .pointer("/ProcessingOutputConfig/Outputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| Some((text(o, "/OutputName")?.to_string(), text(o, "/S3Output/S3Uri")?.to_string())))
        .collect()
}

fn pairs(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect())
        .unwrap_or_default()
}

fn tuning(row: &StepRow, properties: &Value) -> Option<Tuning> {
    let summaries = properties.get("TrainingJobSummaries")?.as_array()?;
    let config = properties.get("HyperParameterTuningJobConfig");
    let objective = |field: &str| {
        config
            .and_then(|c| c.pointer(&format!("/HyperParameterTuningJobObjective/{field}")))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let usage = |job: &str| row.resources.as_ref()?.jobs.iter().find(|j| j.job == job).cloned();
    let jobs = summaries
        .iter()
        .map(|s| {
            let name = text(s, "/TrainingJobName").unwrap_or("?").to_string();
            TrainingJob {
                status: text(s, "/TrainingJobStatus").unwrap_or("?").to_string(),
                objective: s.pointer("/FinalHyperParameterTuningJobObjectiveMetric/Value").and_then(Value::as_f64),
                hyperparameters: pairs(s.get("TunedHyperParameters")),
                failure: text(s, "/FailureReason").map(str::to_string),
                usage: usage(&name),
                name,
            }
        })
        .collect();
    Some(Tuning {
        step: row.name.clone(),
        objective: objective("MetricName"),
        objective_type: objective("Type"),
        static_hyperparameters: pairs(properties.pointer("/TrainingJobDefinition/StaticHyperParameters")),
        jobs,
    })
}

fn evaluation(step: &str, report: &[u8], rows: Option<&[u8]>) -> Evaluation {
    let report: Value = serde_json::from_slice(report).unwrap_or_default();
    let mut metrics = Vec::new();
    let mut classification = false;
    for group in ["regression_metrics", "binary_classification_metrics", "multiclass_classification_metrics"] {
        for (name, metric) in report.get(group).and_then(Value::as_object).into_iter().flatten() {
            classification |= group != "regression_metrics";
            if let Some(value) = metric.get("value").and_then(Value::as_f64) {
                let deviation = metric.get("standard_deviation").and_then(Value::as_f64);
                metrics.push((group.to_string(), name.clone(), value, deviation));
            }
        }
    }
    let (mut labels, mut predictions) = (Vec::new(), Vec::new());
    let text = rows.map(String::from_utf8_lossy).unwrap_or_default();
    for line in text.lines().skip(1) {
        if let Some((label, prediction)) = line.split_once(',')
            && let (Ok(label), Ok(prediction)) = (label.trim().parse(), prediction.trim().parse())
        {
            labels.push(label);
            predictions.push(prediction);
        }
    }
    Evaluation { step: step.to_string(), metrics, classification, labels, predictions }
}

fn check(step: &str, summary: &[u8], violations: Option<&[u8]>) -> Check {
    let summary: Value = serde_json::from_slice(summary).unwrap_or_default();
    let violations: Value = violations.and_then(|v| serde_json::from_slice(v).ok()).unwrap_or_default();
    Check {
        step: step.to_string(),
        status: summary["status"].as_str().unwrap_or("?").to_string(),
        violation_count: summary["violation_count"].as_u64().unwrap_or(0),
        drift: summary["drift"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["feature_name"].as_str().unwrap_or("?").to_string(),
                    d["distance"].as_f64().unwrap_or(f64::NAN),
                    d["threshold"].as_f64().unwrap_or(f64::NAN),
                    d["method"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        violations: violations["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let field = |name: &str| v[name].as_str().unwrap_or("").to_string();
                (field("feature_name"), field("constraint_check_type"), field("description"))
            })
            .collect(),
    }
}

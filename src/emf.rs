//! CloudWatch Embedded Metric Format: a job's key figures as one JSON log line that CloudWatch
//! Logs turns into metrics with no agent (SageMaker ships a job's stdout to CloudWatch Logs).
//! Opt-in: `SAGESTEP_EMF=1` (namespace `sagestep`, or `SAGESTEP_EMF_NAMESPACE`). The step is the
//! one dimension; the job name is a property, so each job does not make a new metric.

use serde_json::{Map, Value, json};

/// `1` or `true` turns the lines on.
pub const ENV: &str = "SAGESTEP_EMF";
pub const NAMESPACE_ENV: &str = "SAGESTEP_EMF_NAMESPACE";

/// A metric's CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Seconds,
    Megabytes,
    Count,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Seconds => "Seconds",
            Self::Megabytes => "Megabytes",
            Self::Count => "Count",
        }
    }
}

pub fn enabled() -> bool {
    std::env::var(ENV).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"))
}

/// One EMF line for `step` at `timestamp_ms`. Non-finite values are left out (CloudWatch
/// refuses them).
pub fn line(step: &str, job: Option<&str>, metrics: &[(String, f64, Unit)], timestamp_ms: u128) -> String {
    let namespace = std::env::var(NAMESPACE_ENV).unwrap_or_else(|_| "sagestep".into());
    let kept: Vec<&(String, f64, Unit)> = metrics.iter().filter(|(_, v, _)| v.is_finite()).collect();
    let definitions: Vec<Value> =
        kept.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.name()})).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms as u64,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [["Step"]], "Metrics": definitions}],
        }),
    );
    root.insert("Step".into(), Value::from(step));
    if let Some(job) = job {
        root.insert("JobName".into(), Value::from(job));
    }
    for (name, value, _) in kept {
        root.insert(name.clone(), Value::from(*value));
    }
    Value::Object(root).to_string()
}

/// Print the line when `SAGESTEP_EMF` asks for it. The job name comes from the variables
/// SageMaker sets (`TRAINING_JOB_NAME`, `PROCESSING_JOB_NAME`).
pub fn emit(step: &str, metrics: &[(String, f64, Unit)]) {
    if !enabled() || metrics.is_empty() {
        return;
    }
    let job = std::env::var("TRAINING_JOB_NAME").or_else(|_| std::env::var("PROCESSING_JOB_NAME")).ok();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    println!("{}", line(step, job.as_deref(), metrics, now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let metrics = vec![
            ("validation:rmse".to_string(), 2.5, Unit::None),
            ("PeakMemory".to_string(), 160.0, Unit::Megabytes),
            ("Broken".to_string(), f64::NAN, Unit::None),
        ];
        let text = line("train", Some("job-1"), &metrics, 1_700_000_000_000);
        let v: Value = serde_json::from_str(&text).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Dimensions"], json!([["Step"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "validation:rmse", "Unit": "None"}, {"Name": "PeakMemory", "Unit": "Megabytes"}])
        );
        assert_eq!((v["Step"].as_str(), v["JobName"].as_str()), (Some("train"), Some("job-1")));
        assert_eq!(v["validation:rmse"], 2.5);
        assert!(v.get("Broken").is_none(), "a NaN is left out");
    }
}

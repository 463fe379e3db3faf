//! CloudWatch metrics as Model Monitor's built-in container names them, written to
//! `/opt/ml/output/metrics/cloudwatch/cloudwatch_metrics.jsonl` (one PutMetricData-like
//! object per line) when `publish_cloudwatch_metrics` is `Enabled`:
//! - `feature_data_<name>`: `StatisticValues` (SampleCount, Sum, Minimum, Maximum) of a numeric
//!   feature;
//! - `feature_non_null_<name>`: the completeness;
//! - `feature_baseline_drift_<name>`: the drift distance, when a baseline was compared.
//!
//! Dimensions: `Endpoint` (`sagemaker_endpoint_name`) and `MonitoringSchedule`
//! (`sagemaker_monitoring_schedule_name`) when set. Timestamp: `end_time`, else now.

use serde_json::{Value, json};

use super::check::Drift;
use super::stats::Statistics;

pub struct Context<'a> {
    pub endpoint: Option<&'a str>,
    pub schedule: Option<&'a str>,
    pub timestamp: String,
}

/// The lines of `cloudwatch_metrics.jsonl`.
pub fn lines(statistics: &Statistics, drift: &[Drift], context: &Context<'_>) -> String {
    let mut dimensions = Vec::new();
    if let Some(endpoint) = context.endpoint {
        dimensions.push(json!({"Name": "Endpoint", "Value": endpoint}));
    }
    if let Some(schedule) = context.schedule {
        dimensions.push(json!({"Name": "MonitoringSchedule", "Value": schedule}));
    }
    let metric = |name: String, body: (&str, Value)| {
        let mut m = json!({"MetricName": name, "Timestamp": context.timestamp});
        if !dimensions.is_empty() {
            m["Dimensions"] = Value::from(dimensions.clone());
        }
        m[body.0] = body.1;
        m.to_string()
    };
    let rows = statistics.dataset.item_count;
    let mut out = String::new();
    for feature in &statistics.features {
        let present = match (&feature.numerical_statistics, &feature.string_statistics) {
            (Some(n), _) => {
                let values =
                    json!({"SampleCount": n.common.num_present, "Sum": n.sum, "Minimum": n.min, "Maximum": n.max});
                out += &metric(format!("feature_data_{}", feature.name), ("StatisticValues", values));
                out.push('\n');
                n.common.num_present
            }
            (None, Some(s)) => s.common.num_present,
            (None, None) => 0,
        };
        let completeness = if rows == 0 { 1.0 } else { present as f64 / rows as f64 };
        out += &metric(format!("feature_non_null_{}", feature.name), ("Value", json!(completeness)));
        out.push('\n');
    }
    for d in drift {
        out += &metric(format!("feature_baseline_drift_{}", d.feature_name), ("Value", json!(d.distance)));
        out.push('\n');
    }
    out
}

/// `2019-11-26T03:00:00Z` for a Unix time in seconds (CloudWatch's form: no fraction).
pub fn utc(secs: u64) -> String {
    let with_millis = crate::clock::rfc3339(secs as f64);
    format!("{}Z", &with_millis[..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_574_737_200), "2019-11-26T03:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}

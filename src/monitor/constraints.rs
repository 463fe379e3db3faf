//! `constraints.json`: suggested from a baseline's profile, read back for a check.
//!
//! Suggestions follow Deequ's rules, on which the AWS analyzer is built:
//! - `completeness`: 1.0 for a complete column; for one between 20% and 100% complete, the
//!   lower bound of its 95% interval rounded down to two decimals (`RetainCompletenessRule`);
//!   below that, the observed share.
//! - `num_constraints.is_non_negative`: the minimum is not negative.
//! - `string_constraints.domains`: the values of a String column with a histogram (at most
//!   120 distinct values) of which at most 10% occur once (`CategoricalRangeRule`), most
//!   frequent first.
//! - `monitoring_config`: the thresholds the AWS container writes.

use serde::{Deserialize, Serialize};

use super::infer::DataType;
use super::stats::ColumnProfile;

pub const ENABLED: &str = "Enabled";
pub const DISABLED: &str = "Disabled";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Constraints {
    #[serde(default)]
    pub version: f64,
    pub features: Vec<FeatureConstraints>,
    #[serde(default)]
    pub monitoring_config: MonitoringConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureConstraints {
    pub name: String,
    pub inferred_type: DataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_constraints: Option<NumConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_constraints: Option<StringConstraints>,
    /// Per-feature overrides: AWS's docs spell them `monitoringConfigOverrides`, the Python
    /// SDK writes `monitoring_config_overrides`; both are read.
    #[serde(default, alias = "monitoringConfigOverrides", skip_serializing_if = "Option::is_none")]
    pub monitoring_config_overrides: Option<Overrides>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumConstraints {
    #[serde(default)]
    pub is_non_negative: Option<bool>,
    #[serde(default, alias = "monitoringConfigOverrides", skip_serializing_if = "Option::is_none")]
    pub monitoring_config_overrides: Option<Overrides>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StringConstraints {
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    #[serde(default, alias = "monitoringConfigOverrides", skip_serializing_if = "Option::is_none")]
    pub monitoring_config_overrides: Option<Overrides>,
}

/// Settings a feature may override (unknown keys are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_constraints: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype_check_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_content_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_comparison_threshold: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitoringConfig {
    #[serde(default = "enabled")]
    pub evaluate_constraints: String,
    #[serde(default = "enabled")]
    pub emit_metrics: String,
    #[serde(default = "one")]
    pub datatype_check_threshold: f64,
    #[serde(default = "one")]
    pub domain_content_threshold: f64,
    #[serde(default)]
    pub distribution_constraints: DistributionConstraints,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistributionConstraints {
    #[serde(default = "enabled")]
    pub perform_comparison: String,
    #[serde(default = "tenth")]
    pub comparison_threshold: f64,
    #[serde(default = "robust")]
    pub comparison_method: String,
    /// Absent in older files: then `comparison_threshold` applies to categories too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_drift_method: Option<String>,
}

fn enabled() -> String {
    ENABLED.into()
}
fn one() -> f64 {
    1.0
}
fn tenth() -> f64 {
    0.1
}
fn robust() -> String {
    "Robust".into()
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            evaluate_constraints: enabled(),
            emit_metrics: enabled(),
            datatype_check_threshold: one(),
            domain_content_threshold: one(),
            distribution_constraints: DistributionConstraints::default(),
        }
    }
}

impl Default for DistributionConstraints {
    fn default() -> Self {
        Self {
            perform_comparison: enabled(),
            comparison_threshold: tenth(),
            comparison_method: robust(),
            categorical_comparison_threshold: Some(tenth()),
            categorical_drift_method: Some("LInfinity".into()),
        }
    }
}

impl FeatureConstraints {
    /// The feature's overrides wherever they were written (feature level first).
    pub fn overrides(&self) -> Overrides {
        let all = [
            self.monitoring_config_overrides.as_ref(),
            self.num_constraints.as_ref().and_then(|n| n.monitoring_config_overrides.as_ref()),
            self.string_constraints.as_ref().and_then(|s| s.monitoring_config_overrides.as_ref()),
        ];
        let mut merged = Overrides::default();
        for o in all.into_iter().flatten() {
            merged.evaluate_constraints = merged.evaluate_constraints.or_else(|| o.evaluate_constraints.clone());
            merged.datatype_check_threshold = merged.datatype_check_threshold.or(o.datatype_check_threshold);
            merged.domain_content_threshold = merged.domain_content_threshold.or(o.domain_content_threshold);
            merged.comparison_threshold = merged.comparison_threshold.or(o.comparison_threshold);
            merged.categorical_comparison_threshold =
                merged.categorical_comparison_threshold.or(o.categorical_comparison_threshold);
        }
        merged
    }

    pub fn domains(&self) -> Option<&[String]> {
        self.string_constraints.as_ref()?.domains.as_deref()
    }
}

/// Deequ's `RetainCompletenessRule` and `CompleteIfCompleteRule`.
fn suggested_completeness(p: f64, rows: u64) -> f64 {
    if p >= 1.0 || p <= 0.2 || rows == 0 {
        return p;
    }
    let bound = p - 1.96 * (p * (1.0 - p) / rows as f64).sqrt();
    // BigDecimal(bound).setScale(2, RoundingMode.DOWN): toward zero.
    (bound * 100.0).trunc() / 100.0
}

/// Deequ's `CategoricalRangeRule`: at most 10% of the distinct values occur once.
fn suggested_domains(profile: &ColumnProfile) -> Option<Vec<String>> {
    let categories = profile.categories()?;
    if categories.is_empty() {
        return None;
    }
    let singletons = categories.iter().filter(|(_, count)| *count == 1).count();
    (singletons as f64 / categories.len() as f64 <= 0.1)
        .then(|| categories.iter().map(|(v, _)| v.to_string()).collect())
}

/// Constraints suggested from a profiled data set.
pub fn suggest(rows: u64, columns: &[ColumnProfile]) -> Constraints {
    let features = columns
        .iter()
        .map(|column| {
            let data_type = column.data_type();
            let num_constraints = (data_type.is_numeric()).then(|| NumConstraints {
                is_non_negative: column.min().map(|m| m >= 0.0),
                monitoring_config_overrides: None,
            });
            let string_constraints = (data_type == DataType::String)
                .then(|| suggested_domains(column))
                .flatten()
                .map(|domains| StringConstraints { domains: Some(domains), monitoring_config_overrides: None });
            FeatureConstraints {
                name: column.name.clone(),
                inferred_type: data_type,
                completeness: Some(suggested_completeness(column.completeness(rows), rows)),
                num_constraints,
                string_constraints,
                monitoring_config_overrides: None,
            }
        })
        .collect();
    Constraints { version: 0.0, features, monitoring_config: MonitoringConfig::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_follows_deequs_rules() {
        assert_eq!(suggested_completeness(1.0, 10), 1.0);
        assert_eq!(suggested_completeness(0.1, 10), 0.1);
        // 0.9 - 1.96 * sqrt(0.09 / 100) = 0.8412 -> 0.84
        assert_eq!(suggested_completeness(0.9, 100), 0.84);
    }

    #[test]
    fn reads_aws_files_with_either_override_spelling() {
        let text = r#"{"version": 0.0, "features": [
            {"name": "a", "inferred_type": "Fractional", "completeness": 1.0, "num_constraints": {"is_non_negative": true}},
            {"name": "s", "inferred_type": "String", "completeness": 1, "string_constraints": {"domains": ["x"],
             "monitoring_config_overrides": {"evaluate_constraints": "Disabled"}},
             "monitoringConfigOverrides": {"datatype_check_threshold": 0.5}}],
            "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
              "datatype_check_threshold": 1.0, "domain_content_threshold": 1.0,
              "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                           "comparison_method": "Robust"}}}"#;
        let c: Constraints = serde_json::from_str(text).unwrap();
        let o = c.features[1].overrides();
        assert_eq!(o.evaluate_constraints.as_deref(), Some(DISABLED));
        assert_eq!(o.datatype_check_threshold, Some(0.5));
        assert_eq!(c.monitoring_config.distribution_constraints.categorical_comparison_threshold, None);
        assert_eq!(c.features[1].domains().unwrap(), ["x"]);
    }
}

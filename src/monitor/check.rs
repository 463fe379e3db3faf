//! A data set's profile against a baseline: `constraint_violations.json`.
//!
//! Checks, per baseline feature (names from `constraints.json`, else from the baseline
//! `statistics.json`), in this order:
//! - `missing_column_check`: the data set has no column of that name;
//! - `data_type_check`: the share of present values whose own class is the baseline type
//!   (an Integral `7` does not count toward Fractional) is below `datatype_check_threshold`;
//! - `completeness_check`: the share of present values is below the feature's `completeness`;
//! - `categorical_values_check`: the share of present values inside the feature's `domains`
//!   is below `domain_content_threshold`;
//! - `baseline_drift_check`: the distance between the baseline's distribution and the data's is
//!   above `comparison_threshold` (numbers: L-infinity between the KLL sketches' cumulative
//!   distributions) or `categorical_comparison_threshold` (categories: L-infinity between the
//!   category shares), Robust or Simple as `comparison_method` says;
//!
//! then `extra_column_check` for each column the baseline does not name.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::constraints::{Constraints, DISABLED, FeatureConstraints, MonitoringConfig};
use super::infer::DataType;
use super::kll;
use super::stats::{BaselineFeature, BaselineStatistics, ColumnProfile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    DataTypeCheck,
    CompletenessCheck,
    BaselineDriftCheck,
    MissingColumnCheck,
    ExtraColumnCheck,
    CategoricalValuesCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub feature_name: String,
    pub constraint_check_type: CheckType,
    pub description: String,
}

/// `constraint_violations.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Violations {
    pub violations: Vec<Violation>,
}

/// A drift distance measured for one feature, whether or not it is a violation.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub feature_name: String,
    pub distance: f64,
    pub threshold: f64,
    pub method: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub violations: Violations,
    pub drift: Vec<Drift>,
}

/// The baseline a data set is checked against: constraints, statistics, or both.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub constraints: Option<Constraints>,
    pub statistics: Option<BaselineStatistics>,
}

impl Baseline {
    /// The baseline's feature names, in its order.
    pub fn feature_names(&self) -> Vec<&str> {
        match (&self.constraints, &self.statistics) {
            (Some(c), _) => c.features.iter().map(|f| f.name.as_str()).collect(),
            (None, Some(s)) => s.features.iter().map(|f| f.name.as_str()).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// The domain of each String feature that has one, to count values inside it while reading.
    pub fn domains(&self) -> HashMap<String, HashSet<Box<str>>> {
        let Some(constraints) = &self.constraints else { return HashMap::new() };
        constraints
            .features
            .iter()
            .filter(|f| f.inferred_type == DataType::String)
            .filter_map(|f| Some((f.name.clone(), f.domains()?.iter().map(|d| d.as_str().into()).collect())))
            .collect()
    }
}

/// How categories are compared: only `LInfinity` is implemented.
pub fn check_categorical_method(method: &str) -> Result<(), String> {
    match method {
        "LInfinity" => Ok(()),
        "ChiSquared" => Err("`categorical_drift_method` `ChiSquared` is not supported by this image \
             (AWS has not documented how its analyzer thresholds it); use `LInfinity`"
            .into()),
        other => Err(format!("`categorical_drift_method` must be `LInfinity` or `ChiSquared`. Given: `{other}`")),
    }
}

/// Java's `Double.toString` for the numbers in descriptions: `100.0`, not `100`.
fn num(x: f64) -> String {
    if x.is_finite() { ryu::Buffer::new().format_finite(x).to_string() } else { x.to_string() }
}

/// Check `columns` (the data set's profile over `rows` rows) against `baseline`.
/// `categorical_method` is the `categorical_drift_method` environment override.
pub fn check(
    baseline: &Baseline,
    columns: &[ColumnProfile],
    rows: u64,
    categorical_method: Option<&str>,
) -> Result<Report, String> {
    let config = baseline.constraints.as_ref().map(|c| c.monitoring_config.clone()).unwrap_or_default();
    let robust = match config.distribution_constraints.comparison_method.as_str() {
        "Robust" => true,
        "Simple" => false,
        other => return Err(format!("`comparison_method` must be `Robust` or `Simple`. Given: `{other}`")),
    };
    let method = categorical_method
        .or(config.distribution_constraints.categorical_drift_method.as_deref())
        .unwrap_or("LInfinity");
    check_categorical_method(method)?;

    let by_name: HashMap<&str, &ColumnProfile> = columns.iter().map(|c| (c.name.as_str(), c)).collect();
    let stats_by_name: HashMap<&str, &BaselineFeature> =
        baseline.statistics.iter().flat_map(|s| s.features.iter()).map(|f| (f.name.as_str(), f)).collect();
    let names = baseline.feature_names();
    let evaluate = config.evaluate_constraints != DISABLED;
    let mut report = Report::default();
    let push = |report: &mut Report, name: &str, kind: CheckType, description: String| {
        report.violations.violations.push(Violation {
            feature_name: name.into(),
            constraint_check_type: kind,
            description,
        });
    };
    let counts = format!(
        "Number of columns in current dataset: {}, Number of columns in baseline constraints: {}",
        columns.len(),
        names.len()
    );

    for name in &names {
        let constraint = baseline.constraints.as_ref().and_then(|c| c.features.iter().find(|f| f.name == *name));
        let Some(column) = by_name.get(name) else {
            if evaluate {
                push(
                    &mut report,
                    name,
                    CheckType::MissingColumnCheck,
                    format!("There are missing columns in current dataset. {counts}"),
                );
            }
            continue;
        };
        let overrides = constraint.map(FeatureConstraints::overrides).unwrap_or_default();
        let feature_evaluate = overrides.evaluate_constraints.as_deref().map_or(evaluate, |e| e != DISABLED);
        if let (Some(constraint), true) = (constraint, feature_evaluate) {
            for (kind, description) in constraint_checks(constraint, column, rows, &config, &overrides) {
                push(&mut report, name, kind, description);
            }
        }
        if config.distribution_constraints.perform_comparison == DISABLED {
            continue;
        }
        let Some(base) = stats_by_name.get(name) else { continue };
        if let Some(drift) = drift(base, column, &config, &overrides, robust)? {
            if drift.distance > drift.threshold {
                let description = format!(
                    "{} distance: {} exceeds {} threshold: {}",
                    if drift.method == "numerical" { "Numerical" } else { "Categorical" },
                    num(drift.distance),
                    drift.method,
                    num(drift.threshold)
                );
                push(&mut report, name, CheckType::BaselineDriftCheck, description);
            }
            report.drift.push(drift);
        }
    }
    if evaluate {
        let known: HashSet<&str> = names.iter().copied().collect();
        for column in columns.iter().filter(|c| !known.contains(c.name.as_str())) {
            push(
                &mut report,
                &column.name,
                CheckType::ExtraColumnCheck,
                format!("There are extra columns in current dataset. {counts}"),
            );
        }
    }
    Ok(report)
}

/// The data type, completeness and domain checks of one feature.
fn constraint_checks(
    constraint: &FeatureConstraints,
    column: &ColumnProfile,
    rows: u64,
    config: &MonitoringConfig,
    overrides: &super::constraints::Overrides,
) -> Vec<(CheckType, String)> {
    let mut found = Vec::new();
    let ty = constraint.inferred_type;
    let threshold = overrides.datatype_check_threshold.unwrap_or(config.datatype_check_threshold);
    if let Some(share) = column.types.share_of(ty).filter(|&share| share < threshold) {
        found.push((
            CheckType::DataTypeCheck,
            format!(
                "Data type match requirement is not met. Expected data type: {}, Expected match: {}%. \
                 Observed: Only {}% of data is {}.",
                ty.name(),
                num(threshold * 100.0),
                num(share * 100.0),
                ty.name()
            ),
        ));
    }
    if let Some(expected) = constraint.completeness {
        let observed = column.completeness(rows);
        if observed < expected {
            found.push((
                CheckType::CompletenessCheck,
                format!(
                    "Data completeness requirement is not met. Expected completeness: {}%. Observed: Only {}% of data is complete.",
                    num(expected * 100.0),
                    num(observed * 100.0)
                ),
            ));
        }
    }
    let domain_threshold = overrides.domain_content_threshold.unwrap_or(config.domain_content_threshold);
    if let (Some(domains), Some(share)) = (constraint.domains(), column.domain_share())
        && !domains.is_empty()
        && share < domain_threshold
    {
        found.push((
            CheckType::CategoricalValuesCheck,
            format!(
                "Categorical values requirement is not met. Expected: {}% of values in the baseline domain \
                     ({} values). Observed: Only {}% of data is in the domain.",
                num(domain_threshold * 100.0),
                domains.len(),
                num(share * 100.0)
            ),
        ));
    }
    found
}

/// The drift distance of one feature, when both sides have a distribution to compare.
fn drift(
    base: &BaselineFeature,
    column: &ColumnProfile,
    config: &MonitoringConfig,
    overrides: &super::constraints::Overrides,
    robust: bool,
) -> Result<Option<Drift>, String> {
    let dc = &config.distribution_constraints;
    if base.inferred_type.is_numeric() && column.data_type().is_numeric() {
        let Some(sketch) = base.sketch()? else { return Ok(None) };
        let Some((linf, n, m)) = kll::linf_simple(&sketch, &column.sketch) else { return Ok(None) };
        return Ok(Some(Drift {
            feature_name: column.name.clone(),
            distance: kll::corrected(linf, n, m, robust),
            threshold: overrides.comparison_threshold.unwrap_or(dc.comparison_threshold),
            method: "numerical",
        }));
    }
    if base.inferred_type == DataType::String && column.data_type() == DataType::String {
        let (Some(baseline), Some(current)) = (base.categories()?, column.values.exact(usize::MAX)) else {
            return Ok(None);
        };
        let n: f64 = baseline.iter().map(|c| c.count).sum();
        let m: f64 = current.iter().map(|c| c.1 as f64).sum();
        if n <= 0.0 || m <= 0.0 {
            return Ok(None);
        }
        let current: HashMap<&str, f64> = current.into_iter().map(|(v, c)| (v, c as f64)).collect();
        let base_map: HashMap<&str, f64> = baseline.iter().map(|c| (c.value.as_str(), c.count)).collect();
        let keys: HashSet<&str> = base_map.keys().chain(current.keys()).copied().collect();
        let linf = keys
            .into_iter()
            .map(|k| (base_map.get(k).copied().unwrap_or(0.0) / n - current.get(k).copied().unwrap_or(0.0) / m).abs())
            .fold(0.0, f64::max);
        let threshold = overrides
            .categorical_comparison_threshold
            .or(dc.categorical_comparison_threshold)
            .unwrap_or(dc.comparison_threshold);
        return Ok(Some(Drift {
            feature_name: column.name.clone(),
            distance: kll::corrected(linf, n, m, robust),
            threshold,
            method: "categorical",
        }));
    }
    Ok(None)
}

//! Model-quality `constraints.json`: suggested from a baseline's metrics, and a data set's
//! metrics checked against a baseline's, into `constraint_violations.json`.
//!
//! - Suggestion (AWS's fixture): each threshold is the baseline's value; error metrics (mae,
//!   mse, rmse, false positive and negative rates) get `GreaterThanThreshold`, the others
//!   `LessThanThreshold`. Classification suggests the scalar metrics but the best constant
//!   classifier's (the baseline against which the model is judged, not the model); which ones
//!   AWS suggests for classification is not published.
//! - Check: strict, as AWS's pipeline test shows (thresholds equal to the values pass):
//!   `GreaterThanThreshold` is violated by `value > threshold`, `LessThanThreshold` by
//!   `value < threshold`; the CloudWatch forms `...OrEqualToThreshold` are read too. A NaN
//!   value violates nothing. A constraint on a metric this problem type does not compute is an
//!   error, as is a file made for another problem type.
//! - Violations (no AWS sample exists; the shape of Amazon's own imitation):
//!   `{"violations": [{"metric_name", "constraint_check_type", "description"}]}`.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::metric::{Metric, Number};
use super::{ProblemType, Statistics};

/// The four comparison operators read; AWS writes the first two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    GreaterThanThreshold,
    LessThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanOrEqualToThreshold,
}

impl Operator {
    /// Whether `value` breaks the constraint (NaN breaks none).
    pub fn violated(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanThreshold => value > threshold,
            Self::LessThanThreshold => value < threshold,
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::GreaterThanThreshold => "GreaterThanThreshold",
            Self::LessThanThreshold => "LessThanThreshold",
            Self::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Self::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub threshold: f64,
    pub comparison_operator: Operator,
}

/// A `constraints.json` as written (constraints in the metrics' order).
#[derive(Debug, Clone, PartialEq)]
pub struct Suggested {
    pub problem_type: ProblemType,
    pub constraints: Vec<(&'static str, Constraint)>,
}

/// Metrics where larger is worse.
const ERROR_METRICS: [&str; 5] = ["mae", "mse", "rmse", "false_positive_rate", "false_negative_rate"];

pub fn suggest(statistics: &Statistics) -> Suggested {
    let constraints = statistics
        .scalars()
        .into_iter()
        .filter(|(name, _)| !name.ends_with("_best_constant_classifier"))
        .map(|(name, metric)| {
            let comparison_operator = if ERROR_METRICS.contains(&name) {
                Operator::GreaterThanThreshold
            } else {
                Operator::LessThanThreshold
            };
            (name, Constraint { threshold: metric.value, comparison_operator })
        })
        .collect();
    Suggested { problem_type: statistics.problem_type(), constraints }
}

impl Serialize for Suggested {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Section<'a>(&'a [(&'static str, Constraint)]);
        impl Serialize for Section<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, c) in self.0 {
                    #[derive(Serialize)]
                    struct Written {
                        threshold: Number,
                        comparison_operator: Operator,
                    }
                    map.serialize_entry(
                        name,
                        &Written { threshold: Number(c.threshold), comparison_operator: c.comparison_operator },
                    )?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("version", &0.0)?;
        map.serialize_entry(self.problem_type.constraints_key(), &Section(&self.constraints))?;
        map.end()
    }
}

/// A baseline's `constraints.json` as read: every section it has.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    #[serde(default)]
    pub version: Option<f64>,
    #[serde(default)]
    pub regression_constraints: Option<BTreeMap<String, Constraint>>,
    #[serde(default)]
    pub binary_classification_constraints: Option<BTreeMap<String, Constraint>>,
    #[serde(default)]
    pub multiclass_classification_constraints: Option<BTreeMap<String, Constraint>>,
}

impl Baseline {
    fn section(&self, problem: ProblemType) -> Option<&BTreeMap<String, Constraint>> {
        match problem {
            ProblemType::Regression => self.regression_constraints.as_ref(),
            ProblemType::BinaryClassification => self.binary_classification_constraints.as_ref(),
            ProblemType::MulticlassClassification => self.multiclass_classification_constraints.as_ref(),
        }
    }

    fn sections(&self) -> Vec<&'static str> {
        let mut present = Vec::new();
        for problem in ProblemType::ALL {
            if self.section(problem).is_some() {
                present.push(problem.constraints_key());
            }
        }
        present
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub metric_name: String,
    pub constraint_check_type: Operator,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    pub violations: Vec<Violation>,
}

/// The metrics against the baseline's constraints for their problem type.
pub fn check(baseline: &Baseline, statistics: &Statistics) -> Result<Violations, String> {
    let problem = statistics.problem_type();
    let Some(section) = baseline.section(problem) else {
        let present = baseline.sections();
        let held = if present.is_empty() { "none".to_string() } else { present.join(", ") };
        return Err(format!(
            "has no `{}` for problem type {problem} (it holds: {held}); the baseline was made for another problem type",
            problem.constraints_key()
        ));
    };
    let listed = statistics.scalars();
    let scalars: BTreeMap<&str, Metric> = listed.iter().copied().collect();
    let mut violations = Vec::new();
    for (name, constraint) in section {
        let Some(metric) = scalars.get(name.as_str()) else {
            let known: Vec<&str> = listed.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "constrains `{name}`, which is no {problem} metric (the metrics are {})",
                known.join(", ")
            ));
        };
        if metric.value.is_nan() {
            tracing::warn!(metric = %name, "the metric is NaN: its constraint is not checked");
        }
        if constraint.comparison_operator.violated(metric.value, constraint.threshold) {
            let operator = constraint.comparison_operator;
            violations.push(Violation {
                metric_name: name.clone(),
                constraint_check_type: operator,
                description: format!(
                    "Metric {name} with {} was {} {}",
                    metric.value,
                    operator.name(),
                    constraint.threshold
                ),
            });
        }
    }
    Ok(Violations { violations })
}

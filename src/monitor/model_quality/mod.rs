//! Model Monitor's model-quality analysis: predictions against ground truth.
//!
//! The metrics of `statistics.json` for the three problem types (`regression`, `binary`,
//! `multiclass`), each fed one row at a time in bounded memory; the `"NaN"` or subsampled
//! standard deviations (`metric`); the suggested `constraints.json` and the check of a data
//! set's metrics against a baseline's (`constraints`). The job around them: its environment
//! (`settings`), its rows (`rows`: CSV, JSON, a merge job's records), its outputs (`job`).
//! Shapes, keys and formulas: shared/spec/model-quality-capture.md part 3.

pub mod binary;
pub mod constraints;
pub mod job;
pub mod labels;
pub mod metric;
pub mod multiclass;
pub mod regression;
pub mod rows;
pub mod scores;
pub mod settings;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use binary::BinaryMetrics;
use metric::Metric;
use multiclass::MulticlassMetrics;
use regression::RegressionMetrics;

/// `problem_type` (AWS's `MonitoringProblemType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    Regression,
    BinaryClassification,
    MulticlassClassification,
}

impl ProblemType {
    pub const ALL: [Self; 3] = [Self::Regression, Self::BinaryClassification, Self::MulticlassClassification];

    /// The exact names AWS takes.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.name() == text).ok_or_else(|| {
            format!(
                "`problem_type` must be one of Regression, BinaryClassification, MulticlassClassification. Given: `{text}`"
            )
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Regression => "Regression",
            Self::BinaryClassification => "BinaryClassification",
            Self::MulticlassClassification => "MulticlassClassification",
        }
    }

    /// The key of its metrics in `statistics.json`.
    pub fn metrics_key(self) -> &'static str {
        match self {
            Self::Regression => "regression_metrics",
            Self::BinaryClassification => "binary_classification_metrics",
            Self::MulticlassClassification => "multiclass_classification_metrics",
        }
    }

    /// The key of its constraints in `constraints.json`.
    pub fn constraints_key(self) -> &'static str {
        match self {
            Self::Regression => "regression_constraints",
            Self::BinaryClassification => "binary_classification_constraints",
            Self::MulticlassClassification => "multiclass_classification_constraints",
        }
    }
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metrics {
    Regression(RegressionMetrics),
    Binary(BinaryMetrics),
    Multiclass(MulticlassMetrics),
}

/// A model-quality `statistics.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    pub item_count: u64,
    pub metrics: Metrics,
}

impl Statistics {
    pub fn problem_type(&self) -> ProblemType {
        match self.metrics {
            Metrics::Regression(_) => ProblemType::Regression,
            Metrics::Binary(_) => ProblemType::BinaryClassification,
            Metrics::Multiclass(_) => ProblemType::MulticlassClassification,
        }
    }

    /// Every scalar metric by key, in the file's order (what constraints and CloudWatch name).
    pub fn scalars(&self) -> Vec<(&'static str, Metric)> {
        match &self.metrics {
            Metrics::Regression(m) => m.scalars(),
            Metrics::Binary(m) => m.scalars(),
            Metrics::Multiclass(m) => m.scalars(),
        }
    }
}

impl Serialize for Statistics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Dataset {
            item_count: u64,
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("version", &0.0)?;
        map.serialize_entry("dataset", &Dataset { item_count: self.item_count })?;
        let key = self.problem_type().metrics_key();
        match &self.metrics {
            Metrics::Regression(m) => map.serialize_entry(key, m)?,
            Metrics::Binary(m) => map.serialize_entry(key, m)?,
            Metrics::Multiclass(m) => map.serialize_entry(key, m)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;

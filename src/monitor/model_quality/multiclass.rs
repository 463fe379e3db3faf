//! `multiclass_classification_metrics`: the confusion matrix, accuracy, and recall, precision
//! and F-scores weighted by each actual class's support, with their "best constant
//! classifier" forms.
//!
//! Spark's `MulticlassMetrics` arithmetic, which reproduces AWS's example to every digit:
//! `weighted_m = Σ_c m(c) · support(c) / n` over the actual classes in label order; a class
//! never predicted has precision 0; F-beta is 0 when precision and recall are. The best constant
//! classifier always predicts the last label in label order (`labels::order`; `"1"` in AWS's
//! example, where `"0"` is the majority). The matrix names every label seen, actual or
//! predicted, on both axes; more than `MAX_CLASSES` labels is refused (it is a regression).

use std::collections::HashMap;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::labels;
use super::metric::{Metric, SUBSAMPLES, f_beta, ratio, subsample_bits};
use super::scores::SAMPLES;

/// Distinct labels at most.
pub const MAX_CLASSES: usize = 1000;

/// The scalar metrics' keys, in the file's order.
pub const SCALARS: [&str; 12] = [
    "accuracy",
    "weighted_recall",
    "weighted_precision",
    "weighted_f0_5",
    "weighted_f1",
    "weighted_f2",
    "accuracy_best_constant_classifier",
    "weighted_recall_best_constant_classifier",
    "weighted_precision_best_constant_classifier",
    "weighted_f0_5_best_constant_classifier",
    "weighted_f1_best_constant_classifier",
    "weighted_f2_best_constant_classifier",
];

#[derive(Debug, thiserror::Error)]
#[error(
    "more than {MAX_CLASSES} distinct labels (actual and predicted): a MulticlassClassification confusion \
     matrix would not fit in statistics.json; is the problem type Regression?"
)]
pub struct TooManyClasses;

#[derive(Debug, Default)]
pub struct Multiclass {
    rows: u64,
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// (actual, predicted) -> count in every sample.
    cells: HashMap<(u32, u32), [u64; SAMPLES]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MulticlassMetrics {
    /// Labels in label order.
    pub labels: Vec<String>,
    /// `matrix[actual][predicted]`, indices into `labels`.
    pub matrix: Vec<Vec<u64>>,
    /// `SCALARS` order.
    pub scalars: Vec<Metric>,
}

impl Multiclass {
    /// One row, labels as given (made canonical here).
    pub fn add(&mut self, actual: &str, predicted: &str) -> Result<(), TooManyClasses> {
        let actual = self.id(actual)?;
        let predicted = self.id(predicted)?;
        let bits = subsample_bits(self.rows);
        self.rows += 1;
        let cell = self.cells.entry((actual, predicted)).or_default();
        cell[0] += 1;
        for s in 0..SUBSAMPLES {
            cell[s + 1] += u64::from((bits >> s) & 1);
        }
        Ok(())
    }

    fn id(&mut self, label: &str) -> Result<u32, TooManyClasses> {
        let label = labels::canonical(label);
        if let Some(&id) = self.ids.get(label.as_ref()) {
            return Ok(id);
        }
        if self.names.len() >= MAX_CLASSES {
            return Err(TooManyClasses);
        }
        let id = self.names.len() as u32;
        self.names.push(label.as_ref().into());
        self.ids.insert(label.into_owned().into_boxed_str(), id);
        Ok(id)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(&self) -> MulticlassMetrics {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        order.sort_by(|&a, &b| labels::order(&self.names[a], &self.names[b]));
        let mut position = vec![0; order.len()];
        for (i, &id) in order.iter().enumerate() {
            position[id] = i;
        }
        let k = order.len();
        let mut matrices = vec![vec![vec![0u64; k]; k]; SAMPLES];
        for (&(actual, predicted), counts) in &self.cells {
            for (s, matrix) in matrices.iter_mut().enumerate() {
                matrix[position[actual as usize]][position[predicted as usize]] = counts[s];
            }
        }
        let values: Vec<[f64; 12]> = matrices.iter().map(|m| values(m)).collect();
        let scalars = (0..SCALARS.len())
            .map(|i| Metric::new(self.rows, values[0][i], std::array::from_fn(|s| values[s + 1][i])))
            .collect();
        let labels = order.iter().map(|&id| self.names[id].to_string()).collect();
        MulticlassMetrics { labels, matrix: matrices.swap_remove(0), scalars }
    }
}

/// The scalars of one confusion matrix, in `SCALARS` order.
fn values(matrix: &[Vec<u64>]) -> [f64; 12] {
    let k = matrix.len();
    let support: Vec<u64> = matrix.iter().map(|row| row.iter().sum()).collect();
    let predicted: Vec<u64> = (0..k).map(|p| matrix.iter().map(|row| row[p]).sum()).collect();
    let n: u64 = support.iter().sum();
    let correct: u64 = (0..k).map(|c| matrix[c][c]).sum();
    // Spark's weighting: metric * support / n, summed in label order over the actual classes.
    let weighted = |metric: &dyn Fn(usize) -> f64| -> f64 {
        (0..k).filter(|&c| support[c] > 0).map(|c| metric(c) * support[c] as f64 / n as f64).sum()
    };
    let precision = |c: usize| ratio(matrix[c][c], predicted[c]);
    let recall = |c: usize| ratio(matrix[c][c], support[c]);
    // Always the last label: it is right on its own support and predicts it for every row.
    let constant = k.saturating_sub(1);
    let constant_precision = |c: usize| if c == constant { ratio(support[c], n) } else { 0.0 };
    let constant_recall = |c: usize| if c == constant && support[c] > 0 { 1.0 } else { 0.0 };
    let f = |b: f64| weighted(&|c| f_beta(precision(c), recall(c), b));
    let constant_f = |b: f64| weighted(&|c| f_beta(constant_precision(c), constant_recall(c), b));
    [
        ratio(correct, n),
        weighted(&recall),
        weighted(&precision),
        f(0.5),
        f(1.0),
        f(2.0),
        ratio(support.get(constant).copied().unwrap_or(0), n),
        weighted(&constant_recall),
        weighted(&constant_precision),
        constant_f(0.5),
        constant_f(1.0),
        constant_f(2.0),
    ]
}

impl MulticlassMetrics {
    pub fn scalars(&self) -> Vec<(&'static str, Metric)> {
        SCALARS.iter().copied().zip(self.scalars.iter().copied()).collect()
    }
}

impl Serialize for MulticlassMetrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Row<'a>(&'a [String], &'a [u64]);
        impl Serialize for Row<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (label, count) in self.0.iter().zip(self.1) {
                    map.serialize_entry(label, count)?;
                }
                map.end()
            }
        }
        struct Matrix<'a>(&'a MulticlassMetrics);
        impl Serialize for Matrix<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let m = self.0;
                let mut map = serializer.serialize_map(Some(m.labels.len()))?;
                for (label, row) in m.labels.iter().zip(&m.matrix) {
                    map.serialize_entry(label, &Row(&m.labels, row))?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1 + SCALARS.len()))?;
        map.serialize_entry("confusion_matrix", &Matrix(self))?;
        for (name, metric) in SCALARS.iter().zip(&self.scalars) {
            map.serialize_entry(name, metric)?;
        }
        map.end()
    }
}

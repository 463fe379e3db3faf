//! `binary_classification_metrics`: the confusion matrix, its rates and F-scores, the "best
//! constant classifier" ones, the ROC and precision-recall curves and the AUC.
//!
//! - The confusion matrix's outer key is the actual label, the inner one the prediction
//!   (`{"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}`), as AWS's examples have it.
//! - `true_negative_rate = 1 - false_positive_rate` and `false_negative_rate = 1 - recall`:
//!   AWS's example writes 0.33333333333333337 for 1 - 2/3. An empty class gives 0 rates.
//! - The best constant classifier always predicts the positive label `1` (both of AWS's
//!   examples fit that, even where `0` is the majority).
//! - The curves and the AUC rank rows by their score (the probability attribute, else the
//!   predicted label), a point for each distinct score from the largest down, as Spark's
//!   `BinaryClassificationMetrics` does: ROC from (0, 0) to (1, 1), precision-recall from
//!   recall 0 at the first point's precision. Past `MAX_CURVE_POINTS` distinct scores every
//!   2^k-th one is kept (the points stay exact). The AUC is the trapezoid area under the full
//!   curve, summed in integers and divided once; it is NaN without both classes.

use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::metric::{Metric, SUBSAMPLES, f_beta, ratio, subsample_bits};
use super::scores::{Group, POSITIVE, SAMPLES, ScoreTally};

/// Points of a curve at most (besides its two ends).
pub const MAX_CURVE_POINTS: usize = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    fn add(&mut self, actual: bool, predicted: bool) {
        match (actual, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }

    /// The scalar metrics but the AUC, in `SCALARS` order.
    fn values(&self) -> [f64; 16] {
        let (positives, negatives) = (self.tp + self.fn_, self.fp + self.tn);
        let n = positives + negatives;
        let recall = ratio(self.tp, positives);
        let precision = ratio(self.tp, self.tp + self.fp);
        let fpr = ratio(self.fp, negatives);
        let (constant_recall, constant_precision) = (ratio(positives, positives), ratio(positives, n));
        [
            recall,
            precision,
            ratio(self.tp + self.tn, n),
            constant_recall,
            constant_precision,
            ratio(positives, n),
            recall,
            1.0 - fpr,
            fpr,
            1.0 - recall,
            f_beta(precision, recall, 0.5),
            f_beta(precision, recall, 1.0),
            f_beta(precision, recall, 2.0),
            f_beta(constant_precision, constant_recall, 0.5),
            f_beta(constant_precision, constant_recall, 1.0),
            f_beta(constant_precision, constant_recall, 2.0),
        ]
    }
}

/// The scalar metrics' keys (`Confusion::values`' order), then `auc`.
pub const SCALARS: [&str; 17] = [
    "recall",
    "precision",
    "accuracy",
    "recall_best_constant_classifier",
    "precision_best_constant_classifier",
    "accuracy_best_constant_classifier",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
    "f0_5",
    "f1",
    "f2",
    "f0_5_best_constant_classifier",
    "f1_best_constant_classifier",
    "f2_best_constant_classifier",
    "auc",
];
/// Where the curves go in the file: after the first ten scalars.
const BEFORE_CURVES: usize = 10;
const AUC: usize = 16;

/// Rows of (actual, predicted, score), tallied as they come.
pub struct Binary {
    rows: u64,
    confusion: [Confusion; SAMPLES],
    scores: ScoreTally,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BinaryMetrics {
    pub confusion: Confusion,
    pub false_positive_rates: Vec<f64>,
    pub true_positive_rates: Vec<f64>,
    pub precisions: Vec<f64>,
    pub recalls: Vec<f64>,
    /// `SCALARS` order.
    pub scalars: Vec<Metric>,
}

impl Binary {
    /// Spills scores to `scratch` past the tally's memory limits.
    pub fn new(scratch: &Path) -> Self {
        Self::with_tally(ScoreTally::new(scratch))
    }

    pub fn with_tally(scores: ScoreTally) -> Self {
        Self { rows: 0, confusion: [Confusion::default(); SAMPLES], scores }
    }

    pub fn add(&mut self, actual: bool, predicted: bool, score: f64) -> std::io::Result<()> {
        let bits = subsample_bits(self.rows);
        self.rows += 1;
        self.confusion[0].add(actual, predicted);
        for s in 0..SUBSAMPLES {
            if (bits >> s) & 1 == 1 {
                self.confusion[s + 1].add(actual, predicted);
            }
        }
        self.scores.push(score, (u8::from(actual) * POSITIVE) | (bits << 1))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(self) -> std::io::Result<BinaryMetrics> {
        let mut sweep = Sweep::default();
        let spilled = self.scores.spilled();
        self.scores.finish(|group| sweep.add(group))?;
        tracing::debug!(thresholds = sweep.thresholds, spilled, "scores ranked");
        let aucs: [f64; SAMPLES] = std::array::from_fn(|s| sweep.auc(s));
        let values: Vec<[f64; 16]> = self.confusion.iter().map(Confusion::values).collect();
        let mut scalars: Vec<Metric> =
            (0..16).map(|i| Metric::new(self.rows, values[0][i], std::array::from_fn(|s| values[s + 1][i]))).collect();
        scalars.push(Metric::new(self.rows, aucs[0], std::array::from_fn(|s| aucs[s + 1])));
        let (false_positive_rates, true_positive_rates, precisions, recalls) = sweep.curves();
        Ok(BinaryMetrics {
            confusion: self.confusion[0],
            false_positive_rates,
            true_positive_rates,
            precisions,
            recalls,
            scalars,
        })
    }
}

/// Cumulative counts from the largest score down, the trapezoid areas, the kept points.
#[derive(Default)]
struct Sweep {
    tp: [u64; SAMPLES],
    fp: [u64; SAMPLES],
    /// Twice the area under the ROC curve in (fp, tp) count units, exact.
    area2: [u128; SAMPLES],
    thresholds: u64,
    first: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
    kept: Vec<(u64, u64)>,
    stride: u64,
}

impl Sweep {
    fn add(&mut self, group: &Group) {
        for s in 0..SAMPLES {
            let [negatives, positives] = group.counts[s];
            let tp = self.tp[s] + positives;
            self.area2[s] += u128::from(negatives) * u128::from(self.tp[s] + tp);
            self.tp[s] = tp;
            self.fp[s] += negatives;
        }
        self.thresholds += 1;
        let point = (self.tp[0], self.fp[0]);
        self.first.get_or_insert(point);
        self.last = Some(point);
        let stride = self.stride.max(1);
        if self.thresholds.is_multiple_of(stride) {
            self.kept.push(point);
            if self.kept.len() > MAX_CURVE_POINTS {
                self.kept = self.kept.iter().skip(1).step_by(2).copied().collect();
                self.stride = stride * 2;
            }
        }
    }

    fn auc(&self, s: usize) -> f64 {
        let (p, n) = (self.tp[s], self.fp[s]);
        if p == 0 || n == 0 { f64::NAN } else { self.area2[s] as f64 / (2.0 * p as f64 * n as f64) }
    }

    /// ROC's false and true positive rates, precision-recall's precisions and recalls.
    fn curves(mut self) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        if let Some(last) = self.last.filter(|l| self.kept.last() != Some(l)) {
            self.kept.push(last);
        }
        let (p, n) = (self.tp[0], self.fp[0]);
        let mut fpr = vec![0.0];
        let mut tpr = vec![0.0];
        let first_precision = self.first.map_or(1.0, |(tp, fp)| precision(tp, fp));
        let mut precisions = vec![first_precision];
        let mut recalls = vec![0.0];
        for &(tp, fp) in &self.kept {
            fpr.push(ratio(fp, n));
            tpr.push(ratio(tp, p));
            precisions.push(precision(tp, fp));
            recalls.push(ratio(tp, p));
        }
        fpr.push(1.0);
        tpr.push(1.0);
        (fpr, tpr, precisions, recalls)
    }
}

/// A threshold's precision; 1 where it predicts nothing positive (Spark's curve convention).
fn precision(tp: u64, fp: u64) -> f64 {
    if tp + fp == 0 { 1.0 } else { tp as f64 / (tp + fp) as f64 }
}

impl BinaryMetrics {
    pub fn scalars(&self) -> Vec<(&'static str, Metric)> {
        SCALARS.iter().copied().zip(self.scalars.iter().copied()).collect()
    }
}

impl Serialize for BinaryMetrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Roc<'a> {
            false_positive_rates: &'a [f64],
            true_positive_rates: &'a [f64],
        }
        #[derive(Serialize)]
        struct Pr<'a> {
            precisions: &'a [f64],
            recalls: &'a [f64],
        }
        let c = &self.confusion;
        let matrix = [("0", [("0", c.tn), ("1", c.fp)]), ("1", [("0", c.fn_), ("1", c.tp)])];
        let matrix: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, u64>> =
            matrix.into_iter().map(|(actual, row)| (actual, row.into_iter().collect())).collect();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("confusion_matrix", &matrix)?;
        let order = (0..BEFORE_CURVES).chain([AUC]).chain(BEFORE_CURVES..AUC);
        for (i, index) in order.enumerate() {
            if i == BEFORE_CURVES {
                let roc = Roc {
                    false_positive_rates: &self.false_positive_rates,
                    true_positive_rates: &self.true_positive_rates,
                };
                map.serialize_entry("receiver_operating_characteristic_curve", &roc)?;
                map.serialize_entry(
                    "precision_recall_curve",
                    &Pr { precisions: &self.precisions, recalls: &self.recalls },
                )?;
            }
            map.serialize_entry(SCALARS[index], &self.scalars[index])?;
        }
        map.end()
    }
}

//! Model-quality metrics against scikit-learn (tests/python/model_quality_oracle.py) on
//! generated data, for the three problem types: every scalar metric and its subsample
//! deviation, the confusion matrices, the ROC and precision-recall curves.
//!
//! The interpreter is `target/python/sklearn` (`scripts/python-xgboost` makes it); without it
//! these tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use sagestep::monitor::model_quality::binary::Binary;
use sagestep::monitor::model_quality::multiclass::Multiclass;
use sagestep::monitor::model_quality::regression::Regression;
use sagestep::monitor::model_quality::{Metrics, Statistics};
use serde_json::Value;

pub fn sklearn_python() -> PathBuf {
    let python = crate::util::repo().join("target/python/sklearn/bin/python");
    let works = Command::new(&python).args(["-c", "import sklearn, pandas"]).output().is_ok_and(|o| o.status.success());
    assert!(works, "{} cannot import scikit-learn: run scripts/python-xgboost", python.display());
    python
}

fn oracle(csv: &Path, args: &[&str]) -> Value {
    let out = Command::new(sklearn_python())
        .arg(crate::util::repo().join("tests/python/model_quality_oracle.py"))
        .arg(csv)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "oracle: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Deterministic uniform draws in [0, 1).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn close(ours: f64, theirs: f64, tolerance: f64) -> bool {
    (ours - theirs).abs() <= tolerance * theirs.abs().max(1e-3)
}

/// Every scalar of ours equals the oracle's: values to 1e-12, deviations to 1e-9 (relative).
fn assert_scalars(ours: &Statistics, theirs: &Value) {
    let written: Value = serde_json::to_value(ours).unwrap();
    let metrics = &written[ours.problem_type().metrics_key()];
    let scalars = ours.scalars();
    assert!(scalars.len() >= 4);
    for (name, metric) in scalars {
        let expected = &theirs[name];
        let value = expected["value"].as_f64().unwrap_or_else(|| panic!("oracle lacks {name}"));
        assert!(close(metric.value, value, 1e-12), "{name}: ours {} scikit-learn {value}", metric.value);
        match (metric.standard_deviation, expected["standard_deviation"].as_f64()) {
            (Some(ours), Some(theirs)) => assert!(close(ours, theirs, 1e-9), "{name} deviation: {ours} vs {theirs}"),
            (None, None) => assert_eq!(metrics[name]["standard_deviation"], "NaN"),
            other => panic!("{name} deviation: {other:?}"),
        }
    }
    if let Some(matrix) = theirs.get("confusion_matrix") {
        assert_eq!(&metrics["confusion_matrix"], matrix);
    }
}

fn write_csv(dir: &Path, header: &str, rows: &[String]) -> PathBuf {
    let path = dir.join("data.csv");
    std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    path
}

#[test]
fn regression_equals_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let mut draws = Draws(1);
    let mut regression = Regression::default();
    let mut rows = Vec::new();
    for _ in 0..3000 {
        let truth = (draws.next() * 40.0).round() / 4.0;
        let prediction = truth + (draws.next() - 0.4) * 3.0;
        regression.add(truth, prediction);
        rows.push(format!("{truth},{prediction}"));
    }
    let csv = write_csv(dir.path(), "truth,prediction", &rows);
    let ours = Statistics { item_count: regression.rows(), metrics: Metrics::Regression(regression.finish()) };
    assert_scalars(&ours, &oracle(&csv, &["Regression", "truth", "prediction"]));
}

#[test]
fn small_regression_has_nan_deviations_as_scikit_learn_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut regression = Regression::default();
    let mut rows = Vec::new();
    for i in 0..199 {
        let (truth, prediction) = (f64::from(i % 7), f64::from(i % 5));
        regression.add(truth, prediction);
        rows.push(format!("{truth},{prediction}"));
    }
    let csv = write_csv(dir.path(), "truth,prediction", &rows);
    let ours = Statistics { item_count: 199, metrics: Metrics::Regression(regression.finish()) };
    assert_scalars(&ours, &oracle(&csv, &["Regression", "truth", "prediction"]));
}

#[test]
fn binary_classification_equals_scikit_learn_with_its_curves() {
    let dir = tempfile::tempdir().unwrap();
    let mut draws = Draws(2);
    let mut binary = Binary::new(dir.path());
    let mut rows = Vec::new();
    for _ in 0..4000 {
        let label = draws.next() < 0.3;
        // Scores rounded to 1/200: ties, and fewer distinct ones than the curves keep.
        let shift = if label { 0.25 } else { 0.0 };
        let probability = ((draws.next() * 0.75 + shift) * 200.0).round() / 200.0;
        let predicted = probability > 0.5;
        binary.add(label, predicted, probability).unwrap();
        rows.push(format!("{},{probability}", u8::from(label)));
    }
    let csv = write_csv(dir.path(), "label,probability", &rows);
    let metrics = binary.finish().unwrap();
    let theirs = oracle(&csv, &["BinaryClassification", "label", "-", "probability", "0.5"]);
    let roc = &theirs["roc"];
    let pr = &theirs["pr"];
    let floats = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    // Ours ends at (1, 1) as Spark's does; scikit-learn's last threshold is that point already.
    let n = metrics.false_positive_rates.len();
    assert_eq!(metrics.false_positive_rates[..n - 1], floats(&roc["false_positive_rates"])[..]);
    assert_eq!(metrics.true_positive_rates[..n - 1], floats(&roc["true_positive_rates"])[..]);
    assert_eq!((metrics.false_positive_rates[n - 1], metrics.true_positive_rates[n - 1]), (1.0, 1.0));
    // scikit-learn's reversed curve starts at its sentinel (recall 0, precision 1); ours at
    // recall 0 with the first threshold's precision.
    let (precisions, recalls) = (floats(&pr["precisions"]), floats(&pr["recalls"]));
    assert_eq!(metrics.precisions[1..], precisions[1..]);
    assert_eq!(metrics.recalls[1..], recalls[1..]);
    assert_eq!((metrics.precisions[0], metrics.recalls[0]), (precisions[1], 0.0));
    let ours = Statistics { item_count: binary_rows(&metrics), metrics: Metrics::Binary(metrics) };
    assert_scalars(&ours, &theirs);
}

fn binary_rows(m: &sagestep::monitor::model_quality::binary::BinaryMetrics) -> u64 {
    let c = m.confusion;
    c.tp + c.fp + c.tn + c.fn_
}

#[test]
fn binary_classification_spilling_scores_to_disk_equals_scikit_learn() {
    use sagestep::monitor::model_quality::scores::ScoreTally;
    let dir = tempfile::tempdir().unwrap();
    let mut draws = Draws(3);
    // Tiny limits: the tally sorts and spills many runs, and the result must not change.
    let mut binary = Binary::with_tally(ScoreTally::with_limits(dir.path(), 101, 333));
    let mut rows = Vec::new();
    for _ in 0..3000 {
        let label = draws.next() < 0.5;
        let probability = (draws.next() + if label { 0.3 } else { 0.0 }) / 1.3;
        let predicted = draws.next() < 0.5;
        binary.add(label, predicted, probability).unwrap();
        rows.push(format!("{},{},{probability}", u8::from(label), u8::from(predicted)));
    }
    let csv = write_csv(dir.path(), "label,prediction,probability", &rows);
    let metrics = binary.finish().unwrap();
    // 3000 distinct scores: the curves are thinned to at most a thousand points.
    assert!(metrics.false_positive_rates.len() <= 1002);
    let ours = Statistics { item_count: 3000, metrics: Metrics::Binary(metrics) };
    assert_scalars(&ours, &oracle(&csv, &["BinaryClassification", "label", "prediction", "probability", "0.5"]));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("data.csv")], "scratch runs are removed");
}

#[test]
fn multiclass_classification_equals_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let mut draws = Draws(4);
    let mut multiclass = Multiclass::default();
    let mut rows = Vec::new();
    for _ in 0..2500 {
        let actual = (draws.next() * draws.next() * 4.0) as u32;
        // Mostly right; sometimes a neighbour, and sometimes class 4, which never occurs.
        let r = draws.next();
        let predicted = if r < 0.6 {
            actual
        } else if r < 0.95 {
            (actual + 1) % 4
        } else {
            4
        };
        // Predictions written as XGBoost's multi:softmax answers them.
        multiclass.add(&actual.to_string(), &format!("{predicted}.0")).unwrap();
        rows.push(format!("{actual},{predicted}"));
    }
    let csv = write_csv(dir.path(), "label,prediction", &rows);
    let ours = Statistics { item_count: multiclass.rows(), metrics: Metrics::Multiclass(multiclass.finish()) };
    assert_scalars(&ours, &oracle(&csv, &["MulticlassClassification", "label", "prediction"]));
}

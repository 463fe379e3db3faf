//! Against AWS's own numbers: the SDK's regression fixture (statistics and both constraint
//! cases, tests/data/model-quality) and the developer guide's examples.

use super::binary::Binary;
use super::constraints::{self, Baseline, Operator};
use super::multiclass::Multiclass;
use super::regression::Regression;
use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/data/model-quality/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(value: &impl Serialize) -> serde_json::Value {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

/// The SDK's baseline with AWS's attributes: `inference_attribute=Label`,
/// `ground_truth_attribute=Prediction` (swapped names in AWS's own test).
fn sdk_fixture_statistics() -> Statistics {
    let text = fixture("baseline_dataset.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (inference, truth) = (column("Label"), column("Prediction"));
    let mut regression = Regression::default();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        regression.add(fields[truth].parse().unwrap(), fields[inference].parse().unwrap());
    }
    Statistics { item_count: regression.rows(), metrics: Metrics::Regression(regression.finish()) }
}

#[test]
fn regression_statistics_equal_aws_on_the_sdk_fixture() {
    let ours = sdk_fixture_statistics();
    let aws: serde_json::Value = serde_json::from_str(&fixture("statistics.json")).unwrap();
    // Every key, the "NaN" strings, item_count, and mae, mse, rmse, r2 to the last bit.
    assert_eq!(json(&ours), aws);
    let Metrics::Regression(m) = &ours.metrics else { unreachable!() };
    assert_eq!(m.mse.value.to_bits(), 0.33364933609800973f64.to_bits());
    assert_eq!(m.r2.value, -3.208758170289026);
}

#[test]
fn suggested_constraints_equal_aws_and_the_good_and_bad_cases_pass_and_fail_as_on_aws() {
    let statistics = sdk_fixture_statistics();
    let good: serde_json::Value = serde_json::from_str(&fixture("good_cases/constraints.json")).unwrap();
    assert_eq!(json(&constraints::suggest(&statistics)), good);

    let good: Baseline = serde_json::from_value(good).unwrap();
    assert_eq!(constraints::check(&good, &statistics).unwrap().violations, []);
    let bad: Baseline = serde_json::from_str(&fixture("bad_cases/constraints.json")).unwrap();
    let violations = constraints::check(&bad, &statistics).unwrap().violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].metric_name, "mse");
    assert_eq!(violations[0].constraint_check_type, Operator::GreaterThanThreshold);
    assert_eq!(
        violations[0].description,
        "Metric mse with 0.33364933609800973 was GreaterThanThreshold 0.03364933609800973"
    );
}

#[test]
fn constraints_compare_strictly_and_refuse_another_problem_type() {
    assert!(!Operator::GreaterThanThreshold.violated(1.0, 1.0));
    assert!(Operator::GreaterThanThreshold.violated(1.0 + f64::EPSILON, 1.0));
    assert!(!Operator::LessThanThreshold.violated(1.0, 1.0));
    assert!(Operator::LessThanThreshold.violated(1.0 - f64::EPSILON, 1.0));
    assert!(Operator::LessThanOrEqualToThreshold.violated(1.0, 1.0));
    assert!(!Operator::LessThanThreshold.violated(f64::NAN, 1.0));

    let statistics = sdk_fixture_statistics();
    let binary: Baseline = serde_json::from_str(
        r#"{"version": 0.0, "binary_classification_constraints": {"f1": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}}}"#,
    )
    .unwrap();
    let err = constraints::check(&binary, &statistics).unwrap_err();
    assert!(err.contains("no `regression_constraints`") && err.contains("binary_classification_constraints"), "{err}");
    let unknown: Baseline = serde_json::from_str(
        r#"{"regression_constraints": {"mape": {"threshold": 5e-1, "comparison_operator": "GreaterThanThreshold"}}}"#,
    )
    .unwrap();
    let err = constraints::check(&unknown, &statistics).unwrap_err();
    assert!(err.contains("`mape`") && err.contains("mae, mse, rmse, r2"), "{err}");
}

/// The developer guide's multiclass example: its confusion matrix as rows (actual, predicted).
fn dg_pairs() -> Vec<(&'static str, &'static str)> {
    let cells = [("0", "0", 1180), ("0", "1", 510), ("1", "0", 268), ("1", "1", 138)];
    cells.iter().flat_map(|&(a, p, n)| std::iter::repeat_n((a, p), n)).collect()
}

#[test]
fn multiclass_equals_the_developer_guides_example_to_every_digit() {
    let mut multiclass = Multiclass::default();
    for (actual, predicted) in dg_pairs() {
        multiclass.add(actual, predicted).unwrap();
    }
    let m = multiclass.finish();
    let written = json(&m);
    assert_eq!(written["confusion_matrix"], serde_json::json!({"0": {"0": 1180, "1": 510}, "1": {"0": 268, "1": 138}}));
    let expected = [
        ("accuracy", 0.6288167938931297),
        ("weighted_recall", 0.6288167938931297),
        ("weighted_precision", 0.6983172269629505),
        ("weighted_f0_5", 0.6803947317178771),
        ("weighted_f1", 0.6571162346664904),
        ("weighted_f2", 0.6384024354394601),
        ("accuracy_best_constant_classifier", 0.19370229007633588),
        ("weighted_recall_best_constant_classifier", 0.19370229007633588),
        ("weighted_precision_best_constant_classifier", 0.03752057718081697),
        ("weighted_f0_5_best_constant_classifier", 0.04473443104152011),
        ("weighted_f1_best_constant_classifier", 0.06286421244683643),
        ("weighted_f2_best_constant_classifier", 0.10570313141262414),
    ];
    let keys: Vec<&str> = written.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 1 + expected.len(), "{keys:?}");
    for (name, value) in expected {
        assert_eq!(written[name]["value"].as_f64(), Some(value), "{name}");
        // 2096 rows: the deviation over the subsamples is a number.
        assert!(written[name]["standard_deviation"].as_f64().is_some_and(|d| d > 0.0 && d < 0.05), "{name}");
    }
}

#[test]
fn regression_on_the_developer_guides_example_data() {
    let mut regression = Regression::default();
    for (actual, predicted) in dg_pairs() {
        regression.add(actual.parse().unwrap(), predicted.parse().unwrap());
    }
    let m = regression.finish();
    assert_eq!(m.mae.value, 0.3711832061068702);
    assert_eq!(m.mse.value, 0.3711832061068702);
    assert_eq!(m.rmse.value, 0.609248066149471);
    assert!((m.r2.value - -1.3766111872212665).abs() < 1e-12, "{}", m.r2.value);
}

#[test]
fn binary_scalars_equal_the_developer_guides_example() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = Binary::new(dir.path());
    // Its confusion matrix: actual 0 predicted 0 once, predicted 1 twice; actual 1 predicted 1.
    for (actual, predicted) in [(false, false), (false, true), (false, true), (true, true)] {
        binary.add(actual, predicted, f64::from(u8::from(predicted))).unwrap();
    }
    let written = json(&binary.finish().unwrap());
    assert_eq!(written["confusion_matrix"], serde_json::json!({"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}));
    let expected = [
        ("recall", 1.0),
        ("precision", 0.3333333333333333),
        ("accuracy", 0.5),
        ("recall_best_constant_classifier", 1.0),
        ("precision_best_constant_classifier", 0.25),
        ("accuracy_best_constant_classifier", 0.25),
        ("true_positive_rate", 1.0),
        ("true_negative_rate", 0.33333333333333337),
        ("false_positive_rate", 0.6666666666666666),
        ("false_negative_rate", 0.0),
        ("f0_5", 0.3846153846153846),
        ("f1", 0.5),
        ("f2", 0.7142857142857143),
        ("f0_5_best_constant_classifier", 0.29411764705882354),
        ("f1_best_constant_classifier", 0.4),
        ("f2_best_constant_classifier", 0.625),
    ];
    for (name, value) in expected {
        assert_eq!(written[name]["value"].as_f64(), Some(value), "{name}");
        assert_eq!(written[name]["standard_deviation"], "NaN", "{name}");
    }
    let keys: Vec<&str> = written.as_object().unwrap().keys().map(String::as_str).collect();
    let aws_order = [
        "confusion_matrix",
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
        "receiver_operating_characteristic_curve",
        "precision_recall_curve",
        "auc",
        "f0_5",
        "f1",
        "f2",
        "f0_5_best_constant_classifier",
        "f1_best_constant_classifier",
        "f2_best_constant_classifier",
    ];
    let mut sorted = aws_order.to_vec();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "every key of AWS's example");
    let text = serde_json::to_string(&Statistics {
        item_count: 4,
        metrics: Metrics::Binary({
            let mut b = Binary::new(dir.path());
            b.add(true, true, 0.9).unwrap();
            b.add(false, false, 0.1).unwrap();
            b.finish().unwrap()
        }),
    })
    .unwrap();
    let positions: Vec<usize> = aws_order.iter().map(|k| text.find(&format!("\"{k}\"")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "keys in AWS's order: {text}");
}

#[test]
fn auc_is_nan_without_both_classes_and_curves_run_from_0_to_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = Binary::new(dir.path());
    for score in [0.2, 0.4, 0.4] {
        binary.add(true, score > 0.3, score).unwrap();
    }
    let m = binary.finish().unwrap();
    let written = json(&m);
    assert_eq!(written["auc"]["value"], "NaN");
    assert_eq!(m.true_positive_rates, [0.0, 2.0 / 3.0, 1.0, 1.0]);
    assert_eq!(m.false_positive_rates, [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(m.precisions, [1.0, 1.0, 1.0]);
    assert_eq!(m.recalls, [0.0, 2.0 / 3.0, 1.0]);
}

#[test]
fn curves_keep_at_most_a_thousand_exact_points_and_the_auc_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = Binary::new(dir.path());
    let rows = 10_000u64;
    // Scores in row order, positives at every third row: AUC from the ranks by hand.
    for i in 0..rows {
        binary.add(i % 3 == 0, false, i as f64).unwrap();
    }
    let m = binary.finish().unwrap();
    assert!(m.false_positive_rates.len() <= binary::MAX_CURVE_POINTS + 2, "{}", m.false_positive_rates.len());
    assert!(m.false_positive_rates.len() > binary::MAX_CURVE_POINTS / 2);
    assert_eq!((m.false_positive_rates[0], *m.true_positive_rates.last().unwrap()), (0.0, 1.0));
    // Pairs (positive, negative) with the positive ranked higher, over all pairs.
    let (mut negatives_below, mut won) = (0u64, 0u64);
    for i in 0..rows {
        if i % 3 == 0 { won += negatives_below } else { negatives_below += 1 }
    }
    let positives = rows.div_ceil(3);
    let auc = won as f64 / (positives * (rows - positives)) as f64;
    assert_eq!(m.scalars[binary::SCALARS.len() - 1].value, auc);
}

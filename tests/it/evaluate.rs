//! The evaluate step through its processing contract, checked against metrics computed here
//! from XGBoost's own predictions (the fixtures' pred.csv), not from our predictor.

use std::path::Path;

use crate::model::{fixtures, read_csv};
use crate::util::{MlTree, assert_success, require_image, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_evaluate");
const IMAGE: &str = "sagestep-evaluate:latest";

/// A test set: `label,features...` per row of the fixture's X.csv (missing stays empty).
fn write_test_set(ml: &MlTree, case: &Path, label: impl Fn(usize) -> f64) -> Vec<f64> {
    let x = std::fs::read_to_string(case.join("X.csv")).unwrap();
    let mut text = String::new();
    let mut labels = Vec::new();
    for (i, line) in x.lines().enumerate() {
        let y = label(i);
        labels.push(y);
        text.push_str(&format!("{y},{line}\n"));
    }
    ml.write("processing/test/test_set_1.csv", text);
    labels
}

fn pack_model(ml: &MlTree, model_file: &Path) {
    let staging = ml.path("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(model_file, staging.join("xgboost-model")).unwrap();
    std::fs::create_dir_all(ml.path("processing/model")).unwrap();
    sagestep::model::archive::pack(&staging, &ml.path("processing/model/model.tar.gz")).unwrap();
    std::fs::remove_dir_all(staging).unwrap();
}

fn evaluation(ml: &MlTree) -> serde_json::Value {
    serde_json::from_str(&ml.read("processing/evaluation/evaluation.json")).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

fn regression_case(ml: &MlTree, case: &Path) -> (f64, f64, f64, f64) {
    let labels = write_test_set(ml, case, |i| (i % 7) as f64 + 0.5);
    let pred: Vec<f64> = read_csv(&case.join("pred.csv")).concat().iter().map(|&p| f64::from(p)).collect();
    let n = labels.len() as f64;
    let residuals: Vec<f64> = labels.iter().zip(&pred).map(|(y, p)| y - p).collect();
    let mse = residuals.iter().map(|r| r * r).sum::<f64>() / n;
    let mae = residuals.iter().map(|r| r.abs()).sum::<f64>() / n;
    let mean_r = residuals.iter().sum::<f64>() / n;
    let std_r = (residuals.iter().map(|r| (r - mean_r).powi(2)).sum::<f64>() / n).sqrt();
    let y_mean = labels.iter().sum::<f64>() / n;
    let r2 =
        1.0 - residuals.iter().map(|r| r * r).sum::<f64>() / labels.iter().map(|y| (y - y_mean).powi(2)).sum::<f64>();
    (mse, mae, std_r, r2)
}

#[test]
fn regression_metrics_from_a_model_tar_gz() {
    // SageMaker 1.2-x writes a pickle; 3.0-5 writes UBJSON. Both, packed as model.tar.gz.
    for (version, file) in [("1.2.0", "xgboost-model.pkl"), ("3.0.5", "xgboost-model"), ("1.7.6", "xgboost-model")] {
        let ml = MlTree::new();
        let case = fixtures().join(version).join("reg_squarederror");
        pack_model(&ml, &case.join(file));
        let (mse, mae, std_r, r2) = regression_case(&ml, &case);
        assert_success(&ml.run(BIN, &[]));
        let e = evaluation(&ml);
        let m = &e["regression_metrics"];
        assert!(close(m["mse"]["value"].as_f64().unwrap(), mse), "{version}: {} vs {mse}", m["mse"]);
        assert!(close(m["mse"]["standard_deviation"].as_f64().unwrap(), std_r));
        assert!(close(m["rmse"]["value"].as_f64().unwrap(), mse.sqrt()));
        assert!(close(m["mae"]["value"].as_f64().unwrap(), mae));
        assert!(close(m["r2"]["value"].as_f64().unwrap(), r2));
        assert!(m["rmse"]["standard_deviation"].as_f64().unwrap() > 0.0);
        assert_eq!(e["rows"], 400);
        assert_eq!(e["model"]["objective"], "reg:squarederror");
        assert_eq!(e["model"]["trees"], 20);
        assert_eq!(e["model"]["num_feature"], 6);
        assert!(e["model"]["xgboost_version"].as_str().unwrap().starts_with(&version[..3]), "{}", e["model"]);
        // Beside it: each row's label and XGBoost's prediction, and the plot of them.
        let rows = ml.read("processing/evaluation/evaluation_predictions.csv");
        let pred = read_csv(&case.join("pred.csv")).concat();
        assert_eq!(rows.lines().next(), Some("label,prediction"));
        assert_eq!(rows.lines().count(), 401);
        for (line, expected) in rows.lines().skip(1).zip(&pred) {
            let predicted: f64 = line.split_once(',').unwrap().1.parse().unwrap();
            assert!(close(predicted, f64::from(*expected)), "{version}: {line} vs {expected}");
        }
        let svg = ml.read("processing/evaluation/evaluation.svg");
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="point""#).count(), 400, "a point per row");
        assert_eq!(svg.matches(r#"class="bin""#).count(), 20, "the residuals' histogram");
    }
}

#[test]
fn classification_metrics() {
    let ml = MlTree::new();
    let case = fixtures().join("3.2.0/binary_logistic");
    std::fs::create_dir_all(ml.path("processing/model")).unwrap();
    std::fs::copy(case.join("xgboost-model"), ml.path("processing/model/xgboost-model")).unwrap();
    let labels = write_test_set(&ml, &case, |i| ((i * 7919) % 3 == 0) as u8 as f64);
    assert_success(&ml.run(BIN, &[]));
    let p: Vec<f64> = read_csv(&case.join("pred.csv")).concat().iter().map(|&p| f64::from(p)).collect();
    let n = labels.len() as f64;
    let accuracy = labels.iter().zip(&p).filter(|(y, p)| (**p > 0.5) == (**y == 1.0)).count() as f64 / n;
    // AUC by counting pairs: an independent formula.
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (yi, pi) in labels.iter().zip(&p) {
        for (yj, pj) in labels.iter().zip(&p) {
            if *yi == 1.0 && *yj == 0.0 {
                pairs += 1.0;
                wins += if pi > pj {
                    1.0
                } else if pi == pj {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    let log_loss = -labels
        .iter()
        .zip(&p)
        .map(|(y, p)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if *y == 1.0 { p.ln() } else { (1.0 - p).ln() }
        })
        .sum::<f64>()
        / n;
    let m = &evaluation(&ml)["binary_classification_metrics"];
    assert!(close(m["accuracy"]["value"].as_f64().unwrap(), accuracy));
    assert!(close(m["auc"]["value"].as_f64().unwrap(), wins / pairs));
    assert!(close(m["log_loss"]["value"].as_f64().unwrap(), log_loss));

    let ml = MlTree::new();
    let case = fixtures().join("1.7.6/multi_softprob");
    std::fs::create_dir_all(ml.path("processing/model")).unwrap();
    std::fs::copy(case.join("model.json"), ml.path("processing/model/xgboost-model")).unwrap();
    let labels = write_test_set(&ml, &case, |i| (i % 3) as f64);
    assert_success(&ml.run(BIN, &[]));
    let probs = read_csv(&case.join("pred.csv"));
    let accuracy = labels
        .iter()
        .zip(&probs)
        .filter(|(y, row)| {
            let best = (0..3).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            best as f64 == **y
        })
        .count() as f64
        / labels.len() as f64;
    let m = &evaluation(&ml)["multiclass_classification_metrics"];
    assert!(close(m["accuracy"]["value"].as_f64().unwrap(), accuracy));
    assert!(m["log_loss"]["value"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_inputs_fail_clearly() {
    let case = fixtures().join("3.0.5/reg_squarederror");
    let model_bytes = std::fs::read(case.join("xgboost-model")).unwrap();
    let good_rows = "1,0.5,0.1,0.2,0.3,0.4,0.5\n";
    type Setup = Box<dyn Fn(&MlTree)>;
    let model = |bytes: Vec<u8>| -> Setup {
        Box::new(move |ml: &MlTree| {
            ml.write("processing/model/xgboost-model", &bytes);
        })
    };
    let cases: Vec<(&str, Setup, &str, &str)> = vec![
        (
            "truncated model",
            model(model_bytes[..model_bytes.len() / 2].to_vec()),
            good_rows,
            "xgboost-model`: the model is not valid",
        ),
        ("unknown format", model(b"hello, this is not a model at all".to_vec()), good_rows, "not an XGBoost model"),
        (
            "archive without a model",
            Box::new(|ml: &MlTree| {
                let staging = ml.path("s");
                std::fs::create_dir_all(&staging).unwrap();
                std::fs::write(staging.join(".keep"), b"").unwrap();
                std::fs::create_dir_all(ml.path("processing/model")).unwrap();
                sagestep::model::archive::pack(&staging, &ml.path("processing/model/model.tar.gz")).unwrap();
            }),
            good_rows,
            "holds no model file",
        ),
        (
            "width",
            model(model_bytes.clone()),
            "1,0.5,0.1\n",
            "the test data has 2 feature columns but the model expects 6",
        ),
        (
            "non-numeric",
            model(model_bytes.clone()),
            "1,0.5,0.1,0.2,abc,0.4,0.5\n",
            "test_set_1.csv, line 1, column `5`: `abc` is not a number",
        ),
        ("empty test set", model(model_bytes.clone()), "\n", "is empty"),
    ];
    for (name, setup, rows, expected) in cases {
        let ml = MlTree::new();
        setup(&ml);
        ml.write("processing/test/test_set_1.csv", rows);
        let out = ml.run(BIN, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let message = ml.read("output/message");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(!ml.path("processing/evaluation/evaluation.json").exists(), "{name}");
    }
}

#[test]
fn image_writes_evaluation_json() {
    require_image(IMAGE);
    let ml = MlTree::new();
    let case = fixtures().join("3.0.5/reg_squarederror");
    pack_model(&ml, &case.join("xgboost-model"));
    let (mse, ..) = regression_case(&ml, &case);
    let out = ml.docker_run(IMAGE, &[]);
    assert_success(&out);
    let e = evaluation(&ml);
    assert!(close(e["regression_metrics"]["mse"]["value"].as_f64().unwrap(), mse));
    let bad = MlTree::new();
    bad.write("processing/model/xgboost-model", b"garbage");
    bad.write("processing/test/t.csv", "1,2\n");
    let out = bad.docker_run(IMAGE, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(bad.read("output/message").contains("not an XGBoost model"));
}

//! A model our writer saves loads in Python xgboost 3.x and 1.7.x with identical predictions.
//! Runs where those Pythons are installed (`scripts/python-xgboost`; or list interpreters in
//! `SAGESTEP_XGBOOST_PYTHONS`, colon-separated); elsewhere it says it was skipped.

use std::path::PathBuf;
use std::process::Command;

use sagestep::model;

use crate::model::{cases, read_csv};

pub fn pythons() -> Vec<PathBuf> {
    let listed = std::env::var("SAGESTEP_XGBOOST_PYTHONS")
        .unwrap_or_else(|_| "/opt/xgb32/bin/python:/opt/xgb17/bin/python".into());
    listed
        .split(':')
        .map(PathBuf::from)
        .filter(|p| Command::new(p).args(["-c", "import xgboost"]).output().is_ok_and(|o| o.status.success()))
        .collect()
}

#[test]
fn python_xgboost_loads_our_models_with_identical_predictions() {
    let pythons = pythons();
    if pythons.is_empty() {
        eprintln!("SKIPPED: no Python with xgboost (run scripts/python-xgboost)");
        return;
    }
    let script = crate::util::repo().join("tests/python/predict.py");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for case in cases().into_iter().filter(|c| c.to_string_lossy().contains("/3.")) {
        let mut forest = model::load(&std::fs::read(case.join("model.json")).unwrap()).unwrap().forest;
        // As our trainer's output: no source version recorded.
        forest.version = None;
        let model_path = dir.path().join("xgboost-model");
        std::fs::write(&model_path, model::to_ubjson(&forest)).unwrap();
        let expected: Vec<u32> = read_csv(&case.join("pred.csv")).concat().iter().map(|p| p.to_bits()).collect();
        for python in &pythons {
            let out = dir.path().join("pred.csv");
            let run =
                Command::new(python).arg(&script).arg(&model_path).arg(case.join("X.csv")).arg(&out).output().unwrap();
            assert!(run.status.success(), "{}: {}", python.display(), String::from_utf8_lossy(&run.stderr));
            let version = String::from_utf8_lossy(&run.stdout).trim().to_string();
            let got: Vec<u32> = read_csv(&out).concat().iter().map(|p| p.to_bits()).collect();
            let off = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
            assert!(
                got.len() == expected.len() && off == 0,
                "xgboost {version} on {}: {off} predictions differ",
                case.display()
            );
            checked.push(version);
        }
    }
    checked.sort();
    checked.dedup();
    eprintln!("checked with xgboost {checked:?}");
}

/// A model our trainer wrote loads in every installed Python xgboost with the predictions
/// our model module gives, bit for bit.
#[test]
fn python_xgboost_loads_a_model_our_trainer_wrote() {
    let pythons = pythons();
    if pythons.is_empty() {
        eprintln!("SKIPPED: no Python with xgboost (run scripts/python-xgboost)");
        return;
    }
    let case = crate::util::shared().join("fixtures/training/binary_exact");
    let ml = crate::util::MlTree::new();
    ml.write("input/data/train/train.csv", std::fs::read(case.join("train.csv")).unwrap());
    ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "text/csv"}}"#);
    ml.write("input/config/hyperparameters.json", std::fs::read(case.join("hyperparameters.json")).unwrap());
    crate::util::assert_success(&ml.run(env!("CARGO_BIN_EXE_train"), &[]));
    let model_path = ml.path("model/xgboost-model");
    let forest = model::load(&std::fs::read(&model_path).unwrap()).unwrap().forest;
    let x: Vec<f32> = read_csv(&case.join("test.csv")).concat();
    let ours: Vec<u32> = forest
        .predict(&sagestep::model::Matrix::new(&x, 8), sagestep::model::TreeLimit::All)
        .iter()
        .map(|p| p.to_bits())
        .collect();
    let script = crate::util::repo().join("tests/python/predict.py");
    for python in &pythons {
        let out = ml.path("python-pred.csv");
        let run =
            Command::new(python).arg(&script).arg(&model_path).arg(case.join("test.csv")).arg(&out).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let theirs: Vec<u32> = read_csv(&out).concat().iter().map(|p| p.to_bits()).collect();
        assert_eq!(theirs, ours, "xgboost {}", String::from_utf8_lossy(&run.stdout).trim());
    }
}

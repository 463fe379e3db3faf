//! A model our writer saves loads in Python xgboost 3.x and 1.7.x with identical predictions.
//! The interpreters are `target/python/xgb32` and `target/python/xgb17`, which
//! `scripts/python-xgboost` (run by `scripts/test`) installs, or those listed in
//! `SAGESTEP_XGBOOST_PYTHONS` (colon-separated). Without them a test says it was skipped,
//! and under `CI=true` it fails.

use std::path::PathBuf;
use std::process::Command;

use sagestep::model;

use crate::model::{cases, read_csv};

/// Every configured interpreter that imports xgboost.
pub fn pythons() -> Vec<PathBuf> {
    let default = ["xgb32", "xgb17"]
        .map(|v| crate::util::repo().join("target/python").join(v).join("bin/python").to_string_lossy().into_owned())
        .join(":");
    let listed = std::env::var("SAGESTEP_XGBOOST_PYTHONS").unwrap_or(default);
    listed
        .split(':')
        .map(PathBuf::from)
        .filter(|p| Command::new(p).args(["-c", "import xgboost"]).output().is_ok_and(|o| o.status.success()))
        .collect()
}

/// The interpreters, or `None` after saying why the test is skipped; under `CI=true` a
/// missing interpreter fails the test instead.
pub fn required_pythons(needed: usize) -> Option<Vec<PathBuf>> {
    let found = pythons();
    if found.len() >= needed {
        return Some(found);
    }
    let why = format!(
        "{} of {needed} Python xgboost interpreters found (run scripts/python-xgboost, or set SAGESTEP_XGBOOST_PYTHONS)",
        found.len()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: {why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// The interpreter with xgboost 3.x.
pub fn python3x() -> Option<PathBuf> {
    let found = required_pythons(1)?.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import xgboost, sys; sys.exit(int(xgboost.__version__[0]) < 3)"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: no Python with xgboost 3.x");
        eprintln!("SKIPPED: no Python with xgboost 3.x (run scripts/python-xgboost)");
    }
    found
}

#[test]
fn python_xgboost_loads_our_models_with_identical_predictions() {
    let Some(pythons) = required_pythons(2) else { return };
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
    let Some(pythons) = required_pythons(2) else { return };
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

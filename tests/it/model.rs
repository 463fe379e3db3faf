//! Every shared XGBoost fixture (1.2.0 to 3.2.0; the SageMaker artifact, the pickle and the
//! JSON) predicts exactly what XGBoost predicted: the same f32, bit for bit.

use std::path::{Path, PathBuf};

use sagestep::model::{self, Ensemble, Matrix, TreeLimit};

pub fn fixtures() -> PathBuf {
    let path = crate::util::shared().join("fixtures/xgboost");
    assert!(path.is_dir(), "the shared fixtures are missing: {} (set SAGESTEP_SHARED)", path.display());
    path
}

/// A CSV of f32 (empty = missing) as rows.
pub fn read_csv(path: &Path) -> Vec<Vec<f32>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|v| if v.is_empty() { f32::NAN } else { v.parse().unwrap() }).collect())
        .collect()
}

pub fn cases() -> Vec<PathBuf> {
    let mut cases = Vec::new();
    for version in std::fs::read_dir(fixtures()).unwrap() {
        let version = version.unwrap().path();
        if version.is_dir() {
            for case in std::fs::read_dir(&version).unwrap() {
                cases.push(case.unwrap().path());
            }
        }
    }
    cases.sort();
    assert_eq!(cases.len(), 20, "5 releases x 4 cases");
    cases
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_fixture_predicts_exactly() {
    let mut failures = Vec::new();
    for case in cases() {
        let x = read_csv(&case.join("X.csv"));
        let cols = x[0].len();
        let flat: Vec<f32> = x.concat();
        let rows = Matrix::new(&flat, cols);
        let pred: Vec<f32> = read_csv(&case.join("pred.csv")).concat();
        let margin: Vec<f32> = read_csv(&case.join("margin.csv")).concat();
        for file in ["xgboost-model", "xgboost-model.pkl", "model.json"] {
            let bytes = std::fs::read(case.join(file)).unwrap();
            let model = model::load(&bytes).unwrap_or_else(|e| panic!("{}/{file}: {e}", case.display()));
            let got = model.forest.predict(&rows, TreeLimit::All);
            let got_margin = model.forest.margins(&rows, TreeLimit::All);
            let off = got.iter().zip(&pred).filter(|(a, b)| !same_bits(**a, **b)).count();
            let off_margin = got_margin.iter().zip(&margin).filter(|(a, b)| !same_bits(**a, **b)).count();
            if got.len() != pred.len() || off > 0 || off_margin > 0 {
                let first = got.iter().zip(&pred).find(|(a, b)| !same_bits(**a, **b));
                failures.push(format!(
                    "{}/{file} ({:?}): {off} predictions and {off_margin} margins differ of {}; first {first:?}",
                    case.strip_prefix(fixtures()).unwrap().display(),
                    model.format,
                    pred.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn formats_are_detected_from_bytes() {
    use sagestep::model::Format;
    let expect = [
        ("1.2.0", "xgboost-model", Format::LegacyBinary),
        ("1.2.0", "xgboost-model.pkl", Format::PickleLegacyBinary),
        ("1.7.6", "xgboost-model", Format::LegacyBinary),
        ("1.7.6", "xgboost-model.pkl", Format::PickleUbjson),
        ("3.0.5", "xgboost-model", Format::Ubjson),
        ("3.2.0", "model.json", Format::Json),
    ];
    for (version, file, format) in expect {
        let bytes = std::fs::read(fixtures().join(version).join("reg_squarederror").join(file)).unwrap();
        assert_eq!(model::load(&bytes).unwrap().format, format, "{version}/{file}");
    }
}

#[test]
fn written_models_read_back_identically() {
    for case in cases() {
        let bytes = std::fs::read(case.join("model.json")).unwrap();
        let forest = model::load(&bytes).unwrap().forest;
        let x: Vec<f32> = read_csv(&case.join("X.csv")).concat();
        let rows = Matrix::new(&x, forest.num_feature);
        let expected = forest.predict(&rows, TreeLimit::All);
        for (name, written) in [("ubj", model::to_ubjson(&forest)), ("json", model::to_json(&forest).into_bytes())] {
            let back = model::load(&written).unwrap().forest;
            assert!(
                back.predict(&rows, TreeLimit::All) == expected,
                "{} via {name}: predictions differ",
                case.display()
            );
            // A per-class base score is folded into the first trees (for XGBoost 1.x): only
            // then may the trees differ.
            let uniform = forest.base_score.iter().all(|b| b.to_bits() == forest.base_score[0].to_bits());
            assert!(!uniform || back.trees == forest.trees, "{} via {name}: trees differ", case.display());
        }
    }
}

#[test]
fn a_directory_and_a_model_tar_gz_load_as_an_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let case = fixtures().join("3.0.5/reg_squarederror");
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::copy(case.join("xgboost-model"), dir.path().join("m/xgboost-model")).unwrap();
    std::fs::write(dir.path().join("m/.ignored"), b"not a model").unwrap();
    let single = Ensemble::load(&dir.path().join("m")).unwrap();
    assert_eq!(single.members.len(), 1);

    let archive = dir.path().join("model.tar.gz");
    model::archive::pack(&dir.path().join("m"), &archive).unwrap();
    let from_archive = Ensemble::load(&archive).unwrap();
    assert_eq!(from_archive.members.len(), 1);

    // Two members: the mean of their predictions.
    std::fs::copy(fixtures().join("1.7.6/reg_squarederror/xgboost-model"), dir.path().join("m/xgboost-model-1"))
        .unwrap();
    let pair = Ensemble::load(&dir.path().join("m")).unwrap();
    let x: Vec<f32> = read_csv(&case.join("X.csv")).concat();
    let rows = Matrix::new(&x, 6);
    let a = pair.members[0].model.forest.predict(&rows, TreeLimit::All);
    let b = pair.members[1].model.forest.predict(&rows, TreeLimit::All);
    let mean = pair.predict(&rows, TreeLimit::All);
    assert!((mean[0] - (a[0] + b[0]) / 2.0).abs() < 1e-6);

    // Not a model: the file is named.
    std::fs::write(dir.path().join("m/notes.txt"), b"hello").unwrap();
    let err = Ensemble::load(&dir.path().join("m")).unwrap_err().to_string();
    assert!(err.contains("notes.txt") && err.contains("not an XGBoost model"), "{err}");
}

/// Inputs the fuzzer found: each must be an error, quickly, without a huge allocation.
#[test]
fn fuzz_findings_are_errors() {
    let dir = crate::util::repo().join("tests/data/fuzz/model_load");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let err = model::load(&std::fs::read(&path).unwrap()).map(|_| ()).unwrap_err();
        assert!(!err.to_string().is_empty(), "{}", path.display());
    }
}

/// More objectives, DART and categorical splits (tests/data/models, made by its make.py with
/// xgboost 3.2.0 and 1.7.6): predictions and margins bit for bit.
#[test]
fn objectives_dart_and_categorical_predict_exactly() {
    let root = crate::util::repo().join("tests/data/models");
    let mut failures = Vec::new();
    let mut checked = 0;
    for version in ["1.7.6", "3.2.0"] {
        for case in std::fs::read_dir(root.join(version)).unwrap() {
            let case = case.unwrap().path();
            let x: Vec<f32> = read_csv(&case.join("X.csv")).concat();
            let pred: Vec<f32> = read_csv(&case.join("pred.csv")).concat();
            let margin: Vec<f32> = read_csv(&case.join("margin.csv")).concat();
            for file in ["xgboost-model", "model.json"] {
                let forest = model::load(&std::fs::read(case.join(file)).unwrap())
                    .unwrap_or_else(|e| panic!("{}/{file}: {e}", case.display()))
                    .forest;
                let rows = Matrix::new(&x, 4);
                let got = forest.predict(&rows, TreeLimit::All);
                let got_margin = forest.margins(&rows, TreeLimit::All);
                let off = got.iter().zip(&pred).filter(|(a, b)| !same_bits(**a, **b)).count();
                let off_m = got_margin.iter().zip(&margin).filter(|(a, b)| !same_bits(**a, **b)).count();
                if got.len() != pred.len() || off + off_m > 0 {
                    failures.push(format!(
                        "{version}/{}/{file}: {off} predictions, {off_m} margins differ",
                        case.file_name().unwrap().to_string_lossy()
                    ));
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 34);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

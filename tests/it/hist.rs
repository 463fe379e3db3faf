//! The hist trainer against Python xgboost 3.2.0 itself: cut points bit for bit, and trained
//! models tree for tree (tests/python/cuts.py and hist_parity.py produce XGBoost's side).

use std::process::Command;

use sagestep::training::hist::cuts;

use crate::python_interop::python3x;

fn f32s(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// Acceptance: our cuts equal `DMatrix.get_quantile_cut()` bit for bit on six data sets
/// (100 to 2,000,000 rows; NaNs; weights with zeros; a constant column; few distinct values;
/// an all-missing column; max_bin 16, 64, 256 and 1024).
#[test]
fn cut_points_equal_xgboosts() {
    let Some(python) = python3x() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = crate::util::repo().join("tests/python/cuts.py");
    let out = Command::new(&python).arg(&script).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let case = entry.unwrap().path();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(case.join("case.json")).unwrap()).unwrap();
        let (cols, max_bin) = (meta["cols"].as_u64().unwrap() as usize, meta["max_bin"].as_u64().unwrap() as usize);
        let x = f32s(&case.join("X.f32"));
        let w = meta["weighted"].as_bool().unwrap().then(|| f32s(&case.join("w.f32")));
        let xgb: Vec<Vec<u32>> = serde_json::from_slice(&std::fs::read(case.join("cuts.json")).unwrap()).unwrap();
        let ours = cuts::from_dense(&x, cols, w.as_deref(), max_bin);
        for (f, theirs) in xgb.iter().enumerate() {
            let mut mine = vec![ours.min_values[f].to_bits()];
            mine.extend(ours.feature_cuts(f).iter().map(|c| c.to_bits()));
            assert_eq!(
                &mine,
                theirs,
                "{}: feature {f}: {} cuts here, {} in XGBoost",
                case.display(),
                mine.len() - 1,
                theirs.len() - 1
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// Copy a directory tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn verdict(python: &std::path::Path, case: &std::path::Path, model: &std::path::Path) -> serde_json::Value {
    let script = crate::util::repo().join("tests/python/hist_parity.py");
    let out = Command::new(python).arg(&script).arg("compare").arg(case).arg(model).output().unwrap();
    assert!(out.status.success(), "{}: {}", case.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Acceptance: every deterministic hist configuration trains XGBoost's model. Each case of
/// tests/python/hist_parity.py (dense, missing values, CSV weights, regularisation, lossguide,
/// max_bin 16 and 1024, deep trees, monotone constraints, binary, logitraw, multiclass,
/// gamma, Poisson, Tweedie, sparse libsvm over spread-out indices, early stopping) is trained
/// by Python xgboost 3.2.0 the built-in's way and by our binary: the trees are the same node
/// for node (multiclass: the same predictions, our writer folding each class's intercept
/// into its first tree) and the predictions bit for bit. With early stopping both keep rounds
/// up to the best and record the same best_iteration and best_score, and xgboost 1.7.6 loads
/// our model with the same rounds and predictions.
#[test]
fn hist_training_gives_xgboosts_model() {
    let Some(pythons) = crate::python_interop::required_pythons(2) else { return };
    let python = python3x().unwrap();
    let older = pythons.iter().find(|p| **p != python).unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let script = crate::util::repo().join("tests/python/hist_parity.py");
    let out = Command::new(&python).arg(&script).arg("make").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut cases: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let ml = crate::util::MlTree::new();
        copy_tree(&case.join("ml"), ml.root());
        crate::util::assert_success(&ml.run(env!("CARGO_BIN_EXE_train"), &["train"]));
        let model = ml.path("model/xgboost-model");
        let v = verdict(&python, case, &model);
        let old = verdict(&older, case, &model);
        let mut problems = Vec::new();
        if v["predictions_differ"] != 0 {
            problems.push(format!("{} predictions differ (max relative {})", v["predictions_differ"], v["max_relative_difference"]));
        }
        let trees_differ = v["trees_differ"].as_array().unwrap();
        if name != "multiclass" && (!trees_differ.is_empty() || v["trees"][0] != v["trees"][1]) {
            problems.push(format!("trees {:?} differ (counts {})", trees_differ, v["trees"]));
        }
        if v["rounds"] != v["xgboost_rounds"] || v["attributes"] != v["xgboost_attributes"] {
            problems.push(format!("rounds/attributes {} {} vs XGBoost's {} {}", v["rounds"], v["attributes"], v["xgboost_rounds"], v["xgboost_attributes"]));
        }
        if name.starts_with("early_stopping") {
            let best: u64 = v["attributes"]["best_iteration"].as_str().unwrap_or("x").parse().unwrap_or(u64::MAX);
            if v["rounds"].as_u64() != Some(best + 1) {
                problems.push(format!("{} rounds kept with best_iteration {best}", v["rounds"]));
            }
        }
        if old["rounds"] != v["rounds"] || old["predictions"] != v["predictions"] {
            problems.push(format!("xgboost {} reads {} rounds and other predictions", old["xgboost"], old["rounds"]));
        }
        eprintln!("{name}: {}", if problems.is_empty() { "same model".to_string() } else { problems.join("; ") });
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    assert!(cases.len() >= 18, "{} cases", cases.len());
    assert!(failures.is_empty(), "{failures:#?}");
}

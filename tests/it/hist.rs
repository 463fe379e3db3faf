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
            problems.push(format!(
                "{} predictions differ (max relative {})",
                v["predictions_differ"], v["max_relative_difference"]
            ));
        }
        let trees_differ = v["trees_differ"].as_array().unwrap();
        if name != "multiclass" && (!trees_differ.is_empty() || v["trees"][0] != v["trees"][1]) {
            problems.push(format!("trees {:?} differ (counts {})", trees_differ, v["trees"]));
        }
        if v["rounds"] != v["xgboost_rounds"] || v["attributes"] != v["xgboost_attributes"] {
            problems.push(format!(
                "rounds/attributes {} {} vs XGBoost's {} {}",
                v["rounds"], v["attributes"], v["xgboost_rounds"], v["xgboost_attributes"]
            ));
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

/// Hashed libsvm features end to end: a model trained on indices up to 2^24 - 1 is
/// evaluated and served on 50 rows of the same kind under a 1 GB address-space limit (dense
/// rows would take 3.2 GB), with XGBoost's predictions. (XGBoost's own predictor allocates a
/// dense row of num_feature floats per thread: at 2^31 - 2 it takes a minute and 8.5 GB, too
/// slow for a test; the trainer's test covers indices up to 2^31 - 2.)
#[test]
fn sparse_rows_with_huge_indices_train_evaluate_and_serve() {
    let Some(python) = python3x() else { return };
    const INDICES: [u64; 6] = [0, 7, 1000, 65_536, 1_000_003, 16_777_215];
    let lines = |n: usize, seed: u64| -> String {
        let mut text = String::new();
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for _ in 0..n {
            let mut label = 0.0;
            let mut row = String::new();
            for (k, &i) in INDICES.iter().enumerate() {
                if next() < 0.6 {
                    let v = (next() * 10.0).round() / 2.0;
                    label += v * (k as f64 + 1.0);
                    row.push_str(&format!(" {i}:{v}"));
                }
            }
            text.push_str(&format!("{label}{row}\n"));
        }
        text
    };
    let ml = crate::util::MlTree::new();
    ml.write("input/data/train/train.libsvm", lines(400, 1));
    ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "text/libsvm"}}"#);
    ml.write("input/config/hyperparameters.json", r#"{"num_round": "10", "max_depth": "4", "eta": "0.3"}"#);
    crate::util::assert_success(&ml.run(env!("CARGO_BIN_EXE_train"), &["train"]));
    let model = ml.path("model/xgboost-model");
    let test = ml.write("test/test.libsvm", lines(50, 2));

    // XGBoost's predictions, read by its own libsvm loader.
    let out = ml.path("xgb-pred.txt");
    let run = Command::new(&python)
        .arg(crate::util::repo().join("tests/python/predict_uri.py"))
        .arg(&model)
        .arg(format!("{}?format=libsvm", test.display()))
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let theirs: Vec<f32> = std::fs::read_to_string(&out).unwrap().lines().map(|l| l.parse().unwrap()).collect();

    // evaluate, limited to 1 GB of address space.
    let limited = |program: &str, args: &str| {
        Command::new("bash").arg("-c").arg(format!("ulimit -v 1000000; exec {program} {args}")).output().unwrap()
    };
    let eval = limited(
        env!("CARGO_BIN_EXE_evaluate"),
        &format!(
            "--model {} --test-data {} --output-dir {}",
            model.display(),
            test.display(),
            ml.path("eval").display()
        ),
    );
    crate::util::assert_success(&eval);
    let report: serde_json::Value = serde_json::from_str(&ml.read("eval/evaluation.json")).unwrap();
    let labels: Vec<f64> = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let mse = labels.iter().zip(&theirs).map(|(y, p)| (y - f64::from(*p)).powi(2)).sum::<f64>() / labels.len() as f64;
    let ours = report["regression_metrics"]["mse"]["value"].as_f64().unwrap();
    assert!((ours - mse).abs() <= 1e-9 * mse.max(1.0), "evaluate's MSE {ours}, XGBoost's predictions give {mse}");
    assert_eq!(report["model"]["num_feature"], 16_777_216u64);

    // serve, under the same limit.
    let port = crate::serve::free_port();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Killed(
        Command::new("bash")
            .arg("-c")
            .arg(format!("ulimit -v 1000000; exec {} serve", env!("CARGO_BIN_EXE_serve")))
            .env("SAGESTEP_MODEL_DIR", ml.path("model"))
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .env("SAGESTEP_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while crate::serve::agent().get(&url("/ping")).call().map(|r| r.status()).ok() != Some(ureq::http::StatusCode::OK) {
        assert!(std::time::Instant::now() < deadline, "server not ready");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let body = std::fs::read(&test).unwrap();
    let mut response = crate::serve::agent()
        .post(&url("/invocations"))
        .header("Content-Type", "text/libsvm")
        .header("Accept", "text/csv")
        .send(&body[..])
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    let served: Vec<f32> = text.lines().map(|l| l.parse().unwrap()).collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&served), bits(&theirs), "served predictions are XGBoost's");
}

//! The shipped pipeline's data-quality gate: the monitor's baseline of the training split and
//! its check of test_set_2. A shifted copy of test_set_2 (horsepower, `_c2`, moved by two
//! standard deviations) makes the check report `baseline_drift_check` for that feature and the
//! pipeline take the Fail branch naming it, under both engines; the unshifted run predicts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{assert_success, auto_mpg, files_below, repo, require_image, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_sagestep");

fn run(store: &Path, definition: &Path, engine: &str) -> Output {
    let work = store.join("work");
    std::fs::create_dir_all(&work).unwrap();
    Command::new(BIN)
        .args(["run", definition.to_str().unwrap(), "--engine", engine])
        .args(["--param", &format!("InputData=file://{}", auto_mpg().display())])
        .args([
            "--param",
            "ArtifactRoot=s3://artifacts/auto-mpg",
            "--param",
            "ExecutionRoleArn=arn:aws:iam::000000000000:role/test",
        ])
        .arg("--work-dir")
        .arg(&work)
        .arg("--store")
        .arg(store)
        .output()
        .expect("run sagestep")
}

fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    files_below(dir).into_iter().filter(|p| p.file_name().is_some_and(|n| n == name)).collect()
}

/// pipeline.json with the check reading `data` instead of the preprocess step's test_set_2.
fn checking(data: &Path, into: &Path) -> PathBuf {
    let mut definition: Value = serde_json::from_slice(&std::fs::read(repo().join("pipeline.json")).unwrap()).unwrap();
    let steps = definition["Steps"].as_array_mut().unwrap();
    let check = steps.iter_mut().find(|s| s["Name"] == "DataQualityCheckTestSet2").expect("the check step");
    let input = check["Arguments"]["ProcessingInputs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["InputName"] == "data")
        .unwrap();
    input["S3Input"]["S3Uri"] = Value::from(format!("file://{}/", data.display()));
    let path = into.join("pipeline-shifted.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&definition).unwrap()).unwrap();
    path
}

fn gate(engine: &str) {
    let store = tempfile::tempdir().unwrap();
    let plain = run(store.path(), &repo().join("pipeline.json"), engine);
    assert_success(&plain);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.contains("TransformTestSet2") && text.contains("DataQualityCond"), "{text}");
    let summaries = find(store.path(), "monitoring_summary.json");
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&summaries[0]).unwrap()).unwrap();
    assert_eq!(summary["violation_count"], 0, "test_set_2 is drawn from the training data: {summary:#}");

    // A shifted copy of test_set_2: horsepower (the third feature) two standard deviations up.
    let test_set = find(store.path(), "test_set_2.csv").pop().expect("test_set_2.csv");
    let shifted_dir = store.path().join("shifted");
    std::fs::create_dir_all(&shifted_dir).unwrap();
    let shifted: String = std::fs::read_to_string(&test_set)
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
            fields[2] = format!("{}", fields[2].parse::<f64>().unwrap() + 2.0);
            fields.join(",") + "\n"
        })
        .collect();
    std::fs::write(shifted_dir.join("test_set_2.csv"), shifted).unwrap();
    let definition = checking(&shifted_dir, store.path());
    let drifted = run(store.path(), &definition, engine);
    assert!(!drifted.status.success(), "the drifted batch fails the run");
    let out = format!("{}{}", String::from_utf8_lossy(&drifted.stdout), stderr(&drifted));
    assert!(out.contains("test_set_2 drifted from the training data: 1 violation(s) in _c2"), "{out}");
    let violations = find(store.path(), "constraint_violations.json");
    let newest = violations.iter().max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap()).unwrap();
    let report: Value = serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    let listed = report["violations"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{report:#}");
    assert_eq!(listed[0]["feature_name"], "_c2");
    assert_eq!(listed[0]["constraint_check_type"], "baseline_drift_check");
    // No predictions for the drifted run's batch: the transform sits behind the gate.
    let transform = out.lines().find(|l| l.starts_with("TransformTestSet2 ")).unwrap_or_else(|| panic!("{out}"));
    assert!(transform.contains("NotExecuted"), "{transform}");
}

#[test]
fn drifted_test_set_takes_the_fail_branch_with_processes() {
    gate("process");
}

#[test]
fn drifted_test_set_takes_the_fail_branch_with_the_docker_images() {
    for step in ["preprocess", "train", "evaluate", "serve", "monitor"] {
        require_image(&format!("sagestep-{step}:latest"));
    }
    gate("docker");
}

//! The monitor binary's `analysis_type=MODEL_QUALITY` contract: AWS's QualityCheck environment
//! on AWS's fixture (statistics and both constraint cases), a merge job's records with
//! CloudWatch metrics, and bad input through the failure channel.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::util::{MlTree, assert_success, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_monitor");

fn run(ml: &MlTree, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("SAGESTEP_ML_ROOT", ml.root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(crate::util::repo().join("tests/data/model-quality").join(name)).unwrap()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The environment AWS's QualityCheck step sets for the SDK's regression fixture.
fn quality_check_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("output_path", "/opt/ml/processing/output"),
        ("publish_cloudwatch_metrics", "Disabled"),
        ("dataset_format", r#"{"csv": {"header": true, "output_columns_position": "START"}}"#),
        ("dataset_source", "/opt/ml/processing/input/baseline_dataset_input"),
        ("analysis_type", "MODEL_QUALITY"),
        ("problem_type", "Regression"),
        ("inference_attribute", "Label"),
        ("ground_truth_attribute", "Prediction"),
    ]
}

fn fixture_tree() -> MlTree {
    let ml = MlTree::new();
    ml.write("processing/input/baseline_dataset_input/baseline_dataset.csv", fixture("baseline_dataset.csv"));
    ml
}

#[test]
fn quality_check_on_the_sdk_fixture_writes_what_aws_wrote() {
    let ml = fixture_tree();
    let out = run(&ml, &quality_check_env());
    assert_success(&out);
    let aws: Value = serde_json::from_str(&fixture("statistics.json")).unwrap();
    assert_eq!(json_file(&ml.path("processing/output/statistics.json")), aws);
    let good: Value = serde_json::from_str(&fixture("good_cases/constraints.json")).unwrap();
    assert_eq!(json_file(&ml.path("processing/output/constraints.json")), good);
    assert!(!ml.path("processing/output/constraint_violations.json").exists());
    assert!(ml.read("output/message").starts_with("Completed: Regression baseline of 100 rows"));
}

#[test]
fn the_good_case_passes_and_the_bad_case_violates_as_on_aws() {
    for (case, violations) in [
        ("good_cases", json!([])),
        (
            "bad_cases",
            json!([{
                "metric_name": "mse",
                "constraint_check_type": "GreaterThanThreshold",
                "description": "Metric mse with 0.33364933609800973 was GreaterThanThreshold 0.03364933609800973",
            }]),
        ),
    ] {
        let ml = fixture_tree();
        ml.write("processing/baseline/constraints/constraints.json", fixture(&format!("{case}/constraints.json")));
        let mut env = quality_check_env();
        env.push(("baseline_constraints", "/opt/ml/processing/baseline/constraints/constraints.json"));
        let out = run(&ml, &env);
        // Violations are a result, not a failure: exit 0, as AWS's analyzer.
        assert_success(&out);
        let written = json_file(&ml.path("processing/output/constraint_violations.json"));
        assert_eq!(written["violations"], violations, "{case}");
        let summary = json_file(&ml.path("processing/output/monitoring_summary.json"));
        let status = if case == "good_cases" { "Completed" } else { "CompletedWithViolations" };
        assert_eq!(summary["status"], status);
        assert!(ml.read("output/message").starts_with(status), "{}", ml.read("output/message"));
    }
}

fn merged_record(i: usize, probability: f64, label: u8) -> String {
    json!({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                               "data": format!("{probability}"), "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": format!("e{i}"), "inferenceId": i.to_string(), "inferenceTime": "2021-05-06T22:21:48Z"},
        "eventVersion": "0",
        "groundTruthData": {"data": label.to_string(), "encoding": "CSV"},
    })
    .to_string()
}

#[test]
fn merged_capture_records_give_scikit_learns_metrics_and_cloudwatch_lines() {
    let ml = MlTree::new();
    let mut records = Vec::new();
    let mut csv = String::from("label,probability\n");
    for i in 0..400usize {
        let label = u8::from(i % 3 == 0);
        let probability = ((i * 37 % 101) as f64 / 100.0 + f64::from(label) * 0.3) / 1.3;
        records.push(merged_record(i, probability, label));
        csv += &format!("{label},{probability}\n");
    }
    let part = "processing/input/endpoint/merge/ep/AllTraffic/2021/05/06/22/part-00000-x.c000.jsonl";
    ml.write(part, records.join("\n") + "\n");
    let out = run(
        &ml,
        &[
            ("analysis_type", "MODEL_QUALITY"),
            ("problem_type", "BinaryClassification"),
            ("dataset_format", r#"{"sagemakerMergeJson":{"captureIndexNames":["endpointOutput"]}}"#),
            ("dataset_source", "/opt/ml/processing/input/endpoint"),
            ("probability_attribute", "0"),
            ("probability_threshold_attribute", "0.5"),
            ("output_path", "/opt/ml/processing/resultdata"),
            ("publish_cloudwatch_metrics", "Enabled"),
            ("sagemaker_endpoint_name", "ep"),
            ("sagemaker_monitoring_schedule_name", "mq"),
            ("start_time", "2021-05-06T22:00:00Z"),
            ("end_time", "2021-05-06T23:00:00Z"),
            ("metric_time", "2021-05-06T22:00:00Z"),
        ],
    );
    assert_success(&out);
    let statistics = json_file(&ml.path("processing/resultdata/statistics.json"));
    assert_eq!(statistics["dataset"]["item_count"], 400);
    let metrics = &statistics["binary_classification_metrics"];
    let csv_path = ml.write("oracle.csv", csv);
    let oracle = Command::new(crate::model_quality::sklearn_python())
        .arg(crate::util::repo().join("tests/python/model_quality_oracle.py"))
        .args([csv_path.to_str().unwrap(), "BinaryClassification", "label", "-", "probability", "0.5"])
        .output()
        .unwrap();
    assert!(oracle.status.success(), "{}", stderr(&oracle));
    let theirs: Value = serde_json::from_slice(&oracle.stdout).unwrap();
    assert_eq!(metrics["confusion_matrix"], theirs["confusion_matrix"]);
    for name in ["auc", "f1", "precision", "recall", "accuracy", "false_positive_rate"] {
        let (ours, expected) = (metrics[name]["value"].as_f64().unwrap(), theirs[name]["value"].as_f64().unwrap());
        assert!((ours - expected).abs() < 1e-12, "{name}: {ours} vs {expected}");
    }
    // One PutMetricData-like line per finite scalar, dimensioned by endpoint and schedule.
    let lines = ml.read("output/metrics/cloudwatch/cloudwatch_metrics.jsonl");
    let auc: Value =
        lines.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|l| l["MetricName"] == "auc").unwrap();
    assert_eq!(auc["Timestamp"], "2021-05-06T22:00:00Z");
    assert_eq!(auc["Value"], metrics["auc"]["value"]);
    assert_eq!(
        auc["Dimensions"],
        json!([{"Name": "Endpoint", "Value": "ep"}, {"Name": "MonitoringSchedule", "Value": "mq"}])
    );
    assert_eq!(lines.lines().count(), 17);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let emf: Value =
        stdout.lines().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("_aws").is_some())).unwrap();
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "aws/sagemaker/Endpoints/model-metrics");
    assert_eq!(emf["f2"], metrics["f2"]["value"]);
}

/// Data, its file name, the settings changed, the message expected.
type Case = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static str);

#[test]
fn bad_input_fails_through_the_processing_channel_naming_what_is_wrong() {
    let cases: [Case; 4] = [
        (
            "label,prediction\n1,1\n",
            "a.csv",
            &[("problem_type", "Classification")],
            "`problem_type` must be one of Regression, BinaryClassification, MulticlassClassification. Given: `Classification`",
        ),
        (
            "label,prediction\n1,1\n",
            "a.csv",
            &[("inference_attribute", "predicted")],
            "a.csv, line 1: `inference_attribute` `predicted` is not a column of the header (label, prediction)",
        ),
        (
            "label,prediction\n1,1\n2,0\n",
            "a.csv",
            &[],
            "a.csv, line 3: the ground truth `2` is no BinaryClassification label: expected 0 or 1",
        ),
        ("label,prediction\n", "a.csv", &[], "no data under `dataset_source`"),
    ];
    for (data, name, changes, expected) in cases {
        let ml = MlTree::new();
        ml.write(&format!("processing/input/data/{name}"), data);
        let mut env = vec![
            ("analysis_type", "MODEL_QUALITY"),
            ("problem_type", "BinaryClassification"),
            ("dataset_format", r#"{"csv": {"header": true}}"#),
            ("dataset_source", "/opt/ml/processing/input/data"),
            ("inference_attribute", "prediction"),
            ("ground_truth_attribute", "label"),
        ];
        for (k, v) in changes {
            env.retain(|(name, _)| name != k);
            env.push((k, v));
        }
        let out = run(&ml, &env);
        assert_eq!(out.status.code(), Some(1), "{expected}: {}", stderr(&out));
        let message = ml.read("output/message");
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
        assert!(!ml.path("processing/output/statistics.json").exists());
    }
}

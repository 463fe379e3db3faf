//! The shipped pipeline.json through `sagestep run`: both engines, both branches, caching,
//! the registry, interrupts, retries, and `sagestep validate` on corrupted copies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{assert_measured, assert_success, auto_mpg, repo, require_image, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_sagestep");

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sagestep(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).arg("--store").arg(store).output().expect("run sagestep")
}

/// `sagestep run` with the parameters the shipped definition requires.
fn run(store: &Path, definition: &Path, extra: &[&str]) -> Output {
    let input = format!("InputData=file://{}", auto_mpg().display());
    let mut args = vec!["run", definition.to_str().unwrap(), "--param", &input];
    args.extend([
        "--param",
        "ArtifactRoot=s3://artifacts/auto-mpg",
        "--param",
        "ExecutionRoleArn=arn:aws:iam::000000000000:role/test",
    ]);
    args.extend(extra);
    let work = store.join("work");
    std::fs::create_dir_all(&work).unwrap();
    args.extend(["--work-dir", work.to_str().unwrap()]);
    sagestep(store, &args)
}

/// `sagestep run` of a definition of these steps, written for the test.
fn run_steps(store: &Path, steps: Value) -> Output {
    let definition = serde_json::json!({"Version": "2020-12-01", "Parameters": [], "Steps": steps});
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), definition.to_string()).unwrap();
    sagestep(store, &["run", file.path().to_str().unwrap()])
}

fn pipeline() -> PathBuf {
    repo().join("pipeline.json")
}

/// The newest execution record.
fn last_record(store: &Path) -> Value {
    let dir = store.join(".sagestep/executions");
    let mut records: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "json").then(|| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        })
        .collect();
    records.sort_by(|a: &Value, b: &Value| a["start"].as_str().cmp(&b["start"].as_str()));
    records.pop().expect("an execution record")
}

fn step<'r>(record: &'r Value, name: &str) -> &'r Value {
    record["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

fn artifact(store: &Path, record: &Value, rel: &str) -> PathBuf {
    let id = record["execution_id"].as_str().unwrap();
    store.join("artifacts/auto-mpg").join(id).join(rel)
}

/// What every successful run must leave: a sane MSE, a registered version, one prediction
/// per unlabelled row.
fn check_complete_run(store: &Path, record: &Value, version: u64) {
    assert_eq!(record["status"], "Succeeded", "{record:#}");
    let tuning = &step(record, "HPTuning")["properties"];
    assert_eq!(tuning["TrainingJobSummaries"].as_array().unwrap().len(), 3);
    let best = tuning["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"].as_f64().unwrap();
    for summary in tuning["TrainingJobSummaries"].as_array().unwrap() {
        assert!(summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"].as_f64().unwrap() >= best);
    }
    // Processing outputs of a cache hit live under the execution that made them.
    let evaluation_uri =
        step(record, "EvaluateTopModel")["properties"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
            .as_str()
            .unwrap()
            .to_string();
    let evaluation_path = store.join(evaluation_uri.strip_prefix("s3://").unwrap()).join("evaluation.json");
    let evaluation: Value = serde_json::from_slice(&std::fs::read(evaluation_path).unwrap()).unwrap();
    // The report names the model as the container saw it, whichever engine ran the job.
    assert_eq!(
        evaluation["model"]["files"],
        serde_json::json!(["/opt/ml/processing/model/model.tar.gz!xgboost-model"])
    );
    let mse = evaluation["regression_metrics"]["mse"]["value"].as_f64().unwrap();
    // test_set_1 is 29 rows of the exact split at seed 42 (279/60/29/30); the bound is loose.
    assert!((1.0..25.0).contains(&mse), "MSE {mse}: about 16 expected on Auto MPG's test_set_1");

    // Nor does any record or container log name the job trees on this machine.
    let work = store.join("work").to_string_lossy().into_owned();
    let id = record["execution_id"].as_str().unwrap();
    let mut kept = vec![record.to_string()];
    let logs = std::fs::read_dir(store.join(".sagestep/executions").join(id).join("logs"));
    for entry in logs.into_iter().flatten() {
        kept.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for text in kept {
        assert!(!text.contains(&work), "a host path of the job trees ({work}) in a record or log: {text}");
    }

    let registered = &step(record, "RegisterAutoMpgModel")["properties"];
    assert_eq!(registered["ModelPackageVersion"], version);
    assert_eq!(registered["ModelApprovalStatus"], "PendingManualApproval");
    assert_eq!(registered["ModelMetricsReports"]["ModelQuality.Statistics"]["Content"], evaluation);
    assert_eq!(registered["Lineage"]["PipelineExecutionId"], record["execution_id"]);

    let test_uri = step(record, "PreprocessAutoMpgData")["properties"]["ProcessingOutputConfig"]["Outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["OutputName"] == "test_set_2")
        .unwrap()["S3Output"]["S3Uri"]
        .as_str()
        .unwrap()
        .to_string();
    let rows =
        std::fs::read_to_string(store.join(test_uri.strip_prefix("s3://").unwrap()).join("test_set_2.csv")).unwrap();
    let out =
        std::fs::read_to_string(artifact(store, record, "TransformTestSet2/predictions/test_set_2.csv.out")).unwrap();
    assert_eq!(out.lines().count(), rows.lines().count());
    for line in out.lines() {
        let mpg: f64 = line.parse().unwrap_or_else(|_| panic!("not a prediction: {line:?}"));
        assert!((5.0..60.0).contains(&mpg), "{mpg}");
    }
}

/// `executions describe` shows what each job step's containers cost, measured as `engine`
/// measures; the run's summary shows it too.
fn check_resources(store: &Path, record: &Value, summary: &str, engine: &str) {
    let id = record["execution_id"].as_str().unwrap();
    let described: Value =
        serde_json::from_str(&stdout(&sagestep(store, &["executions", "describe", id]))).expect("describe prints JSON");
    for name in [
        "PreprocessAutoMpgData",
        "HPTuning",
        "EvaluateTopModel",
        "MonitorBaseline",
        "DataQualityCheckTestSet2",
        "TransformTestSet2",
    ] {
        assert_measured(&step(&described, name)["resources"], engine, name);
        let line = summary.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{summary}"));
        assert!(!line.contains(" - "), "{name} has figures in the summary: {line}");
    }
    let tuning = &step(&described, "HPTuning")["resources"];
    let jobs = tuning["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{tuning:#}");
    let cpu: f64 = jobs.iter().map(|j| j["cpu_seconds"].as_f64().unwrap()).sum();
    assert!((cpu - tuning["cpu_seconds"].as_f64().unwrap()).abs() < 0.002, "{tuning:#}");
    for name in ["RegisterAutoMpgModel", "AutoMPGMSECond"] {
        assert!(step(&described, name)["resources"].is_null(), "{name} runs no container");
    }
    assert!(summary.contains("CPU-S") && summary.contains("PEAK-MIB"), "{summary}");
}

#[test]
fn the_whole_pipeline_runs_with_processes_then_reuses_its_cache() {
    let store = tempfile::tempdir().unwrap();
    let first = run(store.path(), &pipeline(), &[]);
    assert_success(&first);
    let record = last_record(store.path());
    check_complete_run(store.path(), &record, 1);
    check_resources(store.path(), &record, &stdout(&first), "process");
    assert!(stdout(&first).contains("AutoMpgPackageGroupName"), "{}", stdout(&first));
    // Nothing of the run is left in the work directory.
    assert_eq!(std::fs::read_dir(store.path().join("work")).unwrap().count(), 0);

    let second = run(store.path(), &pipeline(), &[]);
    assert_success(&second);
    let again = last_record(store.path());
    assert_ne!(again["execution_id"], record["execution_id"]);
    for name in ["PreprocessAutoMpgData", "HPTuning", "EvaluateTopModel"] {
        assert_eq!(step(&again, name)["cache_hit_from"], record["execution_id"], "{name} was not reused");
        // Nothing ran: no figures, and the summary says why.
        assert!(step(&again, name)["resources"].is_null(), "{name}");
        let summary = stdout(&second);
        let line = summary.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        assert!(line.contains("cached"), "{line}");
    }
    check_complete_run(store.path(), &again, 2);

    // --no-cache runs everything again.
    assert_success(&run(store.path(), &pipeline(), &["--no-cache"]));
    assert!(step(&last_record(store.path()), "HPTuning")["cache_hit_from"].is_null());

    let listed = stdout(&sagestep(store.path(), &["registry", "list"]));
    assert_eq!(listed.lines().filter(|l| l.contains("PendingManualApproval")).count(), 3, "{listed}");
    let approved = sagestep(store.path(), &["registry", "approve", "AutoMpgPackageGroupName/1", "--description", "ok"]);
    assert_success(&approved);
    let described: Value =
        serde_json::from_str(&stdout(&sagestep(store.path(), &["registry", "describe", "AutoMpgPackageGroupName/1"])))
            .unwrap();
    assert_eq!(described["ModelApprovalStatus"], "Approved");
    assert_eq!(described["ApprovalHistory"].as_array().unwrap().len(), 2);
    let missing = sagestep(store.path(), &["registry", "approve", "AutoMpgPackageGroupName/9"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no model package `AutoMpgPackageGroupName/9`"));

    let executions = stdout(&sagestep(store.path(), &["executions", "list"]));
    assert_eq!(executions.lines().filter(|l| l.contains("Succeeded")).count(), 3, "{executions}");
    let id = record["execution_id"].as_str().unwrap();
    let described: Value =
        serde_json::from_str(&stdout(&sagestep(store.path(), &["executions", "describe", id]))).unwrap();
    assert_eq!(described["execution_id"], id);

    // Another --seed draws other trials: the tuning step runs again.
    assert_success(&run(store.path(), &pipeline(), &["--seed", "7"]));
    let reseeded = last_record(store.path());
    assert!(step(&reseeded, "HPTuning")["cache_hit_from"].is_null(), "{:#}", step(&reseeded, "HPTuning"));
    assert!(!step(&reseeded, "PreprocessAutoMpgData")["cache_hit_from"].is_null());
}

#[test]
fn the_whole_pipeline_runs_with_the_docker_images() {
    for step in ["preprocess", "train", "evaluate", "serve", "monitor"] {
        require_image(&format!("sagestep-{step}:0.1.0"));
    }
    let store = tempfile::tempdir().unwrap();
    let output = run(store.path(), &pipeline(), &["--engine", "docker"]);
    assert_success(&output);
    let record = last_record(store.path());
    assert_eq!(record["engine"], "docker");
    check_complete_run(store.path(), &record, 1);
    check_resources(store.path(), &record, &stdout(&output), "docker");
    let digest =
        step(&record, "RegisterAutoMpgModel")["properties"]["InferenceSpecification"]["Containers"][0]["ImageDigest"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let id = record["execution_id"].as_str().unwrap();
    let left = Command::new("docker").args(["ps", "-aq", "--filter", &format!("name={id}")]).output().unwrap();
    assert!(stdout(&left).trim().is_empty(), "containers left behind: {}", stdout(&left));
}

#[test]
fn a_low_threshold_takes_the_fail_branch() {
    let store = tempfile::tempdir().unwrap();
    let output = run(store.path(), &pipeline(), &["--param", "MseThreshold=0.5"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).contains("is above the threshold 0.5"), "{}", stdout(&output));
    let record = last_record(store.path());
    assert_eq!(record["status"], "Failed");
    assert_eq!(step(&record, "AutoMpgMseFail")["status"], "Failed");
    for skipped in ["RegisterAutoMpgModel", "CreateAutoMpgModel", "TransformTestSet2"] {
        assert_eq!(step(&record, skipped)["status"], "NotExecuted");
    }
    assert!(!store.path().join(".sagestep/registry").exists());
}

#[test]
fn parameters_are_checked_before_anything_runs() {
    let store = tempfile::tempdir().unwrap();
    let output = run(store.path(), &pipeline(), &["--param", "MseTreshold=3"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("parameter `MseTreshold`: the pipeline declares no such parameter"),
        "{}",
        stderr(&output)
    );
    let output = run(store.path(), &pipeline(), &["--param", "MseThreshold=low"]);
    assert!(stderr(&output).contains("parameter `MseThreshold`: `low` is not a Float"), "{}", stderr(&output));
    let output = sagestep(store.path(), &["run", pipeline().to_str().unwrap()]);
    assert!(stderr(&output).contains("parameter `InputData`: it has no default"), "{}", stderr(&output));
    assert!(!store.path().join(".sagestep/executions").exists());
}

fn corrupted(edit: impl FnOnce(&mut Value)) -> tempfile::NamedTempFile {
    let mut definition: Value = serde_json::from_slice(&std::fs::read(pipeline()).unwrap()).unwrap();
    edit(&mut definition);
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), serde_json::to_vec_pretty(&definition).unwrap()).unwrap();
    file
}

/// The shipped definition's Transform step's arguments.
fn transform(definition: &mut Value) -> &mut Value {
    &mut definition["Steps"][5]["Arguments"]["IfSteps"][2]["Arguments"]["IfSteps"][0]["Arguments"]
}

#[test]
fn validate_passes_the_shipped_definition_and_explains_corruptions() {
    let ok = Command::new(BIN).args(["validate"]).arg(pipeline()).output().unwrap();
    assert_success(&ok);
    assert!(stdout(&ok).contains("valid (12 steps"), "{}", stdout(&ok));

    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|d| d["Steps"][0]["Type"] = "Procesing".into()), "$.Steps[0].Type: `Procesing` is not a step type"),
        (
            Box::new(|d| {
                d["Steps"][2]["Arguments"]["ProcessingInputs"][1]["S3Input"]["S3Uri"]["Get"] =
                    "Steps.PreprocessAutoMpgData.ProcessingOutputConfig.Outputs['tets'].S3Output.S3Uri".into()
            }),
            "$.Steps[2].Arguments.ProcessingInputs[1].S3Input.S3Uri.Get: `Steps.PreprocessAutoMpgData.ProcessingOutputConfig.Outputs['tets'].S3Output.S3Uri`: step `PreprocessAutoMpgData` has no output `tets`",
        ),
        (
            Box::new(|d| d["Steps"][5]["Arguments"]["IfSteps"][1]["Name"] = "HPTuning".into()),
            "$.Steps[5].Arguments.IfSteps[1].Name: step name `HPTuning` is also used at $.Steps[1]",
        ),
        (
            Box::new(|d| {
                d["Steps"][1]["Arguments"]["TrainingJobDefinition"]["RoleArn"]["Get"] = "Parameters.Role".into()
            }),
            "$.Steps[1].Arguments.TrainingJobDefinition.RoleArn.Get: `Parameters.Role`: no parameter `Role` is declared",
        ),
        (Box::new(|d| d["Steps"][0]["DependsOn"] = serde_json::json!(["EvaluateTopModel"])), "the steps form a cycle"),
        (
            Box::new(|d| d["Steps"][1]["Arguments"]["HyperParameterTuningJobConfig"]["Strategy"] = "Bayes".into()),
            "$.Steps[1].Arguments.HyperParameterTuningJobConfig.Strategy",
        ),
        (
            Box::new(|d| transform(d)["DataCaptureConfig"] = json!({"DestinationS3Uri": "capture/batch"})),
            "$.Steps[5].Arguments.IfSteps[2].Arguments.IfSteps[0].Arguments.DataCaptureConfig.DestinationS3Uri: \
             must be an S3 URI, `s3://bucket/prefix`",
        ),
        (
            Box::new(|d| {
                transform(d)["DataCaptureConfig"] = json!({"DestinationS3Uri": "s3://b/c", "KmsKeyId": "my key"})
            }),
            "$.Steps[5].Arguments.IfSteps[2].Arguments.IfSteps[0].Arguments.DataCaptureConfig.KmsKeyId: \
             must be a KMS key id",
        ),
        (
            Box::new(|d| {
                transform(d)["DataCaptureConfig"] =
                    json!({"DestinationS3Uri": "s3://b/c", "InitialSamplingPercentage": 50})
            }),
            "$.Steps[5].Arguments.IfSteps[2].Arguments.IfSteps[0].Arguments.DataCaptureConfig: \
             Additional properties are not allowed ('InitialSamplingPercentage' was unexpected)",
        ),
        (
            Box::new(|d| transform(d)["DataCaptureConfig"] = json!({"GenerateInferenceId": true})),
            "$.Steps[5].Arguments.IfSteps[2].Arguments.IfSteps[0].Arguments.DataCaptureConfig: \
             \"DestinationS3Uri\" is a required property",
        ),
    ];
    for (edit, expected) in cases {
        let file = corrupted(edit);
        let output = Command::new(BIN).args(["validate"]).arg(file.path()).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{expected}");
        assert!(stdout(&output).contains(expected), "expected {expected:?} in:\n{}", stdout(&output));
        // The runner refuses what validate refuses.
        let store = tempfile::tempdir().unwrap();
        let run = run(store.path(), file.path(), &[]);
        assert_eq!(run.status.code(), Some(1));
        assert!(stderr(&run).contains("the definition is not valid"), "{}", stderr(&run));
    }
    let not_json = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_json.path(), "{\"Version\": \n").unwrap();
    let output = Command::new(BIN).args(["validate"]).arg(not_json.path()).output().unwrap();
    assert!(stderr(&output).contains("not JSON") && stderr(&output).contains("line 2"), "{}", stderr(&output));
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_interrupt_stops_running_jobs_and_stores_nothing_of_them() {
    interrupt_during_tuning("process");
}

#[test]
fn an_interrupt_stops_running_containers_and_stores_nothing_of_them() {
    require_image("sagestep-train:0.1.0");
    interrupt_during_tuning("docker");
}

fn interrupt_during_tuning(engine: &str) {
    let slow = corrupted(|d| {
        d["Steps"][1]["Arguments"]["TrainingJobDefinition"]["StaticHyperParameters"]["num_round"] = "1000000".into();
    });
    let store = tempfile::tempdir().unwrap();
    let work = store.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let input = format!("InputData=file://{}", auto_mpg().display());
    let child = Command::new(BIN)
        .args(["run", slow.path().to_str().unwrap(), "--param", &input, "--param", "ArtifactRoot=s3://artifacts/slow"])
        .args([
            "--param",
            "ExecutionRoleArn=r",
            "--store",
            store.path().to_str().unwrap(),
            "--work-dir",
            work.to_str().unwrap(),
        ])
        .args(["--engine", engine])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let training_started = || {
        std::fs::read_dir(&work)
            .ok()
            .and_then(|mut runs| runs.next())
            .and_then(|run| std::fs::read_dir(run.ok()?.path()).ok())
            .is_some_and(|jobs| jobs.filter_map(Result::ok).any(|j| j.file_name().to_string_lossy().contains("-003-")))
    };
    wait_for(training_started, "the training jobs");
    // Some of the jobs are running, some perhaps still starting: both must stop.
    std::thread::sleep(Duration::from_millis(100));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let record = last_record(store.path());
    assert_eq!(record["status"], "Stopped");
    assert_eq!(step(&record, "PreprocessAutoMpgData")["status"], "Succeeded");
    assert_eq!(step(&record, "HPTuning")["status"], "Stopped");
    assert!(!artifact(store.path(), &record, "HPTuning").exists(), "a stopped tuning job stored output");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "the work directory was left behind");
    // No training process of this run survives it.
    let id = record["execution_id"].as_str().unwrap();
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!stdout(&ps).lines().any(|l| l.contains(id)), "{}", stdout(&ps));
    if engine == "docker" {
        let left = Command::new("docker").args(["ps", "-aq", "--filter", &format!("name={id}")]).output().unwrap();
        assert!(stdout(&left).trim().is_empty(), "containers left behind: {}", stdout(&left));
    }
}

#[test]
fn service_faults_are_retried_as_the_policy_says() {
    let steps = serde_json::json!([{
        "Name": "Broken", "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}},
            "AppSpecification": {"ImageUri": "sagestep-no-such-image:0"},
            "RoleArn": "r"
        },
        "RetryPolicies": [{"ExceptionType": ["Step.SERVICE_FAULT"], "IntervalSeconds": 1, "BackoffRate": 1.0, "MaxAttempts": 2}]
    }]);
    let store = tempfile::tempdir().unwrap();
    let output = run_steps(store.path(), steps);
    assert_eq!(output.status.code(), Some(1));
    let record = last_record(store.path());
    let broken = step(&record, "Broken");
    // MaxAttempts is the number of retries: the first attempt and two more.
    assert_eq!(broken["attempts"], 3, "{broken:#}");
    assert!(broken["error"].as_str().unwrap().contains("exit code 125"), "{broken:#}");
}

#[test]
fn checkpoints_go_to_the_given_local_path_and_back_to_s3() {
    let store = tempfile::tempdir().unwrap();
    let rows: String = (0..60).map(|i| format!("{},{},{}\n", 2 * i + i % 7, i, i % 7)).collect();
    std::fs::create_dir_all(store.path().join("data/train")).unwrap();
    std::fs::write(store.path().join("data/train/train.csv"), rows).unwrap();
    let steps = serde_json::json!([{
        "Name": "Train", "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {"TrainingImage": "sagestep-train:latest", "TrainingInputMode": "File"},
            "HyperParameters": {"num_round": "12", "max_depth": "2"},
            "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/train"}}}],
            "OutputDataConfig": {"S3OutputPath": "s3://out/train"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "CheckpointConfig": {"S3Uri": "s3://ckpt/run", "LocalPath": "/opt/ml/checkpoints/mine"},
            "RoleArn": "r"
        }
    }]);
    let output = run_steps(store.path(), steps);
    assert_success(&output);
    // The trainer wrote into LocalPath (mapped into the job's tree), and the runner stored it.
    let stored = std::fs::read_dir(store.path().join("ckpt/run"))
        .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(stored.iter().any(|f| f.starts_with("xgboost-checkpoint.")), "{stored:?}\n{}", stderr(&output));
}

#[test]
fn json_get_reads_the_json_object_at_an_s3_uri() {
    let store = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store.path().join("data/reports")).unwrap();
    std::fs::write(
        store.path().join("data/reports/metrics.json"),
        r#"{"regression_metrics": {"mse": {"value": 3.5}}}"#,
    )
    .unwrap();
    let mse = serde_json::json!({"Std:JsonGet": {
        "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3://data", "reports", "metrics.json"]}},
        "Path": "regression_metrics.mse.value"
    }});
    let steps = serde_json::json!([{
        "Name": "Check", "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "LessThanOrEqualTo", "LeftValue": mse, "RightValue": 5.0}],
            "IfSteps": [],
            "ElseSteps": [{"Name": "TooHigh", "Type": "Fail", "Arguments": {"ErrorMessage": "MSE too high"}}]
        }
    }]);
    let output = run_steps(store.path(), steps);
    assert_success(&output);
    let check = step(&last_record(store.path()), "Check").clone();
    assert_eq!(check["properties"]["Outcome"], true, "{check:#}");
    assert_eq!(check["properties"]["EvaluatedConditions"][0]["LeftValue"], 3.5, "{check:#}");
}

/// The shipped pipeline with its training channels in Pipe mode: the runner feeds each host a
/// FIFO per channel, and the tuning jobs train the File mode run's models, on one host and on
/// two, as processes and as containers. Without row subsampling: with several hosts, rows are
/// sampled by the hash of their object's name, which a pipe does not carry.
#[test]
fn a_pipeline_whose_training_channels_are_pipes_trains_the_file_mode_models() {
    require_image("sagestep-train:0.1.0");
    let objectives = |record: &Value| -> Vec<String> {
        let tuning = &step(record, "HPTuning")["properties"];
        let mut values: Vec<String> = tuning["TrainingJobSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"].to_string())
            .collect();
        values.sort();
        values
    };
    let definition = |mode: &str| {
        corrupted(|definition| {
            let training = definition.pointer_mut("/Steps/1/Arguments/TrainingJobDefinition").expect("the tuning step");
            training["StaticHyperParameters"]["subsample"] = "1".into();
            training["AlgorithmSpecification"]["TrainingInputMode"] = mode.into();
            for channel in training["InputDataConfig"].as_array_mut().unwrap() {
                channel["InputMode"] = mode.into();
            }
        })
    };
    let store = tempfile::tempdir().unwrap();
    assert_success(&run(store.path(), definition("File").path(), &[]));
    let file_mode = objectives(&last_record(store.path()));

    let piped = definition("Pipe");
    for (version, (engine, hosts)) in [("process", "1"), ("process", "2"), ("docker", "1")].into_iter().enumerate() {
        let count = format!("TrainingInstanceCount={hosts}");
        let output = run(store.path(), piped.path(), &["--no-cache", "--engine", engine, "--param", &count]);
        assert_success(&output);
        let record = last_record(store.path());
        check_complete_run(store.path(), &record, version as u64 + 2);
        assert_eq!(objectives(&record), file_mode, "{engine}, {hosts} host(s): Pipe mode trains File mode's models");
        let logs =
            store.path().join(".sagestep/executions").join(record["execution_id"].as_str().unwrap()).join("logs");
        let piped_jobs = crate::util::files_below(&logs)
            .iter()
            .filter(|log| std::fs::read_to_string(log).unwrap().contains("read the Pipe mode channel"))
            .count();
        assert_eq!(
            piped_jobs,
            3 * hosts.parse::<usize>().unwrap(),
            "{engine}, {hosts}: every training host read a pipe"
        );
        assert_eq!(
            std::fs::read_dir(store.path().join("work")).unwrap().count(),
            0,
            "no FIFO or staged object is left"
        );
    }
}

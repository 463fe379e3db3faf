//! Jobs on several instances through `sagestep run`: training across hosts (processes and
//! containers, the Docker network gone afterwards), processing with each host's own
//! resourceconfig and shard, transform across instances, a failing host stopping the others,
//! and the shipped pipeline with its instance-count parameters above 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::distributed::{HYPERPARAMETERS, host_tree, parts};
use crate::util::{assert_measured, assert_success, auto_mpg, files_below, repo, require_image, stderr};

const SAGESTEP: &str = env!("CARGO_BIN_EXE_sagestep");
const TRAIN: &str = env!("CARGO_BIN_EXE_train");
const ROLE: &str = "arn:aws:iam::000000000000:role/test";

/// A store directory (`s3://b/k` is `<dir>/b/k`) with the distributed tests' data in it:
/// `s3://data/train/part-{0..5}.csv` and `s3://data/validation/validation.csv`.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Self {
        let store = Self { dir: tempfile::tempdir().unwrap() };
        let (files, validation) = parts();
        for (name, text) in &files {
            store.put(&format!("data/train/{name}"), text);
        }
        store.put("data/validation/validation.csv", &validation);
        store
    }

    fn path(&self, uri: &str) -> PathBuf {
        self.dir.path().join(uri.strip_prefix("s3://").unwrap_or(uri))
    }

    fn put(&self, key: &str, text: &str) {
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn work(&self) -> PathBuf {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        work
    }

    /// `sagestep run` on `definition`; the run's output and its execution record.
    fn run(&self, definition: &Value, extra: &[&str]) -> (Output, Value) {
        let file = self.dir.path().join("definition.json");
        std::fs::write(&file, serde_json::to_vec_pretty(definition).unwrap()).unwrap();
        self.run_file(&file, extra)
    }

    fn run_file(&self, file: &Path, extra: &[&str]) -> (Output, Value) {
        let output = Command::new(SAGESTEP)
            .arg("run")
            .arg(file)
            .args(extra)
            .arg("--store")
            .arg(self.dir.path())
            .arg("--work-dir")
            .arg(self.work())
            .env("SAGESTEP_LOG", "warn")
            .output()
            .unwrap();
        (output, last_record(self.dir.path()))
    }

    /// Every file under an `s3://` prefix, relative, sorted.
    fn files(&self, uri: &str) -> Vec<String> {
        let base = self.path(uri);
        let mut out: Vec<String> =
            files_below(&base).iter().map(|p| p.strip_prefix(&base).unwrap().display().to_string()).collect();
        out.sort();
        out
    }
}

fn last_record(store: &Path) -> Value {
    let mut records: Vec<Value> = files_below(&store.join(".sagestep/executions"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.parent().unwrap().ends_with("executions"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    records.sort_by(|a: &Value, b: &Value| a["start"].as_str().cmp(&b["start"].as_str()));
    records.pop().unwrap_or(Value::Null)
}

fn step<'r>(record: &'r Value, name: &str) -> &'r Value {
    record["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

fn definition(parameters: Value, steps: Value) -> Value {
    json!({"Version": "2020-12-01", "Parameters": parameters, "Steps": steps})
}

fn channel(name: &str, uri: &str, distribution: &str) -> Value {
    json!({"ChannelName": name, "ContentType": "text/csv", "InputMode": "File",
           "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}}})
}

/// A Training step on `hosts` hosts (a number or an expression), the train channel sharded.
fn training_step(hosts: Value, hyperparameters: &str) -> Value {
    let hyperparameters: Value = serde_json::from_str(hyperparameters).unwrap();
    json!({"Name": "Train", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": "sagestep-train:0.1.0", "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "validation-rmse:([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)"}]},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [channel("train", "s3://data/train/", "ShardedByS3Key"),
                            channel("validation", "s3://data/validation/", "FullyReplicated")],
        "OutputDataConfig": {"S3OutputPath": "s3://out/train"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": hosts, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "EnableNetworkIsolation": true,
        "RoleArn": ROLE}})
}

fn hosts_parameter(default: u64) -> Value {
    json!([{"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": default}])
}

/// The model the world of one trains with the hosts' arithmetic (`SAGESTEP_DISTRIBUTED=1`)
/// on every part: what any number of hosts must train.
fn reference_model() -> Vec<u8> {
    let (files, validation) = parts();
    let all: Vec<&(String, String)> = files.iter().collect();
    let one = host_tree(1, 1, &all, &validation, HYPERPARAMETERS);
    let out = Command::new(TRAIN)
        .arg("train")
        .env("SAGESTEP_ML_ROOT", one.root())
        .env("SAGESTEP_DISTRIBUTED", "1")
        .output()
        .unwrap();
    assert_success(&out);
    std::fs::read(one.path("model/xgboost-model")).unwrap()
}

/// Every file of a stored `model.tar.gz`, by name.
fn unpacked(store: &Store, uri: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    sagestep::model::archive::unpack(&store.path(uri), dir.path(), 1 << 30).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = files_below(dir.path())
        .into_iter()
        .map(|p| (p.strip_prefix(dir.path()).unwrap().display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// The kept work directory of the run's job for `step_name`: one tree per host.
fn host_trees(store: &Store, record: &Value, job_field: &str, step_name: &str) -> Vec<PathBuf> {
    let job = step(record, step_name)["properties"][job_field].as_str().unwrap().to_string();
    let dir = store.work().join(format!("sagestep-{}", record["execution_id"].as_str().unwrap())).join(job);
    let mut hosts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("algo-"))
        .collect();
    hosts.sort();
    hosts
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Three hosts, `TrainingInstanceCount` as a pipeline parameter: the model is the world of
/// one's, byte for byte; each host had its resourceconfig and its round-robin shard.
fn three_hosts_train_the_reference_model(engine: &str) -> (Store, Value) {
    let store = Store::new();
    let pipeline = definition(
        hosts_parameter(1),
        json!([training_step(json!({"Get": "Parameters.TrainingInstanceCount"}), HYPERPARAMETERS)]),
    );
    let (output, record) =
        store.run(&pipeline, &["--engine", engine, "--param", "TrainingInstanceCount=3", "--keep-work"]);
    assert_success(&output);
    let train = &step(&record, "Train")["properties"];
    let model = unpacked(&store, train["ModelArtifacts"]["S3ModelArtifacts"].as_str().unwrap());
    assert_eq!(
        model.len(),
        1,
        "only the first host writes a model: {:?}",
        model.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    assert_eq!(model[0].0, "xgboost-model");
    assert!(model[0].1 == reference_model(), "{engine}: three hosts trained another model than the world of one");
    assert!(train["FinalMetricDataList"][0]["Value"].as_f64().is_some(), "{train:#}");

    let trees = host_trees(&store, &record, "TrainingJobName", "Train");
    assert_eq!(trees.len(), 3);
    let mut dealt = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        let config = read_json(&tree.join("input/config/resourceconfig.json"));
        assert_eq!(config["current_host"], format!("algo-{}", i + 1));
        assert_eq!(config["hosts"], json!(["algo-1", "algo-2", "algo-3"]));
        assert_eq!(config["network_interface_name"], "eth0");
        let shard = names(&tree.join("input/data/train"));
        // Keys in order, dealt round robin.
        assert_eq!(shard, [format!("part-{i}.csv"), format!("part-{}.csv", i + 3)]);
        dealt.extend(shard);
        assert_eq!(names(&tree.join("input/data/validation")), ["validation.csv"]);
    }
    assert_eq!(dealt.len(), 6);
    // Each host measured; the job's CPU is theirs summed, its peak the largest.
    let resources = &step(&record, "Train")["resources"];
    let hosts = resources["hosts"].as_array().unwrap_or_else(|| panic!("{resources:#}"));
    assert_eq!(hosts.iter().map(|h| h["host"].as_str().unwrap()).collect::<Vec<_>>(), ["algo-1", "algo-2", "algo-3"]);
    for host in hosts {
        assert_measured(host, engine, host["host"].as_str().unwrap());
    }
    let cpu: f64 = hosts.iter().map(|h| h["cpu_seconds"].as_f64().unwrap()).sum();
    assert!((cpu - resources["cpu_seconds"].as_f64().unwrap()).abs() < 0.002, "{resources:#}");
    let peak = hosts.iter().map(|h| h["peak_memory_bytes"].as_u64().unwrap()).max();
    assert_eq!(resources["peak_memory_bytes"].as_u64(), peak);
    (store, record)
}

#[test]
fn three_training_hosts_as_processes_train_the_one_host_model() {
    three_hosts_train_the_reference_model("process");
}

fn docker_networks(execution_id: &str) -> String {
    let out = Command::new("docker").args(["network", "ls", "--format", "{{.Name}}"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|n| n.contains(execution_id)).collect::<Vec<_>>().join(" ")
}

fn docker_containers(execution_id: &str) -> String {
    let out = Command::new("docker").args(["ps", "-aq", "--filter", &format!("name={execution_id}")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Under Docker the hosts reach each other by name on the job's own network, which is gone
/// afterwards: after a success, and after a job whose second host fails on bad data.
#[test]
fn three_training_hosts_as_containers_train_the_one_host_model_and_leave_no_network() {
    require_image("sagestep-train:0.1.0");
    let (_store, record) = three_hosts_train_the_reference_model("docker");
    let id = record["execution_id"].as_str().unwrap();
    assert_eq!(docker_networks(id), "", "a network was left behind");
    assert_eq!(docker_containers(id), "", "containers were left behind");

    // algo-2 is dealt part-1.csv and part-4.csv; a bad row in part-4.csv fails it.
    let store = Store::new();
    store.put("data/train/part-4.csv", "1.0,2.0,3.0,4.0,5.0,6.0\n2.0,abc,1,1,1,1\n");
    let pipeline = definition(
        hosts_parameter(3),
        json!([training_step(json!({"Get": "Parameters.TrainingInstanceCount"}), HYPERPARAMETERS)]),
    );
    let started = Instant::now();
    let (output, record) = store.run(&pipeline, &["--engine", "docker"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let error = step(&record, "Train")["error"].as_str().unwrap().to_string();
    assert!(error.contains("host algo-"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(120), "{:?}", started.elapsed());
    let id = record["execution_id"].as_str().unwrap();
    assert_eq!(docker_networks(id), "", "a failed job left its network behind");
    assert_eq!(docker_containers(id), "", "a failed job left containers behind");
    assert!(store.files("s3://out/train").is_empty(), "a failed job stored output");
}

/// Labelled rows (`label,f1..f5`) for evaluate, and the same rows without labels.
fn test_rows(seed: usize, n: usize) -> (String, String) {
    let (files, _) = parts();
    let rows: Vec<&str> = files[seed % files.len()].1.lines().take(n).collect();
    let labelled = rows.iter().map(|r| format!("{r}\n")).collect();
    let features = rows.iter().map(|r| format!("{}\n", r.split_once(',').unwrap().1)).collect();
    (labelled, features)
}

/// A one-host training step, then `extra` steps that read its model.
fn with_model(extra: Vec<Value>) -> Value {
    let mut steps = vec![training_step(json!(1), HYPERPARAMETERS)];
    steps.extend(extra);
    definition(json!([]), json!(steps))
}

fn model_uri() -> Value {
    json!({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"})
}

/// Two evaluate hosts: each has its own resourceconfig and its own test file (sharded), the
/// model on both (replicated); the files both hosts upload from one local path sit side by
/// side under the output prefix, and a key both write holds the second host's file.
#[test]
fn two_processing_hosts_each_get_their_shard_and_their_outputs_merge() {
    let store = Store::new();
    let (a, _) = test_rows(0, 50);
    let (b, _) = test_rows(1, 80);
    store.put("tests/test-a.csv", &a);
    store.put("tests/test-b.csv", &b);
    let evaluate = json!({"Name": "Evaluate", "Type": "Processing", "Arguments": {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}},
        "AppSpecification": {"ImageUri": "sagestep-evaluate:0.1.0"},
        "RoleArn": ROLE,
        "ProcessingInputs": [
            {"InputName": "model", "S3Input": {"S3Uri": model_uri(), "LocalPath": "/opt/ml/processing/model",
                "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}},
            {"InputName": "test", "S3Input": {"S3Uri": "s3://tests/", "LocalPath": "/opt/ml/processing/test",
                "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "ShardedByS3Key"}}],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://out/evaluation/", "LocalPath": "/opt/ml/processing/evaluation", "S3UploadMode": "EndOfJob"}},
            {"OutputName": "seen", "S3Output": {"S3Uri": "s3://out/seen/", "LocalPath": "/opt/ml/processing/test", "S3UploadMode": "EndOfJob"}}]}}});
    let (output, record) = store.run(&with_model(vec![evaluate]), &["--keep-work"]);
    assert_success(&output);
    assert_eq!(store.files("s3://out/seen/"), ["test-a.csv", "test-b.csv"], "both hosts' files under the prefix");
    assert_eq!(
        store.files("s3://out/evaluation/"),
        ["evaluation.json", "evaluation.svg", "evaluation_predictions.csv"],
        "one key each: the later host's file"
    );

    let trees = host_trees(&store, &record, "ProcessingJobName", "Evaluate");
    assert_eq!(trees.len(), 2);
    for (i, (tree, mine)) in trees.iter().zip(["test-a.csv", "test-b.csv"]).enumerate() {
        let config = read_json(&tree.join("config/resourceconfig.json"));
        assert_eq!(config, json!({"current_host": format!("algo-{}", i + 1), "hosts": ["algo-1", "algo-2"]}));
        assert_eq!(names(&tree.join("processing/test")), [mine]);
        assert_eq!(names(&tree.join("processing/model")), ["model.tar.gz"]);
        assert!(tree.join("config/processingjobconfig.json").is_file());
    }
    // The stored evaluation is the second host's (80 rows), which wrote the key last.
    let stored = std::fs::read(store.path("s3://out/evaluation/evaluation.json")).unwrap();
    assert_eq!(stored, std::fs::read(trees[1].join("processing/evaluation/evaluation.json")).unwrap());
    assert_ne!(stored, std::fs::read(trees[0].join("processing/evaluation/evaluation.json")).unwrap());
}

/// Two transform instances over three objects: one `.out` per object with one prediction
/// per row, and both instances served (each has its log).
#[test]
fn two_transform_instances_write_one_out_per_object() {
    let store = Store::new();
    let sizes = [(0, 40), (1, 25), (2, 60)];
    for (i, n) in sizes {
        store.put(&format!("batch/in-{i}.csv"), &test_rows(i, n).1);
    }
    let model = json!({"Name": "Model", "Type": "Model", "Arguments": {
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": "sagestep-serve:0.1.0", "ModelDataUrl": model_uri()}}});
    let transform = json!({"Name": "Batch", "Type": "Transform", "Arguments": {
        "ModelName": {"Get": "Steps.Model.ModelName"},
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://batch/"}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": "s3://out/batch/", "AssembleWith": "Line", "Accept": "text/csv"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2}}});
    let (output, record) = store.run(&with_model(vec![model, transform]), &[]);
    assert_success(&output);
    assert_eq!(store.files("s3://out/batch/"), ["in-0.csv.out", "in-1.csv.out", "in-2.csv.out"]);
    for (i, n) in sizes {
        let out = std::fs::read_to_string(store.path(&format!("s3://out/batch/in-{i}.csv.out"))).unwrap();
        assert_eq!(out.lines().count(), n, "in-{i}.csv");
        assert!(out.lines().all(|l| l.parse::<f64>().is_ok()), "{out}");
    }
    let job = step(&record, "Batch")["properties"]["TransformJobName"].as_str().unwrap().to_string();
    let logs = store.dir.path().join(format!(".sagestep/executions/{}/logs", record["execution_id"].as_str().unwrap()));
    for host in ["algo-1", "algo-2"] {
        assert!(logs.join(format!("{job}-{host}.log")).is_file(), "instance {host} served: {:?}", names(&logs));
    }
    // Each instance's server measured.
    let resources = &step(&record, "Batch")["resources"];
    for host in resources["hosts"].as_array().unwrap_or_else(|| panic!("{resources:#}")) {
        assert_measured(host, "process", host["host"].as_str().unwrap());
    }
}

/// A host that fails ends the job at once: the other host, which would run until the job's
/// 30 s deadline (a model server), is stopped, and the failure is the failing host's. Both
/// hosts serve on one fixed port, so whichever binds second fails.
#[test]
fn a_failing_host_stops_the_others() {
    let store = Store::new();
    let port = crate::serve::free_port().to_string();
    let serving = json!({"Name": "Serving", "Type": "Processing", "Arguments": {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}},
        "AppSpecification": {"ImageUri": "sagestep-serve:0.1.0",
            "ContainerArguments": ["serve", "--model-dir", "/opt/ml/processing/model", "--port", port]},
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 30},
        "ProcessingInputs": [{"InputName": "model", "S3Input": {"S3Uri": model_uri(), "LocalPath": "/opt/ml/processing/model",
            "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}]}});
    let started = Instant::now();
    let (output, record) = store.run(&with_model(vec![serving]), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(20), "the job waited for the surviving host");
    let error = step(&record, "Serving")["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("host algo-1: ") || error.starts_with("host algo-2: "), "{error}");
    assert_eq!(error.matches("host algo-").count(), 1, "{error}");
    assert!(error.contains("Address in use") && !error.contains('\u{1b}'), "the failing host's log, plain: {error}");
    let id = record["execution_id"].as_str().unwrap();
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains(id)), "a host survived its job");
}

/// Bad instance counts are refused with the field named, before anything runs.
#[test]
fn instance_counts_are_checked() {
    let store = Store::new();
    let pipeline = definition(
        hosts_parameter(1),
        json!([training_step(json!({"Get": "Parameters.TrainingInstanceCount"}), HYPERPARAMETERS)]),
    );
    let (output, record) = store.run(&pipeline, &["--param", "TrainingInstanceCount=0"]);
    assert_eq!(output.status.code(), Some(1));
    let error = step(&record, "Train")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("ResourceConfig: `InstanceCount` must be a whole number from 1 to 100. Given: 0"),
        "{error}"
    );
}

/// Every line of every file under a prefix.
fn lines_under(store: &Store, uri: &str) -> Vec<String> {
    store
        .files(uri)
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(store.path(uri).join(f)).unwrap().lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

fn output_uri(record: &Value, step_name: &str, output: &str) -> String {
    step(record, step_name)["properties"]["ProcessingOutputConfig"]["Outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["OutputName"] == output)
        .unwrap()["S3Output"]["S3Uri"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The shipped pipeline on 2 processing, 3 training and 2 transform instances. What must
/// hold once preprocess is multi-instance too (each host writes its part of every split):
/// the splits together hold every input row exactly once, a model is registered, and every
/// unlabelled row gets a prediction.
fn whole_pipeline_on_several_instances(engine: &str) {
    let store = Store::new();
    let input = format!("InputData=file://{}", auto_mpg().display());
    let params = [
        "--param",
        &input,
        "--param",
        "ArtifactRoot=s3://artifacts/auto-mpg",
        "--param",
        &format!("ExecutionRoleArn={ROLE}"),
        "--param",
        "TrainingInstanceCount=3",
        "--param",
        "ProcessingInstanceCount=2",
        "--param",
        "TransformInstanceCount=2",
        "--engine",
        engine,
    ];
    let started = Instant::now();
    let (output, record) = store.run_file(&repo().join("pipeline.json"), &params);
    eprintln!("{engine}: the pipeline on 2/3/2 instances took {:.2} s", started.elapsed().as_secs_f64());
    assert_success(&output);
    assert_eq!(record["status"], "Succeeded");
    let registered = &step(&record, "RegisterAutoMpgModel")["properties"];
    assert_eq!(registered["ModelPackageVersion"], 1, "{registered:#}");

    let input_rows = std::fs::read_to_string(auto_mpg()).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
    let mut labelled = Vec::new();
    for split in ["train", "validation", "test_set_1"] {
        labelled.extend(lines_under(&store, &output_uri(&record, "PreprocessAutoMpgData", split)));
    }
    let unlabelled = lines_under(&store, &output_uri(&record, "PreprocessAutoMpgData", "test_set_2"));
    assert_eq!(labelled.len() + unlabelled.len(), input_rows, "every input row in exactly one split");
    let mut distinct = labelled.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), labelled.len(), "a row appears twice in the splits");

    let id = record["execution_id"].as_str().unwrap();
    let predictions_uri = format!("s3://artifacts/auto-mpg/{id}/TransformTestSet2/predictions/");
    let out_files = store.files(&predictions_uri);
    assert!(!out_files.is_empty() && out_files.iter().all(|f| f.ends_with(".out")), "{out_files:?}");
    assert_eq!(lines_under(&store, &predictions_uri).len(), unlabelled.len(), "one prediction per unlabelled row");
    // Each job ran on its instances: every host left its log.
    let logs = names(&store.dir.path().join(format!(".sagestep/executions/{id}/logs")));
    let preprocess = step(&record, "PreprocessAutoMpgData")["properties"]["ProcessingJobName"].as_str().unwrap();
    let evaluate = step(&record, "EvaluateTopModel")["properties"]["ProcessingJobName"].as_str().unwrap();
    let mut expected: Vec<String> = [preprocess, evaluate].iter().map(|job| format!("{job}-algo-2.log")).collect();
    for summary in step(&record, "HPTuning")["properties"]["TrainingJobSummaries"].as_array().unwrap() {
        expected.push(format!("{}-algo-3.log", summary["TrainingJobName"].as_str().unwrap()));
    }
    for log in &expected {
        assert!(logs.contains(log), "no {log} in {logs:?}");
    }
    if engine == "docker" {
        assert_eq!(docker_networks(id), "", "networks left behind");
        assert_eq!(docker_containers(id), "", "containers left behind");
    }
}

#[test]
fn the_whole_pipeline_runs_on_several_instances_with_processes() {
    whole_pipeline_on_several_instances("process");
}

#[test]
fn the_whole_pipeline_runs_on_several_instances_with_the_docker_images() {
    for step in ["preprocess", "train", "evaluate", "serve"] {
        require_image(&format!("sagestep-{step}:0.1.0"));
    }
    whole_pipeline_on_several_instances("docker");
}

/// Ctrl-C while training jobs run on three containers each: the containers and the jobs'
/// networks are gone when `sagestep run` ends.
#[test]
fn an_interrupt_removes_the_hosts_and_their_networks() {
    require_image("sagestep-train:0.1.0");
    let store = Store::new();
    let mut slow: Value = serde_json::from_slice(&std::fs::read(repo().join("pipeline.json")).unwrap()).unwrap();
    slow["Steps"][1]["Arguments"]["TrainingJobDefinition"]["StaticHyperParameters"]["num_round"] = json!("1000000");
    let file = store.dir.path().join("slow.json");
    std::fs::write(&file, serde_json::to_vec(&slow).unwrap()).unwrap();
    let input = format!("InputData=file://{}", auto_mpg().display());
    let child = Command::new(SAGESTEP)
        .arg("run")
        .arg(&file)
        .args(["--param", &input, "--param", "ArtifactRoot=s3://artifacts/slow", "--param", "ExecutionRoleArn=r"])
        .args(["--param", "TrainingInstanceCount=3", "--engine", "docker", "--store"])
        .arg(store.dir.path())
        .arg("--work-dir")
        .arg(store.work())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let id = loop {
        let run = std::fs::read_dir(store.work())
            .unwrap()
            .next()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        if let Some(id) = run.and_then(|r| r.strip_prefix("sagestep-").map(str::to_string))
            && docker_networks(&id).split_whitespace().count() == 3
        {
            break id;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the tuning jobs' networks did not appear");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(1));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert_eq!(last_record(store.dir.path())["status"], "Stopped");
    assert_eq!(docker_networks(&id), "", "networks left behind");
    assert_eq!(docker_containers(&id), "", "containers left behind");
}

//! Batch transform through `sagestep run` (process engine): objects larger than the payload
//! bound are streamed (the runner's peak memory measured while it runs), every `.out` equals
//! XGBoost's predictions row for row, and a record past `MaxPayloadInMB` fails the job with
//! nothing stored.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sagestep::serving::recordio;
use serde_json::{Value, json};

use crate::model::{fixtures, read_csv};
use crate::serve::{bits, csv_body, parse_lines};
use crate::util::files_below;

const SAGESTEP: &str = env!("CARGO_BIN_EXE_sagestep");
const ROLE: &str = "arn:aws:iam::000000000000:role/test";

/// A store (`s3://b/k` is `<dir>/b/k`) holding the 3.0.5 regression fixture as
/// `s3://models/m/model.tar.gz`.
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    std::fs::copy(case().join("xgboost-model"), staging.path().join("xgboost-model")).unwrap();
    std::fs::create_dir_all(dir.path().join("models/m")).unwrap();
    sagestep::model::archive::pack(staging.path(), &dir.path().join("models/m/model.tar.gz")).unwrap();
    dir
}

fn case() -> PathBuf {
    fixtures().join("3.0.5/reg_squarederror")
}

fn model_step() -> Value {
    json!({"Name": "Model", "Type": "Model", "Arguments": {"ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": "sagestep-serve:0.1.0", "ModelDataUrl": "s3://models/m/model.tar.gz"}}})
}

fn transform_step(name: &str, input: &str, split: &str, content_type: &str, payload_mb: u64) -> Value {
    json!({"Name": name, "Type": "Transform", "Arguments": {
        "ModelName": {"Get": "Steps.Model.ModelName"},
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input}},
                           "ContentType": content_type, "SplitType": split},
        "TransformOutput": {"S3OutputPath": format!("s3://out/{name}/"), "AssembleWith": "Line", "Accept": "text/csv"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "BatchStrategy": "MultiRecord", "MaxPayloadInMB": payload_mb, "MaxConcurrentTransforms": 2}})
}

/// `sagestep run` of these steps: its exit code, its output, and its peak resident memory
/// (`VmHWM`, KiB) read every 5 ms while it runs (its servers are other processes).
fn run(store: &Path, steps: Value, extra: &[&str]) -> (Option<i32>, String, u64) {
    let definition = store.join("definition.json");
    std::fs::write(&definition, json!({"Version": "2020-12-01", "Parameters": [], "Steps": steps}).to_string())
        .unwrap();
    let work = store.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut child = Command::new(SAGESTEP)
        .arg("run")
        .arg(&definition)
        .arg("--store")
        .arg(store)
        .arg("--work-dir")
        .arg(&work)
        .args(extra)
        .env("SAGESTEP_LOG", "warn")
        .stdout(Stdio::from(std::fs::File::create(store.join("run.log")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(store.join("run.err")).unwrap()))
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let hwm = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    };
    let log = ["run.log", "run.err"].map(|f| std::fs::read_to_string(store.join(f)).unwrap()).join("\n");
    (status.code(), log, peak)
}

/// Write `rows` of the fixture, cycled, as CSV lines to `path`: the bytes written.
fn write_cycled(path: &Path, rows: &[Vec<f32>], count: usize) -> u64 {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let lines: Vec<String> = rows.iter().map(|r| csv_body(std::slice::from_ref(r)) + "\n").collect();
    for line in lines.iter().cycle().take(count) {
        file.write_all(line.as_bytes()).unwrap();
    }
    file.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// A 116 MiB CSV object (2.2 million rows) and a small one through 1 MB payloads, and
/// RecordIO records through the `RecordIO` split: each `.out` holds XGBoost's predictions
/// (`pred.csv`, cycled) bit for bit, in order, one line a row; the runner's peak resident
/// memory stays below 80 MiB (measured: 52 MiB, of which 34 MiB is the runner with a small
/// object), less than the 116 MiB object (a 130 MiB object held whole took 281 MiB).
#[test]
fn a_transform_streams_an_object_larger_than_its_payloads() {
    let store = store();
    let rows = read_csv(&case().join("X.csv"));
    let pred = bits(&read_csv(&case().join("pred.csv")).concat());
    let big = 2_200_000;
    let size = write_cycled(&store.path().join("batch/lines/big.csv"), &rows, big);
    assert!(size > 110 << 20, "{size} bytes");
    write_cycled(&store.path().join("batch/lines/small.csv"), &rows, 7);
    std::fs::write(store.path().join("batch/lines/empty.csv"), "").unwrap();
    let mut records = Vec::new();
    for r in &rows {
        recordio::write_frame(&recordio::feature_record(r, &[], &[]), &mut records);
    }
    std::fs::create_dir_all(store.path().join("batch/records")).unwrap();
    std::fs::write(store.path().join("batch/records/rows.rec"), &records).unwrap();

    let steps = json!([
        model_step(),
        transform_step("Lines", "s3://batch/lines/", "Line", "text/csv", 1),
        transform_step("Records", "s3://batch/records/", "RecordIO", "application/x-recordio-protobuf", 1),
    ]);
    let (code, log, peak) = run(store.path(), steps, &[]);
    assert_eq!(code, Some(0), "{log}");
    eprintln!("sagestep run: peak resident memory {peak} KiB for a {size}-byte object");

    let out = |key: &str| std::fs::read(store.path().join("out").join(key)).unwrap();
    let cycled = |n: usize| pred.iter().copied().cycle().take(n).collect::<Vec<u32>>();
    let got = out("Lines/big.csv.out");
    assert_eq!(got.iter().filter(|&&b| b == b'\n').count(), big);
    assert!(bits(&parse_lines(&got)) == cycled(big), "big.csv.out is not XGBoost's predictions");
    assert_eq!(bits(&parse_lines(&out("Lines/small.csv.out"))), cycled(7));
    assert_eq!(out("Lines/empty.csv.out"), b"");
    assert_eq!(bits(&parse_lines(&out("Records/rows.rec.out"))), pred);
    assert!(peak > 0 && peak < 80 * 1024, "the runner's peak resident memory was {peak} KiB");
}

/// A line longer than `MaxPayloadInMB` fails the job, naming the object and the record,
/// before anything is stored: no `.out` for any object, complete or not.
#[test]
fn a_transform_record_past_max_payload_fails_with_nothing_stored() {
    let store = store();
    let rows = read_csv(&case().join("X.csv"));
    write_cycled(&store.path().join("batch/a.csv"), &rows, 50_000);
    let mut long = csv_body(&rows[..2]) + "\n";
    long.push_str(&"1,".repeat(600_000));
    long.push_str("1\n");
    std::fs::write(store.path().join("batch/b.csv"), long).unwrap();
    let steps = json!([model_step(), transform_step("T", "s3://batch/", "Line", "text/csv", 1)]);
    let (code, log, _) = run(store.path(), steps, &["--keep-work"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("b.csv: record 3 is more than 1048576 bytes, above MaxPayloadInMB (1048576 bytes)"), "{log}");
    assert!(files_below(&store.path().join("out")).is_empty(), "stored: {:?}", files_below(&store.path().join("out")));
    // In the job's own output directory: a.csv's output whole (its 50,000 lines), nothing of
    // b.csv's, not even a partial file.
    let outputs: Vec<PathBuf> = files_below(&store.path().join("work"))
        .into_iter()
        .filter(|p| p.parent().unwrap().ends_with("output"))
        .collect();
    let names: Vec<String> = outputs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["a.csv.out"], "objects are done in key order: a.csv before b.csv");
    for path in &outputs {
        assert_eq!(std::fs::read(path).unwrap().iter().filter(|&&b| b == b'\n').count(), 50_000);
    }
}

/// `transform_step` writing `accept` output with `DataCaptureConfig` `capture`.
fn capture_step(name: &str, input: &str, accept: &str, capture: Value) -> Value {
    let mut step = transform_step(name, input, "Line", "text/csv", 1);
    step["Arguments"]["TransformOutput"]["Accept"] = accept.into();
    step["Arguments"]["DataCaptureConfig"] = capture;
    step
}

/// The one manifest a job left under `{dest}/{folder}/`: its `yyyy/mm/dd/hh` folder and content.
fn manifest(dest: &Path, folder: &str) -> (String, Value) {
    let files = files_below(&dest.join(folder));
    assert_eq!(files.len(), 1, "one manifest under {folder}/: {files:?}");
    let relative = files[0].strip_prefix(dest.join(folder)).unwrap().to_string_lossy().into_owned();
    let (hour, name) = relative.rsplit_once('/').unwrap();
    let uuid = name.strip_suffix(".json").unwrap_or_else(|| panic!("{name} is not <uuid>.json"));
    assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4, "{name}");
    (hour.to_string(), serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap())
}

/// `yyyy/mm/dd/hh` of a `2026-12-07T08:24:32Z` time.
fn hour_folder(time: &str) -> String {
    format!("{}/{}/{}/{}", &time[..4], &time[5..7], &time[8..10], &time[11..13])
}

/// Each step's properties in the run's execution record.
fn properties(store: &Path, step: &str) -> Value {
    let records = files_below(&store.join(".sagestep/executions"));
    let record = records.iter().find(|p| p.extension().is_some_and(|e| e == "json")).expect("an execution record");
    let record: Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let found = record["steps"].as_array().unwrap().iter().find(|s| s["name"] == step).cloned();
    found.unwrap_or_else(|| panic!("no step {step} in {record}"))["properties"].clone()
}

/// Every id is a version-4 UUID and none repeats; every time is `time`.
fn assert_stamps(stamps: &[(String, String)], time: &str) {
    let unique: std::collections::BTreeSet<&String> = stamps.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), stamps.len(), "inference ids repeat");
    for (id, at) in stamps {
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4, "{id}");
        assert_eq!(at, time);
    }
}

/// DataCaptureConfig as SageMaker honours it for a transform job (part 1.6 of the capture
/// spec): manifests of the inputs and of the `.out` objects under `{dest}/input/` and
/// `{dest}/output/` at `yyyy/mm/dd/hh/<uuid>.json` of the job's start; with
/// `GenerateInferenceId`, CSV lines gain `,<uuid>,<start>` and JSON lines are wrapped as
/// `{"SageMakerInferenceId","SageMakerInferenceTime","SageMakerOutput"}`, one id per output
/// line of multi-row responses; without it the output is untouched.
#[test]
fn a_transform_with_data_capture_writes_manifests_and_stamps_every_record() {
    let store = store();
    let rows = read_csv(&case().join("X.csv"));
    let pred = bits(&read_csv(&case().join("pred.csv")).concat());
    let cycled = |n: usize| pred.iter().copied().cycle().take(n).collect::<Vec<u32>>();
    write_cycled(&store.path().join("batch/capture/a.csv"), &rows, 40);
    write_cycled(&store.path().join("batch/capture/sub/b.csv"), &rows, 3);
    let stamped = json!({"DestinationS3Uri": "s3://capture/csv/", "GenerateInferenceId": true});
    let jsonl =
        json!({"DestinationS3Uri": "s3://capture/jsonl", "KmsKeyId": "alias/capture", "GenerateInferenceId": true});
    let steps = json!([
        model_step(),
        capture_step("Csv", "s3://batch/capture", "text/csv", stamped),
        capture_step("Jsonl", "s3://batch/capture/", "application/jsonlines", jsonl),
        capture_step(
            "Plain",
            "s3://batch/capture/sub/b.csv",
            "text/csv",
            json!({"DestinationS3Uri": "s3://capture/plain"})
        ),
    ]);
    let before = sagestep::clock::now_secs().floor();
    let (code, log, _) = run(store.path(), steps, &[]);
    let after = sagestep::clock::now_secs();
    assert_eq!(code, Some(0), "{log}");

    // CSV: the prediction, then the id and the job's start, on every line.
    let csv = String::from_utf8(std::fs::read(store.path().join("out/Csv/a.csv.out")).unwrap()).unwrap();
    let mut stamps = Vec::new();
    let mut values = Vec::new();
    for line in csv.lines() {
        let mut columns = line.rsplitn(3, ',');
        let (time, id, head) = (columns.next().unwrap(), columns.next().unwrap(), columns.next().unwrap());
        stamps.push((id.to_string(), time.to_string()));
        values.push(head.parse::<f32>().unwrap());
    }
    assert_eq!(bits(&values), cycled(40), "the predictions before the ids are XGBoost's");
    let start = properties(store.path(), "Csv")["TransformStartTime"].as_str().unwrap().to_string();
    let time = format!("{}Z", &start[..19]);
    assert_stamps(&stamps, &time);
    let secs = sagestep::clock::parse_rfc3339(&time).unwrap();
    assert!(before <= secs && secs <= after, "{time} is not within the run");

    // Manifests: the inputs under the input prefix, the `.out` objects under S3OutputPath.
    let dest = store.path().join("capture/csv");
    let (hour, input) = manifest(&dest, "input");
    assert_eq!(hour, hour_folder(&time), "the hour folder of the job's start");
    assert_eq!(input, json!([{"prefix": "s3://batch/capture/"}, "a.csv", "sub/b.csv"]));
    let (hour, output) = manifest(&dest, "output");
    assert_eq!(hour, hour_folder(&time));
    assert_eq!(output, json!([{"prefix": "s3://out/Csv/"}, "a.csv.out", "sub/b.csv.out"]));

    // JSON lines: each line wrapped, the model's object kept as SageMakerOutput.
    let jsonl = std::fs::read_to_string(store.path().join("out/Jsonl/sub/b.csv.out")).unwrap();
    let time = format!("{}Z", &properties(store.path(), "Jsonl")["TransformStartTime"].as_str().unwrap()[..19]);
    let mut stamps = Vec::new();
    let mut values = Vec::new();
    for line in jsonl.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["SageMakerInferenceId", "SageMakerInferenceTime", "SageMakerOutput"], "{line}");
        let output = record["SageMakerOutput"].as_object().unwrap();
        assert_eq!(output.keys().collect::<Vec<_>>(), ["score"], "{line}");
        values.push(output["score"].as_f64().unwrap() as f32);
        stamps.push((
            record["SageMakerInferenceId"].as_str().unwrap().into(),
            record["SageMakerInferenceTime"].as_str().unwrap().into(),
        ));
    }
    assert_eq!(bits(&values), cycled(3));
    assert_stamps(&stamps, &time);
    let (_, input) = manifest(&store.path().join("capture/jsonl"), "input");
    assert_eq!(input, json!([{"prefix": "s3://batch/capture/"}, "a.csv", "sub/b.csv"]));

    // Without GenerateInferenceId: manifests, and the output as the model wrote it.
    assert_eq!(bits(&parse_lines(&std::fs::read(store.path().join("out/Plain/b.csv.out")).unwrap())), cycled(3));
    let (_, input) = manifest(&store.path().join("capture/plain"), "input");
    assert_eq!(input, json!([{"prefix": "s3://batch/capture/sub/"}, "b.csv"]));
    let (_, output) = manifest(&store.path().join("capture/plain"), "output");
    assert_eq!(output, json!([{"prefix": "s3://out/Plain/"}, "b.csv.out"]));
}

/// A capture destination that cannot be written fails the job, naming the manifest, and
/// leaves neither outputs nor manifests; an `Accept` whose records cannot be told apart is
/// refused before anything runs.
#[test]
fn a_transform_whose_capture_fails_leaves_nothing() {
    let store = store();
    let rows = read_csv(&case().join("X.csv"));
    write_cycled(&store.path().join("batch/a.csv"), &rows, 5);
    // `capture` is a file, so nothing can be stored below s3://capture/.
    std::fs::write(store.path().join("capture"), "not a bucket").unwrap();
    let config = json!({"DestinationS3Uri": "s3://capture/x", "GenerateInferenceId": true});
    let steps = json!([model_step(), capture_step("T", "s3://batch/", "text/csv", config)]);
    let (code, log, _) = run(store.path(), steps, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("writing the input capture manifest"), "{log}");
    assert!(files_below(&store.path().join("out")).is_empty(), "stored: {:?}", files_below(&store.path().join("out")));

    let store = self::store();
    write_cycled(&store.path().join("batch/a.csv"), &rows, 5);
    let config = json!({"DestinationS3Uri": "s3://capture/x", "GenerateInferenceId": true});
    let steps = json!([model_step(), capture_step("T", "s3://batch/", "application/x-recordio-protobuf", config)]);
    let (code, log, _) = run(store.path(), steps, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("adds inference ids to CSV, JSON and JSON lines output only"), "{log}");
    assert!(files_below(&store.path().join("out")).is_empty() && files_below(&store.path().join("capture")).is_empty());
}

/// `KmsKeyId` reaches S3: against moto's S3 and KMS (`SAGESTEP_MOTO_SERVER`), the runner on
/// `--store s3`, both manifests are stored with SSE-KMS under the key given, as S3's own
/// HeadObject (the AWS CLI) reports it, and name the objects as on a directory store.
#[test]
fn a_transform_captures_to_s3_with_its_kms_key() {
    use crate::deploy::{aws, aws_env, moto};
    let moto = moto();
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let local = store();
    write_cycled(&local.path().join("batch/in/a.csv"), &read_csv(&case().join("X.csv")), 4);
    for bucket in ["models", "batch", "out", "capture", "records"] {
        aws(&moto, &["s3api", "create-bucket", "--bucket", bucket]);
    }
    for (bucket, key) in [("models", "m/model.tar.gz"), ("batch", "in/a.csv")] {
        let body = local.path().join(bucket).join(key);
        aws(&moto, &["s3api", "put-object", "--bucket", bucket, "--key", key, "--body", body.to_str().unwrap()]);
    }
    let key_arn = aws(&moto, &["kms", "create-key"])["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let config = json!({"DestinationS3Uri": "s3://capture/batch", "KmsKeyId": key_arn, "GenerateInferenceId": true});
    let definition = local.path().join("definition.json");
    let steps = json!([model_step(), capture_step("T", "s3://batch/in/", "text/csv", config)]);
    std::fs::write(&definition, json!({"Version": "2020-12-01", "Parameters": [], "Steps": steps}).to_string())
        .unwrap();
    let run = aws_env(Command::new(SAGESTEP))
        .arg("run")
        .arg(&definition)
        .args(["--store", "s3", "--records", "s3://records/r", "--work-dir"])
        .arg(local.path().join("work"))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SAGESTEP_LOG", "warn")
        .output()
        .unwrap();
    crate::util::assert_success(&run);

    let listed = aws(&moto, &["s3api", "list-objects-v2", "--bucket", "capture"]);
    let keys: Vec<&str> = listed["Contents"].as_array().unwrap().iter().map(|o| o["Key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for (key, folder) in keys.iter().zip(["input", "output"]) {
        assert!(key.starts_with(&format!("batch/{folder}/")) && key.ends_with(".json"), "{key}");
        let head = aws(&moto, &["s3api", "head-object", "--bucket", "capture", "--key", key]);
        assert_eq!(head["ServerSideEncryption"], "aws:kms", "{key}: {head}");
        assert_eq!(head["SSEKMSKeyId"], key_arn.as_str(), "{key}: {head}");
        let saved = local.path().join("manifest.json");
        aws(&moto, &["s3api", "get-object", "--bucket", "capture", "--key", key, saved.to_str().unwrap()]);
        let manifest: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        let expected = match folder {
            "input" => json!([{"prefix": "s3://batch/in/"}, "a.csv"]),
            _ => json!([{"prefix": "s3://out/T/"}, "a.csv.out"]),
        };
        assert_eq!(manifest, expected, "{key}");
    }
    // The transform output itself names no key: S3's default encryption, not this one.
    let head = aws(&moto, &["s3api", "head-object", "--bucket", "out", "--key", "T/a.csv.out"]);
    assert_ne!(head["SSEKMSKeyId"], key_arn.as_str(), "{head}");
}

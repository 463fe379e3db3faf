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

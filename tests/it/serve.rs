//! The serve step: the real binary on a free port (and the image under Docker), every route,
//! content type, Accept value, selectable output and status code, against XGBoost's own
//! predictions (the shared fixtures' `pred.csv`, and `tests/data/models`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sagestep::serving::recordio;
use serde_json::{Value, json};

use crate::model::{fixtures, read_csv};
use crate::util::require_image;

const BIN: &str = env!("CARGO_BIN_EXE_serve");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running server: the real binary, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(model: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("serve")
            .env("SAGESTEP_MODEL_DIR", model)
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .env("SAGESTEP_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("SAGESTEP_TEST_SERVER_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let server = Self { child, port };
        server.wait_ready();
        server
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = agent().get(&self.url("/ping")).call()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("server on {} not ready", self.port);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POST /invocations: (status, content type, body).
    pub fn invoke(&self, content_type: Option<&str>, accept: Option<&str>, body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut request = agent().post(&self.url("/invocations"));
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        if let Some(a) = accept {
            request = request.header("Accept", a);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        let ct = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
        (status, ct, body)
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A model directory holding one fixture file as `xgboost-model`.
fn model_dir(version: &str, case: &str, file: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join(version).join(case).join(file), dir.path().join("xgboost-model")).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn x_rows(case: &Path) -> Vec<Vec<f32>> {
    read_csv(&case.join("X.csv"))
}

pub fn csv_body(rows: &[Vec<f32>]) -> String {
    rows.iter()
        .map(|r| r.iter().map(|v| if v.is_nan() { String::new() } else { v.to_string() }).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
}

/// libsvm lines: absent entries are missing; the leading label is ignored.
pub fn libsvm_body(rows: &[Vec<f32>]) -> String {
    rows.iter()
        .map(|r| {
            let pairs: Vec<String> =
                r.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, v)| format!("{i}:{v}")).collect();
            format!("0 {}\n", pairs.join(" "))
        })
        .collect()
}

/// Rows as JSON lists, `null` for missing.
pub fn json_rows(rows: &[Vec<f32>]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            serde_json::Value::from(r.iter().map(|v| if v.is_nan() { None } else { Some(*v) }).collect::<Vec<_>>())
        })
        .collect()
}

/// RecordIO-protobuf payloads of the rows: dense, and sparse (NaN entries absent).
pub fn recordio_bodies(rows: &[Vec<f32>]) -> (Vec<u8>, Vec<u8>) {
    let (mut dense, mut sparse) = (Vec::new(), Vec::new());
    for r in rows {
        recordio::write_frame(&recordio::feature_record(r, &[], &[]), &mut dense);
        let (keys, values): (Vec<u64>, Vec<f32>) =
            r.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, v)| (i as u64, *v)).unzip();
        recordio::write_frame(&recordio::feature_record(&values, &keys, &[r.len() as u64]), &mut sparse);
    }
    (dense, sparse)
}

/// Every value of every CSV line.
pub fn parse_lines(body: &[u8]) -> Vec<f32> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>())
        .collect()
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The float32 values of each response Record's `label` entries, in key order.
pub fn recordio_labels(body: &[u8]) -> Vec<Vec<f32>> {
    recordio::frames(body)
        .unwrap()
        .iter()
        .map(|frame| recordio::record_labels(frame).unwrap().into_iter().flat_map(|(_, t)| t.values).collect())
        .collect()
}

/// Every request content type and response type through `call(content type, accept, body)`
/// (which checks the status and answers the body), each equal to XGBoost's `pred.csv` bit for
/// bit on the case's 400 rows, which hold missing values: libsvm and sparse RecordIO leave them
/// out, the dense types send them empty, `null` or NaN.
/// Posts a body with a content type and an accept type; answers the response's body.
pub type Call<'a> = dyn Fn(&str, &str, &[u8]) -> Vec<u8> + 'a;

pub fn check_every_content_type(call: &Call<'_>, case: &Path, label: &str) {
    let rows = read_csv(&case.join("X.csv"));
    let pred = read_csv(&case.join("pred.csv"));
    let outputs = pred[0].len();
    let want = bits(&pred.concat());
    assert!(rows.iter().flatten().any(|v| v.is_nan()), "the rows hold missing values");
    let csv = csv_body(&rows);
    assert_eq!(bits(&parse_lines(&call("text/csv", "text/csv", csv.as_bytes()))), want, "{label} csv");
    // Rows short of the eight that walk a tree together walk eight trees together instead.
    for n in [1, 13] {
        let got = parse_lines(&call("text/csv", "text/csv", csv_body(&rows[..n]).as_bytes()));
        assert_eq!(bits(&got), want[..n * outputs], "{label} csv, {n} rows");
    }
    let libsvm = libsvm_body(&rows);
    assert_eq!(bits(&parse_lines(&call("text/libsvm", "text/csv", libsvm.as_bytes()))), want, "{label} libsvm");
    let instances = json!({ "instances": json_rows(&rows) }).to_string();
    let doc: Value =
        serde_json::from_slice(&call("application/json", "application/json", instances.as_bytes())).unwrap();
    let got = scores(doc["predictions"].as_array().unwrap().iter().cloned());
    assert_eq!(bits(&got), want, "{label} json");
    let bare = Value::from(json_rows(&rows)).to_string();
    assert_eq!(bits(&parse_lines(&call("application/json", "text/csv", bare.as_bytes()))), want, "{label} bare list");
    let lines: String = json_rows(&rows).iter().map(|r| format!("{}\n", json!({ "features": r }))).collect();
    let body = call("application/jsonlines", "application/jsonlines", lines.as_bytes());
    let got = scores(String::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()));
    assert_eq!(bits(&got), want, "{label} jsonlines");
    let (dense, sparse) = recordio_bodies(&rows);
    let values = |body: &[u8]| -> usize {
        recordio::frames(body).unwrap().iter().map(|f| recordio::record_features(f).unwrap().values.len()).sum()
    };
    assert!(values(&sparse) < values(&dense), "the sparse records leave the missing values out");
    for (name, payload) in [("dense", dense), ("sparse", sparse)] {
        let protobuf = "application/x-recordio-protobuf";
        let got = recordio_labels(&call(protobuf, protobuf, &payload)).concat();
        assert_eq!(bits(&got), want, "{label} recordio {name}");
    }
}

/// Each prediction's `score` (a number, or a list for several outputs), flattened.
pub fn scores(predictions: impl Iterator<Item = Value>) -> Vec<f32> {
    predictions
        .flat_map(|p| match &p["score"] {
            Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap() as f32).collect(),
            v => vec![v.as_f64().unwrap() as f32],
        })
        .collect()
}

#[test]
fn every_content_type_gives_xgboosts_predictions() {
    for (version, case, file) in [
        ("1.2.0", "reg_squarederror", "xgboost-model.pkl"),
        ("3.0.5", "reg_squarederror", "xgboost-model"),
        ("1.7.6", "binary_logistic", "xgboost-model"),
        ("3.2.0", "multi_softprob", "xgboost-model"),
    ] {
        let (_dir, model) = model_dir(version, case, file);
        let server = Server::start(&model, &[]);
        let label = format!("{version} {case}");
        let call = |ct: &str, accept: &str, body: &[u8]| {
            let (status, got_ct, body) = server.invoke(Some(ct), Some(accept), body);
            assert_eq!((status, got_ct.as_str()), (200, accept), "{label}: {}", String::from_utf8_lossy(&body));
            if accept == "text/csv" || accept == "application/jsonlines" {
                assert!(body.ends_with(b"\n"), "{label}: {accept} ends in a newline");
            }
            body
        };
        let case = fixtures().join(version).join(case);
        check_every_content_type(&call, &case, &label);
        // No Content-Type: libsvm, as the built-in.
        let rows = x_rows(&case);
        let (status, _, body) = server.invoke(None, None, libsvm_body(&rows).as_bytes());
        assert_eq!((status, bits(&parse_lines(&body))), (200, bits(&read_csv(&case.join("pred.csv")).concat())));
    }
}

#[test]
fn accept_and_status_codes() {
    let case = fixtures().join("3.0.5/reg_squarederror");
    let (_dir, model) = model_dir("3.0.5", "reg_squarederror", "xgboost-model");
    let server = Server::start(&model, &[("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")]);
    let body = csv_body(&x_rows(&case)[..2]);
    let (status, ct, _) = server.invoke(Some("text/csv"), Some("*/*"), body.as_bytes());
    assert_eq!((status, ct.as_str()), (200, "application/json"), "*/* uses the default Accept");
    let (status, ct, _) = server.invoke(Some("text/csv"), None, body.as_bytes());
    assert_eq!((status, ct.as_str()), (200, "application/json"));

    let check = |status_want: u16, error_type: &str, (status, ct, body): (u16, String, Vec<u8>)| {
        assert_eq!(status, status_want, "{}", String::from_utf8_lossy(&body));
        if status_want != 204 {
            assert_eq!(ct, "application/json");
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["error_type"], error_type, "{doc}");
            assert!(doc["error"].as_str().unwrap().len() > 10);
        } else {
            assert!(body.is_empty());
        }
    };
    check(204, "", server.invoke(Some("text/csv"), None, b""));
    // An empty body is 204 before the content type or Accept is looked at.
    check(204, "", server.invoke(Some("image/png"), None, b""));
    check(204, "", server.invoke(Some("text/csv"), Some("text/html"), b" \n"));
    check(400, "bad_payload", server.invoke(Some("text/csv"), None, b"1,2,3,4,5,6\n1,2,x,4,5,6\n"));
    check(400, "bad_payload", server.invoke(Some("text/csv"), None, b"1,2,3\n"));
    check(406, "unsupported_accept", server.invoke(Some("text/csv"), Some("text/html"), body.as_bytes()));
    check(415, "unsupported_content_type", server.invoke(Some("image/png"), None, body.as_bytes()));
    let big = vec![b'1'; 7 * 1024 * 1024];
    check(413, "payload_too_large", server.invoke(Some("text/csv"), None, &big));

    // The message names the row and the column.
    let (_, _, err) = server.invoke(Some("text/csv"), None, b"1,2,3,4,5,6\n1,2,x,4,5,6\n");
    assert!(String::from_utf8_lossy(&err).contains("row 2, column 3"));

    // Custom attributes are echoed.
    let response = agent()
        .post(&server.url("/invocations"))
        .header("Content-Type", "text/csv")
        .header("X-Amzn-SageMaker-Custom-Attributes", "trace=abc")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(response.headers().get("x-amzn-sagemaker-custom-attributes").unwrap(), "trace=abc");

    // Execution parameters: cores, MULTI_RECORD, 6.
    let params: serde_json::Value = serde_json::from_str(
        &agent().get(&server.url("/execution-parameters")).call().unwrap().body_mut().read_to_string().unwrap(),
    )
    .unwrap();
    assert_eq!(params["BatchStrategy"], "MULTI_RECORD");
    assert_eq!(params["MaxPayloadInMB"], 6);
    assert_eq!(params["MaxConcurrentTransforms"], std::thread::available_parallelism().unwrap().get());
}

#[test]
fn batch_variables_set_the_execution_parameters_and_the_limit() {
    let (_dir, model) = model_dir("3.0.5", "reg_squarederror", "xgboost-model");
    let server = Server::start(
        &model,
        &[
            ("SAGEMAKER_BATCH", "true"),
            ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1"),
            ("SAGEMAKER_BATCH_STRATEGY", "SINGLE_RECORD"),
            ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "7"),
        ],
    );
    let params: serde_json::Value = serde_json::from_str(
        &agent().get(&server.url("/execution-parameters")).call().unwrap().body_mut().read_to_string().unwrap(),
    )
    .unwrap();
    assert_eq!(
        params,
        serde_json::json!({"MaxConcurrentTransforms": 7, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1})
    );
    let (status, _, _) = server.invoke(Some("text/csv"), None, &vec![b'1'; 1024 * 1024 + 10]);
    assert_eq!(status, 413);
}

/// One selected value as the built-in's `serve_utils.get_selected_predictions` computes it
/// from XGBoost's prediction row `p`: Python ints and floats (`1.0 - p` in float64), lists,
/// or NaN for a key the objective cannot answer.
#[derive(Debug, Clone)]
enum Selected {
    Int(i64),
    Float(f64),
    List(Vec<f64>),
    Nan,
}

fn selected(objective: &str, classes: usize, p: &[f32], key: &str) -> Selected {
    use Selected::{Float, Int, List, Nan};
    let first = f64::from(p[0]);
    let all: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
    let max = all.iter().copied().fold(f64::MIN, f64::max);
    let argmax = all.iter().position(|&v| v == max).unwrap() as i64;
    let pair = List(vec![1.0 - first, first]);
    let classification = ["binary:logistic", "binary:logitraw", "binary:hinge", "multi:softmax", "multi:softprob"];
    let valid = match key {
        "predicted_label" | "labels" | "raw_score" | "raw_scores" => classification.contains(&objective),
        "probability" | "probabilities" => matches!(objective, "binary:logistic" | "multi:softprob"),
        "predicted_score" => objective.starts_with("reg:"),
        _ => false,
    };
    if !valid {
        return Nan;
    }
    match (key, objective) {
        ("predicted_label", "binary:logistic") => Int(i64::from(first > 0.5)),
        ("predicted_label", "binary:logitraw") => Int(i64::from(first > 0.0)),
        ("predicted_label", "multi:softprob") => Int(argmax),
        ("predicted_label", _) => Float(first),
        ("labels", o) => List((0..if o.starts_with("binary:") { 2 } else { classes }).map(|c| c as f64).collect()),
        ("probability" | "raw_score", "multi:softprob") => Float(max),
        ("probabilities" | "raw_scores", "multi:softprob") => List(all),
        ("probability" | "raw_score" | "predicted_score", _) => Float(first),
        ("probabilities" | "raw_scores", _) => pair,
        _ => unreachable!(),
    }
}

/// A Python value read back from a CSV field: an int, a float, a quoted list, `nan`.
fn csv_value(field: &str) -> Selected {
    if field == "nan" {
        Selected::Nan
    } else if let Some(list) = field.strip_prefix("\"[").and_then(|f| f.strip_suffix("]\"")) {
        Selected::List(list.split(", ").map(|v| v.parse().unwrap()).collect())
    } else if field.contains(['.', 'e']) {
        Selected::Float(field.parse().unwrap())
    } else {
        Selected::Int(field.parse().unwrap())
    }
}

/// The fields of a CSV line, quoted lists kept whole.
fn csv_fields(line: &str) -> Vec<&str> {
    let (mut fields, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

fn json_value(v: &Value) -> Selected {
    match v {
        Value::Null => Selected::Nan,
        Value::Array(items) => Selected::List(items.iter().map(|i| i.as_f64().unwrap()).collect()),
        n if n.is_i64() => Selected::Int(n.as_i64().unwrap()),
        n => Selected::Float(n.as_f64().unwrap()),
    }
}

/// Exactly equal, NaN included: Python's ints stay ints, its floats are compared bit for bit.
fn same(got: &Selected, want: &Selected) -> bool {
    match (got, want) {
        (Selected::Int(a), Selected::Int(b)) => a == b,
        (Selected::Float(a), Selected::Float(b)) => a.to_bits() == b.to_bits(),
        (Selected::List(a), Selected::List(b)) => a.iter().map(|v| v.to_bits()).eq(b.iter().map(|v| v.to_bits())),
        (Selected::Nan, Selected::Nan) => true,
        _ => false,
    }
}

/// The float32 values RecordIO carries for a selected value.
fn float32s(v: &Selected) -> Vec<u32> {
    match v {
        Selected::Int(i) => vec![(*i as f32).to_bits()],
        Selected::Float(f) => vec![(*f as f32).to_bits()],
        Selected::List(l) => l.iter().map(|&f| (f as f32).to_bits()).collect(),
        Selected::Nan => vec![f32::NAN.to_bits()],
    }
}

/// `SAGEMAKER_INFERENCE_OUTPUT` with every key, on a model of each objective the built-in
/// answers, in every Accept: each value is what the built-in computes from XGBoost's own
/// predictions (`pred.csv`).
#[test]
fn selectable_outputs_follow_xgboosts_predictions() {
    let keys =
        ["predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores", "predicted_score"];
    let data = crate::util::repo().join("tests/data/models/3.2.0");
    let cases = [
        (fixtures().join("3.2.0/binary_logistic"), "binary:logistic", 2),
        (fixtures().join("3.2.0/multi_softprob"), "multi:softprob", 3),
        (fixtures().join("1.7.6/reg_squarederror"), "reg:squarederror", 0),
        (data.join("binary_logitraw"), "binary:logitraw", 2),
        (data.join("binary_hinge"), "binary:hinge", 2),
        (data.join("multi_softmax"), "multi:softmax", 3),
        (data.join("reg_logistic"), "reg:logistic", 0),
    ];
    for (case, objective, classes) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(case.join("xgboost-model"), dir.path().join("xgboost-model")).unwrap();
        // Spaces and case as a user may write them; an unknown key is NaN.
        let setting = "Predicted_Label, labels,probability,probabilities,raw_score,raw_scores,predicted_score,nope";
        let server = Server::start(dir.path(), &[("SAGEMAKER_INFERENCE_OUTPUT", setting)]);
        let rows = x_rows(&case);
        let want: Vec<Vec<Selected>> = read_csv(&case.join("pred.csv"))
            .iter()
            .map(|p| keys.iter().map(|k| selected(objective, classes, p, k)).chain([Selected::Nan]).collect())
            .collect();
        let keys: Vec<&str> = keys.iter().copied().chain(["nope"]).collect();
        let body = csv_body(&rows);
        let call = |accept: &str| {
            let (status, ct, body) = server.invoke(Some("text/csv"), Some(accept), body.as_bytes());
            assert_eq!((status, ct.as_str()), (200, accept), "{objective}: {}", String::from_utf8_lossy(&body));
            body
        };
        let check = |got: Vec<Vec<Selected>>, how: &str| {
            assert_eq!(got.len(), want.len(), "{objective} {how}");
            for (r, (got, want)) in got.iter().zip(&want).enumerate() {
                for ((key, g), w) in keys.iter().zip(got).zip(want) {
                    assert!(same(g, w), "{objective} {how}, row {}, {key}: {g:?}, the built-in gives {w:?}", r + 1);
                }
            }
        };
        let csv = String::from_utf8(call("text/csv")).unwrap();
        check(csv.lines().map(|l| csv_fields(l).into_iter().map(csv_value).collect()).collect(), "csv");
        let doc: Value = serde_json::from_slice(&call("application/json")).unwrap();
        let objects: Vec<Value> = doc["predictions"].as_array().unwrap().clone();
        check(objects.iter().map(|o| keys.iter().map(|k| json_value(&o[*k])).collect()).collect(), "json");
        let lines = String::from_utf8(call("application/jsonlines")).unwrap();
        let objects: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        check(objects.iter().map(|o| keys.iter().map(|k| json_value(&o[*k])).collect()).collect(), "jsonlines");
        // RecordIO: one Record a row, one label entry a key, in the keys' order, float32.
        let records = recordio::frames(&call("application/x-recordio-protobuf")).unwrap();
        assert_eq!(records.len(), want.len());
        for (r, (record, want)) in records.iter().zip(&want).enumerate() {
            let entries = recordio::record_labels(record).unwrap();
            let got: Vec<(&str, Vec<u32>)> = entries.iter().map(|(k, t)| (k.as_str(), bits(&t.values))).collect();
            let expected: Vec<(&str, Vec<u32>)> = keys.iter().copied().zip(want.iter().map(float32s)).collect();
            assert_eq!(got, expected, "{objective} recordio, row {}", r + 1);
        }
    }
}

/// Malformed and hostile requests get a 4xx and leave the server healthy; /ping stays fast
/// under a flood of bad requests.
#[test]
fn hostile_requests_leave_the_server_healthy() {
    let (_dir, model) = model_dir("3.0.5", "reg_squarederror", "xgboost-model");
    let server = Server::start(&model, &[("SAGESTEP_REQUEST_TIMEOUT_SECS", "3")]);
    let wide = format!("{}\n", vec!["1"; 1_000_000].join(","));
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("truncated JSON", "application/json", b"{\"instances\": [[1, 2, 3".to_vec(), 400),
        ("huge number of columns", "text/csv", wide.into_bytes(), 400),
        ("10 MB body", "text/csv", vec![b'7'; 10 * 1024 * 1024], 413),
        ("invalid UTF-8", "text/csv", vec![0xff, 0xfe, b',', 0x80, b'\n'], 400),
        ("garbage RecordIO", "application/x-recordio-protobuf", b"not recordio at all".to_vec(), 400),
        ("jsonlines with a string", "application/jsonlines", b"{\"features\": [\"a\", 1, 2, 3, 4, 5]}\n".to_vec(), 400),
    ];
    for (name, ct, body, want) in cases {
        let (status, _, _) = server.invoke(Some(ct), None, &body);
        assert_eq!(status, want, "{name}");
    }

    // A slow client sends half its headers and stalls; another sends a body slowly.
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Ty").unwrap();
    let mut trickle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    trickle
        .write_all(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n1,2",
        )
        .unwrap();

    // Flood with bad requests from four threads while timing /ping.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|i| {
            let url = server.url("/invocations");
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 20_000 {
                    let body = if i % 2 == 0 { &b"a,b,c,d,e,f\n"[..] } else { &b"{\"instances\": [["[..] };
                    let ct = if i % 2 == 0 { "text/csv" } else { "application/json" };
                    let r = agent.post(&url).header("Content-Type", ct).send(body).unwrap();
                    assert_eq!(r.status(), 400);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    let pinger = agent();
    let flood_end = Instant::now() + Duration::from_secs(2);
    let mut pings = 0;
    while Instant::now() < flood_end {
        let t = Instant::now();
        let r = pinger.get(&server.url("/ping")).call().unwrap();
        assert_eq!(r.status(), 200);
        worst = worst.max(t.elapsed());
        pings += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: usize = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    eprintln!("{pings} pings during {sent} bad requests; slowest ping {worst:?}");
    // SageMaker's health check times out at 2 s; stay far below it.
    assert!(worst < Duration::from_millis(500), "slowest /ping took {worst:?}");

    // The stalled clients were cut off by the server's timeouts, not left hanging forever: the
    // half-sent headers within the header timeout (3 s here; the read would time out at 20 s
    // with an error if the server kept the connection).
    stalled.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let cut = stalled.read_to_end(&mut buf);
    assert!(cut.is_ok(), "the server kept a client that never finished its headers: {cut:?}");
    trickle.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut buf2 = Vec::new();
    let _ = trickle.read_to_end(&mut buf2);
    assert!(String::from_utf8_lossy(&buf2).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&buf2));

    // Still healthy, still correct.
    let (status, _, _) = server.invoke(Some("text/csv"), None, b"1,2,3,4,5,6\n");
    assert_eq!(status, 200);
}

#[test]
fn sigterm_finishes_requests_in_flight_and_exits() {
    let case = fixtures().join("3.0.5/reg_squarederror");
    let (_dir, model) = model_dir("3.0.5", "reg_squarederror", "xgboost-model");
    let mut server = Server::start(&model, &[]);
    let rows: Vec<Vec<f32>> = x_rows(&case).into_iter().cycle().take(60_000).collect();
    let body = csv_body(&rows);
    let url = server.url("/invocations");
    let in_flight = std::thread::spawn(move || {
        let mut r = agent().post(&url).header("Content-Type", "text/csv").send(body.as_bytes()).unwrap();
        (r.status().as_u16(), r.body_mut().with_config().limit(u64::MAX).read_to_string().unwrap().lines().count())
    });
    std::thread::sleep(Duration::from_millis(30));
    let t = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(30));
    let (code, lines) = in_flight.join().unwrap();
    assert_eq!((code, lines), (200, 60_000), "the request in flight was answered in full");
    // No new connections after stopping.
    assert!(TcpStream::connect(("127.0.0.1", server.port)).is_err());
}

#[test]
fn a_model_that_cannot_load_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("xgboost-model"), b"not a model").unwrap();
    let out = Command::new(BIN)
        .env("SAGESTEP_MODEL_DIR", dir.path())
        .env("SAGEMAKER_BIND_TO_PORT", free_port().to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an XGBoost model"));
}

#[test]
fn image_serves_a_model_tar_gz() {
    require_image("sagestep-serve:latest");
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("s");
    std::fs::create_dir(&staging).unwrap();
    std::fs::copy(fixtures().join("1.2.0/reg_squarederror/xgboost-model.pkl"), staging.join("xgboost-model")).unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    sagestep::model::archive::pack(&staging, &model.join("model.tar.gz")).unwrap();
    let port = free_port();
    let name = format!("sagestep-serve-test-{port}");
    let run = Command::new("docker")
        .args(["run", "-d", "--rm", "--name", &name, "-p", &format!("127.0.0.1:{port}:8080"), "-v"])
        .arg(format!("{}:/opt/ml/model:ro", model.display()))
        .args(["sagestep-serve:latest", "serve"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _stop = Stop(name.clone());
    let server = Server { child: Command::new("true").spawn().unwrap(), port };
    server.wait_ready();
    let case = fixtures().join("1.2.0/reg_squarederror");
    let rows = x_rows(&case)[..10].to_vec();
    let (status, _, body) = server.invoke(Some("text/csv"), None, csv_body(&rows).as_bytes());
    assert_eq!(status, 200);
    let want = read_csv(&case.join("pred.csv")).concat()[..10].to_vec();
    assert_eq!(bits(&parse_lines(&body)), bits(&want));
    // docker stop sends SIGTERM: the server exits well within the grace period.
    let t = Instant::now();
    assert!(Command::new("docker").args(["stop", "-t", "30", &name]).output().unwrap().status.success());
    assert!(t.elapsed() < Duration::from_secs(10), "stopped in {:?}", t.elapsed());
}

/// `SAGEMAKER_PROGRAM` (script mode) is refused at start-up by name, never served as the
/// built-in algorithm instead.
#[test]
fn script_mode_is_refused_at_start_up() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .arg("serve")
        .env("SAGEMAKER_PROGRAM", "inference.py")
        .env("SAGESTEP_MODEL_DIR", crate::util::shared().join("fixtures"))
        .env("SAGEMAKER_BIND_TO_PORT", free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("script mode is not supported") && log.contains("SAGEMAKER_PROGRAM=inference.py"), "{log}");
    assert!(log.contains("framework image"), "{log}");
}

/// A model whose one tree is a chain of `features.len()` splits, each on its own feature
/// (`x < 0.5` goes to leaf `k + 1`, missing too; `x >= 0.5` goes on; the end is leaf -1), with
/// base score 0.5 and `num_feature` declared. Its predictions follow from the tree: a row
/// whose first `k` chain features are at least 0.5 and whose next is below it or missing
/// predicts `0.5 + (k + 1)`.
fn chain_model(features: &[u64], num_feature: u64) -> String {
    let k = features.len();
    let n = 2 * k + 1;
    let (mut left, mut right, mut parents, mut split, mut cond) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let internal = i % 2 == 0 && i < 2 * k;
        left.push(if internal { i as i64 + 1 } else { -1 });
        right.push(if internal { i as i64 + 2 } else { -1 });
        parents.push(if i == 0 { 2147483647 } else { ((i - 1) / 2 * 2) as i64 });
        split.push(if internal { features[i / 2] } else { 0 });
        cond.push(if internal {
            0.5
        } else if i == 2 * k {
            -1.0
        } else {
            (i / 2 + 1) as f32
        });
    }
    let zeros = vec![0.0f32; n];
    let tree = json!({
        "id": 0, "tree_param": {"num_deleted": "0", "num_feature": num_feature.to_string(), "num_nodes": n.to_string(), "size_leaf_vector": "1"},
        "left_children": left, "right_children": right, "parents": parents, "split_indices": split,
        "split_conditions": cond, "default_left": vec![1; n], "split_type": vec![0; n],
        "base_weights": zeros, "loss_changes": zeros, "sum_hessian": zeros,
        "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": []
    });
    json!({"version": [3, 0, 5], "learner": {
        "attributes": {}, "feature_names": [], "feature_types": [],
        "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": num_feature.to_string(), "num_target": "1", "boost_from_average": "1"},
        "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}},
        "gradient_booster": {"name": "gbtree", "model": {
            "gbtree_model_param": {"num_trees": "1", "num_parallel_tree": "1"},
            "tree_info": [0], "iteration_indptr": [0, 1], "trees": [tree]}}}})
    .to_string()
}

/// `serve` under a 1 GB address-space limit, killed on drop.
struct LimitedServer(Server);

impl LimitedServer {
    fn start(model: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!("ulimit -v 1000000; exec {BIN} serve"))
            .env("SAGESTEP_MODEL_DIR", model)
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .env("SAGESTEP_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port };
        server.wait_ready();
        Self(server)
    }
}

/// The server's peak resident memory so far (`VmHWM`), in KiB.
fn peak_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A model that declares 2^31 - 1 features and splits on 2,000 of them, spread up to index
/// 1,999,000,007, under a 1 GB address-space limit: 400,000 libsvm rows (each would be 2,000
/// floats wide, 3.2 GB at once) are predicted a block at a time, as the tree says; a dense
/// row is refused for its width, never allocated at it.
#[test]
fn a_model_with_huge_num_feature_serves_sparse_rows_within_a_memory_limit() {
    let features: Vec<u64> = (0..2000).map(|k| k * 1_000_000 + 7).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("xgboost-model"), chain_model(&features, 2_147_483_647)).unwrap();
    let server = LimitedServer::start(dir.path(), &[]);
    let server = &server.0;

    // Rows that stop at chain step 0 (missing), 3 (after three features >= 0.5) and 1999.
    let mut body = String::from("0\n");
    body.push_str(&format!("1 {}:1 {}:2 {}:0.5 {}:0.25\n", features[0], features[1], features[2], features[3]));
    let through: Vec<String> = features[..1999].iter().map(|f| format!("{f}:1")).collect();
    body.push_str(&format!("0 {}\n", through.join(" ")));
    let stopped = 400_000;
    body.push_str(&"0\n".repeat(stopped));
    let (status, _, answer) = server.invoke(Some("text/libsvm"), Some("text/csv"), body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let got = parse_lines(&answer);
    assert_eq!(got.len(), 3 + stopped);
    assert_eq!(got[..3], [1.5, 4.5, 2000.5]);
    assert!(got[3..].iter().all(|&v| v == 1.5));

    let (status, _, answer) = server.invoke(Some("text/csv"), None, b"1,2,3\n");
    assert_eq!(status, 400);
    let message = String::from_utf8_lossy(&answer);
    assert!(message.contains("row 1 has 3 values; the model takes 2147483647 features"), "{message}");
    assert_eq!(server.invoke(Some("text/csv"), None, b"").0, 204, "still serving");
}

/// A payload whose rows would make more predicted values than a request may hold is a 413
/// with the reason, before they are made: 5.6 million empty rows of a three-class model.
#[test]
fn a_response_past_the_bound_is_413() {
    let (_dir, model) = model_dir("3.2.0", "multi_softprob", "xgboost-model");
    let server = LimitedServer::start(&model, &[("SAGEMAKER_BATCH", "true"), ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "12")]);
    let body = "0\n".repeat(5_600_000);
    let (status, ct, answer) = server.0.invoke(Some("text/libsvm"), None, body.as_bytes());
    assert_eq!((status, ct.as_str()), (413, "application/json"));
    let doc: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(doc["error_type"], "response_too_large");
    let message = doc["error"].as_str().unwrap();
    assert!(message.contains("more than 16777216 predicted values (3 a row); send fewer rows"), "{message}");
    let (status, _, _) = server.0.invoke(Some("text/libsvm"), None, "0\n".repeat(1000).as_bytes());
    assert_eq!(status, 200, "a smaller payload is answered");
}

/// A 6 MB JSON payload costs its rows' values, not a tree of boxed JSON values: the server's
/// peak resident memory grows by less than 64 MiB (it grew by about 290 MiB when the payload
/// was parsed into a `serde_json::Value` and copied).
#[test]
fn a_json_payload_costs_its_values() {
    let (_dir, model) = model_dir("3.0.5", "reg_squarederror", "xgboost-model");
    let server = Server::start(&model, &[]);
    let row = "[0,1,0,1,0,1]";
    let rows = (6 * 1024 * 1024 - 20) / (row.len() + 1);
    let body = format!("{{\"instances\":[{}]}}", vec![row; rows].join(","));
    let before = peak_kib(&server);
    let (status, _, answer) = server.invoke(Some("application/json"), Some("text/csv"), body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(parse_lines(&answer).len(), rows);
    let grown = peak_kib(&server) - before;
    eprintln!("peak resident memory grew by {grown} KiB for {rows} JSON rows ({} bytes)", body.len());
    assert!(grown < 64 * 1024, "grew by {grown} KiB");
}

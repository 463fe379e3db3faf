//! The serve step: the real binary on a free port (and the image under Docker), every route,
//! content type, Accept value and status code, against the model module's predictions.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sagestep::model::{Ensemble, Matrix, TreeLimit};
use sagestep::serving::recordio;

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

fn expected(model: &Path, rows: &[Vec<f32>]) -> Vec<f32> {
    let ensemble = Ensemble::load(model).unwrap();
    let flat = rows.concat();
    ensemble.predict(&Matrix::new(&flat, rows[0].len()), TreeLimit::SageMaker)
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

#[test]
fn every_content_type_predicts_what_the_model_module_predicts() {
    for (version, file) in [("1.2.0", "xgboost-model.pkl"), ("3.0.5", "xgboost-model")] {
        let case = fixtures().join(version).join("reg_squarederror");
        let (_dir, model) = model_dir(version, "reg_squarederror", file);
        let server = Server::start(&model, &[]);
        let rows = x_rows(&case)[..50].to_vec();
        let want = bits(&expected(&model, &rows));

        let (status, ct, body) = server.invoke(Some("text/csv"), Some("text/csv"), csv_body(&rows).as_bytes());
        assert_eq!((status, ct.as_str()), (200, "text/csv"));
        assert!(body.ends_with(b"\n"));
        assert_eq!(bits(&parse_lines(&body)), want, "{version} csv");

        let libsvm = libsvm_body(&rows);
        let (status, _, body) = server.invoke(Some("text/libsvm"), None, libsvm.as_bytes());
        assert_eq!(status, 200);
        assert_eq!(bits(&parse_lines(&body)), want, "{version} libsvm");
        // No Content-Type: libsvm, as the built-in.
        let (status, _, body) = server.invoke(None, None, libsvm.as_bytes());
        assert_eq!((status, bits(&parse_lines(&body))), (200, want.clone()));

        let json_rows = json_rows(&rows);
        let instances = serde_json::json!({ "instances": json_rows }).to_string();
        let (status, ct, body) =
            server.invoke(Some("application/json"), Some("application/json"), instances.as_bytes());
        assert_eq!((status, ct.as_str()), (200, "application/json"));
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let scores: Vec<f32> =
            doc["predictions"].as_array().unwrap().iter().map(|p| p["score"].as_f64().unwrap() as f32).collect();
        assert_eq!(bits(&scores), want, "{version} json");
        let bare = serde_json::Value::from(json_rows.clone()).to_string();
        let (_, _, body) = server.invoke(Some("application/json"), Some("text/csv"), bare.as_bytes());
        assert_eq!(bits(&parse_lines(&body)), want, "bare list");

        let lines: String = json_rows.iter().map(|r| format!("{}\n", serde_json::json!({ "features": r }))).collect();
        let (status, ct, body) =
            server.invoke(Some("application/jsonlines"), Some("application/jsonlines"), lines.as_bytes());
        assert_eq!((status, ct.as_str()), (200, "application/jsonlines"));
        let scores: Vec<f32> = String::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["score"].as_f64().unwrap() as f32)
            .collect();
        assert_eq!(bits(&scores), want);

        // RecordIO-protobuf, dense and sparse, answered in RecordIO.
        let (dense, sparse) = recordio_bodies(&rows);
        for (name, payload) in [("dense", dense), ("sparse", sparse)] {
            let (status, ct, body) = server.invoke(
                Some("application/x-recordio-protobuf"),
                Some("application/x-recordio-protobuf"),
                &payload,
            );
            assert_eq!((status, ct.as_str()), (200, "application/x-recordio-protobuf"), "{name}");
            let frames = recordio::frames(&body).unwrap();
            let scores: Vec<f32> = frames.iter().map(|f| label_score(f)).collect();
            if name == "sparse" {
                // Sparse NaN entries are absent; dense NaN too: same predictions.
                assert_eq!(bits(&scores), want, "recordio {name}");
            } else {
                assert_eq!(bits(&scores), want, "recordio {name}");
            }
        }
    }
}

/// The first float of a response Record's `label` map (field 2 -> entry -> value -> tensor).
fn label_score(frame: &[u8]) -> f32 {
    // The response holds one label entry whose tensor's packed floats end the message.
    let n = frame.len();
    f32::from_le_bytes(frame[n - 4..].try_into().unwrap())
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

#[test]
fn selectable_inference_output_for_classification() {
    let case = fixtures().join("3.2.0/binary_logistic");
    let (_dir, model) = model_dir("3.2.0", "binary_logistic", "xgboost-model");
    let server =
        Server::start(&model, &[("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label, probabilities,predicted_score")]);
    let rows = x_rows(&case)[..5].to_vec();
    let p = expected(&model, &rows);
    let (status, _, body) = server.invoke(Some("text/csv"), Some("application/json"), csv_body(&rows).as_bytes());
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for (row, &prob) in doc["predictions"].as_array().unwrap().iter().zip(&p) {
        assert_eq!(row["predicted_label"], i64::from(prob > 0.5));
        assert_eq!(row["probabilities"][1].as_f64().unwrap(), f64::from(prob));
        assert!(row["predicted_score"].is_null(), "not a key of binary:logistic");
    }
    let (_, _, csv) = server.invoke(Some("text/csv"), Some("text/csv"), csv_body(&rows[..1]).as_bytes());
    let line = String::from_utf8(csv).unwrap();
    assert!(
        line.starts_with(&format!("{},\"[", i64::from(p[0] > 0.5))) && line.trim_end().ends_with("]\",nan"),
        "{line}"
    );

    // Multiclass: one row of three probabilities, comma-separated in CSV.
    let case = fixtures().join("3.2.0/multi_softprob");
    let (_dir, model) = model_dir("3.2.0", "multi_softprob", "xgboost-model");
    let server = Server::start(&model, &[]);
    let rows = x_rows(&case)[..3].to_vec();
    let (_, _, body) = server.invoke(Some("text/csv"), Some("text/csv"), csv_body(&rows).as_bytes());
    assert_eq!(bits(&parse_lines(&body)), bits(&expected(&model, &rows)));
    assert_eq!(String::from_utf8(body).unwrap().lines().next().unwrap().split(',').count(), 3);
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

    // The stalled clients were cut off by the server's timeouts, not left hanging forever.
    stalled.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let _ = stalled.read_to_end(&mut buf);
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

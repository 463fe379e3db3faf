//! Multi-model endpoints through the real image (`SAGEMAKER_MULTI_MODEL=true`): load, list,
//! describe, invoke and unload every fixture format with XGBoost's predictions; 404, 409,
//! 507 and hostile names and urls; an unload waiting for a request in flight; concurrent
//! loads of one name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sagestep::model::{self, Ensemble};
use serde_json::{Value, json};

use crate::model::{cases, fixtures, read_csv};
use crate::serve::{agent, csv_body, free_port, libsvm_body};
use crate::util::require_image;

/// The image under test: `SAGESTEP_TEST_SERVE_IMAGE`, else `sagestep-serve:latest`.
fn image() -> String {
    std::env::var("SAGESTEP_TEST_SERVE_IMAGE").unwrap_or_else(|_| "sagestep-serve:latest".into())
}

/// The serve image in multi-model mode, `root` mounted as `/opt/ml/models` and `outside` as
/// `/opt/ml/outside` (a place links and urls may point to); removed on drop.
struct Mme {
    name: String,
    port: u16,
}

impl Mme {
    fn start(root: &Path, outside: Option<&Path>, docker_args: &[&str], env: &[(&str, &str)]) -> Self {
        let image = image();
        require_image(&image);
        let port = free_port();
        let name = format!("sagestep-mme-test-{port}");
        let mut command = Command::new("docker");
        command.args(["run", "-d", "--name", &name, "-p", &format!("127.0.0.1:{port}:8080")]);
        command.arg("-v").arg(format!("{}:/opt/ml/models:ro", root.display()));
        if let Some(outside) = outside {
            command.arg("-v").arg(format!("{}:/opt/ml/outside:ro", outside.display()));
        }
        command.args(["-e", "SAGEMAKER_MULTI_MODEL=true"]).args(docker_args);
        for (k, v) in env {
            command.args(["-e", &format!("{k}={v}")]);
        }
        let run = command.args([image.as_str(), "serve"]).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let mme = Self { name, port };
        // /ping is 200 at once: no model is needed.
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent().get(&mme.url("/ping")).call().map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(Instant::now() < deadline, "no /ping 200; logs:\n{}", mme.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
        mme
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        let out = Command::new("docker").args(["logs", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    }

    fn load(&self, name: &str, url: &str) -> (u16, Value) {
        self.send("POST", "/models", Some(json!({"model_name": name, "url": url}).to_string().as_bytes()))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    fn delete(&self, name: &str) -> (u16, Value) {
        self.send("DELETE", &format!("/models/{name}"), None)
    }

    /// (status, JSON body or Null).
    fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        let url = self.url(path);
        let agent = agent();
        let mut response = match (method, body) {
            ("POST", Some(b)) => agent.post(&url).header("Content-Type", "application/json").send(b),
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            ("POST", None) => agent.post(&url).send_empty(),
            _ => unreachable!(),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POST to `path` (`/models/{name}/invoke` or `/invocations`): (status, content type, body).
    fn invoke(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut request = agent().post(&self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        let ct = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, ct, response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap())
    }

    /// Every page of `GET /models` at `max_results`: the names, and how many pages.
    fn list_all(&self, max_results: usize) -> (Vec<String>, usize) {
        let (mut names, mut pages, mut token) = (Vec::new(), 0, None::<String>);
        loop {
            let query = token.map_or(String::new(), |t| format!("&next_page_token={t}"));
            let (status, page) = self.get(&format!("/models?max_results={max_results}{query}"));
            assert_eq!(status, 200, "{page}");
            pages += 1;
            let models = page["models"].as_array().unwrap();
            assert!(models.len() <= max_results);
            for m in models {
                assert!(m["modelUrl"].as_str().unwrap().starts_with("/opt/ml/models/"), "{m}");
                names.push(m["modelName"].as_str().unwrap().to_string());
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(t) => token = Some(t.to_string()),
                None => return (names, pages),
            }
        }
    }
}

impl Drop for Mme {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("container logs:\n{}", self.logs());
        }
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}

/// `<root>/<name>/model/<file>` holding `source`, as SageMaker lays out a model it fetched.
fn place(root: &Path, name: &str, file: &str, source: &Path) -> String {
    let dir = root.join(name).join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source, dir.join(file)).unwrap();
    format!("/opt/ml/models/{name}/model")
}

/// Every request content type and response type on `path` (serve's own check), each equal to
/// `pred.csv` bit for bit.
fn check_every_content_type(mme: &Mme, path: &str, extra: &[(&str, &str)], case: &Path, label: &str) {
    let call = |ct: &str, accept: &str, body: &[u8]| {
        let headers: Vec<(&str, &str)> =
            [("Content-Type", ct), ("Accept", accept)].into_iter().chain(extra.iter().copied()).collect();
        let (status, got_ct, body) = mme.invoke(path, &headers, body);
        assert_eq!(status, 200, "{label} {ct} -> {accept}: {}", String::from_utf8_lossy(&body));
        assert_eq!(got_ct, accept, "{label}");
        body
    };
    crate::serve::check_every_content_type(&call, case, label);
}

#[test]
fn mme_loads_lists_describes_invokes_and_unloads_every_fixture_format() {
    let root = tempfile::tempdir().unwrap();
    let mut models: Vec<(String, PathBuf)> = Vec::new();
    for case in cases() {
        let id = format!(
            "{}-{}",
            case.parent().unwrap().file_name().unwrap().to_string_lossy(),
            case.file_name().unwrap().to_string_lossy()
        );
        for (kind, file) in [("native", "xgboost-model"), ("pickle", "xgboost-model.pkl"), ("json", "model.json")] {
            place(root.path(), &format!("{id}-{kind}"), "xgboost-model", &case.join(file));
            models.push((format!("{id}-{kind}"), case.clone()));
        }
        // A model.tar.gz left packed in the directory.
        let staging = tempfile::tempdir().unwrap();
        std::fs::copy(case.join("xgboost-model"), staging.path().join("xgboost-model")).unwrap();
        let dir = root.path().join(format!("{id}-targz/model"));
        std::fs::create_dir_all(&dir).unwrap();
        model::archive::pack(staging.path(), &dir.join("model.tar.gz")).unwrap();
        models.push((format!("{id}-targz"), case.clone()));
    }
    let mme = Mme::start(root.path(), None, &[], &[]);
    let label = Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.amazonaws.sagemaker.capabilities.multi-models\"}}",
        ])
        .arg(image())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "true");

    assert_eq!(mme.get("/models"), (200, json!({"models": []})));
    for (name, _) in &models {
        let (status, body) = mme.load(name, &format!("/opt/ml/models/{name}/model"));
        // multi-model-server's answer, as the built-in gives it.
        assert_eq!((status, body), (200, json!({"status": "Workers scaled"})), "{name}");
    }

    // Pagination over 80 models, 7 a page: each once, sorted, 12 pages; the default page holds all.
    let (names, pages) = mme.list_all(7);
    let mut expected: Vec<String> = models.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!((names, pages), (expected.clone(), 80usize.div_ceil(7)));
    let (_, all) = mme.get("/models");
    assert_eq!(all["models"].as_array().unwrap().len(), 80);
    assert!(all.get("nextPageToken").is_none());
    assert_eq!(mme.list_all(1).0, expected, "one a page (MMS's `limit` is the same parameter)");
    let (status, page) = mme.get("/models?limit=80");
    assert_eq!((status, page["models"].as_array().unwrap().len()), (200, 80));

    let (status, described) = mme.get("/models/3.2.0-multi_softprob-json");
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["modelName"], "3.2.0-multi_softprob-json");
    assert_eq!(described["modelUrl"], "/opt/ml/models/3.2.0-multi_softprob-json/model");
    assert_eq!((described["format"].as_str(), described["objective"].as_str()), (Some("json"), Some("multi:softprob")));

    for (name, case) in &models {
        check_every_content_type(&mme, &format!("/models/{name}/invoke"), &[], case, name);
    }
    // /invocations names its model in X-Amzn-SageMaker-Target-Model.
    for (name, case) in models.iter().step_by(9) {
        check_every_content_type(&mme, "/invocations", &[("X-Amzn-SageMaker-Target-Model", name)], case, name);
    }

    for (name, _) in &models {
        let (status, body) = mme.delete(name);
        assert_eq!((status, body), (200, json!({"status": format!("Model \"{name}\" unregistered")})));
    }
    assert_eq!(mme.get("/models"), (200, json!({"models": []})));
    let (name, case) = &models[0];
    let one = csv_body(&read_csv(&case.join("X.csv"))[..1]);
    let (status, _, body) =
        mme.invoke(&format!("/models/{name}/invoke"), &[("Content-Type", "text/csv")], one.as_bytes());
    let body: Value = serde_json::from_slice(&body).unwrap();
    let gone = json!({"code": 404, "type": "ModelNotFoundException", "message": format!("Model not found: {name}")});
    assert_eq!((status, body), (404, gone.clone()));
    assert_eq!(mme.get(&format!("/models/{name}")), (404, gone.clone()));
    assert_eq!(mme.delete(name), (404, gone));
}

#[test]
fn mme_selectable_outputs_and_custom_attributes() {
    let root = tempfile::tempdir().unwrap();
    let case = fixtures().join("3.2.0/binary_logistic");
    let url = place(root.path(), "bin", "xgboost-model", &case.join("xgboost-model"));
    let mme = Mme::start(root.path(), None, &[], &[("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,probabilities")]);
    assert_eq!(mme.load("bin", &url).0, 200);
    let rows = read_csv(&case.join("X.csv"))[..5].to_vec();
    let pred = read_csv(&case.join("pred.csv")).concat();
    let headers = [
        ("Content-Type", "text/csv"),
        ("Accept", "application/json"),
        ("X-Amzn-SageMaker-Custom-Attributes", "trace=1"),
    ];
    let mut response = agent()
        .post(&mme.url("/models/bin/invoke"))
        .header(headers[0].0, headers[0].1)
        .header(headers[1].0, headers[1].1)
        .header(headers[2].0, headers[2].1)
        .send(csv_body(&rows).as_bytes())
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-amzn-sagemaker-custom-attributes").unwrap(), "trace=1");
    let doc: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    for (row, &p) in doc["predictions"].as_array().unwrap().iter().zip(&pred) {
        assert_eq!(row["predicted_label"], i64::from(p > 0.5));
        assert_eq!(row["probabilities"][1].as_f64().unwrap(), f64::from(p));
    }
}

/// multi-model-server's error body: `{"code", "type", "message"}`; its type.
fn error_type(body: &Value) -> &str {
    assert!(body["code"].is_u64() && body["message"].is_string(), "not MMS's error body: {body}");
    body["type"].as_str().unwrap_or_else(|| panic!("no type in {body}"))
}

/// The codes, types and messages multi-model-server gives (frontend/server's
/// ManagementRequestHandler, ModelManager, ModelArchive and HttpRequestHandler), for
/// duplicates, unknown models, routes and methods, bad names, and urls that escape or name
/// nothing.
#[test]
fn mme_refuses_duplicates_unknown_models_and_hostile_names_and_urls() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let case = fixtures().join("3.0.5/reg_squarederror");
    let good = place(root.path(), "good", "xgboost-model", &case.join("xgboost-model"));
    std::fs::create_dir_all(outside.path().join("model")).unwrap();
    std::fs::copy(case.join("xgboost-model"), outside.path().join("model/xgboost-model")).unwrap();
    // A directory linked to another readable directory loads; a model file linked out of its
    // directory does not.
    std::os::unix::fs::symlink("/opt/ml/outside/model", root.path().join("linkdir")).unwrap();
    std::fs::create_dir_all(root.path().join("linkfile/model")).unwrap();
    std::os::unix::fs::symlink("/opt/ml/outside/model/xgboost-model", root.path().join("linkfile/model/xgboost-model"))
        .unwrap();
    std::fs::create_dir_all(root.path().join("empty/model")).unwrap();
    std::fs::write(root.path().join("empty/model/.hidden"), b"x").unwrap();
    std::fs::create_dir_all(root.path().join("corrupt/model")).unwrap();
    std::fs::write(root.path().join("corrupt/model/xgboost-model"), b"not a model at all, not at all").unwrap();
    let mme = Mme::start(root.path(), Some(outside.path()), &[], &[]);

    assert_eq!(mme.load("good", &good).0, 200);
    let (status, body) = mme.load("good", &good);
    let conflict =
        json!({"code": 409, "type": "ConflictStatusException", "message": "Model good is already registered."});
    assert_eq!((status, body), (409, conflict));

    let one = csv_body(&read_csv(&case.join("X.csv"))[..1]);
    let csv = [("Content-Type", "text/csv")];
    let nope = json!({"code": 404, "type": "ModelNotFoundException", "message": "Model not found: nope"});
    for (path, headers) in [
        ("/models/nope/invoke", &csv[..]),
        ("/invocations", &[("Content-Type", "text/csv"), ("X-Amzn-SageMaker-Target-Model", "nope")][..]),
    ] {
        let (status, _, body) = mme.invoke(path, headers, one.as_bytes());
        assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (404, nope.clone()), "{path}");
    }
    let (status, _, body) = mme.invoke("/invocations", &csv, one.as_bytes());
    assert_eq!(status, 400, "no target model: {}", String::from_utf8_lossy(&body));
    assert_eq!(mme.get("/models/nope"), (404, nope.clone()));
    assert_eq!(mme.delete("nope"), (404, nope));
    let (status, body) = mme.get("/nowhere");
    assert_eq!((status, error_type(&body)), (404, "ResourceNotFoundException"), "{body}");
    assert_eq!(body["message"], "Requested resource is not found, please refer to API document.");
    let (status, body) = mme.send("DELETE", "/models", None);
    assert_eq!((status, error_type(&body)), (405, "MethodNotAllowedException"), "{body}");
    assert_eq!(body["message"], "Requested method is not allowed, please refer to API document.");

    for name in ["", ".", "..", "../good", "a/b", "a\\b", "a b", "x\ny", &"n".repeat(300)] {
        let (status, body) = mme.load(name, &good);
        assert_eq!((status, error_type(&body)), (400, "BadRequestException"), "{name:?}: {body}");
    }
    let urls = [
        ("/opt/ml/models/../outside/model", 404, "ModelNotFoundException", "Relative path is not allowed in url: "),
        ("../outside/model", 404, "ModelNotFoundException", "Relative path is not allowed in url: "),
        ("/opt/ml/models/missing/model", 404, "ModelNotFoundException", "Model not found in model store: "),
        ("missing", 404, "ModelNotFoundException", "Model not found in model store: missing"),
        ("/opt/ml/models/good/model/xgboost-model/x", 404, "ModelNotFoundException", "Model not found in model store"),
        ("/opt/ml/models/linkfile/model", 400, "BadRequestException", "a link to a file outside the directory"),
        ("/opt/ml/models/good/model/xgboost-model", 400, "BadRequestException", "must name a directory"),
        ("", 400, "BadRequestException", "Parameter url is required."),
        ("/opt/ml/models/empty/model", 400, "InvalidModelException", "no model file"),
        ("/opt/ml/models/corrupt/model", 400, "InvalidModelException", "not an XGBoost model"),
    ];
    for (url, code, kind, says) in urls {
        let (status, body) = mme.load("hostile", url);
        assert_eq!((status, error_type(&body)), (code, kind), "{url}: {body}");
        assert_eq!(body["code"], code, "{url}");
        assert!(body["message"].as_str().unwrap().contains(says), "{url}: {body}");
    }
    let (status, body) = mme.send("POST", "/models", Some(br#"{"model_name": "x"}"#));
    assert_eq!((status, &body["message"]), (400, &json!("Parameter url is required.")), "{body}");
    for bad in [&b"not json"[..], br#"{"model_name": 1, "url": "/x"}"#] {
        let (status, body) = mme.send("POST", "/models", Some(bad));
        assert_eq!((status, error_type(&body)), (400, "BadRequestException"), "{body}");
    }
    let (status, body) = mme.get("/models?max_results=0");
    assert_eq!((status, error_type(&body)), (400, "BadRequestException"));
    let (status, body) = mme.get("/models?next_page_token=zz");
    assert_eq!((status, error_type(&body)), (400, "BadRequestException"));

    // Failed loads left nothing behind: the name is free, only `good` is listed.
    assert_eq!(mme.list_all(10).0, ["good"]);
    // Any readable directory loads: one outside the models root, one reached by a link.
    assert_eq!(mme.load("outside", "/opt/ml/outside/model").0, 200);
    assert_eq!(mme.load("linked", "/opt/ml/models/linkdir").0, 200);
    assert_eq!(mme.load("hostile", &good).0, 200);
}

/// The built-in's own multi-model test (test_multiple_model_endpoint.py): models mounted at
/// `/opt/ml/model`, `pickled_model` (a pickled Booster) and `saved_booster` (Booster.save_model)
/// loaded from `/opt/ml/model/<name>`, invoked with XGBoost's predictions, and unloaded.
#[test]
fn mme_loads_pickled_model_and_saved_booster_from_opt_ml_model() {
    let models = tempfile::tempdir().unwrap();
    let case = fixtures().join("3.2.0/binary_logistic");
    for (name, file) in [("pickled_model", "xgboost-model.pkl"), ("saved_booster", "xgboost-model")] {
        std::fs::create_dir_all(models.path().join(name)).unwrap();
        std::fs::copy(case.join(file), models.path().join(name).join("xgboost-model")).unwrap();
    }
    std::fs::create_dir_all(models.path().join("empty")).unwrap();
    let mount = format!("{}:/opt/ml/model:ro", models.path().display());
    let empty_root = tempfile::tempdir().unwrap();
    let mme = Mme::start(empty_root.path(), None, &["-v", &mount], &[]);
    assert_eq!(mme.get("/models"), (200, json!({"models": []})));
    for name in ["pickled_model", "saved_booster"] {
        let (status, body) = mme.load(name, &format!("/opt/ml/model/{name}"));
        assert_eq!((status, body), (200, json!({"status": "Workers scaled"})), "{name}");
    }
    for name in ["pickled_model", "saved_booster"] {
        check_every_content_type(&mme, &format!("/models/{name}/invoke"), &[], &case, name);
    }
    let (status, body) = mme.load("missing", "/opt/ml/model/missing");
    let missing = json!({"code": 404, "type": "ModelNotFoundException", "message": "Model not found in model store: /opt/ml/model/missing"});
    assert_eq!((status, body), (404, missing));
    let (status, body) = mme.load("empty", "/opt/ml/model/empty");
    assert_eq!((status, error_type(&body)), (400, "InvalidModelException"), "{body}");
    for name in ["pickled_model", "saved_booster"] {
        let (status, body) = mme.delete(name);
        assert_eq!((status, body), (200, json!({"status": format!("Model \"{name}\" unregistered")})));
    }
}

fn model_bytes(dir: &Path) -> u64 {
    let mut ensemble = Ensemble::load(dir).unwrap();
    ensemble.compact();
    ensemble.heap_bytes() as u64
}

/// `count` models, each a hard link to `source` (`m0`, `m1`, ...): their urls.
fn linked_models(root: &Path, source: &Path, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let dir = root.join(format!("m{i}/model"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::hard_link(source, dir.join("xgboost-model")).unwrap();
            format!("/opt/ml/models/m{i}/model")
        })
        .collect()
}

/// The resident bytes of the container's server process, read from the host.
fn container_rss(mme: &Mme) -> u64 {
    let inspect = Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &mme.name]).output().unwrap();
    let pid = String::from_utf8(inspect.stdout).unwrap().trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Load `urls` in turn until one answers 507: how many loaded, and the refusal.
fn load_until_refused(mme: &Mme, urls: &[String]) -> (usize, Value) {
    for (i, url) in urls.iter().enumerate() {
        let (status, body) = mme.load(&format!("m{i}"), url);
        if status == 507 {
            return (i, body);
        }
        assert_eq!(status, 200, "m{i}: {body}");
    }
    panic!("{} models loaded without a 507", urls.len());
}

fn ready_line(mme: &Mme) -> Value {
    let logs = mme.logs();
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "multi-model mode: ready")
        .unwrap_or_else(|| panic!("no ready line in\n{logs}"))
}

#[test]
fn mme_answers_507_before_the_memory_limit_and_reads_the_cgroup_limit() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // About 1.2 MB resident each: a 64 MiB limit leaves room for a few dozen.
    let urls = linked_models(root.path(), &slow_model(scratch.path(), 40), 120);
    let mme = Mme::start(root.path(), None, &[], &[("SAGESTEP_MEMORY_LIMIT", "64Mi")]);
    let budget = (64u64 << 20) - (32 << 20);
    assert_eq!(ready_line(&mme)["budget_bytes"], budget);
    let (loaded, body) = load_until_refused(&mme, &urls);
    assert_eq!((body["code"].as_u64(), error_type(&body)), (Some(507), "OutOfMemoryError"), "{body}");
    assert!(body["message"].as_str().unwrap().contains(&format!("{budget}-byte budget")), "{body}");
    let rss = container_rss(&mme);
    eprintln!("{loaded} models loaded within a {budget}-byte budget; resident {rss}");
    assert!(loaded >= 10, "only {loaded} models fitted: {body}");
    assert!(rss <= budget + (4 << 20), "resident {rss} went past the budget {budget}");
    assert_eq!(mme.list_all(100).0.len(), loaded, "the refused model is not kept");
    // Unloading gives the room back.
    assert_eq!(mme.delete("m0").0, 200);
    assert_eq!(mme.load(&format!("m{loaded}"), &urls[loaded]).0, 200);
    // A sparse request makes the model's projection: it is counted too.
    let (_, before) = mme.get("/models/m1");
    let rows = read_csv(&fixtures().join("3.2.0/reg_l1_l2/X.csv"));
    let (status, _, _) =
        mme.invoke("/models/m1/invoke", &[("Content-Type", "text/libsvm")], libsvm_body(&rows[..3]).as_bytes());
    assert_eq!(status, 200);
    let (_, after) = mme.get("/models/m1");
    assert!(after["memoryBytes"].as_u64() > before["memoryBytes"].as_u64(), "{before} {after}");
    drop(mme);

    // No override: the container's own limit (the cgroup), less the 32 MiB reserve; loading
    // until refused never gets the server killed.
    let limited = Mme::start(root.path(), None, &["--memory", "96m", "--memory-swap", "96m"], &[]);
    let ready = ready_line(&limited);
    assert_eq!(ready["budget_bytes"], (96u64 << 20) - (32 << 20), "{ready}");
    assert!(ready["budget_source"].as_str().unwrap().contains("cgroup"), "{ready}");
    let (loaded, body) = load_until_refused(&limited, &urls);
    assert_eq!(error_type(&body), "OutOfMemoryError", "{body}");
    let one = csv_body(&rows[..1]);
    assert_eq!(limited.invoke("/models/m0/invoke", &[("Content-Type", "text/csv")], one.as_bytes()).0, 200);
    let state = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}} {{.State.OOMKilled}}", &limited.name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(state.stdout).unwrap().trim(), "true false", "after {loaded} loads");
}

/// A copy of a fixture model with its trees repeated, so that a large request takes seconds.
fn slow_model(dir: &Path, repeat: usize) -> PathBuf {
    let bytes = std::fs::read(fixtures().join("3.2.0/reg_l1_l2/xgboost-model")).unwrap();
    let mut forest = model::load(&bytes).unwrap().forest;
    forest.trees = (0..repeat).flat_map(|_| forest.trees.iter().cloned()).collect();
    forest.tree_group = vec![0; forest.trees.len()];
    forest.round_bounds = (0..=forest.trees.len()).collect();
    let path = dir.join("xgboost-model");
    std::fs::write(&path, model::to_ubjson(&forest)).unwrap();
    path
}

#[test]
fn mme_unload_waits_for_the_request_in_flight_and_blocks_no_other_model() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let case = fixtures().join("3.2.0/reg_l1_l2");
    let big = place(root.path(), "big", "xgboost-model", &slow_model(scratch.path(), 150));
    let small = place(root.path(), "small", "xgboost-model", &case.join("xgboost-model"));
    let other = place(root.path(), "other", "xgboost-model", &case.join("xgboost-model"));
    let mme = Arc::new(Mme::start(root.path(), None, &[], &[]));
    assert_eq!(mme.load("big", &big).0, 200);
    assert_eq!(mme.load("small", &small).0, 200);

    let rows: Vec<Vec<f32>> = read_csv(&case.join("X.csv")).into_iter().cycle().take(60_000).collect();
    let body = csv_body(&rows);
    let one = csv_body(&rows[..1]);
    let csv = [("Content-Type", "text/csv")];
    let started = Instant::now();
    let in_flight = {
        let mme = Arc::clone(&mme);
        std::thread::spawn(move || {
            let (status, _, out) = mme.invoke("/models/big/invoke", &[("Content-Type", "text/csv")], body.as_bytes());
            (status, String::from_utf8(out).unwrap().lines().count(), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let unloading = {
        let mme = Arc::clone(&mme);
        std::thread::spawn(move || {
            let t = Instant::now();
            let (status, _) = mme.delete("big");
            (status, t.elapsed(), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    // While big drains: it is gone for new requests; small answers at once; loads go on.
    let (status, _, _) = mme.invoke("/models/big/invoke", &csv, one.as_bytes());
    assert_eq!(status, 404);
    assert_eq!(mme.list_all(10).0, ["small"]);
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(mme.invoke("/models/small/invoke", &csv, one.as_bytes()).0, 200);
        slowest = slowest.max(t.elapsed());
    }
    let t = Instant::now();
    assert_eq!(mme.load("other", &other).0, 200);
    let load_time = t.elapsed();
    assert!(!unloading.is_finished(), "the unload did not wait for the request in flight");

    let (status, lines, request_done) = in_flight.join().unwrap();
    let (unload_status, unload_took, unload_done) = unloading.join().unwrap();
    eprintln!(
        "request {request_done:?}; unload answered after {unload_took:?} (at {unload_done:?}); small p100 {slowest:?}; load {load_time:?}"
    );
    assert_eq!((status, lines), (200, 60_000), "the request in flight was answered in full");
    assert_eq!(unload_status, 200);
    assert!(request_done > Duration::from_millis(800), "the request was too fast to test anything: {request_done:?}");
    // The unload answers once the request's prediction is done (the response may still be
    // on its way to the client, hence the margin).
    assert!(unload_done + Duration::from_millis(250) >= request_done, "{unload_done:?} < {request_done:?}");
    assert!(slowest < Duration::from_millis(500), "small waited {slowest:?} behind big's unload");
    assert!(load_time < Duration::from_secs(2), "a load waited {load_time:?} behind big's unload");
}

#[test]
fn mme_concurrent_loads_of_one_name_load_it_once() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let url = place(root.path(), "m", "xgboost-model", &slow_model(scratch.path(), 40));
    let mme = Arc::new(Mme::start(root.path(), None, &[], &[]));
    let barrier = Arc::new(Barrier::new(8));
    let loads: Vec<_> = (0..8)
        .map(|_| {
            let (mme, barrier, url) = (Arc::clone(&mme), Arc::clone(&barrier), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                mme.load("m", &url)
            })
        })
        .collect();
    let mut statuses: Vec<u16> = loads.into_iter().map(|h| h.join().unwrap().0).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(mme.list_all(10).0, ["m"]);
    let loaded = mme.logs().lines().filter(|l| l.contains("\"model loaded\"")).count();
    assert_eq!(loaded, 1, "parsed and stored once");
    let (_, described) = mme.get("/models/m");
    assert!(described["memoryBytes"].as_u64().unwrap() < 2 * model_bytes(&root.path().join("m/model")), "{described}");
}

#[test]
fn mme_unload_gives_the_memory_back_when_it_answers() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let urls = linked_models(root.path(), &slow_model(scratch.path(), 40), 40);
    let mme = Mme::start(root.path(), None, &[], &[]);
    let before = container_rss(&mme);
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(mme.load(&format!("m{i}"), url).0, 200);
    }
    let loaded = container_rss(&mme);
    let accounted: u64 =
        (0..urls.len()).map(|i| mme.get(&format!("/models/m{i}")).1["memoryBytes"].as_u64().unwrap()).sum();
    for i in 0..urls.len() {
        assert_eq!(mme.delete(&format!("m{i}")).0, 200);
    }
    let after = container_rss(&mme);
    eprintln!("resident: {before} before, {loaded} loaded ({accounted} accounted), {after} after the unloads");
    assert!(loaded - before > accounted / 2, "the models were not resident");
    assert!(after < before + accounted / 10, "the unloads kept {} of {accounted} bytes", after.saturating_sub(before));
}

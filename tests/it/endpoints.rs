//! Real-time endpoints (`sagestep endpoints`): a package registered by `sagestep run`'s
//! RegisterModel step and approved with `sagestep registry approve`, deployed, then driven by
//! boto3's own `sagemaker-runtime` client (target/python/boto3, made by scripts/python-boto3):
//! predictions equal the serve binary's for the same bodies and XGBoost's, errors arrive as
//! the SDK's exceptions, and delete leaves no process behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::model::{fixtures, read_csv};
use crate::serve::{Server, bits, csv_body, json_rows, parse_lines, scores};
use crate::util::{assert_success, repo, stderr};

const SAGESTEP: &str = env!("CARGO_BIN_EXE_sagestep");
const GROUP: &str = "EndpointTest";

fn case() -> PathBuf {
    fixtures().join("3.0.5/reg_squarederror")
}

fn sagestep(store: &Path, args: &[&str]) -> Output {
    Command::new(SAGESTEP).args(args).arg("--store").arg(store).env("SAGESTEP_LOG", "warn").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A store holding the fixture model as `s3://models/m/model.tar.gz`, registered as
/// `EndpointTest/1` by a RegisterModel step (PendingManualApproval).
fn registered() -> tempfile::TempDir {
    let store = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    std::fs::copy(case().join("xgboost-model"), staging.path().join("xgboost-model")).unwrap();
    std::fs::create_dir_all(store.path().join("models/m")).unwrap();
    sagestep::model::archive::pack(staging.path(), &store.path().join("models/m/model.tar.gz")).unwrap();
    register(store.path(), "PendingManualApproval");
    store
}

fn approved() -> tempfile::TempDir {
    let store = registered();
    assert_success(&sagestep(store.path(), &["registry", "approve", &format!("{GROUP}/1")]));
    store
}

/// A created endpoint, deleted on drop (so a failing test leaves nothing running).
struct Endpoint<'s> {
    store: &'s Path,
    name: String,
    url: String,
}

impl<'s> Endpoint<'s> {
    fn create(store: &'s Path, name: &str, extra: &[&str]) -> Self {
        let work = store.join("endpoints");
        let package = format!("{GROUP}/1");
        let mut args = vec!["endpoints", "create", name, "--model-package", &package];
        args.extend(["--work-dir", work.to_str().unwrap()]);
        args.extend(extra);
        let output = sagestep(store, &args);
        assert_success(&output);
        let url = stdout(&output).trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "create prints the URL: {url}");
        Self { store, name: name.to_string(), url }
    }

    fn describe(&self) -> Value {
        let output = sagestep(self.store, &["endpoints", "describe", &self.name]);
        assert_success(&output);
        serde_json::from_str(&stdout(&output)).unwrap()
    }

    /// The endpoint's record in the store (its processes).
    fn record(&self) -> Value {
        let path = self.store.join(format!(".sagestep/endpoints/{}.json", self.name));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn pids(&self) -> Vec<u32> {
        let record = self.record();
        let mut pids = vec![record["Pid"].as_u64().unwrap() as u32];
        pids.extend(record["Instances"].as_array().unwrap().iter().map(|i| i["Pid"].as_u64().unwrap() as u32));
        pids
    }

    fn delete(&mut self) -> Output {
        let output = sagestep(self.store, &["endpoints", "delete", &self.name]);
        self.name.clear();
        output
    }
}

impl Drop for Endpoint<'_> {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = sagestep(self.store, &["endpoints", "delete", &self.name]);
        }
    }
}

/// Whether a process runs (a zombie does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) != Some("Z"))
}

fn wait_gone(pids: &[u32]) {
    let started = Instant::now();
    while pids.iter().any(|p| running(*p)) {
        assert!(started.elapsed() < Duration::from_secs(10), "still running: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// boto3's interpreter (scripts/python-boto3 makes it; the test fails without it).
fn boto3_python() -> PathBuf {
    let python = std::env::var_os("SAGESTEP_BOTO3_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/python/boto3/bin/python"));
    assert!(python.is_file(), "boto3 is needed: run scripts/python-boto3 (missing {})", python.display());
    python
}

/// Each call through boto3's `sagemaker-runtime` `invoke_endpoint` with `endpoint_url` at the
/// front: a call is invoke_endpoint's keyword arguments, `Body` a string or `{"size": n}`.
/// Returns, per call, the response or the exception boto3 raised.
const BOTO3_CALLS: &str = r#"
import json, sys
import boto3, botocore.config, botocore.exceptions
spec = json.load(sys.stdin)
client = boto3.client("sagemaker-runtime", endpoint_url=spec["url"], region_name="us-east-1",
                      aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                      config=botocore.config.Config(retries={"total_max_attempts": 1}))
results = []
for call in spec["calls"]:
    body = call.pop("Body")
    body = body.encode() if isinstance(body, str) else b"1," * (body["size"] // 2)
    try:
        r = client.invoke_endpoint(Body=body, **call)
        results.append({"ok": True, "Body": r["Body"].read().decode(), "ContentType": r.get("ContentType"),
                        "InvokedProductionVariant": r.get("InvokedProductionVariant")})
    except client.exceptions.ModelError as e:
        results.append({"ok": False, "class": "ModelError", "code": e.response["Error"]["Code"],
                        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                        "message": e.response["Error"]["Message"],
                        "OriginalStatusCode": e.response.get("OriginalStatusCode"),
                        "OriginalMessage": e.response.get("OriginalMessage"),
                        "LogStreamArn": e.response.get("LogStreamArn")})
    except botocore.exceptions.ClientError as e:
        results.append({"ok": False, "class": type(e).__name__, "code": e.response["Error"]["Code"],
                        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                        "message": e.response["Error"]["Message"]})
print(json.dumps(results))
"#;

fn boto3_calls(url: &str, calls: &[Value]) -> Vec<Value> {
    let mut child = Command::new(boto3_python())
        .arg("-c")
        .arg(BOTO3_CALLS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(json!({"url": url, "calls": calls}).to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn an_unapproved_package_is_refused_naming_its_status() {
    let store = registered();
    let output = sagestep(store.path(), &["endpoints", "create", "ep", "--model-package", &format!("{GROUP}/1")]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("ModelApprovalStatus PendingManualApproval"), "{message}");
    assert!(message.contains(&format!("sagestep registry approve {GROUP}/1")), "{message}");
    assert_eq!(stdout(&sagestep(store.path(), &["endpoints", "list"])).lines().count(), 1, "nothing recorded");
    let missing = sagestep(store.path(), &["endpoints", "describe", "ep"]);
    assert!(stderr(&missing).contains("Could not find endpoint \"arn:aws:sagemaker:"), "{}", stderr(&missing));
}

#[test]
fn boto3_gets_serves_predictions_through_the_front_and_delete_leaves_nothing_running() {
    let store = approved();
    let mut endpoint = Endpoint::create(store.path(), "auto-mpg", &["--instances", "2"]);
    let described = endpoint.describe();
    assert_eq!(described["EndpointStatus"], "InService");
    assert_eq!(described["ProductionVariants"][0]["CurrentInstanceCount"], 2);
    assert_eq!(described["ProductionVariants"][0]["VariantName"], "AllTraffic");
    assert!(described["EndpointArn"].as_str().unwrap().ends_with(":endpoint/auto-mpg"));
    let listed = stdout(&sagestep(store.path(), &["endpoints", "list"]));
    assert!(listed.contains("auto-mpg") && listed.contains(&endpoint.url), "{listed}");

    let rows = read_csv(&case().join("X.csv"));
    let want = bits(&read_csv(&case().join("pred.csv")).concat());
    let one_row = csv_body(&rows[..1]);
    let all_rows = csv_body(&rows);
    let instances = json!({"instances": json_rows(&rows)}).to_string();
    let mut calls = [
        json!({"Body": one_row, "ContentType": "text/csv"}),
        json!({"Body": all_rows, "ContentType": "text/csv", "Accept": "text/csv", "InferenceId": "row-batch-1"}),
        json!({"Body": instances, "ContentType": "application/json", "Accept": "application/json"}),
        json!({"Body": one_row, "ContentType": "text/csv", "TargetVariant": "AllTraffic"}),
    ];
    for call in &mut calls {
        call["EndpointName"] = json!("auto-mpg");
    }
    let results = boto3_calls(&endpoint.url, &calls);
    for result in &results {
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["InvokedProductionVariant"], "AllTraffic");
    }
    assert_eq!(bits(&parse_lines(results[0]["Body"].as_str().unwrap().as_bytes())), want[..1]);
    assert_eq!(bits(&parse_lines(results[1]["Body"].as_str().unwrap().as_bytes())), want);
    assert!(results[2]["ContentType"].as_str().unwrap().starts_with("application/json"), "{}", results[2]);
    let doc: Value = serde_json::from_str(results[2]["Body"].as_str().unwrap()).unwrap();
    assert_eq!(bits(&scores(doc["predictions"].as_array().unwrap().iter().cloned())), want);

    // The same bodies to serve directly: the same bytes back.
    let model = tempfile::tempdir().unwrap();
    std::fs::copy(case().join("xgboost-model"), model.path().join("xgboost-model")).unwrap();
    let direct = Server::start(model.path(), &[]);
    for (call, result) in calls.iter().zip(&results).take(3) {
        let (status, _, body) = direct.invoke(
            call["ContentType"].as_str(),
            call["Accept"].as_str(),
            call["Body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), result["Body"].as_str().unwrap(), "{call}");
    }

    let pids = endpoint.pids();
    assert_eq!(pids.len(), 3, "a supervisor and two instances");
    assert!(pids.iter().all(|p| running(*p)));
    let deleted = endpoint.delete();
    assert_success(&deleted);
    wait_gone(&pids);
    assert_eq!(stdout(&sagestep(store.path(), &["endpoints", "list"])).lines().count(), 1, "no endpoint left");
    assert!(!store.path().join("endpoints/auto-mpg").exists(), "its files are gone");
}

#[test]
fn errors_reach_boto3_in_the_services_shapes() {
    let store = approved();
    let endpoint = Endpoint::create(store.path(), "errors", &[]);
    let calls = [
        // The container refuses the content type: ModelError with what it said.
        json!({"Body": "1,2,3", "ContentType": "application/x-unknown"}),
        // Not a number: the container's 400.
        json!({"Body": "a,b,c,d,e,f", "ContentType": "text/csv"}),
        json!({"Body": "1,2", "ContentType": "text/csv", "EndpointName": "no-such-endpoint"}),
        json!({"Body": "1,2", "ContentType": "text/csv", "InferenceId": "x".repeat(65)}),
        json!({"Body": "1,2", "ContentType": "text/csv", "TargetVariant": "Blue"}),
        json!({"Body": {"size": 7_000_000}, "ContentType": "text/csv"}),
    ];
    let calls: Vec<Value> = calls
        .into_iter()
        .map(|mut c| {
            if c.get("EndpointName").is_none() {
                c["EndpointName"] = json!("errors");
            }
            c
        })
        .collect();
    let results = boto3_calls(&endpoint.url, &calls);
    let (unsupported, bad_csv) = (&results[0], &results[1]);
    assert_eq!(unsupported["class"], "ModelError", "{unsupported}");
    assert_eq!(unsupported["status"], 424);
    assert_eq!(unsupported["OriginalStatusCode"], 415);
    let message = unsupported["message"].as_str().unwrap();
    assert!(message.starts_with("Received client error (415) from primary with message \""), "{message}");
    assert!(
        unsupported["LogStreamArn"]
            .as_str()
            .unwrap()
            .ends_with(":log-group:/aws/sagemaker/Endpoints/errors:log-stream:AllTraffic/AllTraffic-1"),
        "{unsupported}"
    );
    assert_eq!(bad_csv["class"], "ModelError", "{bad_csv}");
    assert_eq!(bad_csv["OriginalStatusCode"], 400);
    assert!(!bad_csv["OriginalMessage"].as_str().unwrap().is_empty());
    let unknown = &results[2];
    assert_eq!((&unknown["code"], &unknown["status"]), (&json!("ValidationError"), &json!(400)), "{unknown}");
    assert_eq!(unknown["message"], "Endpoint no-such-endpoint of account 000000000000 not found.");
    let long_id = &results[3];
    assert_eq!(long_id["code"], "ValidationError", "{long_id}");
    assert!(long_id["message"].as_str().unwrap().contains("at 'inferenceId' failed to satisfy constraint"));
    assert_eq!(results[4]["code"], "ValidationError", "{}", results[4]);
    // AWS answers a body over 6,291,456 bytes with 413 and no error type.
    let oversize = &results[5];
    assert_eq!((&oversize["code"], &oversize["status"]), (&json!("413"), &json!(413)), "{oversize}");
    assert_eq!(oversize["message"], "HTTP content length exceeded 6291456 bytes.");
}

/// One more version of the package (the same model), with this approval status, registered
/// by a RegisterModel step through `sagestep run`.
fn register(store: &Path, status: &str) {
    let step = json!({"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": GROUP, "ModelApprovalStatus": status,
        "InferenceSpecification": {"Containers": [{"Image": "sagestep-serve:0.1.0",
            "ModelDataUrl": "s3://models/m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}}});
    let definition = store.join("register.json");
    std::fs::write(&definition, json!({"Version": "2020-12-01", "Parameters": [], "Steps": [step]}).to_string())
        .unwrap();
    let work = store.join("work");
    std::fs::create_dir_all(&work).unwrap();
    assert_success(&sagestep(store, &["run", definition.to_str().unwrap(), "--work-dir", work.to_str().unwrap()]));
}

/// boto3 invoking in a loop until `stop` exists: (successes, failures with their errors).
const BOTO3_LOOP: &str = r#"
import json, os, sys
import boto3, botocore.config
url, name, stop, started = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                      config=botocore.config.Config(retries={"total_max_attempts": 1}))
ok, failed = 0, []
while not os.path.exists(stop):
    try:
        client.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2,3,4,5,6")["Body"].read()
        ok += 1
        if ok == 1:
            open(started, "w").close()
    except Exception as e:
        failed.append(repr(e))
print(json.dumps({"ok": ok, "failed": failed}))
"#;

struct Loop {
    child: std::process::Child,
    stop: PathBuf,
}

impl Loop {
    /// Start the loop and wait for its first answer.
    fn start(url: &str, name: &str, dir: &Path) -> Self {
        let (stop, started) = (dir.join(format!("stop-{name}")), dir.join(format!("started-{name}")));
        let _ = std::fs::remove_file(&stop);
        let _ = std::fs::remove_file(&started);
        let child = Command::new(boto3_python())
            .args(["-c", BOTO3_LOOP, url, name, stop.to_str().unwrap(), started.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the request loop runs", || started.exists());
        Self { child, stop }
    }

    fn finish(self) -> Value {
        std::fs::write(&self.stop, "").unwrap();
        let output = self.child.wait_with_output().unwrap();
        assert_success(&output);
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn instance_pids(endpoint: &Endpoint<'_>) -> Vec<u32> {
    endpoint.pids()[1..].to_vec()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_instance_is_routed_around_and_replaced_and_update_fails_no_request() {
    let store = approved();
    let endpoint = Endpoint::create(store.path(), "steady", &["--instances", "2"]);
    let before = instance_pids(&endpoint);

    // Kill one instance under a steady loop: no request fails, another takes its place.
    let requests = Loop::start(&endpoint.url, "steady", store.path());
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: a signal to a process of this test's own endpoint.
    unsafe { libc::kill(before[0] as libc::pid_t, libc::SIGKILL) };
    wait_until("a new instance serves", || {
        let record = endpoint.record();
        let instances = record["Instances"].as_array().unwrap();
        instances.len() == 2
            && instances.iter().all(|i| i["Healthy"] == true)
            && !instances.iter().any(|i| i["Pid"].as_u64() == Some(u64::from(before[0])))
    });
    assert_eq!(endpoint.describe()["ProductionVariants"][0]["CurrentInstanceCount"], 2);
    std::thread::sleep(Duration::from_millis(300));
    let result = requests.finish();
    assert_eq!(result["failed"], json!([]), "{result}");
    assert!(result["ok"].as_u64().unwrap() > 5, "{result}");

    // Blue/green to version 2 under the loop: zero failed requests, only new instances after.
    register(store.path(), "Approved");
    let blue = instance_pids(&endpoint);
    let requests = Loop::start(&endpoint.url, "steady", store.path());
    std::thread::sleep(Duration::from_millis(500));
    let updated = sagestep(store.path(), &["endpoints", "update", "steady", "--model-package", &format!("{GROUP}/2")]);
    assert_success(&updated);
    std::thread::sleep(Duration::from_millis(500));
    let result = requests.finish();
    assert_eq!(result["failed"], json!([]), "{result}");
    assert!(result["ok"].as_u64().unwrap() > 5, "{result}");
    let record = endpoint.record();
    assert_eq!(record["ModelPackage"], format!("{GROUP}/2"));
    assert_eq!(record["EndpointStatus"], "InService");
    wait_gone(&blue);
    let after = instance_pids(&endpoint);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| running(*p) && !before.contains(p)));

    // An unapproved version is refused and the endpoint goes on as it was.
    let refused = sagestep(store.path(), &["endpoints", "update", "steady", "--model-package", &format!("{GROUP}/9")]);
    assert!(!refused.status.success());
    assert_eq!(instance_pids(&endpoint), after);
}

#[test]
fn killing_the_supervisor_leaves_no_instance_running_and_delete_still_cleans_up() {
    let store = approved();
    let mut endpoint = Endpoint::create(store.path(), "orphan", &["--instances", "2"]);
    let pids = endpoint.pids();
    // SAFETY: a signal to this test's own endpoint's supervisor.
    unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) };
    wait_gone(&pids);
    assert_success(&endpoint.delete());
    let missing = sagestep(store.path(), &["endpoints", "describe", "orphan"]);
    assert!(!missing.status.success());
}

//! Batch transform: start the model's serving container on each of `InstanceCount`
//! instances, ask `/execution-parameters`, split each input object into records, post them in
//! payloads of at most `MaxPayloadInMB` with `MaxConcurrentTransforms` requests in flight per
//! instance, and store `<input>.out` per input object. The input objects are dealt to the
//! instances as `ShardedByS3Key` deals them (SageMaker splits a transform's objects across its
//! instances); every output is stored once all instances are done.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::hosts::{Distribution, Host, distribute, instance_count};
use super::{JobFailure, Jobs, text};
use crate::contract::MlRoot;
use crate::pipeline::engine::Container;
use crate::pipeline::registry::arn;
use crate::storage::Found;

/// How long a server may take to answer `/ping` (SageMaker local mode waits about as long).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);
/// SageMaker's own per-request limit for batch transform invocations.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(600);

struct Settings {
    strategy: String,
    max_payload_bytes: usize,
    concurrency: usize,
}

/// What the request says about records and payloads.
struct Request<'a> {
    split: &'a str,
    assemble_lines: bool,
    content_type: Option<&'a str>,
    accept: Option<&'a str>,
    strategy: Option<&'a str>,
    payload_mb: Option<u64>,
    concurrency: Option<u64>,
}

/// Where one instance reads its objects and writes their outputs.
struct Share<'a> {
    objects: Vec<Found>,
    inputs_dir: &'a Path,
    outputs_dir: &'a Path,
}

impl Jobs<'_> {
    /// A transform job: CreateTransformJob's request, resolved, and the model it names
    /// (CreateModel's request). Returns DescribeTransformJob.
    pub fn transform(&self, job: &str, args: &Value, model: &Value) -> Result<Value, JobFailure> {
        let count = instance_count(args.pointer("/TransformResources/InstanceCount"), "TransformResources")?;
        let container_spec =
            model.get("PrimaryContainer").ok_or_else(|| JobFailure::client("the model has no PrimaryContainer"))?;
        let image = text(container_spec, "/Image")
            .ok_or_else(|| JobFailure::client("the model's PrimaryContainer has no Image"))?;
        let input_uri = text(args, "/TransformInput/DataSource/S3DataSource/S3Uri")
            .ok_or_else(|| JobFailure::client("TransformInput.DataSource.S3DataSource.S3Uri is required"))?;
        let output_uri = text(args, "/TransformOutput/S3OutputPath")
            .ok_or_else(|| JobFailure::client("TransformOutput.S3OutputPath is required"))?;
        let request = parse_request(args)?;

        // The model, unpacked on each instance where the server looks for it.
        let cluster = self.cluster(job, count)?;
        for host in &cluster.hosts {
            self.unpack_model(container_spec, &MlRoot::new(&host.root).model_dir())?;
        }
        let template = Container {
            name: job.to_string(),
            image: image.to_string(),
            entrypoint: None,
            args: vec!["serve".into()],
            env: server_env(container_spec, args, &request),
            ml_root: std::path::PathBuf::new(),
            network_isolation: false,
            network: None,
        };
        let job_dir = self.work.join(job);
        let (inputs_dir, outputs_dir) = (job_dir.join("input"), job_dir.join("output"));
        let found = self.storage.fetch(input_uri, &inputs_dir)?;
        let shares = distribute(&found, count, Distribution::ShardedByS3Key);
        let cancel = AtomicBool::new(false);
        let failures: Mutex<Vec<JobFailure>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for (host, objects) in cluster.hosts.iter().zip(shares) {
                let share = Share { objects, inputs_dir: &inputs_dir, outputs_dir: &outputs_dir };
                let (cancel, failures, template, request) = (&cancel, &failures, &template, &request);
                let cluster = &cluster;
                scope.spawn(move || {
                    if let Err(failure) = self.transform_instance(host, template, &share, request, cancel) {
                        failures.lock().expect("lock").push(cluster.blame(host, failure));
                        cancel.store(true, Ordering::SeqCst);
                    }
                });
            }
        });
        if self.engine.interrupted() {
            return Err(JobFailure::interrupted());
        }
        if let Some(failure) = failures.into_inner().expect("lock").into_iter().next() {
            return Err(failure);
        }
        // Stored only when every input is done: all outputs or none.
        let stored = self.storage.put_dir(&outputs_dir, output_uri)?;
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("TransformJobName".into(), json!(job));
        fields.insert("TransformJobArn".into(), json!(arn("transform-job", job)));
        fields.insert("TransformJobStatus".into(), json!("Completed"));
        fields
            .insert("TransformOutputObjects".into(), json!(stored.iter().map(ToString::to_string).collect::<Vec<_>>()));
        Ok(described)
    }

    /// `ModelDataUrl`'s objects in `model_dir`, archives unpacked.
    fn unpack_model(&self, container_spec: &Value, model_dir: &Path) -> Result<(), JobFailure> {
        if let Some(model_uri) = text(container_spec, "/ModelDataUrl") {
            let found = self.storage.fetch(model_uri, model_dir).map_err(JobFailure::from)?;
            for object in found {
                let path = model_dir.join(&object.relative);
                if object.relative.ends_with(".tar.gz") {
                    crate::model::archive::unpack(&path, model_dir, crate::model::MAX_ARCHIVE_BYTES)
                        .map_err(|e| JobFailure::client(format!("ModelDataUrl {model_uri}: {e}")))?;
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        std::fs::create_dir_all(model_dir).map_err(|e| JobFailure::service(e.to_string()))
    }

    /// One instance: its server, its objects, then the server stopped. An instance dealt no
    /// object starts no server.
    fn transform_instance(
        &self,
        host: &Host,
        template: &Container,
        share: &Share<'_>,
        request: &Request<'_>,
        cancel: &AtomicBool,
    ) -> Result<(), JobFailure> {
        if share.objects.is_empty() {
            return Ok(());
        }
        let mut container = template.clone();
        container.name = host.container.clone();
        container.ml_root = host.root.clone();
        let mut server = self.engine.start_server(&container, &self.log_path(&host.container), HEALTH_TIMEOUT)?;
        let settings = settings(server.port, request.strategy, request.payload_mb, request.concurrency);
        let result = self.transform_objects(server.port, share, request, &settings, cancel);
        self.engine.stop_server(&mut server);
        self.keep_log(&host.container);
        result
    }

    fn transform_objects(
        &self,
        port: u16,
        share: &Share<'_>,
        request: &Request<'_>,
        settings: &Settings,
        cancel: &AtomicBool,
    ) -> Result<(), JobFailure> {
        let agent = crate::pipeline::engine::http_agent(INVOCATION_TIMEOUT);
        let stopped = || self.engine.interrupted() || cancel.load(Ordering::SeqCst);
        for object in &share.objects {
            let data = std::fs::read(share.inputs_dir.join(&object.relative))
                .map_err(|e| JobFailure::service(e.to_string()))?;
            let payloads = payloads(&data, request.split, settings)
                .map_err(|m| JobFailure::client(format!("{}: {m}", object.location)))?;
            let responses: Vec<Mutex<Option<Vec<u8>>>> = payloads.iter().map(|_| Mutex::new(None)).collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let failure: Mutex<Option<JobFailure>> = Mutex::new(None);
            std::thread::scope(|scope| {
                for _ in 0..settings.concurrency.min(payloads.len()).max(1) {
                    scope.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            if i >= payloads.len() || failure.lock().expect("lock").is_some() || stopped() {
                                return;
                            }
                            match invoke(&agent, port, payloads[i], request.content_type, request.accept) {
                                Ok(body) => *responses[i].lock().expect("lock") = Some(body),
                                Err(message) => {
                                    *failure.lock().expect("lock") = Some(JobFailure::client(format!(
                                        "{} (payload {} of {}): {message}",
                                        object.location,
                                        i + 1,
                                        payloads.len()
                                    )));
                                    return;
                                }
                            }
                        }
                    });
                }
            });
            if stopped() {
                return Err(JobFailure::interrupted());
            }
            if let Some(failure) = failure.into_inner().expect("lock") {
                return Err(failure);
            }
            let mut assembled = Vec::new();
            for response in responses {
                let body = response.into_inner().expect("lock").unwrap_or_default();
                assembled.extend_from_slice(&body);
                if request.assemble_lines && !body.ends_with(b"\n") {
                    assembled.push(b'\n');
                }
            }
            let out_path = share.outputs_dir.join(format!("{}.out", object.relative));
            crate::storage::write_atomic(&out_path, &assembled).map_err(|e| JobFailure::service(e.to_string()))?;
        }
        Ok(())
    }
}

/// The request's record and payload settings, checked.
fn parse_request(args: &Value) -> Result<Request<'_>, JobFailure> {
    let split = text(args, "/TransformInput/SplitType").unwrap_or("None");
    if !matches!(split, "Line" | "None") {
        return Err(JobFailure::client(format!(
            "TransformInput.SplitType `{split}`: the local runner supports Line and None"
        )));
    }
    if let Some(c) = text(args, "/TransformInput/CompressionType").filter(|c| *c != "None") {
        return Err(JobFailure::client(format!(
            "TransformInput.CompressionType `{c}`: the local runner supports None"
        )));
    }
    if let Some(t) = text(args, "/TransformInput/DataSource/S3DataSource/S3DataType").filter(|t| *t != "S3Prefix") {
        return Err(JobFailure::client(format!("S3DataType `{t}`: the local runner supports S3Prefix")));
    }
    Ok(Request {
        split,
        assemble_lines: text(args, "/TransformOutput/AssembleWith") == Some("Line"),
        content_type: text(args, "/TransformInput/ContentType"),
        accept: text(args, "/TransformOutput/Accept"),
        strategy: text(args, "/BatchStrategy"),
        payload_mb: args.get("MaxPayloadInMB").and_then(Value::as_u64),
        concurrency: args.get("MaxConcurrentTransforms").and_then(Value::as_u64).filter(|n| *n > 0),
    })
}

/// The model's environment, then the transform job's on top, then the batch variables.
fn server_env(
    container_spec: &Value,
    args: &Value,
    request: &Request<'_>,
) -> std::collections::BTreeMap<String, String> {
    use crate::contract::env;
    let mut vars = super::string_map(container_spec.get("Environment"));
    vars.extend(super::string_map(args.get("Environment")));
    vars.insert(env::SAGEMAKER_BATCH.into(), "true".into());
    if let Some(s) = request.strategy {
        let strategy = if api_strategy(s) == "SingleRecord" { "SINGLE_RECORD" } else { "MULTI_RECORD" };
        vars.insert(env::SAGEMAKER_BATCH_STRATEGY.into(), strategy.into());
    }
    if let Some(mb) = request.payload_mb {
        vars.insert(env::SAGEMAKER_MAX_PAYLOAD_IN_MB.into(), mb.to_string());
    }
    if let Some(n) = request.concurrency {
        vars.insert(env::SAGEMAKER_MAX_CONCURRENT_TRANSFORMS.into(), n.to_string());
    }
    vars
}

/// The batch settings: the request's, and the container's `/execution-parameters` where the
/// request is silent.
fn settings(port: u16, strategy: Option<&str>, payload: Option<u64>, concurrency: Option<u64>) -> Settings {
    let agent = crate::pipeline::engine::http_agent(Duration::from_secs(10));
    let preferred = agent
        .get(format!("http://127.0.0.1:{port}/execution-parameters"))
        .call()
        .ok()
        .filter(|r| r.status() == 200)
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|body| serde_json::from_str::<Value>(&body).ok())
        .unwrap_or(Value::Null);
    merged_settings(strategy, payload, concurrency, &preferred)
}

/// The request's settings over the container's preferred ones.
fn merged_settings(
    strategy: Option<&str>,
    payload: Option<u64>,
    concurrency: Option<u64>,
    preferred: &Value,
) -> Settings {
    Settings {
        strategy: api_strategy(
            strategy.or_else(|| preferred.get("BatchStrategy").and_then(Value::as_str)).unwrap_or("MultiRecord"),
        )
        .to_string(),
        max_payload_bytes: (payload
            .or_else(|| preferred.get("MaxPayloadInMB").and_then(Value::as_u64))
            .unwrap_or(6)
            .max(1) as usize)
            << 20,
        concurrency: concurrency
            .or_else(|| preferred.get("MaxConcurrentTransforms").and_then(Value::as_u64))
            .unwrap_or(1)
            .clamp(1, 64) as usize,
    }
}

/// The API's spelling of a batch strategy: containers answer `SINGLE_RECORD`/`MULTI_RECORD`
/// where the API says `SingleRecord`/`MultiRecord`, and SageMaker takes either.
fn api_strategy(s: &str) -> &'static str {
    if s.eq_ignore_ascii_case("SingleRecord") || s.eq_ignore_ascii_case("SINGLE_RECORD") {
        "SingleRecord"
    } else {
        "MultiRecord"
    }
}

/// Split one input object into request bodies.
fn payloads<'d>(data: &'d [u8], split: &str, settings: &Settings) -> Result<Vec<&'d [u8]>, String> {
    if split == "None" || data.is_empty() {
        return Ok(if data.is_empty() { Vec::new() } else { vec![data] });
    }
    // Line: each record keeps its newline; blank lines are not records.
    let mut records = Vec::new();
    let mut start = 0;
    for (i, byte) in data.iter().enumerate() {
        if *byte == b'\n' {
            records.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < data.len() {
        records.push((start, data.len()));
    }
    records.retain(|(a, b)| data[*a..*b].iter().any(|c| !c.is_ascii_whitespace()));
    let single = settings.strategy == "SingleRecord";
    let mut out = Vec::new();
    let mut batch: Option<(usize, usize)> = None;
    for (n, (a, b)) in records.into_iter().enumerate() {
        if b - a > settings.max_payload_bytes {
            return Err(format!(
                "record {} is {} bytes, above MaxPayloadInMB ({} bytes)",
                n + 1,
                b - a,
                settings.max_payload_bytes
            ));
        }
        batch = match batch {
            Some((s, e)) if !single && b - s <= settings.max_payload_bytes && e == a => Some((s, b)),
            Some((s, e)) => {
                out.push(&data[s..e]);
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((s, e)) = batch {
        out.push(&data[s..e]);
    }
    Ok(out)
}

fn invoke(
    agent: &ureq::Agent,
    port: u16,
    body: &[u8],
    content_type: Option<&str>,
    accept: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut request = agent.post(format!("http://127.0.0.1:{port}/invocations"));
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    if let Some(a) = accept {
        request = request.header("Accept", a);
    }
    let mut response = request.send(body).map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| format!("reading the response: {e}"))?;
    if status != 200 {
        return Err(format!("the model server answered {status}: {}", String::from_utf8_lossy(&bytes).trim()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(strategy: &str, bytes: usize) -> Settings {
        Settings { strategy: strategy.into(), max_payload_bytes: bytes, concurrency: 1 }
    }

    #[test]
    fn lines_are_packed_within_the_payload_limit() {
        let data = b"1,2\n3,4\n\n5,6";
        assert_eq!(payloads(data, "Line", &settings("MultiRecord", 1 << 20)).unwrap(), [&data[..8], &data[9..]]);
        assert_eq!(payloads(data, "Line", &settings("MultiRecord", 8)).unwrap(), [&b"1,2\n3,4\n"[..], b"5,6"]);
        assert_eq!(payloads(data, "Line", &settings("SingleRecord", 1 << 20)).unwrap().len(), 3);
        assert_eq!(payloads(data, "None", &settings("MultiRecord", 1 << 20)).unwrap(), [&data[..]]);
        assert!(payloads(b"123456789\n", "Line", &settings("MultiRecord", 4)).unwrap_err().contains("record 1"));
    }

    #[test]
    fn the_containers_strategy_spelling_is_taken() {
        let preferred = serde_json::json!({"BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1});
        let merged = merged_settings(None, None, None, &preferred);
        assert_eq!(merged.strategy, "SingleRecord");
        assert_eq!(payloads(b"1,2\n3,4\n", "Line", &merged).unwrap().len(), 2);
        let preferred = serde_json::json!({"BatchStrategy": "MULTI_RECORD"});
        assert_eq!(merged_settings(None, None, None, &preferred).strategy, "MultiRecord");
        assert_eq!(
            merged_settings(Some("MultiRecord"), None, None, &serde_json::json!({"BatchStrategy": "SINGLE_RECORD"}))
                .strategy,
            "MultiRecord"
        );
    }
}

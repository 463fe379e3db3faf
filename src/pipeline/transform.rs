//! Batch transform: start the model's serving container, ask `/execution-parameters`, split
//! each input object into records, post them in payloads of at most `MaxPayloadInMB` with
//! `MaxConcurrentTransforms` requests in flight, and store `<input>.out` per input object.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::engine::Container;
use super::jobs::{JobFailure, Jobs, text};
use super::registry::arn;

/// How long a server may take to answer `/ping` (SageMaker local mode waits about as long).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);
/// SageMaker's own per-request limit for batch transform invocations.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(600);

struct Settings {
    strategy: String,
    max_payload_bytes: usize,
    concurrency: usize,
}

impl Jobs<'_> {
    /// A transform job: CreateTransformJob's request, resolved, and the model it names
    /// (CreateModel's request). Returns DescribeTransformJob.
    pub fn transform(&self, job: &str, args: &Value, model: &Value) -> Result<Value, JobFailure> {
        if let Some(n) = args.pointer("/TransformResources/InstanceCount").and_then(Value::as_u64).filter(|n| *n != 1) {
            return Err(JobFailure::client(format!(
                "TransformResources: InstanceCount {n}: the local runner runs one instance; pass 1"
            )));
        }
        let container_spec =
            model.get("PrimaryContainer").ok_or_else(|| JobFailure::client("the model has no PrimaryContainer"))?;
        let image = text(container_spec, "/Image")
            .ok_or_else(|| JobFailure::client("the model's PrimaryContainer has no Image"))?;
        let input_uri = text(args, "/TransformInput/DataSource/S3DataSource/S3Uri")
            .ok_or_else(|| JobFailure::client("TransformInput.DataSource.S3DataSource.S3Uri is required"))?;
        let output_uri = text(args, "/TransformOutput/S3OutputPath")
            .ok_or_else(|| JobFailure::client("TransformOutput.S3OutputPath is required"))?;
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
        let assemble_lines = text(args, "/TransformOutput/AssembleWith") == Some("Line");
        let content_type = text(args, "/TransformInput/ContentType");
        let accept = text(args, "/TransformOutput/Accept");

        // The model, unpacked where the server looks for it.
        let root = self.fresh_root(job)?;
        let model_dir = root.join("model");
        if let Some(model_uri) = text(container_spec, "/ModelDataUrl") {
            let found = self.storage.fetch(model_uri, &model_dir).map_err(JobFailure::from)?;
            for object in found {
                let path = model_dir.join(&object.relative);
                if object.relative.ends_with(".tar.gz") {
                    crate::model::archive::unpack(&path, &model_dir, crate::model::MAX_ARCHIVE_BYTES)
                        .map_err(|e| JobFailure::client(format!("ModelDataUrl {model_uri}: {e}")))?;
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        std::fs::create_dir_all(&model_dir).map_err(|e| JobFailure::service(e.to_string()))?;

        // The model's environment, then the transform job's on top.
        let mut env = super::jobs::string_map(container_spec.get("Environment"));
        env.extend(super::jobs::string_map(args.get("Environment")));
        env.insert("SAGEMAKER_BATCH".into(), "true".into());
        let requested_strategy = text(args, "/BatchStrategy");
        let requested_payload = args.get("MaxPayloadInMB").and_then(Value::as_u64);
        let requested_concurrency = args.get("MaxConcurrentTransforms").and_then(Value::as_u64).filter(|n| *n > 0);
        if let Some(s) = requested_strategy {
            env.insert(
                "SAGEMAKER_BATCH_STRATEGY".into(),
                if s == "SingleRecord" { "SINGLE_RECORD" } else { "MULTI_RECORD" }.into(),
            );
        }
        if let Some(mb) = requested_payload {
            env.insert("SAGEMAKER_MAX_PAYLOAD_IN_MB".into(), mb.to_string());
        }
        if let Some(n) = requested_concurrency {
            env.insert("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS".into(), n.to_string());
        }
        let container = Container {
            name: job.to_string(),
            image: image.to_string(),
            entrypoint: None,
            args: vec!["serve".into()],
            env,
            ml_root: root.clone(),
            network_isolation: false,
        };
        let mut server = self.engine.start_server(&container, &self.log_path(job), HEALTH_TIMEOUT)?;
        let settings = settings(server.port, requested_strategy, requested_payload, requested_concurrency);
        let result = self.transform_objects(
            server.port,
            input_uri,
            output_uri,
            split,
            assemble_lines,
            content_type,
            accept,
            &settings,
            job,
        );
        self.engine.stop_server(&mut server);
        self.keep_log(job);
        let outputs = result?;
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("TransformJobName".into(), json!(job));
        fields.insert("TransformJobArn".into(), json!(arn("transform-job", job)));
        fields.insert("TransformJobStatus".into(), json!("Completed"));
        fields.insert("TransformOutputObjects".into(), json!(outputs));
        Ok(described)
    }

    #[allow(clippy::too_many_arguments)]
    fn transform_objects(
        &self,
        port: u16,
        input_uri: &str,
        output_uri: &str,
        split: &str,
        assemble_lines: bool,
        content_type: Option<&str>,
        accept: Option<&str>,
        settings: &Settings,
        job: &str,
    ) -> Result<Vec<String>, JobFailure> {
        let inputs_dir = self.work.join(job).join("input");
        let outputs_dir = self.work.join(job).join("output");
        let found = self.storage.fetch(input_uri, &inputs_dir)?;
        let agent = super::engine::http_agent(INVOCATION_TIMEOUT);
        for object in &found {
            let data =
                std::fs::read(inputs_dir.join(&object.relative)).map_err(|e| JobFailure::service(e.to_string()))?;
            let payloads = payloads(&data, split, settings)
                .map_err(|m| JobFailure::client(format!("{}: {m}", object.location)))?;
            let responses: Vec<Mutex<Option<Vec<u8>>>> = payloads.iter().map(|_| Mutex::new(None)).collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let failure: Mutex<Option<JobFailure>> = Mutex::new(None);
            std::thread::scope(|scope| {
                for _ in 0..settings.concurrency.min(payloads.len()).max(1) {
                    scope.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if i >= payloads.len()
                                || failure.lock().expect("lock").is_some()
                                || self.engine.interrupted()
                            {
                                return;
                            }
                            match invoke(&agent, port, payloads[i], content_type, accept) {
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
            if self.engine.interrupted() {
                return Err(JobFailure { kind: super::jobs::FailureKind::Interrupted, message: "interrupted".into() });
            }
            if let Some(failure) = failure.into_inner().expect("lock") {
                return Err(failure);
            }
            let mut assembled = Vec::new();
            for response in responses {
                let body = response.into_inner().expect("lock").unwrap_or_default();
                assembled.extend_from_slice(&body);
                if assemble_lines && !body.ends_with(b"\n") {
                    assembled.push(b'\n');
                }
            }
            let out_path = outputs_dir.join(format!("{}.out", object.relative));
            crate::storage::write_atomic(&out_path, &assembled).map_err(|e| JobFailure::service(e.to_string()))?;
        }
        // Stored only when every input is done: all outputs or none.
        let stored = self.storage.put_dir(&outputs_dir, output_uri)?;
        Ok(stored.iter().map(ToString::to_string).collect())
    }
}

/// The batch settings: the request's, and the container's `/execution-parameters` where the
/// request is silent.
fn settings(port: u16, strategy: Option<&str>, payload: Option<u64>, concurrency: Option<u64>) -> Settings {
    let agent = super::engine::http_agent(Duration::from_secs(10));
    let preferred = agent
        .get(format!("http://127.0.0.1:{port}/execution-parameters"))
        .call()
        .ok()
        .filter(|r| r.status() == 200)
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|body| serde_json::from_str::<Value>(&body).ok())
        .unwrap_or(Value::Null);
    Settings {
        strategy: strategy
            .or_else(|| preferred.get("BatchStrategy").and_then(Value::as_str))
            .unwrap_or("MultiRecord")
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
}

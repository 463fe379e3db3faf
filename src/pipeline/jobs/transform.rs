//! Batch transform: start the model's serving container on each of `InstanceCount`
//! instances, ask `/execution-parameters`, split each input object into records, post them in
//! payloads of at most `MaxPayloadInMB` with `MaxConcurrentTransforms` requests in flight per
//! instance, and store `<input>.out` per input object. The input objects are dealt to the
//! instances as `ShardedByS3Key` deals them (SageMaker splits a transform's objects across its
//! instances); every output is stored once all instances are done.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::capture::{BatchCapture, JobStart, OutputRecords, stamp_response};
use super::hosts::{Distribution, Host, distribute, instance_count};
use super::{JobFailure, Jobs, text};
use crate::contract::MlRoot;
use crate::data::recordio;
use crate::pipeline::engine::Container;
use crate::pipeline::registry::arn;
use crate::storage::Found;

/// How long a server may take to answer `/ping` (SageMaker local mode waits about as long).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);
/// SageMaker's own per-request limit for batch transform invocations.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(600);
/// CreateTransformJob's bound on `MaxPayloadInMB x MaxConcurrentTransforms`.
const MAX_PAYLOADS_MB: u64 = 100;

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
    /// With `DataCaptureConfig.GenerateInferenceId`: the job's start, stamped on every record.
    stamp: Option<JobStart>,
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
        let start = JobStart::now();
        let capture = BatchCapture::from_args(args)?;
        let mut request = parse_request(args)?;
        if capture.as_ref().is_some_and(|c| c.generate_inference_id) {
            check_stampable(request.accept)?;
            request.stamp = Some(start.clone());
        }

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
        if let Some(capture) = &capture {
            let inputs: Vec<_> = found.iter().map(|f| f.location.clone()).collect();
            if let Err(failure) =
                capture.write_manifests(self.storage, &start, (input_uri, &inputs), (output_uri, &stored))
            {
                // The job failed: its outputs go too, as for any failed job.
                self.storage.remove(&stored);
                return Err(failure);
            }
        }
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("TransformJobName".into(), json!(job));
        fields.insert("TransformJobArn".into(), json!(arn("transform-job", job)));
        fields.insert("TransformJobStatus".into(), json!("Completed"));
        fields.insert("TransformStartTime".into(), json!(start.rfc3339));
        fields.insert("TransformEndTime".into(), json!(crate::clock::rfc3339(crate::clock::now_secs())));
        fields
            .insert("TransformOutputObjects".into(), json!(stored.iter().map(ToString::to_string).collect::<Vec<_>>()));
        Ok(described)
    }

    /// `ModelDataUrl`'s objects in `model_dir`, archives unpacked.
    pub fn unpack_model(&self, container_spec: &Value, model_dir: &Path) -> Result<(), JobFailure> {
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
            let out_path = share.outputs_dir.join(format!("{}.out", object.relative));
            let input = share.inputs_dir.join(&object.relative);
            let invoke = |body: &[u8]| {
                let (content_type, response) = invoke(&agent, port, body, request.content_type, request.accept)?;
                match &request.stamp {
                    Some(start) => stamp_response(response, content_type.as_deref().or(request.accept), start),
                    None => Ok(response),
                }
            };
            stream_object(&input, &out_path, request, settings, &invoke, &stopped).map_err(
                |failure| match failure {
                    Streamed::Stopped => JobFailure::interrupted(),
                    Streamed::Io(e) => JobFailure::service(format!("{}: {e}", object.location)),
                    Streamed::Client(m) => JobFailure::client(format!("{}: {m}", object.location)),
                },
            )?;
        }
        Ok(())
    }
}

/// Why streaming one object stopped.
#[derive(Debug)]
enum Streamed {
    /// The job was interrupted or another instance failed.
    Stopped,
    /// Reading the input or writing the output failed: the runner's fault.
    Io(std::io::Error),
    /// A record above the payload limit, a malformed record or a refused payload.
    Client(String),
}

/// Transform one input object into `out_path`, streamed: records are read in bounded pieces
/// and packed into payloads, `settings.concurrency` requests are in flight, and responses are
/// appended to a partial file in input order as they come, which is renamed to `out_path` once
/// the last one is written (removed on failure). At most `concurrency + 1` payloads and
/// `2 x concurrency` responses are held at once, so memory is bounded by `MaxPayloadInMB` and
/// `MaxConcurrentTransforms`, not by the object.
fn stream_object(
    input: &Path,
    out_path: &Path,
    request: &Request<'_>,
    settings: &Settings,
    invoke: &Invoke<'_>,
    stopped: &(dyn Fn() -> bool + Sync),
) -> Result<(), Streamed> {
    if let Some(dir) = out_path.parent() {
        std::fs::create_dir_all(dir).map_err(Streamed::Io)?;
    }
    let partial = crate::storage::unique_partial_path(out_path);
    let result = std::fs::File::create(&partial).map_err(Streamed::Io).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        let file = std::fs::File::open(input).map_err(Streamed::Io)?;
        let records = Records::new(file, request.split, settings.max_payload_bytes).map_err(Streamed::Io)?;
        let payloads = Payloads::new(records, settings.strategy == "SingleRecord");
        pipeline(payloads, settings.concurrency, invoke, stopped, |body| {
            out.write_all(body)?;
            if request.assemble_lines && !body.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            Ok(())
        })?;
        let file = out.into_inner().map_err(|e| Streamed::Io(e.into_error()))?;
        file.sync_all().map_err(Streamed::Io)?;
        std::fs::rename(&partial, out_path).map_err(Streamed::Io)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Post `payloads` with `concurrency` requests in flight and hand each response to `write` in
/// payload order. A payload is handed to a worker only when one is free (one more is being
/// packed meanwhile), and the reader stays at most `2 x concurrency` payloads ahead of the
/// writer, so at most that many responses wait for their turn.
fn pipeline(
    payloads: Payloads,
    concurrency: usize,
    invoke: &Invoke<'_>,
    stopped: &(dyn Fn() -> bool + Sync),
    write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), Streamed> {
    use std::sync::mpsc;
    let window = Window::new(2 * concurrency.max(1));
    let (job_tx, job_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(0);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            let (job_rx, done_tx, window) = (&job_rx, done_tx.clone(), &window);
            scope.spawn(move || post_payloads(job_rx, &done_tx, window, invoke, stopped));
        }
        let (reader_done, window) = (done_tx.clone(), &window);
        scope.spawn(move || read_payloads(payloads, &job_tx, &reader_done, window, stopped));
        drop(done_tx);
        let mut outcome = write_in_order(&done_rx, window, write);
        window.give_up();
        // Let the workers drain what the reader already queued without posting it.
        drop(done_rx);
        if outcome.is_ok() && stopped() {
            outcome = Err(Streamed::Stopped);
        }
        outcome
    })
}

/// Posts one payload to a server: the response's body, or what went wrong.
type Invoke<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Sync + 'a;

/// A payload's number and its response (or why there is none).
type Done = (usize, Result<Vec<u8>, Streamed>);

/// How far the reader may run ahead: payloads written so far, and whether the writer gave
/// up; the reader waits on it.
struct Window {
    size: usize,
    state: Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
    abandoned: AtomicBool,
}

impl Window {
    fn new(size: usize) -> Self {
        Self {
            size,
            state: Mutex::new((0, false)),
            changed: std::sync::Condvar::new(),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Wait until payload `n` may be read; false once the writer gave up.
    fn wait_for_room(&self, n: usize) -> bool {
        let mut state = self.state.lock().expect("lock");
        while !state.1 && n >= state.0 + self.size {
            state = self.changed.wait(state).expect("lock");
        }
        !state.1
    }

    fn written(&self, count: usize) {
        self.state.lock().expect("lock").0 = count;
        self.changed.notify_all();
    }

    fn give_up(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.state.lock().expect("lock").1 = true;
        self.changed.notify_all();
    }

    fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }
}

/// A worker: post each payload it is handed (none once the writer gave up).
fn post_payloads(
    jobs: &Mutex<std::sync::mpsc::Receiver<(usize, Vec<u8>)>>,
    done: &std::sync::mpsc::Sender<Done>,
    window: &Window,
    invoke: &Invoke<'_>,
    stopped: &(dyn Fn() -> bool + Sync),
) {
    loop {
        let Ok((n, body)) = jobs.lock().expect("lock").recv() else { return };
        if window.abandoned() {
            continue;
        }
        let result = if stopped() {
            Err(Streamed::Stopped)
        } else {
            invoke(&body).map_err(|m| Streamed::Client(format!("payload {}: {m}", n + 1)))
        };
        if done.send((n, result)).is_err() {
            return;
        }
    }
}

/// The reader: the next payload once the window allows it.
fn read_payloads(
    mut payloads: Payloads,
    jobs: &std::sync::mpsc::SyncSender<(usize, Vec<u8>)>,
    done: &std::sync::mpsc::Sender<Done>,
    window: &Window,
    stopped: &(dyn Fn() -> bool + Sync),
) {
    for n in 0.. {
        if !window.wait_for_room(n) {
            return;
        }
        if stopped() {
            let _ = done.send((n, Err(Streamed::Stopped)));
            return;
        }
        match payloads.next_payload() {
            Ok(Some(body)) => {
                if jobs.send((n, body)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(failure) => {
                let _ = done.send((n, Err(failure)));
                return;
            }
        }
    }
}

/// The writer: responses in payload order, until the first failure.
fn write_in_order(
    done: &std::sync::mpsc::Receiver<Done>,
    window: &Window,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), Streamed> {
    let mut held = std::collections::BTreeMap::new();
    let mut next = 0;
    for (n, result) in done {
        held.insert(n, result);
        while let Some(result) = held.remove(&next) {
            result.and_then(|body| write(&body).map_err(Streamed::Io))?;
            next += 1;
            window.written(next);
        }
    }
    Ok(())
}

/// The request's record and payload settings, checked.
fn parse_request(args: &Value) -> Result<Request<'_>, JobFailure> {
    let split = text(args, "/TransformInput/SplitType").unwrap_or("None");
    if !matches!(split, "Line" | "RecordIO" | "None") {
        return Err(JobFailure::client(format!(
            "TransformInput.SplitType `{split}`: the local runner supports Line, RecordIO and None"
        )));
    }
    // What the container sees and what is stored must not silently differ from SageMaker's.
    for (field, default) in [("InputFilter", "$"), ("OutputFilter", "$"), ("JoinSource", "None")] {
        if let Some(given) = text(args, &format!("/DataProcessing/{field}")).filter(|g| *g != default) {
            return Err(JobFailure::client(format!(
                "DataProcessing.{field} `{given}`: the local runner supports only the default ({default})"
            )));
        }
    }
    if let Some(c) = text(args, "/TransformInput/CompressionType").filter(|c| *c != "None") {
        return Err(JobFailure::client(format!(
            "TransformInput.CompressionType `{c}`: the local runner supports None"
        )));
    }
    if let Some(t) = text(args, "/TransformInput/DataSource/S3DataSource/S3DataType").filter(|t| *t != "S3Prefix") {
        return Err(JobFailure::client(format!("S3DataType `{t}`: the local runner supports S3Prefix")));
    }
    let payload_mb = args.get("MaxPayloadInMB").and_then(Value::as_u64);
    let concurrency = args.get("MaxConcurrentTransforms").and_then(Value::as_u64).filter(|n| *n > 0);
    // CreateTransformJob's own rule, which also bounds what the driver holds.
    if let Some(mb) = payload_mb.filter(|mb| *mb * concurrency.unwrap_or(1) > MAX_PAYLOADS_MB) {
        let n = concurrency.unwrap_or(1);
        return Err(JobFailure::client(format!(
            "`MaxPayloadInMB` times `MaxConcurrentTransforms` must be at most {MAX_PAYLOADS_MB}. Given: {mb} x {n}"
        )));
    }
    Ok(Request {
        split,
        assemble_lines: text(args, "/TransformOutput/AssembleWith") == Some("Line"),
        content_type: text(args, "/TransformInput/ContentType"),
        accept: text(args, "/TransformOutput/Accept"),
        strategy: text(args, "/BatchStrategy"),
        payload_mb,
        concurrency,
        stamp: None,
    })
}

/// Inference ids go only into output whose records SageMaker can tell apart: an `Accept`
/// other than CSV, JSON or JSON lines is refused before anything runs (without one, the
/// response's Content-Type decides).
fn check_stampable(accept: Option<&str>) -> Result<(), JobFailure> {
    match accept {
        Some(accept) if OutputRecords::of(accept).is_none() => Err(JobFailure::client(format!(
            "DataCaptureConfig.GenerateInferenceId adds inference ids to CSV, JSON and JSON lines output only; \
             TransformOutput.Accept is `{accept}`"
        ))),
        _ => Ok(()),
    }
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
    // The container's preferences are held to the request's limits: payloads times requests
    // in flight within 100 MB.
    let mb = payload
        .or_else(|| preferred.get("MaxPayloadInMB").and_then(Value::as_u64))
        .unwrap_or(6)
        .clamp(1, MAX_PAYLOADS_MB);
    let concurrency = concurrency
        .or_else(|| preferred.get("MaxConcurrentTransforms").and_then(Value::as_u64))
        .unwrap_or(1)
        .clamp(1, (MAX_PAYLOADS_MB / mb).max(1));
    Settings {
        strategy: api_strategy(
            strategy.or_else(|| preferred.get("BatchStrategy").and_then(Value::as_str)).unwrap_or("MultiRecord"),
        )
        .to_string(),
        max_payload_bytes: (mb as usize) << 20,
        concurrency: concurrency as usize,
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

/// The records of one input object, read in pieces of at most `max` bytes: `Line` records
/// keep their newline (blank lines are not records), `RecordIO` records keep their framing
/// (continuations joined into one frame), and under `None` the object is one record.
struct Records {
    reader: std::io::BufReader<std::fs::File>,
    split: Split,
    max: usize,
    /// Records read so far, for messages.
    count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Line,
    RecordIo,
    None,
}

impl Records {
    fn new(file: std::fs::File, split: &str, max: usize) -> std::io::Result<Self> {
        let split = match split {
            "Line" => Split::Line,
            "RecordIO" => Split::RecordIo,
            _ => Split::None,
        };
        Ok(Self { reader: std::io::BufReader::with_capacity(1 << 16, file), split, max, count: 0 })
    }

    fn too_large(&self, size: &str) -> Streamed {
        let what = match self.split {
            Split::None => "the object (one record, SplitType None)".to_string(),
            _ => format!("record {}", self.count + 1),
        };
        Streamed::Client(format!("{what} is {size} bytes, above MaxPayloadInMB ({} bytes)", self.max))
    }

    /// The next record into `out` (cleared first); `Ok(false)` at the end.
    fn next_into(&mut self, out: &mut Vec<u8>) -> Result<bool, Streamed> {
        use std::io::{BufRead, Read};
        out.clear();
        match self.split {
            Split::None => {
                let size = self.reader.get_ref().metadata().map_err(Streamed::Io)?.len();
                if self.count > 0 || size == 0 {
                    return Ok(false);
                }
                if size > self.max as u64 {
                    return Err(self.too_large(&size.to_string()));
                }
                self.reader.read_to_end(out).map_err(Streamed::Io)?;
            }
            Split::Line => loop {
                let chunk = self.reader.fill_buf().map_err(Streamed::Io)?;
                if chunk.is_empty() {
                    if out.iter().all(u8::is_ascii_whitespace) {
                        out.clear();
                        return Ok(false);
                    }
                    break;
                }
                let (take, ends) = match memchr::memchr(b'\n', chunk) {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                if out.len() + take > self.max {
                    return Err(self.too_large(&format!("more than {}", self.max)));
                }
                out.extend_from_slice(&chunk[..take]);
                self.reader.consume(take);
                if ends {
                    if out.iter().all(u8::is_ascii_whitespace) {
                        out.clear();
                        continue;
                    }
                    break;
                }
            },
            Split::RecordIo => {
                // The framing counts: a record's frame must fit in a payload.
                let max_record = self.max.saturating_sub(8);
                let mut frames = recordio::FrameReader::new(&mut self.reader, max_record);
                let mut record = Vec::new();
                let read = frames.next_into(&mut record).map_err(|m| {
                    if m.contains("longer than") {
                        self.too_large(&format!("more than {}", self.max))
                    } else {
                        Streamed::Client(format!("record {}: {m}", self.count + 1))
                    }
                });
                if !read? {
                    return Ok(false);
                }
                recordio::write_frame(&record, out);
            }
        }
        self.count += 1;
        Ok(true)
    }
}

/// Records packed into request bodies: under `MultiRecord` as many whole records as fit in
/// `max` bytes (batches never cross objects), under `SingleRecord` one record each.
struct Payloads {
    records: Records,
    single: bool,
    max: usize,
    /// A record read that did not fit in the previous payload (empty: none).
    carried: Vec<u8>,
}

impl Payloads {
    fn new(records: Records, single: bool) -> Self {
        let max = records.max;
        Self { records, single, max, carried: Vec::new() }
    }

    fn next_payload(&mut self) -> Result<Option<Vec<u8>>, Streamed> {
        // Records are never empty: an empty `carried` holds no record.
        if self.carried.is_empty() && !self.records.next_into(&mut self.carried)? {
            return Ok(None);
        }
        if self.single {
            return Ok(Some(std::mem::take(&mut self.carried)));
        }
        // One allocation of the bound, never grown (growing by doubling held twice the bytes).
        let mut payload = Vec::with_capacity(self.max);
        payload.extend_from_slice(&self.carried);
        while self.records.next_into(&mut self.carried)? {
            if payload.len() + self.carried.len() > self.max {
                return Ok(Some(payload));
            }
            payload.extend_from_slice(&self.carried);
        }
        Ok(Some(payload))
    }
}

fn invoke(
    agent: &ureq::Agent,
    port: u16,
    body: &[u8],
    content_type: Option<&str>,
    accept: Option<&str>,
) -> Result<(Option<String>, Vec<u8>), String> {
    let mut request = agent.post(format!("http://127.0.0.1:{port}/invocations"));
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    if let Some(a) = accept {
        request = request.header("Accept", a);
    }
    let mut response = request.send(body).map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| format!("reading the response: {e}"))?;
    match status.as_u16() {
        200 => Ok((content_type, bytes)),
        // A payload with nothing to predict (blank lines only, under SplitType None).
        204 => Ok((content_type, Vec::new())),
        _ => Err(format!("the model server answered {status}: {}", String::from_utf8_lossy(&bytes).trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payloads `data` gives as one object.
    fn payloads(data: &[u8], split: &str, settings: &Settings) -> Result<Vec<Vec<u8>>, String> {
        let file = tempfile::tempfile().unwrap();
        (&file).write_all(data).unwrap();
        std::io::Seek::rewind(&mut &file).unwrap();
        let records = Records::new(file, split, settings.max_payload_bytes).unwrap();
        let mut payloads = Payloads::new(records, settings.strategy == "SingleRecord");
        let mut out = Vec::new();
        loop {
            match payloads.next_payload() {
                Ok(Some(p)) => out.push(p),
                Ok(None) => return Ok(out),
                Err(Streamed::Client(m)) => return Err(m),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    fn settings(strategy: &str, bytes: usize) -> Settings {
        Settings { strategy: strategy.into(), max_payload_bytes: bytes, concurrency: 1 }
    }

    #[test]
    fn lines_are_packed_within_the_payload_limit() {
        let data = b"1,2\n3,4\n\n5,6";
        assert_eq!(payloads(data, "Line", &settings("MultiRecord", 1 << 20)).unwrap(), [b"1,2\n3,4\n5,6"]);
        assert_eq!(payloads(data, "Line", &settings("MultiRecord", 8)).unwrap(), [&b"1,2\n3,4\n"[..], b"5,6"]);
        assert_eq!(payloads(data, "Line", &settings("SingleRecord", 1 << 20)).unwrap().len(), 3);
        assert_eq!(payloads(data, "None", &settings("MultiRecord", 1 << 20)).unwrap(), [&data[..]]);
        assert!(payloads(b"1\n123456789\n", "Line", &settings("MultiRecord", 4)).unwrap_err().contains("record 2"));
        let whole = payloads(&data[..], "None", &settings("MultiRecord", 8)).unwrap_err();
        assert!(whole.contains("the object (one record, SplitType None) is 12 bytes"), "{whole}");
        assert!(payloads(b"", "None", &settings("MultiRecord", 8)).unwrap().is_empty());
        assert!(payloads(b" \n\n", "Line", &settings("MultiRecord", 8)).unwrap().is_empty());
    }

    #[test]
    fn recordio_records_are_packed_whole() {
        let mut data = Vec::new();
        for payload in [&b"abc"[..], b"defgh", b"ij"] {
            recordio::write_frame(payload, &mut data);
        }
        // Frames of 12, 16 and 12 bytes.
        let packed = payloads(&data, "RecordIO", &settings("MultiRecord", 28)).unwrap();
        assert_eq!(packed, [&data[..28], &data[28..]]);
        assert_eq!(payloads(&data, "RecordIO", &settings("SingleRecord", 28)).unwrap().len(), 3);
        let err = payloads(&data, "RecordIO", &settings("MultiRecord", 12)).unwrap_err();
        assert!(err.contains("record 2") && err.contains("above MaxPayloadInMB"), "{err}");
        let err = payloads(b"not recordio", "RecordIO", &settings("MultiRecord", 28)).unwrap_err();
        assert!(err.contains("record 1: bad RecordIO magic"), "{err}");
    }

    #[test]
    fn the_payload_limit_bounds_the_requests_in_flight() {
        let merged = merged_settings(None, Some(20), None, &serde_json::json!({"MaxConcurrentTransforms": 16}));
        assert_eq!((merged.max_payload_bytes, merged.concurrency), (20 << 20, 5));
        let merged = merged_settings(None, None, None, &serde_json::json!({"MaxPayloadInMB": 5000}));
        assert_eq!(merged.max_payload_bytes, 100 << 20);
        let args = serde_json::json!({"MaxPayloadInMB": 30, "MaxConcurrentTransforms": 4});
        let err = parse_request(&args).err().unwrap().message;
        assert!(err.contains("must be at most 100. Given: 30 x 4"), "{err}");
        let args = serde_json::json!({"DataProcessing": {"JoinSource": "Input"}});
        assert!(parse_request(&args).err().unwrap().message.contains("DataProcessing.JoinSource `Input`"));
    }

    /// Responses are written in payload order whatever order they come back in, and the
    /// reader never runs more than the window ahead of the writer, even while the workers are
    /// free.
    #[test]
    fn responses_are_written_in_order_within_the_window() {
        let data: String = (0..200).map(|i| format!("{i}\n")).collect();
        let file = tempfile::tempfile().unwrap();
        (&file).write_all(data.as_bytes()).unwrap();
        std::io::Seek::rewind(&mut &file).unwrap();
        let payloads = Payloads::new(Records::new(file, "Line", 8).unwrap(), false);
        let (in_flight, most) = (std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0));
        let (started, written) = (std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0));
        let ahead = std::sync::atomic::AtomicUsize::new(0);
        let invoke = |body: &[u8]| {
            // Payloads are taken in order: the n-th started is payload n.
            let n = started.fetch_add(1, Ordering::SeqCst);
            ahead.fetch_max(n - written.load(Ordering::SeqCst), Ordering::SeqCst);
            most.fetch_max(in_flight.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            // The first payload answers last: the others' responses wait for it, and only
            // the window stops the reader (the workers would take more).
            std::thread::sleep(Duration::from_millis(if n == 0 { 60 } else { 1 }));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(body.to_vec())
        };
        let mut out = Vec::new();
        pipeline(payloads, 3, &invoke, &|| false, |body| {
            out.extend_from_slice(body);
            written.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), data);
        assert_eq!(most.load(Ordering::SeqCst), 3, "three requests in flight at most");
        // The window is twice the requests in flight: payload n is read once n - 6 is written.
        assert!(ahead.load(Ordering::SeqCst) < 6, "{} payloads ahead of the writer", ahead.load(Ordering::SeqCst));
    }

    #[test]
    fn a_refused_payload_stops_the_object() {
        let file = tempfile::tempfile().unwrap();
        (&file).write_all(b"1\n2\n3\n4\n5\n").unwrap();
        std::io::Seek::rewind(&mut &file).unwrap();
        let payloads = Payloads::new(Records::new(file, "Line", 2).unwrap(), false);
        let invoke = |body: &[u8]| if body == b"3\n" { Err("answered 400".to_string()) } else { Ok(body.to_vec()) };
        let mut out = Vec::new();
        let err = pipeline(payloads, 2, &invoke, &|| false, |body| {
            out.extend_from_slice(body);
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(&err, Streamed::Client(m) if m == "payload 3: answered 400"), "{err:?}");
        assert_eq!(out, b"1\n2\n", "only the responses before the refused payload");
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

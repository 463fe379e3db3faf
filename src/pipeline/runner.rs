//! `sagestep run`: executes a definition on one machine. Steps run in dependency order,
//! independent ones in parallel; Condition steps choose a branch; CacheConfig, RetryPolicies
//! and Fail behave as on SageMaker. Every execution leaves a record in the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::clock;
use super::definition::{Definition, ParameterType, Step, StepType};
use super::engine::Engine;
use super::expr::{self, Reference, Scope};
use super::jobs::{FailureKind, JobFailure, Jobs, job_name, text};
use super::registry::{Registry, arn};
use super::tuning::{Strategy, Tuner, parse_ranges};
use crate::storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("parameter `{name}`: {message}")]
    Parameter { name: String, message: String },
    #[error("the definition is not valid:\n{0}")]
    Invalid(String),
    #[error("{0}")]
    Setup(String),
}

pub struct RunConfig {
    pub pipeline_name: String,
    pub parameters: Vec<(String, String)>,
    pub use_cache: bool,
    pub seed: u64,
    pub work_dir: Option<std::path::PathBuf>,
    pub keep_work: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
}

/// Step and execution statuses, as ListPipelineExecutionSteps reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    Executing,
    Succeeded,
    Failed,
    Stopped,
    /// In a Condition branch that was not taken, or after a failure upstream.
    NotExecuted,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: Status,
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration_seconds: Option<f64>,
    pub attempts: u32,
    /// The execution whose result a cache hit reused.
    pub cache_hit_from: Option<String>,
    pub properties: Value,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutionRecord {
    pub pipeline_name: String,
    pub execution_id: String,
    pub execution_arn: String,
    pub status: Status,
    pub start: String,
    pub end: Option<String>,
    pub duration_seconds: Option<f64>,
    pub parameters: BTreeMap<String, Value>,
    pub engine: String,
    pub store: String,
    pub failure_reason: Option<String>,
    pub steps: Vec<StepRecord>,
}

/// What the run ended with.
pub struct Outcome {
    pub record: ExecutionRecord,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.record.status == Status::Succeeded
    }
}

/// The steps `step` needs before it can run: those it reads (`Get`, `JsonGet`), those it
/// names in DependsOn, and the Condition whose branch holds it.
pub fn dependencies(step: &Step) -> BTreeSet<String> {
    let mut needs: BTreeSet<String> = step.depends_on.iter().cloned().collect();
    if let Some(branch) = &step.branch {
        needs.insert(branch.condition.clone());
    }
    expr::visit_gets(&step.arguments, "", &mut |get, _| {
        if let Ok(Reference::Property { step: target, .. } | Reference::PropertyFile { step: target, .. }) =
            expr::parse_reference(get)
        {
            needs.insert(target);
        }
    });
    needs.remove(&step.name);
    needs
}

/// Parameters typed per declaration: `--param` values (strings, as StartPipelineExecution
/// takes them) over defaults.
pub fn resolve_parameters(
    definition: &Definition,
    given: &[(String, String)],
) -> Result<BTreeMap<String, Value>, RunError> {
    let mut values = BTreeMap::new();
    for (name, _) in given {
        if definition.parameter(name).is_none() {
            let known: Vec<&str> = definition.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(RunError::Parameter {
                name: name.clone(),
                message: format!("the pipeline declares no such parameter (it has {})", known.join(", ")),
            });
        }
    }
    for parameter in &definition.parameters {
        let error = |message: String| RunError::Parameter { name: parameter.name.clone(), message };
        let value = match given.iter().rev().find(|(n, _)| n == &parameter.name) {
            Some((_, text)) => match parameter.kind {
                ParameterType::String => json!(text),
                ParameterType::Integer => {
                    json!(text.trim().parse::<i64>().map_err(|_| error(format!("`{text}` is not an Integer")))?)
                }
                ParameterType::Float => {
                    let v = text
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| error(format!("`{text}` is not a Float")))?;
                    json!(v)
                }
                ParameterType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
                    "true" => json!(true),
                    "false" => json!(false),
                    _ => return Err(error(format!("`{text}` is not a Boolean (true or false)"))),
                },
            },
            None => parameter.default.clone().ok_or_else(|| {
                error(format!("it has no default; pass --param {}=<{:?}>", parameter.name, parameter.kind))
            })?,
        };
        if let (Some(allowed), Some(text)) = (&parameter.enum_values, value.as_str())
            && !allowed.iter().any(|a| a == text)
        {
            return Err(error(format!("`{text}` is not one of {allowed:?}")));
        }
        values.insert(parameter.name.clone(), value);
    }
    Ok(values)
}

fn new_execution_id() -> String {
    use rand::{RngExt, SeedableRng};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(nanos ^ (u64::from(std::process::id()) << 32));
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// The state steps share while an execution runs.
struct Shared {
    definition: Definition,
    parameters: BTreeMap<String, Value>,
    execution_id: String,
    pipeline_name: String,
    start: f64,
    properties: Mutex<HashMap<String, Value>>,
    /// CreateModel requests by model name (Transform steps look them up).
    models: Mutex<HashMap<String, Value>>,
    record: Mutex<ExecutionRecord>,
    /// Cache keys of the steps that have one, for their dependents' keys.
    cache_keys: Mutex<HashMap<String, String>>,
    storage: Storage,
    progress: bool,
}

impl Shared {
    fn save_record(&self) {
        // Written under the lock: a snapshot never overwrites a newer one.
        let record = self.record.lock().expect("lock");
        let bytes = serde_json::to_vec_pretty(&*record).expect("JSON");
        if let Err(err) = self.storage.state_write(&format!("executions/{}.json", self.execution_id), &bytes) {
            tracing::warn!("could not save the execution record: {err}");
        }
    }

    fn update_step(&self, name: &str, change: impl FnOnce(&mut StepRecord)) {
        {
            let mut record = self.record.lock().expect("lock");
            if let Some(step) = record.steps.iter_mut().find(|s| s.name == name) {
                change(step);
            }
        }
        self.save_record();
    }

    fn say(&self, line: &str) {
        if self.progress {
            eprintln!("[{:>7.2}s] {line}", clock::now_secs() - self.start);
        }
    }
}

struct StepScope<'a> {
    shared: &'a Shared,
}

impl Scope for StepScope<'_> {
    fn get(&self, reference: &Reference) -> Result<Value, String> {
        let shared = self.shared;
        match reference {
            Reference::Parameter(name) => {
                shared.parameters.get(name).cloned().ok_or_else(|| format!("no parameter `{name}`"))
            }
            Reference::Execution(var) => Ok(match var.as_str() {
                "PipelineExecutionId" => json!(shared.execution_id),
                "PipelineExecutionArn" => json!(execution_arn(&shared.pipeline_name, &shared.execution_id)),
                "PipelineName" => json!(shared.pipeline_name),
                "PipelineArn" => json!(arn("pipeline", &shared.pipeline_name)),
                "StartDateTime" => json!(clock::rfc3339(shared.start)),
                "CurrentDateTime" => json!(clock::rfc3339(clock::now_secs())),
                other => return Err(format!("unknown execution variable `{other}`")),
            }),
            Reference::ExperimentConfig(var) => {
                let config = shared.definition.document.get("PipelineExperimentConfig").cloned().unwrap_or(Value::Null);
                match config.get(var) {
                    Some(v) => expr::resolve(v, self, "$.PipelineExperimentConfig").map_err(|e| e.to_string()),
                    None if var == "ExperimentName" => Ok(json!(shared.pipeline_name)),
                    None => Ok(json!(shared.execution_id)),
                }
            }
            Reference::Property { step, path } => {
                let properties = shared.properties.lock().expect("lock");
                let props =
                    properties.get(step).ok_or_else(|| format!("step `{step}` has not run in this execution"))?;
                walk_property(props, path).cloned().ok_or_else(|| {
                    let shown: String = path.iter().map(ToString::to_string).collect();
                    format!("step `{step}` has no property `{}`", shown.trim_start_matches('.'))
                })
            }
            Reference::PropertyFile { step, file } => Ok(json!({"PropertyFile": format!("{step}.{file}")})),
        }
    }

    fn property_file(&self, step: &str, file: &str) -> Result<Value, String> {
        let shared = self.shared;
        let definition = shared.definition.step(step).ok_or_else(|| format!("no step `{step}`"))?;
        let declared = definition
            .property_files
            .iter()
            .find(|f| f.name == file)
            .ok_or_else(|| format!("step `{step}` declares no property file `{file}`"))?;
        let uri = {
            let properties = shared.properties.lock().expect("lock");
            let props = properties.get(step).ok_or_else(|| format!("step `{step}` has not run"))?;
            let outputs =
                props.pointer("/ProcessingOutputConfig/Outputs").and_then(Value::as_array).cloned().unwrap_or_default();
            let output = outputs
                .iter()
                .find(|o| text(o, "/OutputName") == Some(declared.output_name.as_str()))
                .ok_or_else(|| format!("step `{step}` has no output `{}`", declared.output_name))?;
            let base =
                text(output, "/S3Output/S3Uri").ok_or("the output has no S3Uri")?.trim_end_matches('/').to_string();
            format!("{base}/{}", declared.file_path.trim_start_matches('/'))
        };
        let bytes = shared.storage.read(&uri).map_err(|e| format!("property file {file}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("property file {file} at {uri} is not JSON: {e}"))
    }
}

/// The scope a cache key is computed in: what differs between executions by design (the
/// execution id and times, and upstream results, which are named by their own cache keys)
/// is replaced by stable stand-ins, so a rerun with unchanged inputs finds the same key.
struct KeyScope<'a> {
    inner: StepScope<'a>,
}

impl Scope for KeyScope<'_> {
    fn get(&self, reference: &Reference) -> Result<Value, String> {
        match reference {
            Reference::Execution(var) if var != "PipelineName" && var != "PipelineArn" => {
                Ok(json!(format!("{{Execution.{var}}}")))
            }
            Reference::Property { step, path } => {
                let keys = self.inner.shared.cache_keys.lock().expect("lock");
                match keys.get(step) {
                    Some(key) => {
                        Ok(json!(format!("{{{key}}}{}", path.iter().map(ToString::to_string).collect::<String>())))
                    }
                    None => {
                        drop(keys);
                        self.inner.get(reference)
                    }
                }
            }
            other => self.inner.get(other),
        }
    }

    fn property_file(&self, step: &str, file: &str) -> Result<Value, String> {
        self.inner.property_file(step, file)
    }
}

/// Like `expr::walk`, but a quoted key also finds the list entry of that name, as
/// `Outputs['train']` or `FinalMetricDataList['validation:rmse']` do in SageMaker.
fn walk_property<'v>(mut value: &'v Value, path: &[expr::Segment]) -> Option<&'v Value> {
    for segment in path {
        value = match (segment, value) {
            (expr::Segment::Key(key), Value::Array(items)) => items.iter().find(|item| {
                ["OutputName", "MetricName", "ChannelName", "Name", "InputName"]
                    .iter()
                    .any(|field| item.get(field).and_then(Value::as_str) == Some(key))
            })?,
            (expr::Segment::Field(name) | expr::Segment::Key(name), v) => v.get(name)?,
            (expr::Segment::Index(i), v) => v.get(*i)?,
        };
    }
    Some(value)
}

fn execution_arn(pipeline: &str, id: &str) -> String {
    format!("{}/execution/{id}", arn("pipeline", pipeline))
}

enum StepResult {
    Done { properties: Value, cache_hit_from: Option<String> },
    Failed(JobFailure),
}

/// Run an execution to its end.
pub fn run(definition: Definition, storage: Storage, engine: Engine, config: RunConfig) -> Result<Outcome, RunError> {
    let issues = super::validate::validate(&definition);
    if !issues.is_empty() {
        return Err(RunError::Invalid(issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n")));
    }
    for step in &definition.steps {
        if let StepType::Other(kind) = &step.kind {
            return Err(RunError::Setup(format!("step `{}`: the local runner does not run {kind} steps", step.name)));
        }
    }
    let parameters = resolve_parameters(&definition, &config.parameters)?;
    let execution_id = new_execution_id();
    let start = clock::now_secs();
    let work = config.work_dir.clone().unwrap_or_else(std::env::temp_dir).join(format!("sagestep-{execution_id}"));
    std::fs::create_dir_all(&work)
        .map_err(|e| RunError::Setup(format!("creating the work directory {}: {e}", work.display())))?;
    let record = ExecutionRecord {
        pipeline_name: config.pipeline_name.clone(),
        execution_id: execution_id.clone(),
        execution_arn: execution_arn(&config.pipeline_name, &execution_id),
        status: Status::Executing,
        start: clock::rfc3339(start),
        end: None,
        duration_seconds: None,
        parameters: parameters.clone(),
        engine: format!("{:?}", engine.kind).to_lowercase(),
        store: storage.describe(),
        failure_reason: None,
        steps: definition
            .steps
            .iter()
            .map(|s| StepRecord {
                name: s.name.clone(),
                kind: s.kind.as_str().to_string(),
                status: Status::NotExecuted,
                start: None,
                end: None,
                duration_seconds: None,
                attempts: 0,
                cache_hit_from: None,
                properties: Value::Null,
                error: None,
            })
            .collect(),
    };
    let shared = Shared {
        definition,
        parameters,
        execution_id: execution_id.clone(),
        pipeline_name: config.pipeline_name.clone(),
        start,
        properties: Mutex::new(HashMap::new()),
        models: Mutex::new(HashMap::new()),
        record: Mutex::new(record),
        cache_keys: Mutex::new(HashMap::new()),
        storage,
        progress: config.progress,
    };
    shared.save_record();
    shared.say(&format!(
        "execution {execution_id} of pipeline {} started ({})",
        config.pipeline_name,
        shared.storage.describe()
    ));
    let jobs = Jobs {
        storage: &shared.storage,
        engine: &engine,
        work: work.clone(),
        log_prefix: format!("executions/{execution_id}/logs/"),
    };
    let failure_reason = schedule(&shared, &jobs, &config);
    if engine.interrupted() {
        engine.stop_all();
    }
    let end = clock::now_secs();
    {
        let mut record = shared.record.lock().expect("lock");
        record.status = if engine.interrupted() {
            Status::Stopped
        } else if failure_reason.is_some() {
            Status::Failed
        } else {
            Status::Succeeded
        };
        record.failure_reason = failure_reason;
        record.end = Some(clock::rfc3339(end));
        record.duration_seconds = Some(round3(end - start));
    }
    shared.save_record();
    if !config.keep_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    let record = shared.record.lock().expect("lock").clone();
    Ok(Outcome { record })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Launch steps as they become ready; returns the execution's failure reason, if any.
fn schedule(shared: &Shared, jobs: &Jobs<'_>, config: &RunConfig) -> Option<String> {
    let steps = &shared.definition.steps;
    let needs: HashMap<&str, BTreeSet<String>> = steps.iter().map(|s| (s.name.as_str(), dependencies(s))).collect();
    let mut status: HashMap<String, Option<Status>> = steps.iter().map(|s| (s.name.clone(), None)).collect();
    let mut failure: Option<String> = None;
    let (done_tx, done_rx) = mpsc::channel::<(String, StepResult)>();
    let stop_launching = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut running = 0usize;
        loop {
            if jobs.engine.interrupted() {
                stop_launching.store(true, Ordering::SeqCst);
            }
            // Settle what can be settled, launch what is ready.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for step in steps {
                    if status[&step.name].is_some() {
                        continue;
                    }
                    let deps = &needs[step.name.as_str()];
                    let dep_states: Vec<Option<Status>> =
                        deps.iter().map(|d| status.get(d).copied().flatten()).collect();
                    let branch_open = match &step.branch {
                        None => Some(true),
                        Some(branch) => match status.get(&branch.condition).copied().flatten() {
                            Some(Status::Succeeded) => {
                                let outcome = shared
                                    .properties
                                    .lock()
                                    .expect("lock")
                                    .get(&branch.condition)
                                    .and_then(|p| p["Outcome"].as_bool());
                                Some(outcome == Some(branch.if_branch))
                            }
                            Some(Status::Executing) | None => None,
                            Some(_) => Some(false),
                        },
                    };
                    let blocked = dep_states
                        .iter()
                        .any(|s| matches!(s, Some(Status::Failed | Status::Stopped | Status::NotExecuted)));
                    if branch_open == Some(false)
                        || blocked
                        || (stop_launching.load(Ordering::SeqCst) && dep_states.iter().all(Option::is_some))
                    {
                        status.insert(step.name.clone(), Some(Status::NotExecuted));
                        progressed = true;
                        continue;
                    }
                    if branch_open == Some(true)
                        && dep_states.iter().all(|s| *s == Some(Status::Succeeded))
                        && failure.is_none()
                    {
                        status.insert(step.name.clone(), Some(Status::Executing));
                        running += 1;
                        progressed = true;
                        let tx = done_tx.clone();
                        scope.spawn(move || {
                            let result = run_step(shared, jobs, step, config);
                            let _ = tx.send((step.name.clone(), result));
                        });
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((name, result)) = done_rx.recv_timeout(Duration::from_millis(100)) else { continue };
            running -= 1;
            match result {
                StepResult::Done { properties, .. } => {
                    shared.properties.lock().expect("lock").insert(name.clone(), properties);
                    status.insert(name, Some(Status::Succeeded));
                }
                StepResult::Failed(job_failure) => {
                    let interrupted = job_failure.kind == FailureKind::Interrupted;
                    status.insert(name.clone(), Some(if interrupted { Status::Stopped } else { Status::Failed }));
                    if failure.is_none() {
                        failure = Some(if interrupted {
                            "the execution was interrupted".to_string()
                        } else {
                            format!("step {name} failed: {}", job_failure.message)
                        });
                    }
                    // SageMaker lets running steps finish but starts no new ones.
                    stop_launching.store(true, Ordering::SeqCst);
                }
            }
        }
    });
    failure
}

fn run_step(shared: &Shared, jobs: &Jobs<'_>, step: &Step, config: &RunConfig) -> StepResult {
    let started = clock::now_secs();
    let instant = Instant::now();
    shared.update_step(&step.name, |r| {
        r.status = Status::Executing;
        r.start = Some(clock::rfc3339(started));
    });
    shared.say(&format!("{:<24} {:<13} started", step.name, step.kind.as_str()));
    let mut attempts = 0u32;
    let result = loop {
        attempts += 1;
        let result = attempt_step(shared, jobs, step, config);
        let StepResult::Failed(failure) = &result else { break result };
        match retry_delay(step, failure.kind, attempts, instant.elapsed()) {
            Some(delay) if !jobs.engine.interrupted() => {
                shared.say(&format!(
                    "{:<24} attempt {attempts} failed ({}); retrying in {:.1} s",
                    step.name,
                    failure.message,
                    delay.as_secs_f64()
                ));
                let until = Instant::now() + delay;
                while Instant::now() < until && !jobs.engine.interrupted() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            _ => break result,
        }
    };
    let ended = clock::now_secs();
    let (status, error, properties, hit) = match &result {
        StepResult::Done { properties, cache_hit_from } => {
            (Status::Succeeded, None, properties.clone(), cache_hit_from.clone())
        }
        StepResult::Failed(f) if f.kind == FailureKind::Interrupted => {
            (Status::Stopped, Some(f.message.clone()), Value::Null, None)
        }
        StepResult::Failed(f) => (Status::Failed, Some(f.message.clone()), Value::Null, None),
    };
    let shown = match (&status, &hit, &error) {
        (Status::Succeeded, Some(from), _) => format!("Succeeded (cache hit: execution {from})"),
        (Status::Succeeded, None, _) => format!("Succeeded in {:.2} s", ended - started),
        (_, _, Some(message)) => format!("{status:?}: {message}"),
        _ => format!("{status:?}"),
    };
    shared.say(&format!("{:<24} {:<13} {shown}", step.name, step.kind.as_str()));
    shared.update_step(&step.name, |r| {
        r.status = status;
        r.end = Some(clock::rfc3339(ended));
        r.duration_seconds = Some(round3(ended - started));
        r.attempts = attempts;
        r.error = error;
        r.properties = properties;
        r.cache_hit_from = hit;
    });
    result
}

/// The wait before the next attempt, if a retry policy covers this failure.
fn retry_delay(step: &Step, kind: FailureKind, attempts: u32, elapsed: Duration) -> Option<Duration> {
    let retry_type = kind.retry_type()?;
    let policy = step.retry.iter().find(|p| p.exception_types.iter().any(|t| t == retry_type))?;
    let delay = Duration::from_secs_f64(
        (policy.interval_seconds * policy.backoff_rate.powi(attempts as i32 - 1)).clamp(0.0, 3600.0),
    );
    let allowed = match (policy.max_attempts, policy.expire_after_min) {
        (Some(max), _) => attempts < max,
        (None, Some(minutes)) => elapsed + delay < Duration::from_secs(u64::from(minutes) * 60),
        (None, None) => false,
    };
    allowed.then_some(delay)
}

fn attempt_step(shared: &Shared, jobs: &Jobs<'_>, step: &Step, config: &RunConfig) -> StepResult {
    let scope = StepScope { shared };
    let arguments = match expr::resolve(&step.arguments, &scope, &format!("{}.Arguments", step.path)) {
        Ok(args) => args,
        Err(err) => return StepResult::Failed(JobFailure::client(err.to_string())),
    };
    let cacheable = config.use_cache
        && step.cache.as_ref().is_some_and(|c| c.enabled)
        && matches!(step.kind, StepType::Processing | StepType::Training | StepType::Tuning | StepType::Transform);
    let cache_key = cacheable.then(|| cache_key(shared, step, &arguments, jobs.engine.kind)).transpose();
    let cache_key = match cache_key {
        Ok(key) => key,
        Err(failure) => return StepResult::Failed(failure),
    };
    if let Some(key) = &cache_key {
        shared.cache_keys.lock().expect("lock").insert(step.name.clone(), key.clone());
    }
    if let Some(key) = &cache_key
        && let Some((from, properties)) = cache_lookup(shared, step, key)
    {
        return StepResult::Done { properties, cache_hit_from: Some(from) };
    }
    let job = job_name(&["pipelines", &shared.execution_id, &step.name]);
    let result = match &step.kind {
        StepType::Processing => jobs.processing(&job, &arguments),
        StepType::Training => jobs.training(&job, &arguments),
        StepType::Tuning => run_tuning(shared, jobs, step, &arguments, config.seed),
        StepType::Model => create_model(shared, &job, &arguments),
        StepType::RegisterModel => register_model(shared, jobs, step, &arguments),
        StepType::Transform => transform(shared, jobs, &job, &arguments),
        StepType::Condition => evaluate_condition(&arguments),
        StepType::Fail => Err(JobFailure::client(expr::to_text(arguments.get("ErrorMessage").unwrap_or(&Value::Null)))),
        StepType::Other(kind) => Err(JobFailure::client(format!("{kind} steps do not run locally"))),
    };
    match result {
        Ok(properties) => {
            if let Some(key) = &cache_key {
                cache_store(shared, step, key, &properties);
            }
            StepResult::Done { properties, cache_hit_from: None }
        }
        Err(failure) => StepResult::Failed(failure),
    }
}

fn evaluate_condition(arguments: &Value) -> Result<Value, JobFailure> {
    let conditions = arguments.get("Conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let outcome = expr::conditions_hold(&conditions).map_err(JobFailure::client)?;
    Ok(json!({"Outcome": outcome, "EvaluatedConditions": conditions}))
}

fn create_model(shared: &Shared, job: &str, arguments: &Value) -> Result<Value, JobFailure> {
    if arguments.get("PrimaryContainer").is_none() {
        return Err(JobFailure::client(
            "CreateModel: PrimaryContainer is required (multi-container models do not run locally)",
        ));
    }
    let mut described = arguments.clone();
    described["ModelName"] = json!(job);
    described["ModelArn"] = json!(arn("model", job));
    described["CreationTime"] = json!(clock::rfc3339(clock::now_secs()));
    shared.models.lock().expect("lock").insert(job.to_string(), described.clone());
    Ok(described)
}

fn transform(shared: &Shared, jobs: &Jobs<'_>, job: &str, arguments: &Value) -> Result<Value, JobFailure> {
    let model_name = text(arguments, "/ModelName").ok_or_else(|| JobFailure::client("ModelName is required"))?;
    let model = shared.models.lock().expect("lock").get(model_name).cloned().ok_or_else(|| {
        JobFailure::client(format!("model `{model_name}` was not created by a Model step of this execution"))
    })?;
    jobs.transform(job, arguments, &model)
}

fn register_model(shared: &Shared, jobs: &Jobs<'_>, step: &Step, arguments: &Value) -> Result<Value, JobFailure> {
    let group = text(arguments, "/ModelPackageGroupName").ok_or_else(|| {
        JobFailure::client("RegisterModel: ModelPackageGroupName is required (unversioned packages are not kept)")
    })?;
    let mut package = arguments.clone();
    if let Some(containers) = package.pointer_mut("/InferenceSpecification/Containers").and_then(Value::as_array_mut) {
        for container in containers {
            if let Some(image) = container.get("Image").and_then(Value::as_str)
                && let Some(digest) = jobs.engine.image_digest(image)
            {
                container["ImageDigest"] = json!(digest);
            }
        }
    }
    // The metrics are pointers; keep a copy of each report and its digest too.
    let mut reports = serde_json::Map::new();
    if let Some(metrics) = arguments.get("ModelMetrics").and_then(Value::as_object) {
        for (kind, sources) in metrics {
            for (name, source) in sources.as_object().into_iter().flatten() {
                if let Some(uri) = text(source, "/S3Uri") {
                    let bytes = jobs.storage.read(uri).map_err(JobFailure::from)?;
                    let digest = crate::data::files::hex(&Sha256::digest(&bytes));
                    let content = serde_json::from_slice::<Value>(&bytes)
                        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
                    reports.insert(
                        format!("{kind}.{name}"),
                        json!({"S3Uri": uri, "ContentDigest": format!("sha256:{digest}"), "Content": content}),
                    );
                }
            }
        }
    }
    package["ModelMetricsReports"] = Value::Object(reports);
    let jobs_run: Vec<Value> = shared
        .properties
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(name, props)| {
            ["ProcessingJobName", "TrainingJobName", "HyperParameterTuningJobName", "TransformJobName"]
                .iter()
                .find_map(|field| props.get(*field).and_then(Value::as_str))
                .map(|job| json!({"Step": name, "Job": job}))
        })
        .collect();
    package["Lineage"] = json!({
        "PipelineName": shared.pipeline_name,
        "PipelineExecutionId": shared.execution_id,
        "PipelineExecutionArn": execution_arn(&shared.pipeline_name, &shared.execution_id),
        "StepName": step.name,
        "Jobs": jobs_run,
    });
    let registry = Registry::new(jobs.storage);
    registry.register(group, package).map_err(|e| match e {
        super::registry::RegistryError::Store(store) => JobFailure::from(store),
        other => JobFailure::client(other.to_string()),
    })
}

// --- Tuning ----------------------------------------------------------------------------------

struct TrialResult {
    job: String,
    point: Vec<f64>,
    tuned: Vec<(String, String)>,
    outcome: Result<Value, JobFailure>,
    start: f64,
    end: f64,
}

fn run_tuning(
    shared: &Shared,
    jobs: &Jobs<'_>,
    step: &Step,
    arguments: &Value,
    seed: u64,
) -> Result<Value, JobFailure> {
    let config = arguments
        .get("HyperParameterTuningJobConfig")
        .ok_or_else(|| JobFailure::client("HyperParameterTuningJobConfig is required"))?;
    let definition = arguments.get("TrainingJobDefinition").ok_or_else(|| {
        JobFailure::client("TrainingJobDefinition is required (multi-definition tuning does not run locally)")
    })?;
    let strategy = Strategy::parse(text(config, "/Strategy").unwrap_or("Bayesian")).map_err(JobFailure::client)?;
    if let Some(early) = text(config, "/TrainingJobEarlyStoppingType").filter(|t| *t != "Off") {
        return Err(JobFailure::client(format!(
            "TrainingJobEarlyStoppingType `{early}`: the local runner supports Off"
        )));
    }
    let ranges = parse_ranges(config.get("ParameterRanges").unwrap_or(&Value::Null)).map_err(JobFailure::client)?;
    let objective_name = text(config, "/HyperParameterTuningJobObjective/MetricName")
        .ok_or_else(|| JobFailure::client("HyperParameterTuningJobObjective.MetricName is required"))?
        .to_string();
    let maximize = text(config, "/HyperParameterTuningJobObjective/Type") == Some("Maximize");
    let defined = definition
        .pointer("/AlgorithmSpecification/MetricDefinitions")
        .and_then(Value::as_array)
        .is_some_and(|defs| defs.iter().any(|d| text(d, "/Name") == Some(objective_name.as_str())));
    if !defined {
        return Err(JobFailure::client(format!(
            "the objective metric `{objective_name}` has no MetricDefinition in TrainingJobDefinition.AlgorithmSpecification"
        )));
    }
    let static_hp = definition.get("StaticHyperParameters").and_then(Value::as_object).cloned().unwrap_or_default();
    for range in &ranges {
        if static_hp.contains_key(range.name()) {
            return Err(JobFailure::client(format!("hyperparameter `{}` is both static and tuned", range.name())));
        }
    }
    let mut tuner = Tuner::new(ranges, strategy, seed).map_err(JobFailure::client)?;
    let max_jobs =
        config.pointer("/ResourceLimits/MaxNumberOfTrainingJobs").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
    let max_jobs = tuner.capacity().map_or(max_jobs, |c| c.min(max_jobs));
    let parallel =
        config.pointer("/ResourceLimits/MaxParallelTrainingJobs").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
    let tuning_job = job_name(&[&step.name.chars().take(19).collect::<String>(), &shared.execution_id]);
    let tuning_job: String = tuning_job.chars().take(32).collect();

    let results: Mutex<Vec<TrialResult>> = Mutex::new(Vec::new());
    let (tx, rx) = mpsc::channel::<usize>();
    std::thread::scope(|scope| {
        let mut launched = 0usize;
        let mut running = 0usize;
        loop {
            while running < parallel && launched < max_jobs && !jobs.engine.interrupted() {
                let Some((point, tuned)) = tuner.suggest() else { break };
                launched += 1;
                running += 1;
                let suffix = crate::data::files::hex(&Sha256::digest(format!("{}{launched}", shared.execution_id)))
                    [..8]
                    .to_string();
                let job = format!("{tuning_job}-{launched:03}-{suffix}");
                let mut args = definition.clone();
                let fields = args.as_object_mut().expect("an object");
                fields.remove("StaticHyperParameters");
                fields.remove("HyperParameterTuningResourceConfig");
                let mut hyperparameters = static_hp.clone();
                for (name, value) in &tuned {
                    hyperparameters.insert(name.clone(), json!(value));
                }
                fields.insert("HyperParameters".into(), Value::Object(hyperparameters));
                shared.say(&format!(
                    "{:<24} training job {job} ({})",
                    step.name,
                    tuned.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
                ));
                let (results, tx) = (&results, tx.clone());
                scope.spawn(move || {
                    let start = clock::now_secs();
                    let outcome = jobs.training(&job, &args);
                    let mut all = results.lock().expect("lock");
                    all.push(TrialResult { job, point, tuned, outcome, start, end: clock::now_secs() });
                    let _ = tx.send(all.len() - 1);
                });
            }
            if running == 0 {
                break;
            }
            let Ok(index) = rx.recv() else { break };
            running -= 1;
            let all = results.lock().expect("lock");
            let trial = &all[index];
            let objective = trial.outcome.as_ref().ok().and_then(|d| final_metric(d, &objective_name));
            tuner.observe(&trial.point, objective.map(|v| if maximize { -v } else { v }));
            match (&trial.outcome, objective) {
                (Ok(_), Some(v)) => {
                    shared.say(&format!("{:<24} training job {} done: {objective_name} = {v}", step.name, trial.job))
                }
                (Ok(_), None) => shared.say(&format!(
                    "{:<24} training job {} done, but its log held no {objective_name}",
                    step.name, trial.job
                )),
                (Err(f), _) => {
                    shared.say(&format!("{:<24} training job {} failed: {}", step.name, trial.job, f.message))
                }
            }
        }
    });
    let trials = results.into_inner().expect("lock");
    if jobs.engine.interrupted() {
        return Err(JobFailure { kind: FailureKind::Interrupted, message: "interrupted".into() });
    }
    let mut summaries: Vec<(Option<f64>, Value)> = trials
        .iter()
        .map(|t| {
            let objective = t.outcome.as_ref().ok().and_then(|d| final_metric(d, &objective_name));
            let mut summary = json!({
                "TrainingJobName": t.job,
                "TrainingJobArn": arn("training-job", &t.job),
                "TuningJobName": tuning_job,
                "TrainingStartTime": clock::rfc3339(t.start),
                "TrainingEndTime": clock::rfc3339(t.end),
                "TrainingJobStatus": if t.outcome.is_ok() { "Completed" } else { "Failed" },
                "TunedHyperParameters": t.tuned.iter().cloned().collect::<BTreeMap<_, _>>(),
                "ObjectiveStatus": if objective.is_some() { "Succeeded" } else { "Failed" },
            });
            if let Some(value) = objective {
                summary["FinalHyperParameterTuningJobObjectiveMetric"] =
                    json!({"Type": if maximize { "Maximize" } else { "Minimize" }, "MetricName": objective_name, "Value": value});
            }
            if let Err(f) = &t.outcome {
                summary["FailureReason"] = json!(f.message);
            }
            (objective, summary)
        })
        .collect();
    // Best first, as ListTrainingJobsForHyperParameterTuningJob sorted by the objective.
    summaries.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) if maximize => b.total_cmp(a),
        (Some(a), Some(b)) => a.total_cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let Some((Some(_), best)) = summaries.first().cloned() else {
        let reasons: Vec<String> = trials
            .iter()
            .filter_map(|t| t.outcome.as_ref().err().map(|f| format!("{}: {}", t.job, f.message)))
            .collect();
        let kind = trials.iter().find_map(|t| t.outcome.as_ref().err().map(|f| f.kind)).unwrap_or(FailureKind::Client);
        return Err(JobFailure {
            kind,
            message: if reasons.is_empty() {
                format!("no training job reported the objective metric {objective_name}")
            } else {
                format!("no training job succeeded: {}", reasons.join("; "))
            },
        });
    };
    let completed = trials.iter().filter(|t| t.outcome.is_ok()).count();
    let mut described = arguments.clone();
    let fields = described.as_object_mut().expect("an object");
    fields.insert("HyperParameterTuningJobName".into(), json!(tuning_job));
    fields.insert("HyperParameterTuningJobArn".into(), json!(arn("hyper-parameter-tuning-job", &tuning_job)));
    fields.insert("HyperParameterTuningJobStatus".into(), json!("Completed"));
    fields.insert("BestTrainingJob".into(), best);
    fields.insert("TrainingJobSummaries".into(), json!(summaries.into_iter().map(|(_, s)| s).collect::<Vec<_>>()));
    fields.insert(
        "TrainingJobStatusCounters".into(),
        json!({"Completed": completed, "InProgress": 0, "RetryableError": 0, "NonRetryableError": trials.len() - completed, "Stopped": 0}),
    );
    Ok(described)
}

fn final_metric(described: &Value, name: &str) -> Option<f64> {
    described
        .get("FinalMetricDataList")?
        .as_array()?
        .iter()
        .find(|m| text(m, "/MetricName") == Some(name))?
        .get("Value")?
        .as_f64()
}

// --- Cache -----------------------------------------------------------------------------------

/// A step's cache key: its type, the engine, and its arguments resolved in `KeyScope` (so per-execution
/// output prefixes do not defeat the cache), and the identity (size, ETag) of every input
/// object, so changed data is never served from the cache.
fn cache_key(
    shared: &Shared,
    step: &Step,
    arguments: &Value,
    engine: super::engine::EngineKind,
) -> Result<String, JobFailure> {
    let scope = KeyScope { inner: StepScope { shared } };
    let masked =
        expr::resolve(&step.arguments, &scope, &step.path).map_err(|e| JobFailure::client(e.to_string()))?.to_string();
    let mut hasher = Sha256::new();
    hasher.update(step.kind.as_str());
    // A run with the images must run the images, not reuse what the binaries made.
    hasher.update(format!("\0{engine:?}\0"));
    hasher.update(masked.as_bytes());
    let mut inputs = Vec::new();
    collect_input_uris(&step.kind, arguments, &mut inputs);
    for uri in inputs {
        hasher.update([0]);
        hasher.update(uri.as_bytes());
        for object in shared.storage.list(&uri)? {
            hasher.update(format!("\n{}\t{}\t{}", object.relative, object.size, object.etag).as_bytes());
        }
    }
    Ok(crate::data::files::hex(&hasher.finalize()))
}

fn collect_input_uris(kind: &StepType, arguments: &Value, out: &mut Vec<String>) {
    let mut push = |v: Option<&str>| {
        if let Some(uri) = v {
            out.push(uri.to_string());
        }
    };
    match kind {
        StepType::Processing => {
            for input in arguments.get("ProcessingInputs").and_then(Value::as_array).into_iter().flatten() {
                push(text(input, "/S3Input/S3Uri"));
            }
        }
        StepType::Training | StepType::Tuning => {
            let channels = arguments
                .get("InputDataConfig")
                .or_else(|| arguments.pointer("/TrainingJobDefinition/InputDataConfig"));
            for channel in channels.and_then(Value::as_array).into_iter().flatten() {
                push(text(channel, "/DataSource/S3DataSource/S3Uri"));
            }
        }
        StepType::Transform => push(text(arguments, "/TransformInput/DataSource/S3DataSource/S3Uri")),
        _ => {}
    }
}

fn cache_entry_key(shared: &Shared, step: &Step, key: &str) -> String {
    format!("cache/{}/{}/{key}.json", shared.pipeline_name, step.name)
}

fn cache_lookup(shared: &Shared, step: &Step, key: &str) -> Option<(String, Value)> {
    let bytes = shared.storage.state_read(&cache_entry_key(shared, step, key)).ok()??;
    let entry: Value = serde_json::from_slice(&bytes).ok()?;
    let created = entry.get("created")?.as_f64()?;
    let expire = step.cache.as_ref()?.expire_after;
    if let Some(expire) = expire
        && clock::now_secs() - created > expire.as_secs_f64()
    {
        return None;
    }
    let properties = entry.get("properties")?.clone();
    // A cached result is only good while what it produced is still stored.
    for uri in produced_uris(&step.kind, &properties) {
        if shared.storage.list(&uri).map(|found| found.is_empty()).unwrap_or(true) {
            return None;
        }
    }
    Some((entry.get("execution_id")?.as_str()?.to_string(), properties))
}

fn produced_uris(kind: &StepType, properties: &Value) -> Vec<String> {
    match kind {
        StepType::Processing => properties
            .pointer("/ProcessingOutputConfig/Outputs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| text(o, "/S3Output/S3Uri").map(str::to_string))
            .collect(),
        StepType::Training => {
            text(properties, "/ModelArtifacts/S3ModelArtifacts").map(str::to_string).into_iter().collect()
        }
        StepType::Tuning => {
            match (
                text(properties, "/TrainingJobDefinition/OutputDataConfig/S3OutputPath"),
                text(properties, "/BestTrainingJob/TrainingJobName"),
            ) {
                (Some(base), Some(job)) => vec![format!("{}/{job}/output/model.tar.gz", base.trim_end_matches('/'))],
                _ => Vec::new(),
            }
        }
        StepType::Transform => {
            text(properties, "/TransformOutput/S3OutputPath").map(str::to_string).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

fn cache_store(shared: &Shared, step: &Step, key: &str, properties: &Value) {
    let entry = json!({"execution_id": shared.execution_id, "created": clock::now_secs(), "properties": properties});
    if let Err(err) =
        shared.storage.state_write(&cache_entry_key(shared, step, key), &serde_json::to_vec(&entry).expect("JSON"))
    {
        tracing::warn!("could not record step {} in the cache: {err}", step.name);
    }
}

/// Every recorded execution, newest first.
pub fn list_executions(storage: &Storage) -> Result<Vec<Value>, crate::storage::StoreError> {
    let mut records = Vec::new();
    for key in storage.state_list("executions/")? {
        if key.matches('/').count() != 1 || !key.ends_with(".json") {
            continue;
        }
        if let Some(bytes) = storage.state_read(&key)?
            && let Ok(record) = serde_json::from_slice::<Value>(&bytes)
        {
            records.push(record);
        }
    }
    records.sort_by(|a, b| b["start"].as_str().cmp(&a["start"].as_str()));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_typed_by_declaration() {
        let text = r#"{"Version":"2020-12-01","Parameters":[
            {"Name":"T","Type":"Float","DefaultValue":46.0},{"Name":"N","Type":"Integer","DefaultValue":1},
            {"Name":"S","Type":"String","EnumValues":["a","b"]},{"Name":"B","Type":"Boolean","DefaultValue":false}],"Steps":[]}"#;
        let d = Definition::parse("p", text).unwrap();
        let given =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let values = resolve_parameters(&d, &given(&[("T", "0.5"), ("S", "b"), ("B", "True")])).unwrap();
        assert_eq!(
            (values["T"].clone(), values["N"].clone(), values["B"].clone()),
            (json!(0.5), json!(1), json!(true))
        );
        let err = |pairs: &[(&str, &str)]| resolve_parameters(&d, &given(pairs)).err().unwrap().to_string();
        assert!(err(&[]).contains("parameter `S`: it has no default"));
        assert!(err(&[("S", "c")]).contains("not one of"));
        assert!(err(&[("S", "a"), ("N", "1.5")]).contains("not an Integer"));
        assert!(err(&[("S", "a"), ("Nope", "1")]).contains("declares no such parameter"));
    }

    #[test]
    fn list_entries_are_found_by_name() {
        let props = json!({"ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {"S3Uri": "s3://b/t"}}]}});
        let path = expr::parse_path("ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri").unwrap();
        assert_eq!(walk_property(&props, &path), Some(&json!("s3://b/t")));
        let path = expr::parse_path("ProcessingOutputConfig.Outputs[0].S3Output.S3Uri").unwrap();
        assert_eq!(walk_property(&props, &path), Some(&json!("s3://b/t")));
    }
}

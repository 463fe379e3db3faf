//! `sagestep run`: executes a definition on one machine. Steps run in dependency order,
//! independent ones in parallel; Condition steps choose a branch; CacheConfig, RetryPolicies
//! and Fail behave as on SageMaker. Every execution leaves a record in the store.
//!
//! `scheduler` decides what runs when; each step type has its executor (`steps`); `state`
//! holds what the steps share and the scopes their expressions resolve in; `cache` and
//! `record` keep what outlives the execution.

mod cache;
mod record;
mod scheduler;
mod state;
mod steps;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{Value, json};

pub use record::{ExecutionRecord, Status, StepRecord, list_executions};
use state::Shared;

use super::clock;
use super::definition::{Definition, ParameterType, StepType};
use super::engine::Engine;
use super::jobs::Jobs;
use super::registry::arn;
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

/// What the run ended with.
pub struct Outcome {
    pub record: ExecutionRecord,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.record.status == Status::Succeeded
    }
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

fn execution_arn(pipeline: &str, id: &str) -> String {
    format!("{}/execution/{id}", arn("pipeline", pipeline))
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
    let record = ExecutionRecord::started(
        &definition,
        &config.pipeline_name,
        &execution_id,
        clock::rfc3339(start),
        parameters.clone(),
        format!("{:?}", engine.kind).to_lowercase(),
        storage.describe(),
    );
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
    let jobs = Jobs::new(&shared.storage, &engine, work.clone(), format!("executions/{execution_id}/logs/"));
    let failure_reason = scheduler::schedule(&shared, &jobs, &config);
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
}

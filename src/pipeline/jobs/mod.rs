//! SageMaker jobs on one machine: what the service does around a container. Inputs are
//! copied in at their local paths, the container runs (on every host of the job), and only
//! then are outputs stored, all or nothing: a failed or interrupted job leaves nothing that
//! looks complete.
//!
//! One file per job kind (`processing`, `training`, `transform`); `hosts` is what the three
//! share: the `algo-1..n` hosts of a job, their trees, how objects fall to them, and running
//! their containers together.

pub mod capture;
mod hosts;
mod pipe;
mod processing;
mod training;
mod transform;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::engine::{Engine, EngineError, Exit};
use super::usage::{JobUsage, Resources};
use crate::storage::{Storage, StoreError};

pub use hosts::{Distribution, MAX_INSTANCES, distribute};
pub use training::read_metrics;

/// Why a job failed, in SageMaker's retry vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The container reported a problem with its input or configuration (exit code 1 and the
    /// like): retrying will not help. SageMaker's `ClientError`/`AlgorithmError`.
    Client,
    /// The job died of an internal error (exit 70, a signal): `SageMaker.JOB_INTERNAL_ERROR`.
    JobInternal,
    /// The runner could not do its part (Docker down, store unreachable): `Step.SERVICE_FAULT`.
    Service,
    Interrupted,
}

impl FailureKind {
    /// The `RetryPolicies` exception type that covers this failure, if any.
    pub fn retry_type(self) -> Option<&'static str> {
        match self {
            Self::JobInternal => Some("SageMaker.JOB_INTERNAL_ERROR"),
            Self::Service => Some("Step.SERVICE_FAULT"),
            Self::Client | Self::Interrupted => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl JobFailure {
    pub fn client(message: impl Into<String>) -> Self {
        Self { kind: FailureKind::Client, message: message.into() }
    }
    pub fn service(message: impl Into<String>) -> Self {
        Self { kind: FailureKind::Service, message: message.into() }
    }
    pub fn interrupted() -> Self {
        Self { kind: FailureKind::Interrupted, message: "interrupted".into() }
    }
}

impl From<EngineError> for JobFailure {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Interrupted => Self::interrupted(),
            EngineError::Refused(message) => Self::client(message),
            other => Self::service(other.to_string()),
        }
    }
}

impl From<StoreError> for JobFailure {
    fn from(err: StoreError) -> Self {
        let kind = match &err {
            StoreError::Network { .. } | StoreError::Io { .. } | StoreError::Other { .. } => FailureKind::Service,
            _ => FailureKind::Client,
        };
        Self { kind, message: err.to_string() }
    }
}

/// What every job of one execution shares.
pub struct Jobs<'a> {
    pub storage: &'a Storage,
    pub engine: &'a Engine,
    /// Per-execution scratch directory: one `/opt/ml` tree per host of each job.
    pub work: PathBuf,
    /// Where job logs are kept (in the store's record area), by job name.
    pub log_prefix: String,
    /// Each job's hosts, `(host, container)` in order, for its resource figures.
    hosts: Mutex<HashMap<String, Vec<(String, String)>>>,
}

pub fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn required<'v>(value: &'v Value, pointer: &str, what: &str) -> Result<&'v str, JobFailure> {
    text(value, pointer).ok_or_else(|| {
        JobFailure::client(format!("{what}: `{}` is required", pointer.trim_start_matches('/').replace('/', ".")))
    })
}

pub(super) fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), super::expr::to_text(v))).collect())
        .unwrap_or_default()
}

/// `/opt/ml/...` inside the container, as a path in the job's tree.
fn local_path(root: &Path, container_path: &str, must_be_under: &str) -> Result<PathBuf, JobFailure> {
    let rest = container_path
        .strip_prefix(must_be_under)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| JobFailure::client(format!("LocalPath `{container_path}` must lie under {must_be_under}")))?;
    if rest.split('/').any(|p| p == "..") {
        return Err(JobFailure::client(format!("LocalPath `{container_path}` may not contain `..`")));
    }
    let below_ml = must_be_under.strip_prefix("/opt/ml").unwrap_or_default().trim_start_matches('/');
    Ok(root.join(below_ml).join(rest.trim_start_matches('/')))
}

fn write_json(path: &Path, value: &Value) -> Result<(), JobFailure> {
    crate::storage::write_atomic(path, &serde_json::to_vec_pretty(value).expect("JSON"))
        .map_err(|e| JobFailure::service(format!("writing {}: {e}", path.display())))
}

fn create_dir(path: &Path) -> Result<(), JobFailure> {
    std::fs::create_dir_all(path).map_err(|e| JobFailure::service(format!("creating {}: {e}", path.display())))
}

/// A job name as SageMaker allows: letters, digits, hyphens; at most 63 characters.
pub fn job_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let mut name: String = joined.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

fn max_runtime(args: &Value) -> Option<Duration> {
    args.pointer("/StoppingCondition/MaxRuntimeInSeconds").and_then(Value::as_u64).map(Duration::from_secs)
}

fn prefix(what: String, mut failure: JobFailure) -> JobFailure {
    failure.message = format!("{what}: {}", failure.message);
    failure
}

impl<'a> Jobs<'a> {
    pub fn new(storage: &'a Storage, engine: &'a Engine, work: PathBuf, log_prefix: String) -> Self {
        Self { storage, engine, work, log_prefix, hosts: Mutex::new(HashMap::new()) }
    }

    /// What a job's containers (its hosts, or a transform's servers) cost when it last ran:
    /// `None` for a job that ran none, or where the engine could measure nothing.
    pub fn resources(&self, job: &str) -> Option<Resources> {
        let (usage, hosts) = self.job_usage(job)?;
        Resources::of_job(usage, &hosts)
    }

    /// A job's figures, and each host's.
    pub fn job_usage(&self, job: &str) -> Option<(JobUsage, Vec<crate::pipeline::usage::HostUsage>)> {
        let names = self.hosts.lock().expect("lock").get(job).cloned()?;
        let hosts: Vec<_> = names.iter().map(|(host, container)| self.engine.usage(container, host)).collect();
        Some((JobUsage::of_hosts(job, hosts.clone()), hosts))
    }
}

impl Jobs<'_> {
    /// Where a container's output goes while it runs.
    pub(super) fn log_path(&self, name: &str) -> PathBuf {
        self.work.join(format!("{name}.log"))
    }

    /// Copy a container's log into the execution's records (the work directory goes away);
    /// returns its text.
    pub(super) fn keep_log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        if let Err(err) = self.storage.state_write(&format!("{}{name}.log", self.log_prefix), text.as_bytes()) {
            tracing::warn!("could not keep the log of {name}: {err}");
        }
        text
    }

    /// Why a container failed: its failure file (SageMaker's FailureReason or ExitMessage),
    /// else the end of its log.
    fn failure_reason(file: &Path, exit: Exit, log: &str) -> JobFailure {
        let code = exit.code;
        if exit.timed_out {
            return JobFailure::client(
                "MaxRuntimeExceeded: the job ran longer than StoppingCondition.MaxRuntimeInSeconds",
            );
        }
        let written = std::fs::read_to_string(file).ok().filter(|m| !m.trim().is_empty());
        let message = written.unwrap_or_else(|| {
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        });
        let how = match code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        };
        let kind = match code {
            // Bad input or usage (our exit codes 1 and 2); Docker's 126/127: not runnable.
            Some(1 | 2 | 126 | 127) => FailureKind::Client,
            // `docker run` itself failed (the daemon, a missing image): the service's fault.
            Some(125) => FailureKind::Service,
            _ => FailureKind::JobInternal,
        };
        JobFailure { kind, message: format!("the container failed ({how}): {}", message.trim()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_follow_sagemaker_rules() {
        assert_eq!(job_name(&["pipelines", "abc", "Evaluate_Top"]), "pipelines-abc-Evaluate-Top");
        assert!(job_name(&["x"; 40]).len() <= 63);
        let root = Path::new("/w");
        assert_eq!(
            local_path(root, "/opt/ml/processing/input", "/opt/ml/processing").unwrap(),
            Path::new("/w/processing/input")
        );
        assert!(local_path(root, "/data/input", "/opt/ml/processing").is_err());
        assert!(local_path(root, "/opt/ml/processing/../x", "/opt/ml/processing").is_err());
    }
}

//! SageMaker jobs on one machine: what the service does around a container. Inputs are
//! copied in at their local paths, the container runs, and only then are outputs stored,
//! all or nothing: a failed or interrupted job leaves nothing that looks complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::engine::{Container, Engine, EngineError, Exit};
use super::registry::arn;
use crate::storage::{Storage, StoreError};

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
}

impl From<EngineError> for JobFailure {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Interrupted => Self { kind: FailureKind::Interrupted, message: "interrupted".into() },
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
    /// Per-execution scratch directory: one `/opt/ml` tree per job.
    pub work: PathBuf,
    /// Where job logs are kept (in the store's record area), by job name.
    pub log_prefix: String,
}

pub fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn required<'v>(value: &'v Value, pointer: &str, what: &str) -> Result<&'v str, JobFailure> {
    text(value, pointer).ok_or_else(|| {
        JobFailure::client(format!("{what}: `{}` is required", pointer.trim_start_matches('/').replace('/', ".")))
    })
}

fn one_instance(count: Option<&Value>, what: &str) -> Result<(), JobFailure> {
    match count.and_then(Value::as_u64).unwrap_or(1) {
        1 => Ok(()),
        n => Err(JobFailure::client(format!(
            "{what}: InstanceCount {n}: the local runner runs each job on one instance; pass 1"
        ))),
    }
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

impl Jobs<'_> {
    /// An empty `/opt/ml` tree for a job.
    pub(super) fn fresh_root(&self, job: &str) -> Result<PathBuf, JobFailure> {
        let root = self.work.join(job).join("opt-ml");
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .map_err(|e| JobFailure::service(format!("clearing {}: {e}", root.display())))?;
        }
        std::fs::create_dir_all(&root).map_err(|e| JobFailure::service(format!("creating {}: {e}", root.display())))?;
        Ok(root)
    }

    /// Run a container, keep its log, and say how it ended.
    fn run_container(&self, container: &Container, deadline: Option<Duration>) -> Result<(Exit, String), JobFailure> {
        let log = self.log_path(&container.name);
        let exit = self.engine.run(container, &log, deadline)?;
        Ok((exit, self.keep_log(&container.name)))
    }

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

    /// A Processing job: CreateProcessingJob's request, resolved. Returns DescribeProcessingJob.
    pub fn processing(&self, job: &str, args: &Value) -> Result<Value, JobFailure> {
        one_instance(
            args.pointer("/ProcessingResources/ClusterConfig/InstanceCount"),
            "ProcessingResources.ClusterConfig",
        )?;
        let image = required(args, "/AppSpecification/ImageUri", "AppSpecification")?;
        let root = self.fresh_root(job)?;
        let mut request = args.clone();
        request["ProcessingJobName"] = json!(job);
        write_json(&root.join("config/processingjobconfig.json"), &request)?;
        write_json(&root.join("config/resourceconfig.json"), &json!({"current_host": "algo-1", "hosts": ["algo-1"]}))?;
        for input in args.get("ProcessingInputs").and_then(Value::as_array).into_iter().flatten() {
            let name = input.get("InputName").and_then(Value::as_str).unwrap_or("?");
            let s3 = input.get("S3Input").ok_or_else(|| {
                JobFailure::client(format!(
                    "ProcessingInput `{name}`: only S3Input inputs run locally (not DatasetDefinition)"
                ))
            })?;
            for (field, allowed) in [("S3DataType", "S3Prefix"), ("S3InputMode", "File"), ("S3CompressionType", "None")]
            {
                if let Some(v) = s3.get(field).and_then(Value::as_str).filter(|v| *v != allowed) {
                    return Err(JobFailure::client(format!(
                        "ProcessingInput `{name}`: {field} `{v}`: the local runner supports {allowed}"
                    )));
                }
            }
            let uri = required(s3, "/S3Uri", &format!("ProcessingInput `{name}`"))?;
            let local = local_path(
                &root,
                required(s3, "/LocalPath", &format!("ProcessingInput `{name}`"))?,
                "/opt/ml/processing",
            )?;
            self.storage.fetch(uri, &local).map_err(|e| prefix(format!("ProcessingInput `{name}`"), e.into()))?;
        }
        let outputs: Vec<(String, String, PathBuf)> = args
            .pointer("/ProcessingOutputConfig/Outputs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|output| {
                let name = output.get("OutputName").and_then(Value::as_str).unwrap_or("?").to_string();
                let uri = required(output, "/S3Output/S3Uri", &format!("ProcessingOutput `{name}`"))?.to_string();
                let path = local_path(
                    &root,
                    required(output, "/S3Output/LocalPath", &format!("ProcessingOutput `{name}`"))?,
                    "/opt/ml/processing",
                )?;
                std::fs::create_dir_all(&path)
                    .map_err(|e| JobFailure::service(format!("creating {}: {e}", path.display())))?;
                Ok((name, uri, path))
            })
            .collect::<Result<_, JobFailure>>()?;
        let mut env = string_map(args.get("Environment"));
        env.entry("AWS_REGION".into())
            .or_insert_with(|| std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()));
        let container = Container {
            name: job.to_string(),
            image: image.to_string(),
            entrypoint: args
                .pointer("/AppSpecification/ContainerEntrypoint")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(super::expr::to_text).collect()),
            args: args
                .pointer("/AppSpecification/ContainerArguments")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(super::expr::to_text).collect())
                .unwrap_or_default(),
            env,
            ml_root: root.clone(),
            network_isolation: args
                .pointer("/NetworkConfig/EnableNetworkIsolation")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        let deadline = max_runtime(args);
        let (exit, log) = self.run_container(&container, deadline)?;
        if exit.code != Some(0) || exit.timed_out {
            return Err(Self::failure_reason(&root.join("output/message"), exit, &log));
        }
        let mut stored = Vec::new();
        for (name, uri, path) in &outputs {
            match self.storage.put_dir(path, uri) {
                Ok(mut locations) => stored.append(&mut locations),
                Err(err) => {
                    self.storage.remove(&stored);
                    return Err(prefix(format!("ProcessingOutput `{name}`"), err.into()));
                }
            }
        }
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("ProcessingJobName".into(), json!(job));
        fields.insert("ProcessingJobArn".into(), json!(arn("processing-job", job)));
        fields.insert("ProcessingJobStatus".into(), json!("Completed"));
        fields.insert(
            "ExitMessage".into(),
            json!(std::fs::read_to_string(root.join("output/message")).unwrap_or_default()),
        );
        Ok(described)
    }

    /// One training job (CreateTrainingJob's request, resolved). Returns DescribeTrainingJob;
    /// on failure, the failure and whatever metrics the log held.
    pub fn training(&self, job: &str, args: &Value) -> Result<Value, JobFailure> {
        one_instance(args.pointer("/ResourceConfig/InstanceCount"), "ResourceConfig")?;
        let image = required(args, "/AlgorithmSpecification/TrainingImage", "AlgorithmSpecification")?;
        let output_path = required(args, "/OutputDataConfig/S3OutputPath", "OutputDataConfig")?;
        let root = self.fresh_root(job)?;
        let hyperparameters = string_map(args.get("HyperParameters"));
        write_json(&root.join("input/config/hyperparameters.json"), &json!(hyperparameters))?;
        let input_mode = text(args, "/AlgorithmSpecification/TrainingInputMode").unwrap_or("File");
        let mut data_config = serde_json::Map::new();
        for channel in args.get("InputDataConfig").and_then(Value::as_array).into_iter().flatten() {
            let name = required(channel, "/ChannelName", "InputDataConfig")?;
            let what = format!("channel `{name}`");
            let mode = text(channel, "/InputMode").unwrap_or(input_mode);
            if mode != "File" {
                return Err(JobFailure::client(format!("{what}: input mode `{mode}`: the local runner supports File")));
            }
            if let Some(c) = text(channel, "/CompressionType").filter(|c| *c != "None") {
                return Err(JobFailure::client(format!(
                    "{what}: CompressionType `{c}`: the local runner supports None"
                )));
            }
            let uri = required(channel, "/DataSource/S3DataSource/S3Uri", &what)?;
            self.storage.fetch(uri, &root.join("input/data").join(name)).map_err(|e| prefix(what, e.into()))?;
            let mut entry = json!({
                "TrainingInputMode": mode,
                "S3DistributionType": text(channel, "/DataSource/S3DataSource/S3DataDistributionType").unwrap_or("FullyReplicated"),
                "RecordWrapperType": text(channel, "/RecordWrapperType").unwrap_or("None"),
            });
            if let Some(content_type) = text(channel, "/ContentType") {
                entry["ContentType"] = json!(content_type);
            }
            data_config.insert(name.to_string(), entry);
        }
        write_json(&root.join("input/config/inputdataconfig.json"), &Value::Object(data_config))?;
        let instance_type = text(args, "/ResourceConfig/InstanceType").unwrap_or("local");
        write_json(
            &root.join("input/config/resourceconfig.json"),
            &json!({"current_host": "algo-1", "current_instance_type": instance_type, "current_group_name": "homogeneousCluster",
                    "hosts": ["algo-1"], "network_interface_name": "eth0",
                    "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": ["algo-1"]}]}),
        )?;
        let checkpoint = match (text(args, "/CheckpointConfig/S3Uri"), text(args, "/CheckpointConfig/LocalPath")) {
            (Some(uri), local) => {
                let local = local_path(&root, local.unwrap_or("/opt/ml/checkpoints"), "/opt/ml")?;
                std::fs::create_dir_all(&local).map_err(|e| JobFailure::service(e.to_string()))?;
                write_json(
                    &root.join("input/config/checkpointconfig.json"),
                    &json!({"LocalPath": "/opt/ml/checkpoints", "S3Uri": uri}),
                )?;
                // Resume: earlier checkpoints come back, as on a managed spot restart.
                if !self.storage.list(uri)?.is_empty() {
                    self.storage.fetch(uri, &local)?;
                }
                Some((uri.to_string(), local))
            }
            _ => None,
        };
        let mut env = string_map(args.get("Environment"));
        env.insert("TRAINING_JOB_NAME".into(), job.to_string());
        env.insert("TRAINING_JOB_ARN".into(), arn("training-job", job));
        let container = Container {
            name: job.to_string(),
            image: image.to_string(),
            entrypoint: None,
            args: vec!["train".into()],
            env,
            ml_root: root.clone(),
            network_isolation: args.get("EnableNetworkIsolation").and_then(Value::as_bool).unwrap_or(false),
        };
        let (exit, log) = self.run_container(&container, max_runtime(args))?;
        let metrics = read_metrics(args.pointer("/AlgorithmSpecification/MetricDefinitions"), &log)?;
        if let Some((uri, local)) = &checkpoint {
            self.storage.put_dir(local, uri)?;
        }
        if exit.code != Some(0) || exit.timed_out {
            return Err(Self::failure_reason(&root.join("output/failure"), exit, &log));
        }
        let base = format!("{}/{job}/output", output_path.trim_end_matches('/'));
        let model_archive = self.work.join(job).join("model.tar.gz");
        crate::model::archive::pack(&root.join("model"), &model_archive)
            .map_err(|e| JobFailure::service(format!("packing /opt/ml/model: {e}")))?;
        let model_uri = format!("{base}/model.tar.gz");
        let mut stored = vec![self.storage.put_file(&model_archive, &model_uri)?];
        let data_dir = root.join("output/data");
        if std::fs::read_dir(&data_dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
            let archive = self.work.join(job).join("output.tar.gz");
            let packed =
                crate::model::archive::pack(&data_dir, &archive).map_err(|e| JobFailure::service(e.to_string()));
            match packed
                .and_then(|()| self.storage.put_file(&archive, &format!("{base}/output.tar.gz")).map_err(Into::into))
            {
                Ok(location) => stored.push(location),
                Err(err) => {
                    self.storage.remove(&stored);
                    return Err(err);
                }
            }
        }
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("TrainingJobName".into(), json!(job));
        fields.insert("TrainingJobArn".into(), json!(arn("training-job", job)));
        fields.insert("TrainingJobStatus".into(), json!("Completed"));
        fields.insert("SecondaryStatus".into(), json!("Completed"));
        fields.insert("ModelArtifacts".into(), json!({"S3ModelArtifacts": model_uri}));
        fields.insert("FinalMetricDataList".into(), json!(metrics));
        Ok(described)
    }
}

/// Each MetricDefinition's last match in the log: SageMaker's final metric values.
pub fn read_metrics(definitions: Option<&Value>, log: &str) -> Result<Vec<Value>, JobFailure> {
    let mut metrics = Vec::new();
    for definition in definitions.and_then(Value::as_array).into_iter().flatten() {
        let name = definition.get("Name").and_then(Value::as_str).unwrap_or_default();
        let pattern = definition.get("Regex").and_then(Value::as_str).unwrap_or_default();
        let regex = regex::Regex::new(pattern)
            .map_err(|e| JobFailure::client(format!("MetricDefinition `{name}`: the regex does not compile: {e}")))?;
        let last = log
            .lines()
            .filter_map(|line| regex.captures(line)?.get(1)?.as_str().parse::<f64>().ok())
            .rfind(|v| v.is_finite());
        if let Some(value) = last {
            metrics.push(json!({"MetricName": name, "Value": value, "Timestamp": super::clock::rfc3339(super::clock::now_secs())}));
        }
    }
    Ok(metrics)
}

fn prefix(what: String, mut failure: JobFailure) -> JobFailure {
    failure.message = format!("{what}: {}", failure.message);
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_the_last_match_of_each_definition() {
        let defs = json!([{"Name": "validation:rmse", "Regex": r"\[[0-9]+\].*validation-rmse:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"},
                          {"Name": "absent", "Regex": "nothing:([0-9]+)"}]);
        let log = "[0]\ttrain-rmse:9.1\tvalidation-rmse:8.5\n[1]\ttrain-rmse:4.2\tvalidation-rmse:3.25e0\nother\n";
        let metrics = read_metrics(Some(&defs), log).unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0]["Value"], 3.25);
        assert!(read_metrics(Some(&json!([{"Name": "x", "Regex": "("}])), "").is_err());
    }

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

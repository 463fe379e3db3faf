//! Model steps (CreateModel: kept for the Transform steps of the execution) and RegisterModel
//! steps (a version in the model registry, with the metrics reports and lineage).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Executor, StepContext};
use crate::pipeline::clock;
use crate::pipeline::jobs::{JobFailure, text};
use crate::pipeline::registry::{Registry, RegistryError, arn};

pub(super) struct CreateModel;

impl Executor for CreateModel {
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        if arguments.get("PrimaryContainer").is_none() {
            return Err(JobFailure::client(
                "CreateModel: PrimaryContainer is required (multi-container models do not run locally)",
            ));
        }
        let job = &context.job;
        let mut described = arguments.clone();
        described["ModelName"] = json!(job);
        described["ModelArn"] = json!(arn("model", job));
        described["CreationTime"] = json!(clock::rfc3339(clock::now_secs()));
        context.shared.models.lock().expect("lock").insert(job.to_string(), described.clone());
        Ok(described)
    }
}

pub(super) struct RegisterModel;

impl Executor for RegisterModel {
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        let (shared, jobs) = (context.shared, context.jobs);
        let group = text(arguments, "/ModelPackageGroupName").ok_or_else(|| {
            JobFailure::client("RegisterModel: ModelPackageGroupName is required (unversioned packages are not kept)")
        })?;
        let mut package = arguments.clone();
        if let Some(containers) =
            package.pointer_mut("/InferenceSpecification/Containers").and_then(Value::as_array_mut)
        {
            for container in containers {
                if let Some(image) = container.get("Image").and_then(Value::as_str)
                    && let Some(digest) = jobs.engine.image_digest(image)
                {
                    container["ImageDigest"] = json!(digest);
                }
            }
        }
        package["ModelMetricsReports"] = Value::Object(metrics_reports(context, arguments)?);
        package["Lineage"] = json!({
            "PipelineName": shared.pipeline_name,
            "PipelineExecutionId": shared.execution_id,
            "PipelineExecutionArn": super::super::execution_arn(&shared.pipeline_name, &shared.execution_id),
            "StepName": context.step.name,
            "Jobs": jobs_run(context),
        });
        Registry::new(jobs.storage).register(group, package).map_err(|e| match e {
            RegistryError::Store(store) => JobFailure::from(store),
            other => JobFailure::client(other.to_string()),
        })
    }
}

/// The metrics are pointers; keep a copy of each report and its digest too.
fn metrics_reports(context: &StepContext<'_>, arguments: &Value) -> Result<serde_json::Map<String, Value>, JobFailure> {
    let mut reports = serde_json::Map::new();
    let Some(metrics) = arguments.get("ModelMetrics").and_then(Value::as_object) else { return Ok(reports) };
    for (kind, sources) in metrics {
        for (name, source) in sources.as_object().into_iter().flatten() {
            if let Some(uri) = text(source, "/S3Uri") {
                let bytes = context.jobs.storage.read(uri).map_err(JobFailure::from)?;
                let digest = crate::data::files::hex(&Sha256::digest(&bytes));
                let content =
                    serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
                reports.insert(
                    format!("{kind}.{name}"),
                    json!({"S3Uri": uri, "ContentDigest": format!("sha256:{digest}"), "Content": content}),
                );
            }
        }
    }
    Ok(reports)
}

/// The jobs the execution has run so far, by step.
fn jobs_run(context: &StepContext<'_>) -> Vec<Value> {
    context
        .shared
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
        .collect()
}

//! Processing, Training and Transform steps: one SageMaker job each (`crate::pipeline::jobs`).

use serde_json::Value;

use super::{Executor, StepContext, each_text};
use crate::pipeline::jobs::{JobFailure, text};

pub(super) struct Processing;

impl Executor for Processing {
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        context.jobs.processing(&context.job, arguments)
    }
    fn cacheable(&self) -> bool {
        true
    }
    fn inputs(&self, arguments: &Value) -> Vec<String> {
        each_text(arguments, "/ProcessingInputs", "/S3Input/S3Uri")
    }
    fn outputs(&self, properties: &Value) -> Vec<String> {
        each_text(properties, "/ProcessingOutputConfig/Outputs", "/S3Output/S3Uri")
    }
}

pub(super) struct Training;

impl Executor for Training {
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        context.jobs.training(&context.job, arguments)
    }
    fn cacheable(&self) -> bool {
        true
    }
    fn inputs(&self, arguments: &Value) -> Vec<String> {
        channel_uris(arguments)
    }
    fn outputs(&self, properties: &Value) -> Vec<String> {
        text(properties, "/ModelArtifacts/S3ModelArtifacts").map(str::to_string).into_iter().collect()
    }
}

/// The S3 URIs of a training job's channels (also a tuning job's definition's).
pub(super) fn channel_uris(arguments: &Value) -> Vec<String> {
    let list = if arguments.get("InputDataConfig").is_some() {
        "/InputDataConfig"
    } else {
        "/TrainingJobDefinition/InputDataConfig"
    };
    each_text(arguments, list, "/DataSource/S3DataSource/S3Uri")
}

pub(super) struct Transform;

impl Executor for Transform {
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        let model_name = text(arguments, "/ModelName").ok_or_else(|| JobFailure::client("ModelName is required"))?;
        let model = context.shared.models.lock().expect("lock").get(model_name).cloned().ok_or_else(|| {
            JobFailure::client(format!("model `{model_name}` was not created by a Model step of this execution"))
        })?;
        context.jobs.transform(&context.job, arguments, &model)
    }
    fn cacheable(&self) -> bool {
        true
    }
    fn inputs(&self, arguments: &Value) -> Vec<String> {
        text(arguments, "/TransformInput/DataSource/S3DataSource/S3Uri").map(str::to_string).into_iter().collect()
    }
    fn outputs(&self, properties: &Value) -> Vec<String> {
        text(properties, "/TransformOutput/S3OutputPath").map(str::to_string).into_iter().collect()
    }
}

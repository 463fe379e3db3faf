//! One executor per step type, behind one small trait: what the step does with its resolved
//! arguments, and what the cache needs to know of it.

mod control;
mod jobs;
mod model;
mod tuning;

use serde_json::Value;

use super::state::Shared;
use crate::pipeline::definition::{Step, StepType};
use crate::pipeline::jobs::{JobFailure, Jobs};
use crate::pipeline::usage::Resources;

/// What an executor runs with.
pub(in crate::pipeline::runner) struct StepContext<'a> {
    pub shared: &'a Shared,
    pub jobs: &'a Jobs<'a>,
    pub step: &'a Step,
    /// The name of the job this step runs (`pipelines-<execution>-<step>`).
    pub job: String,
    /// Seed of the tuning strategies' draws.
    pub seed: u64,
}

pub(in crate::pipeline::runner) trait Executor: Sync {
    /// Run the step with its resolved arguments; its properties (the Describe* response).
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure>;

    /// Whether CacheConfig applies (SageMaker caches job steps only).
    fn cacheable(&self) -> bool {
        false
    }

    /// Whether the run's `--seed` shapes the result (tuning draws): then it is part of the key.
    fn seeded(&self) -> bool {
        false
    }

    /// The S3 URIs the step reads: their objects are part of its cache key.
    fn inputs(&self, _arguments: &Value) -> Vec<String> {
        Vec::new()
    }

    /// The S3 URIs its result lives at: a cached result is good only while they hold objects.
    fn outputs(&self, _properties: &Value) -> Vec<String> {
        Vec::new()
    }

    /// What its containers cost in the attempt that just ended: by default its job's, none
    /// for a step that runs no job.
    fn resources(&self, context: &StepContext<'_>, _properties: &Value) -> Option<Resources> {
        context.jobs.resources(&context.job)
    }
}

/// The executor of a step type.
pub(in crate::pipeline::runner) fn executor(kind: &StepType) -> &'static dyn Executor {
    match kind {
        StepType::Processing => &jobs::Processing,
        StepType::Training => &jobs::Training,
        StepType::Transform => &jobs::Transform,
        StepType::Tuning => &tuning::Tuning,
        StepType::Model => &model::CreateModel,
        StepType::RegisterModel => &model::RegisterModel,
        StepType::Condition => &control::Condition,
        StepType::Fail => &control::Fail,
        StepType::Other(_) => &control::Unsupported,
    }
}

/// Every string at `pointer` in each element of the list at `list`.
fn each_text(value: &Value, list: &str, pointer: &str) -> Vec<String> {
    value
        .pointer(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.pointer(pointer).and_then(Value::as_str).map(str::to_string))
        .collect()
}

//! Execution records: what ListPipelineExecutionSteps and DescribePipelineExecution would
//! say, kept in the store at `executions/<id>.json` and rewritten after every change.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::pipeline::definition::Definition;
use crate::pipeline::usage::Resources;
use crate::storage::{Storage, StoreError};

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

impl Status {
    /// `sagestep run`'s exit code for an execution that ended so: 0, 130 when stopped, else 1.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Succeeded => 0,
            Self::Stopped => 130,
            _ => 1,
        }
    }
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
    /// What the step's containers cost (wall, CPU, peak memory; per host, per training job).
    /// `null` for a step that ran no container, a cache hit (nothing ran; the figures are in
    /// the record of the execution named by `cache_hit_from`) or figures the engine could not
    /// measure.
    pub resources: Option<Resources>,
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

impl ExecutionRecord {
    /// A record of an execution that has just started: every step not (yet) executed.
    pub(super) fn started(
        definition: &Definition,
        pipeline_name: &str,
        execution_id: &str,
        start: String,
        parameters: BTreeMap<String, Value>,
        engine: String,
        store: String,
    ) -> Self {
        Self {
            pipeline_name: pipeline_name.to_string(),
            execution_id: execution_id.to_string(),
            execution_arn: super::execution_arn(pipeline_name, execution_id),
            status: Status::Executing,
            start,
            end: None,
            duration_seconds: None,
            parameters,
            engine,
            store,
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
                    resources: None,
                    properties: Value::Null,
                    error: None,
                })
                .collect(),
        }
    }

    /// Where the record lives in the store's record area.
    pub(super) fn key(&self) -> String {
        format!("executions/{}.json", self.execution_id)
    }
}

/// Every recorded execution, newest first.
pub fn list_executions(storage: &Storage) -> Result<Vec<Value>, StoreError> {
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

//! The state the steps of a running execution share, and the scopes their expressions are
//! resolved in: `StepScope` for the arguments a step runs with, `KeyScope` for its cache key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::record::{ExecutionRecord, StepRecord};
use crate::pipeline::clock;
use crate::pipeline::definition::Definition;
use crate::pipeline::expr::{self, Reference, Scope};
use crate::pipeline::jobs::text;
use crate::pipeline::registry::arn;
use crate::storage::Storage;

/// The state steps share while an execution runs.
pub(super) struct Shared {
    pub(super) definition: Definition,
    pub(super) parameters: BTreeMap<String, Value>,
    pub(super) execution_id: String,
    pub(super) pipeline_name: String,
    pub(super) start: f64,
    pub(super) properties: Mutex<HashMap<String, Value>>,
    /// CreateModel requests by model name (Transform steps look them up).
    pub(super) models: Mutex<HashMap<String, Value>>,
    pub(super) record: Mutex<ExecutionRecord>,
    /// Cache keys of the steps that have one, for their dependents' keys.
    pub(super) cache_keys: Mutex<HashMap<String, String>>,
    pub(super) storage: Storage,
    pub(super) progress: bool,
}

impl Shared {
    pub(super) fn save_record(&self) {
        // Written under the lock: a snapshot never overwrites a newer one.
        let record = self.record.lock().expect("lock");
        let bytes = serde_json::to_vec_pretty(&*record).expect("JSON");
        if let Err(err) = self.storage.state_write(&record.key(), &bytes) {
            tracing::warn!("could not save the execution record: {err}");
        }
    }

    pub(super) fn update_step(&self, name: &str, change: impl FnOnce(&mut StepRecord)) {
        {
            let mut record = self.record.lock().expect("lock");
            if let Some(step) = record.steps.iter_mut().find(|s| s.name == name) {
                change(step);
            }
        }
        self.save_record();
    }

    pub(super) fn say(&self, line: &str) {
        if self.progress {
            eprintln!("[{:>7.2}s] {line}", clock::now_secs() - self.start);
        }
    }
}

pub(super) struct StepScope<'a> {
    pub(super) shared: &'a Shared,
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
                "PipelineExecutionArn" => json!(super::execution_arn(&shared.pipeline_name, &shared.execution_id)),
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

    fn json_object(&self, uri: &str) -> Result<Value, String> {
        let bytes = self.shared.storage.read(uri).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the object at {uri} is not JSON: {e}"))
    }

    fn unmasked(&self) -> &dyn Scope {
        self
    }
}

/// The scope a cache key is computed in: what differs between executions by design (the
/// execution id and times, and upstream results, which are named by their own cache keys)
/// is replaced by stable stand-ins, so a rerun with unchanged inputs finds the same key.
pub(super) struct KeyScope<'a> {
    pub(super) inner: StepScope<'a>,
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

    fn json_object(&self, uri: &str) -> Result<Value, String> {
        self.inner.json_object(uri)
    }

    fn unmasked(&self) -> &dyn Scope {
        &self.inner
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_entries_are_found_by_name() {
        let props = json!({"ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {"S3Uri": "s3://b/t"}}]}});
        let path = expr::parse_path("ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri").unwrap();
        assert_eq!(walk_property(&props, &path), Some(&json!("s3://b/t")));
        let path = expr::parse_path("ProcessingOutputConfig.Outputs[0].S3Output.S3Uri").unwrap();
        assert_eq!(walk_property(&props, &path), Some(&json!("s3://b/t")));
    }
}

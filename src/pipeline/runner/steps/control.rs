//! Condition and Fail steps, and the step types the local runner refuses.

use serde_json::{Value, json};

use super::{Executor, StepContext};
use crate::pipeline::expr;
use crate::pipeline::jobs::JobFailure;

pub(super) struct Condition;

impl Executor for Condition {
    fn run(&self, _context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        let conditions = arguments.get("Conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let outcome = expr::conditions_hold(&conditions).map_err(JobFailure::client)?;
        Ok(json!({"Outcome": outcome, "EvaluatedConditions": conditions}))
    }
}

pub(super) struct Fail;

impl Executor for Fail {
    fn run(&self, _context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        Err(JobFailure::client(expr::to_text(arguments.get("ErrorMessage").unwrap_or(&Value::Null))))
    }
}

/// Lambda, EMR and the other types `run` refuses before starting; here for completeness.
pub(super) struct Unsupported;

impl Executor for Unsupported {
    fn run(&self, context: &StepContext<'_>, _arguments: &Value) -> Result<Value, JobFailure> {
        Err(JobFailure::client(format!("{} steps do not run locally", context.step.kind.as_str())))
    }
}

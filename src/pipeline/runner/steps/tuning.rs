//! Tuning steps: CreateHyperParameterTuningJob. Training jobs are launched as the strategy
//! (`crate::pipeline::tuning`) suggests, up to `MaxParallelTrainingJobs` at once; each one
//! observed feeds the strategy. The result reads as DescribeHyperParameterTuningJob, with
//! the summaries best first.

use std::collections::BTreeMap;
use std::sync::{Mutex, mpsc};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::jobs::channel_uris;
use super::{Executor, StepContext};
use crate::pipeline::clock;
use crate::pipeline::jobs::{FailureKind, JobFailure, job_name, text};
use crate::pipeline::registry::arn;
use crate::pipeline::tuning::{Strategy, Tuner, parse_ranges};
use crate::pipeline::usage::Resources;

pub(super) struct Tuning;

impl Executor for Tuning {
    fn run(&self, context: &StepContext<'_>, arguments: &Value) -> Result<Value, JobFailure> {
        let plan = Plan::parse(arguments, context.seed)?;
        let step_name: String = context.step.name.chars().take(19).collect();
        let tuning_job: String = job_name(&[&step_name, &context.shared.execution_id]).chars().take(32).collect();
        let trials = run_trials(context, &plan, &tuning_job)?;
        describe(arguments, &plan, &tuning_job, &trials)
    }
    fn cacheable(&self) -> bool {
        true
    }
    fn seeded(&self) -> bool {
        true
    }
    fn inputs(&self, arguments: &Value) -> Vec<String> {
        channel_uris(arguments)
    }
    /// Its training jobs' figures, best first as the summaries are.
    fn resources(&self, context: &StepContext<'_>, properties: &Value) -> Option<Resources> {
        let names = properties.get("TrainingJobSummaries").and_then(Value::as_array)?;
        let jobs = names
            .iter()
            .filter_map(|s| text(s, "/TrainingJobName"))
            .filter_map(|job| context.jobs.job_usage(job))
            .collect();
        Resources::of_jobs(jobs)
    }
    fn outputs(&self, properties: &Value) -> Vec<String> {
        match (
            text(properties, "/TrainingJobDefinition/OutputDataConfig/S3OutputPath"),
            text(properties, "/BestTrainingJob/TrainingJobName"),
        ) {
            (Some(base), Some(job)) => vec![format!("{}/{job}/output/model.tar.gz", base.trim_end_matches('/'))],
            _ => Vec::new(),
        }
    }
}

/// The tuning request, checked.
struct Plan {
    tuner: Mutex<Tuner>,
    definition: Value,
    static_hp: Map<String, Value>,
    objective: String,
    maximize: bool,
    max_jobs: usize,
    parallel: usize,
}

impl Plan {
    fn parse(arguments: &Value, seed: u64) -> Result<Self, JobFailure> {
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
        let objective = text(config, "/HyperParameterTuningJobObjective/MetricName")
            .ok_or_else(|| JobFailure::client("HyperParameterTuningJobObjective.MetricName is required"))?
            .to_string();
        let defined = definition
            .pointer("/AlgorithmSpecification/MetricDefinitions")
            .and_then(Value::as_array)
            .is_some_and(|defs| defs.iter().any(|d| text(d, "/Name") == Some(objective.as_str())));
        if !defined {
            return Err(JobFailure::client(format!(
                "the objective metric `{objective}` has no MetricDefinition in TrainingJobDefinition.AlgorithmSpecification"
            )));
        }
        let static_hp = definition.get("StaticHyperParameters").and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some(range) = ranges.iter().find(|r| static_hp.contains_key(r.name())) {
            return Err(JobFailure::client(format!("hyperparameter `{}` is both static and tuned", range.name())));
        }
        let tuner = Tuner::new(ranges, strategy, seed).map_err(JobFailure::client)?;
        let limit = |key: &str| config.pointer(key).and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
        let max_jobs = limit("/ResourceLimits/MaxNumberOfTrainingJobs");
        Ok(Self {
            max_jobs: tuner.capacity().map_or(max_jobs, |c| c.min(max_jobs)),
            parallel: limit("/ResourceLimits/MaxParallelTrainingJobs"),
            tuner: Mutex::new(tuner),
            definition: definition.clone(),
            static_hp,
            maximize: text(config, "/HyperParameterTuningJobObjective/Type") == Some("Maximize"),
            objective,
        })
    }

    /// A training job's request: the definition with the tuned values among the static ones.
    fn training_request(&self, tuned: &[(String, String)]) -> Value {
        let mut args = self.definition.clone();
        let fields = args.as_object_mut().expect("an object");
        fields.remove("StaticHyperParameters");
        fields.remove("HyperParameterTuningResourceConfig");
        let mut hyperparameters = self.static_hp.clone();
        for (name, value) in tuned {
            hyperparameters.insert(name.clone(), json!(value));
        }
        // SageMaker tells every job of a tuning job what it is tuned for.
        hyperparameters.insert("_tuning_objective_metric".into(), json!(self.objective));
        fields.insert("HyperParameters".into(), Value::Object(hyperparameters));
        args
    }

    /// The objective a finished job reported, if it did.
    fn objective_of(&self, outcome: &Result<Value, JobFailure>) -> Option<f64> {
        outcome.as_ref().ok().and_then(|d| final_metric(d, &self.objective))
    }
}

struct TrialResult {
    job: String,
    point: Vec<f64>,
    tuned: Vec<(String, String)>,
    outcome: Result<Value, JobFailure>,
    start: f64,
    end: f64,
}

/// Launch training jobs as the strategy suggests, at most `parallel` at a time, until
/// `max_jobs` have run or an interrupt.
fn run_trials(context: &StepContext<'_>, plan: &Plan, tuning_job: &str) -> Result<Vec<TrialResult>, JobFailure> {
    let (shared, jobs, step) = (context.shared, context.jobs, context.step);
    let results: Mutex<Vec<TrialResult>> = Mutex::new(Vec::new());
    let (tx, rx) = mpsc::channel::<usize>();
    std::thread::scope(|scope| {
        let (mut launched, mut running) = (0usize, 0usize);
        loop {
            while running < plan.parallel && launched < plan.max_jobs && !jobs.engine.interrupted() {
                let Some((point, tuned)) = plan.tuner.lock().expect("lock").suggest() else { break };
                launched += 1;
                running += 1;
                let digest = Sha256::digest(format!("{}{launched}", shared.execution_id));
                let job = format!("{tuning_job}-{launched:03}-{}", &crate::data::files::hex(&digest)[..8]);
                let args = plan.training_request(&tuned);
                let shown: Vec<String> = tuned.iter().map(|(k, v)| format!("{k}={v}")).collect();
                shared.say(&format!("{:<24} training job {job} ({})", step.name, shown.join(", ")));
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
            let objective = plan.objective_of(&trial.outcome);
            plan.tuner
                .lock()
                .expect("lock")
                .observe(&trial.point, objective.map(|v| if plan.maximize { -v } else { v }));
            let (name, job, metric) = (&step.name, &trial.job, &plan.objective);
            shared.say(&match (&trial.outcome, objective) {
                (Ok(_), Some(v)) => format!("{name:<24} training job {job} done: {metric} = {v}"),
                (Ok(_), None) => format!("{name:<24} training job {job} done, but its log held no {metric}"),
                (Err(f), _) => format!("{name:<24} training job {job} failed: {}", f.message),
            });
        }
    });
    if jobs.engine.interrupted() {
        return Err(JobFailure::interrupted());
    }
    Ok(results.into_inner().expect("lock"))
}

/// DescribeHyperParameterTuningJob: the best job and every job's summary, best first.
fn describe(arguments: &Value, plan: &Plan, tuning_job: &str, trials: &[TrialResult]) -> Result<Value, JobFailure> {
    let mut summaries: Vec<(Option<f64>, Value)> =
        trials.iter().map(|t| (plan.objective_of(&t.outcome), summary(plan, tuning_job, t))).collect();
    // Best first, as ListTrainingJobsForHyperParameterTuningJob sorted by the objective.
    summaries.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) if plan.maximize => b.total_cmp(a),
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
        let message = if reasons.is_empty() {
            format!("no training job reported the objective metric {}", plan.objective)
        } else {
            format!("no training job succeeded: {}", reasons.join("; "))
        };
        return Err(JobFailure { kind, message });
    };
    let completed = trials.iter().filter(|t| t.outcome.is_ok()).count();
    let mut described = arguments.clone();
    let fields = described.as_object_mut().expect("an object");
    fields.insert("HyperParameterTuningJobName".into(), json!(tuning_job));
    fields.insert("HyperParameterTuningJobArn".into(), json!(arn("hyper-parameter-tuning-job", tuning_job)));
    fields.insert("HyperParameterTuningJobStatus".into(), json!("Completed"));
    fields.insert("BestTrainingJob".into(), best);
    fields.insert("TrainingJobSummaries".into(), json!(summaries.into_iter().map(|(_, s)| s).collect::<Vec<_>>()));
    fields.insert(
        "TrainingJobStatusCounters".into(),
        json!({"Completed": completed, "InProgress": 0, "RetryableError": 0, "NonRetryableError": trials.len() - completed, "Stopped": 0}),
    );
    Ok(described)
}

/// One job's entry in TrainingJobSummaries.
fn summary(plan: &Plan, tuning_job: &str, trial: &TrialResult) -> Value {
    let objective = plan.objective_of(&trial.outcome);
    let mut summary = json!({
        "TrainingJobName": trial.job,
        "TrainingJobArn": arn("training-job", &trial.job),
        "TuningJobName": tuning_job,
        "TrainingStartTime": clock::rfc3339(trial.start),
        "TrainingEndTime": clock::rfc3339(trial.end),
        "TrainingJobStatus": if trial.outcome.is_ok() { "Completed" } else { "Failed" },
        "TunedHyperParameters": trial.tuned.iter().cloned().collect::<BTreeMap<_, _>>(),
        "ObjectiveStatus": if objective.is_some() { "Succeeded" } else { "Failed" },
    });
    if let Some(value) = objective {
        let kind = if plan.maximize { "Maximize" } else { "Minimize" };
        summary["FinalHyperParameterTuningJobObjectiveMetric"] =
            json!({"Type": kind, "MetricName": plan.objective, "Value": value});
    }
    if let Err(f) = &trial.outcome {
        summary["FailureReason"] = json!(f.message);
    }
    summary
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_training_job_is_told_the_objective() {
        let arguments = json!({
            "HyperParameterTuningJobConfig": {
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
                "ParameterRanges": {"IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "5"}]}
            },
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {"MetricDefinitions": [{"Name": "validation:rmse", "Regex": "rmse:(\\S+)"}]},
                "StaticHyperParameters": {"num_round": "10"}
            }
        });
        let plan = Plan::parse(&arguments, 1).unwrap();
        let request = plan.training_request(&[("max_depth".into(), "3".into())]);
        assert_eq!(
            request["HyperParameters"],
            json!({"num_round": "10", "max_depth": "3", "_tuning_objective_metric": "validation:rmse"})
        );
    }
}

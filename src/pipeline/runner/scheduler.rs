//! The scheduler: launches steps as their dependencies settle (independent ones in parallel),
//! settles Condition branches, stops launching after a failure or an interrupt, retries as
//! RetryPolicies say, and consults the cache. What a step does is its executor's business.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::record::Status;
use super::state::{Shared, StepScope};
use super::steps::{self, StepContext};
use super::{RunConfig, cache, round3};
use crate::pipeline::clock;
use crate::pipeline::definition::Step;
use crate::pipeline::expr;
use crate::pipeline::jobs::{FailureKind, JobFailure, Jobs, job_name};

enum StepResult {
    Done { properties: Value, cache_hit_from: Option<String> },
    Failed(JobFailure),
}

/// What becomes of a step that has not started.
#[derive(PartialEq)]
enum Readiness {
    /// Its dependencies or its branch are not settled yet.
    Wait,
    /// It will not run: a dependency did not succeed, its branch was not taken, or the
    /// execution is stopping.
    Skip,
    Launch,
}

fn readiness(
    shared: &Shared,
    step: &Step,
    needs: &BTreeSet<String>,
    status: &HashMap<String, Option<Status>>,
    stopping: bool,
) -> Readiness {
    let dep_states: Vec<Option<Status>> = needs.iter().map(|d| status.get(d).copied().flatten()).collect();
    let branch_open = match &step.branch {
        None => Some(true),
        Some(branch) => match status.get(&branch.condition).copied().flatten() {
            Some(Status::Succeeded) => {
                let properties = shared.properties.lock().expect("lock");
                let outcome = properties.get(&branch.condition).and_then(|p| p["Outcome"].as_bool());
                Some(outcome == Some(branch.if_branch))
            }
            Some(Status::Executing) | None => None,
            Some(_) => Some(false),
        },
    };
    let blocked = dep_states.iter().any(|s| matches!(s, Some(Status::Failed | Status::Stopped | Status::NotExecuted)));
    if branch_open == Some(false) || blocked || (stopping && dep_states.iter().all(Option::is_some)) {
        Readiness::Skip
    } else if branch_open == Some(true) && dep_states.iter().all(|s| *s == Some(Status::Succeeded)) {
        Readiness::Launch
    } else {
        Readiness::Wait
    }
}

/// Launch steps as they become ready; returns the execution's failure reason, if any.
pub(super) fn schedule(shared: &Shared, jobs: &Jobs<'_>, config: &RunConfig) -> Option<String> {
    let steps = &shared.definition.steps;
    let needs: HashMap<&str, BTreeSet<String>> = steps.iter().map(|s| (s.name.as_str(), s.dependencies())).collect();
    let mut status: HashMap<String, Option<Status>> = steps.iter().map(|s| (s.name.clone(), None)).collect();
    let mut failure: Option<String> = None;
    let (done_tx, done_rx) = mpsc::channel::<(String, StepResult)>();
    // SageMaker lets running steps finish after a failure but starts no new ones.
    let mut stopping = false;
    std::thread::scope(|scope| {
        let mut running = 0usize;
        loop {
            stopping |= jobs.engine.interrupted();
            // Settle what can be settled, launch what is ready.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for step in steps {
                    if status[&step.name].is_some() {
                        continue;
                    }
                    match readiness(shared, step, &needs[step.name.as_str()], &status, stopping) {
                        Readiness::Wait => continue,
                        Readiness::Skip => {
                            status.insert(step.name.clone(), Some(Status::NotExecuted));
                        }
                        Readiness::Launch => {
                            status.insert(step.name.clone(), Some(Status::Executing));
                            running += 1;
                            let tx = done_tx.clone();
                            scope.spawn(move || {
                                let result = run_step(shared, jobs, step, config);
                                let _ = tx.send((step.name.clone(), result));
                            });
                        }
                    }
                    progressed = true;
                }
            }
            if running == 0 {
                break;
            }
            let Ok((name, result)) = done_rx.recv_timeout(Duration::from_millis(100)) else { continue };
            running -= 1;
            match result {
                StepResult::Done { properties, .. } => {
                    shared.properties.lock().expect("lock").insert(name.clone(), properties);
                    status.insert(name, Some(Status::Succeeded));
                }
                StepResult::Failed(job_failure) => {
                    let interrupted = job_failure.kind == FailureKind::Interrupted;
                    status.insert(name.clone(), Some(if interrupted { Status::Stopped } else { Status::Failed }));
                    if failure.is_none() {
                        failure = Some(if interrupted {
                            "the execution was interrupted".to_string()
                        } else {
                            format!("step {name} failed: {}", job_failure.message)
                        });
                    }
                    stopping = true;
                }
            }
        }
    });
    failure
}

fn run_step(shared: &Shared, jobs: &Jobs<'_>, step: &Step, config: &RunConfig) -> StepResult {
    let started = clock::now_secs();
    let instant = Instant::now();
    shared.update_step(&step.name, |r| {
        r.status = Status::Executing;
        r.start = Some(clock::rfc3339(started));
    });
    shared.say(&format!("{:<24} {:<13} started", step.name, step.kind.as_str()));
    let mut attempts = 0u32;
    let result = loop {
        attempts += 1;
        let result = attempt_step(shared, jobs, step, config);
        let StepResult::Failed(failure) = &result else { break result };
        match retry_delay(step, failure.kind, attempts, instant.elapsed()) {
            Some(delay) if !jobs.engine.interrupted() => {
                shared.say(&format!(
                    "{:<24} attempt {attempts} failed ({}); retrying in {:.1} s",
                    step.name,
                    failure.message,
                    delay.as_secs_f64()
                ));
                let until = Instant::now() + delay;
                while Instant::now() < until && !jobs.engine.interrupted() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            _ => break result,
        }
    };
    let ended = clock::now_secs();
    let (status, error, properties, hit) = match &result {
        StepResult::Done { properties, cache_hit_from } => {
            (Status::Succeeded, None, properties.clone(), cache_hit_from.clone())
        }
        StepResult::Failed(f) if f.kind == FailureKind::Interrupted => {
            (Status::Stopped, Some(f.message.clone()), Value::Null, None)
        }
        StepResult::Failed(f) => (Status::Failed, Some(f.message.clone()), Value::Null, None),
    };
    let shown = match (&status, &hit, &error) {
        (Status::Succeeded, Some(from), _) => format!("Succeeded (cache hit: execution {from})"),
        (Status::Succeeded, None, _) => format!("Succeeded in {:.2} s", ended - started),
        (_, _, Some(message)) => format!("{status:?}: {message}"),
        _ => format!("{status:?}"),
    };
    shared.say(&format!("{:<24} {:<13} {shown}", step.name, step.kind.as_str()));
    shared.update_step(&step.name, |r| {
        r.status = status;
        r.end = Some(clock::rfc3339(ended));
        r.duration_seconds = Some(round3(ended - started));
        r.attempts = attempts;
        r.error = error;
        r.properties = properties;
        r.cache_hit_from = hit;
    });
    result
}

/// The wait before the next attempt, if a retry policy covers this failure.
fn retry_delay(step: &Step, kind: FailureKind, attempts: u32, elapsed: Duration) -> Option<Duration> {
    let retry_type = kind.retry_type()?;
    let policy = step.retry.iter().find(|p| p.exception_types.iter().any(|t| t == retry_type))?;
    let delay = Duration::from_secs_f64(
        (policy.interval_seconds * policy.backoff_rate.powi(attempts as i32 - 1)).clamp(0.0, 3600.0),
    );
    let allowed = match (policy.max_attempts, policy.expire_after_min) {
        // MaxAttempts counts retries (AWS: "the maximum number of retry attempts"), so a step
        // may run max + 1 times in all.
        (Some(max), _) => attempts <= max,
        (None, Some(minutes)) => elapsed + delay < Duration::from_secs(u64::from(minutes) * 60),
        (None, None) => false,
    };
    allowed.then_some(delay)
}

fn attempt_step(shared: &Shared, jobs: &Jobs<'_>, step: &Step, config: &RunConfig) -> StepResult {
    let scope = StepScope { shared };
    let arguments = match expr::resolve(&step.arguments, &scope, &format!("{}.Arguments", step.path)) {
        Ok(args) => args,
        Err(err) => return StepResult::Failed(JobFailure::client(err.to_string())),
    };
    let executor = steps::executor(&step.kind);
    let cacheable = config.use_cache && step.cache.as_ref().is_some_and(|c| c.enabled) && executor.cacheable();
    let cache_key =
        cacheable.then(|| cache::key(shared, step, executor, &arguments, jobs.engine.kind, config.seed)).transpose();
    let cache_key = match cache_key {
        Ok(key) => key,
        Err(failure) => return StepResult::Failed(failure),
    };
    if let Some(key) = &cache_key {
        shared.cache_keys.lock().expect("lock").insert(step.name.clone(), key.clone());
        if let Some((from, properties)) = cache::lookup(shared, step, executor, key) {
            return StepResult::Done { properties, cache_hit_from: Some(from) };
        }
    }
    let context = StepContext {
        shared,
        jobs,
        step,
        job: job_name(&["pipelines", &shared.execution_id, &step.name]),
        seed: config.seed,
    };
    let result = executor.run(&context, &arguments);
    // The figures of the attempt that ended, also a failed one.
    let properties = result.as_ref().unwrap_or(&Value::Null);
    let resources = executor.resources(&context, properties);
    shared.update_step(&step.name, |r| r.resources = resources);
    match result {
        Ok(properties) => {
            if let Some(key) = &cache_key {
                cache::store(shared, step, key, &properties);
            }
            StepResult::Done { properties, cache_hit_from: None }
        }
        Err(failure) => StepResult::Failed(failure),
    }
}

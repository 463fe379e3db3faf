//! What `sagestep` prints: the summary of a run, tables of executions and registry versions,
//! and `validate`'s verdicts. Text only; the binary decides where it goes.

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::definition::Definition;
use super::registry::{Registry, RegistryError};
use super::runner::{ExecutionRecord, StepRecord};

/// Text for stdout and stderr, and whether all was well.
#[derive(Debug, Default)]
pub struct Report {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

/// `sagestep validate`: each file's verdict, or its problems one per line.
pub fn validation(files: &[PathBuf]) -> Report {
    let mut report = Report { ok: true, ..Report::default() };
    for file in files {
        let definition = match Definition::load(file) {
            Ok(definition) => definition,
            Err(err) => {
                report.ok = false;
                let _ = writeln!(report.stderr, "{err}");
                continue;
            }
        };
        let issues = super::validate::validate(&definition);
        let shown = file.display();
        if issues.is_empty() {
            let (steps, parameters) = (definition.steps.len(), definition.parameters.len());
            let _ = writeln!(report.stdout, "{shown}: valid ({steps} steps, {parameters} parameters)");
        } else {
            report.ok = false;
            for issue in &issues {
                let _ = writeln!(report.stdout, "{shown}: {issue}");
            }
            let _ = writeln!(report.stdout, "{shown}: {} problem(s)", issues.len());
        }
    }
    report
}

/// The table printed at the end of `sagestep run`.
pub fn summary(record: &ExecutionRecord, store: &str) -> String {
    let mut out = String::from("\n");
    let _ = writeln!(
        out,
        "{:<24} {:<14} {:<12} {:>8} {:>8} {:>9}  DETAIL",
        "STEP", "TYPE", "STATUS", "SECONDS", "CPU-S", "PEAK-MIB"
    );
    for step in &record.steps {
        let detail = match (&step.cache_hit_from, &step.error) {
            (Some(from), _) => format!("cache hit (execution {from})"),
            (_, Some(error)) => error.lines().next().unwrap_or_default().chars().take(100).collect(),
            _ => step_detail(&step.properties),
        };
        let (cpu, peak) = resource_cells(step);
        let _ = writeln!(
            out,
            "{:<24} {:<14} {:<12} {:>8} {:>8} {:>9}  {}",
            step.name,
            step.kind,
            format!("{:?}", step.status),
            step.duration_seconds.map_or("-".into(), |d| format!("{d:.2}")),
            cpu,
            peak,
            detail
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "execution {} of {}: {:?} in {:.2} s (engine: {})",
        record.execution_id,
        record.pipeline_name,
        record.status,
        record.duration_seconds.unwrap_or_default(),
        record.engine
    );
    if let Some(reason) = &record.failure_reason {
        let _ = writeln!(out, "failure: {reason}");
    }
    let _ = writeln!(out, "record: sagestep executions describe {} --store {store}", record.execution_id);
    let _ = writeln!(out, "report: sagestep executions report {} --store {store}", record.execution_id);
    out
}

/// A step's CPU seconds and peak memory in MiB: `cached` for a cache hit (nothing ran), `-`
/// for a step that ran no container or could not be measured.
fn resource_cells(step: &StepRecord) -> (String, String) {
    match (&step.resources, &step.cache_hit_from) {
        (_, Some(_)) => ("cached".into(), "cached".into()),
        (Some(r), None) => (format!("{:.3}", r.cpu_seconds), format!("{:.1}", mib(r.peak_memory_bytes))),
        (None, None) => ("-".into(), "-".into()),
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// One line of what a step produced.
fn step_detail(properties: &Value) -> String {
    if let Some(best) = properties.get("BestTrainingJob") {
        let metric = best.get("FinalHyperParameterTuningJobObjectiveMetric");
        return format!(
            "best {} {}={}",
            best["TrainingJobName"].as_str().unwrap_or("?"),
            metric.and_then(|m| m["MetricName"].as_str()).unwrap_or("?"),
            metric.map(|m| m["Value"].to_string()).unwrap_or_default()
        );
    }
    if let Some(outcome) = properties.get("Outcome") {
        return format!("outcome {outcome}");
    }
    if let Some(name) = properties.get("ModelPackageName").and_then(Value::as_str) {
        return format!("{name} ({})", properties["ModelApprovalStatus"].as_str().unwrap_or("?"));
    }
    if let Some(out) = properties.pointer("/TransformOutput/S3OutputPath").and_then(Value::as_str) {
        return format!("output {out}");
    }
    if let Some(name) = properties.get("ModelName").and_then(Value::as_str) {
        return format!("model {name}");
    }
    properties.get("ProcessingJobName").and_then(Value::as_str).map(|j| format!("job {j}")).unwrap_or_default()
}

/// `sagestep executions list`: newest first, as `list_executions` returns them.
pub fn executions_table(records: &[Value]) -> String {
    let mut out = format!("{:<14} {:<22} {:<10} {:>9}  STARTED\n", "EXECUTION", "PIPELINE", "STATUS", "SECONDS");
    for r in records {
        let _ = writeln!(
            out,
            "{:<14} {:<22} {:<10} {:>9}  {}",
            r["execution_id"].as_str().unwrap_or("?"),
            r["pipeline_name"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?"),
            r["duration_seconds"].as_f64().map_or("-".into(), |d| format!("{d:.2}")),
            r["start"].as_str().unwrap_or("?"),
        );
    }
    out
}

/// `sagestep registry list`: every version of one group, or of all groups.
pub fn registry_table(registry: &Registry<'_>, group: Option<&str>) -> Result<String, RegistryError> {
    let groups = match group {
        Some(g) => vec![g.to_string()],
        None => registry.groups()?,
    };
    let mut out = format!("{:<32} {:>7}  {:<22} {:<25} EXECUTION\n", "GROUP", "VERSION", "APPROVAL", "CREATED");
    for group in groups {
        for (version, record) in registry.versions(&group)? {
            let _ = writeln!(
                out,
                "{:<32} {:>7}  {:<22} {:<25} {}",
                group,
                version,
                record["ModelApprovalStatus"].as_str().unwrap_or("?"),
                record["CreationTime"].as_str().unwrap_or("?"),
                record.pointer("/Lineage/PipelineExecutionId").and_then(Value::as_str).unwrap_or("-"),
            );
        }
    }
    Ok(out)
}

/// `G/N: Approved` after an approval or rejection.
pub fn package_status(record: &Value) -> String {
    format!(
        "{}: {}",
        record["ModelPackageName"].as_str().unwrap_or("?"),
        record["ModelApprovalStatus"].as_str().unwrap_or("?")
    )
}

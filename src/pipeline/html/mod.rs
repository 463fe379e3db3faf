//! `sagestep executions report ID`: one self-contained HTML page of an execution, written from
//! the store alone. It holds the step timeline, the steps' resources (per host and per
//! training job), each tuning job's objective and hyperparameters, the evaluation's metrics
//! with predicted against actual and the residuals' distribution, and the data-quality
//! check's drift per feature and its violations. Charts are inline SVG (`crate::plot`).
//!
//! `gather` reads, `page` writes; neither knows the other's sources.

mod gather;
mod page;

use std::path::Path;

pub use gather::{GatherError, Run, gather};
pub use page::render;

use crate::storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: std::path::PathBuf, source: std::io::Error },
}

/// Write the report of execution `id` to `path`; returns its size in bytes.
pub fn write(storage: &Storage, id: &str, path: &Path) -> Result<usize, ReportError> {
    let page = render(&gather(storage, id)?);
    crate::storage::write_atomic(path, page.as_bytes())
        .map_err(|source| ReportError::Write { path: path.to_path_buf(), source })?;
    Ok(page.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::gather::{Check, Evaluation, from_record};
    use super::*;

    const EVIL: &str = "<script>document.title='pwned'</script>";

    /// A record whose names and messages carry markup, and files that do too.
    fn hostile_run() -> Run {
        let record = json!({
            "pipeline_name": EVIL, "execution_id": "abc", "status": "Failed", "engine": "process",
            "store": "x", "start": "2026-11-30T10:00:00.000Z", "duration_seconds": 3.0,
            "failure_reason": EVIL,
            "steps": [{"name": EVIL, "type": "Processing", "status": "Failed",
                       "start": "2026-11-30T10:00:00.500Z", "end": "2026-11-30T10:00:02.000Z",
                       "attempts": 1, "error": EVIL, "properties": null, "cache_hit_from": null,
                       "resources": {"wall_seconds": 1.5, "cpu_seconds": 1.0, "peak_memory_bytes": 1048576,
                                     "measured_by": ["rusage"],
                                     "hosts": [{"host": EVIL, "wall_seconds": 1.5, "cpu_seconds": 1.0,
                                                "peak_memory_bytes": 1048576, "measured_by": "rusage"}]}},
                      {"name": "T", "type": "Tuning", "status": "Succeeded", "attempts": 1,
                       "start": "2026-11-30T10:00:00.000Z", "end": "2026-11-30T10:00:01.000Z",
                       "properties": {"TrainingJobSummaries": [{"TrainingJobName": "j1", "TrainingJobStatus": "Completed",
                           "TunedHyperParameters": {EVIL: EVIL},
                           "FinalHyperParameterTuningJobObjectiveMetric": {"Value": 2.5}}]}}]
        });
        let mut run = from_record(record);
        run.checks.push(Check {
            step: "check".into(),
            status: "CompletedWithViolations".into(),
            violation_count: 1,
            drift: vec![(EVIL.into(), 0.5, 0.1, "numerical".into())],
            violations: vec![(EVIL.into(), "baseline_drift_check".into(), EVIL.into())],
        });
        run.evaluations.push(Evaluation {
            step: EVIL.into(),
            metrics: vec![("regression_metrics".into(), EVIL.into(), 1.0, None)],
            classification: false,
            labels: vec![1.0, 2.0, 3.0],
            predictions: vec![1.5, 2.0, 2.5],
        });
        run
    }

    #[test]
    fn every_string_from_data_is_escaped() {
        let page = render(&hostile_run());
        assert!(!page.contains("<script"), "raw markup from data in the page");
        assert!(page.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
        // The page's own structure is there.
        for part in [r#"id="timeline""#, r#"id="resources""#, r#"id="tuning""#, r#"id="evaluation""#, r#"id="drift""#] {
            assert!(page.contains(part), "{part}");
        }
        assert!(page.contains("Content-Security-Policy"));
    }

    #[test]
    fn step_resources_and_tuning_jobs_come_from_the_record() {
        let run = hostile_run();
        assert_eq!(run.steps.len(), 2);
        let resources = run.steps[0].resources.as_ref().expect("resources");
        assert_eq!((resources.cpu_seconds, resources.hosts.len()), (1.0, 1));
        assert_eq!((run.steps[0].start, run.steps[0].end), (Some(0.5), Some(2.0)));
        assert_eq!(run.tunings[0].jobs[0].objective, Some(2.5));
    }
}

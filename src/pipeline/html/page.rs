//! The report as one HTML page: inline CSS and SVG, no script, nothing fetched (the page's
//! Content-Security-Policy forbids both). Every string from the record or the steps' files
//! goes through `escape`.

use std::fmt::Write;

use super::gather::{Check, Evaluation, Run, StepRow, Tuning};
use crate::pipeline::report::mib;
use crate::pipeline::usage::{HostUsage, Method, Resources};
use crate::plot::{Bar, Span, bars, escape, short, timeline};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.sub td{color:#555;background:#fafafa}\
.Succeeded{color:#276749}.Failed{color:#c53030}.Stopped{color:#b7791f}.NotExecuted{color:#888}\
.charts{display:flex;flex-wrap:wrap;gap:12px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}\
dt{font-weight:bold}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px}";

/// The whole page.
pub fn render(run: &Run) -> String {
    let record = &run.record;
    let field = |name: &str| record[name].as_str().unwrap_or("-").to_string();
    let title = format!("{} execution {}", field("pipeline_name"), field("execution_id"));
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>"#,
        escape(&title),
        escape(&title)
    );
    let status = field("status");
    let _ = write!(
        page,
        r#"<dl id="execution"><dt>status</dt><dd class="{}">{}</dd><dt>engine</dt><dd>{}</dd><dt>store</dt><dd>{}</dd><dt>started</dt><dd>{}</dd><dt>seconds</dt><dd>{}</dd></dl>"#,
        escape(&status),
        escape(&status),
        escape(&field("engine")),
        escape(&field("store")),
        escape(&field("start")),
        record["duration_seconds"].as_f64().map_or("-".into(), short)
    );
    if let Some(reason) = record["failure_reason"].as_str() {
        let _ = write!(page, r#"<p class="failure"><b>failure:</b> {}</p>"#, escape(reason));
    }
    page.push_str(&steps_section(&run.steps));
    for tuning in &run.tunings {
        page.push_str(&tuning_section(tuning));
    }
    for evaluation in &run.evaluations {
        page.push_str(&evaluation_section(evaluation));
    }
    for check in &run.checks {
        page.push_str(&check_section(check));
    }
    if !run.missing.is_empty() {
        page.push_str("<h2>Not found</h2><ul>");
        for missing in &run.missing {
            let _ = write!(page, "<li>{}</li>", escape(missing));
        }
        page.push_str("</ul>");
    }
    page.push_str("</body></html>\n");
    page
}

fn colour(step: &StepRow) -> &'static str {
    match (step.status.as_str(), &step.cache_hit_from) {
        (_, Some(_)) => "#a0aec0",
        ("Succeeded", _) => "#38a169",
        ("Failed", _) => "#c53030",
        _ => "#d69e2e",
    }
}

/// The timeline and the steps' table with their resources.
fn steps_section(steps: &[StepRow]) -> String {
    let spans: Vec<Span> = steps
        .iter()
        .filter_map(|s| {
            let note = match &s.cache_hit_from {
                Some(from) => format!(" (cache hit: execution {from})"),
                None => format!(" ({})", s.status),
            };
            Some(Span { label: s.name.clone(), start: s.start?, end: s.end?, colour: colour(s), note })
        })
        .collect();
    let mut out = String::from(r#"<h2 id="timeline">Timeline</h2>"#);
    out.push_str(&timeline("steps", &spans));
    out.push_str(
        r#"<h2>Steps and resources</h2><p>Wall: the containers' time; CPU: user + system seconds, summed over hosts and training jobs; peak: the largest host's. Processes are measured by <code>wait4</code>'s rusage (peak resident set), containers by their cgroup (peak charged memory, page cache included). A cache hit ran nothing: its figures are in the record of the execution it reused.</p>"#,
    );
    out.push_str(r#"<table id="resources"><tr><th>step</th><th>type</th><th>status</th><th>attempts</th><th>seconds</th><th>wall s</th><th>CPU s</th><th>peak MiB</th><th>measured by</th><th>detail</th></tr>"#);
    for step in steps {
        let seconds = match (step.start, step.end) {
            (Some(a), Some(b)) => short(b - a),
            _ => "-".into(),
        };
        let detail = match (&step.cache_hit_from, &step.error) {
            (Some(from), _) => format!("cache hit (execution {from})"),
            (None, Some(error)) => error.clone(),
            _ => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr class="step"><td>{}</td><td>{}</td><td class="{}">{}</td><td class="n">{}</td><td class="n">{}</td>{}<td>{}</td></tr>"#,
            escape(&step.name),
            escape(&step.kind),
            escape(&step.status),
            escape(&step.status),
            step.attempts,
            seconds,
            resource_cells(step.resources.as_ref(), step.cache_hit_from.is_some()),
            escape(&detail)
        );
        if let Some(resources) = &step.resources {
            out.push_str(&host_rows(&resources.hosts, ""));
            for job in &resources.jobs {
                let _ = write!(
                    out,
                    r#"<tr class="sub"><td colspan="5">training job {}</td>{}<td></td></tr>"#,
                    escape(&job.job),
                    figures(job.wall_seconds, job.cpu_seconds, job.peak_memory_bytes, "")
                );
                out.push_str(&host_rows(&job.hosts, "&nbsp;&nbsp;"));
            }
        }
    }
    out.push_str("</table>");
    out
}

fn host_rows(hosts: &[HostUsage], indent: &str) -> String {
    let mut out = String::new();
    for host in hosts {
        let cells = match &host.usage {
            Some(u) => {
                figures(u.wall_seconds, u.cpu_seconds, u.peak_memory_bytes, &methods(host.measured_by.as_slice()))
            }
            None => r#"<td colspan="4">not measured</td>"#.to_string(),
        };
        let _ = write!(
            out,
            r#"<tr class="sub host"><td colspan="5">{indent}host {}</td>{cells}<td></td></tr>"#,
            escape(&host.host)
        );
    }
    out
}

fn figures(wall: f64, cpu: f64, peak: u64, by: &str) -> String {
    format!(
        r#"<td class="n">{}</td><td class="n">{}</td><td class="n">{:.1}</td><td>{}</td>"#,
        short(wall),
        short(cpu),
        mib(peak),
        escape(by)
    )
}

fn methods(methods: &[Method]) -> String {
    methods
        .iter()
        .map(|m| match m {
            Method::Rusage => "rusage",
            Method::RusagePeakSampled => "rusage, peak sampled",
            Method::Cgroup => "cgroup",
            Method::CgroupSampled => "cgroup (sampled)",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn resource_cells(resources: Option<&Resources>, cached: bool) -> String {
    match (resources, cached) {
        (_, true) => r#"<td colspan="4">cached: nothing ran</td>"#.into(),
        (Some(r), false) => figures(r.wall_seconds, r.cpu_seconds, r.peak_memory_bytes, &methods(&r.measured_by)),
        (None, false) => r#"<td colspan="4">-</td>"#.into(),
    }
}

fn tuning_section(tuning: &Tuning) -> String {
    let mut out = format!(r#"<h2 id="tuning">Tuning: {}</h2>"#, escape(&tuning.step));
    let statics: Vec<String> =
        tuning.static_hyperparameters.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect();
    let _ = write!(
        out,
        "<p>Objective: {} {}. Static hyperparameters: {}.</p>",
        escape(&tuning.objective_type),
        escape(&tuning.objective),
        statics.join(", ")
    );
    let mut names: Vec<&str> =
        tuning.jobs.iter().flat_map(|j| j.hyperparameters.iter().map(|(k, _)| k.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    out.push_str(r#"<table class="tuning"><tr><th>rank</th><th>training job</th><th>status</th>"#);
    let _ = write!(out, "<th>{}</th>", escape(&tuning.objective));
    for name in &names {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("<th>wall s</th><th>CPU s</th><th>peak MiB</th></tr>");
    for (rank, job) in tuning.jobs.iter().enumerate() {
        let _ = write!(
            out,
            r#"<tr class="trial"><td class="n">{}</td><td>{}</td><td>{}</td><td class="n">{}</td>"#,
            rank + 1,
            escape(&job.name),
            escape(&job.status),
            job.objective.map_or("-".into(), |v| v.to_string())
        );
        for name in &names {
            let value = job.hyperparameters.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str());
            let _ = write!(out, r#"<td class="n">{}</td>"#, escape(value));
        }
        match &job.usage {
            Some(u) => {
                let _ = write!(
                    out,
                    r#"<td class="n">{}</td><td class="n">{}</td><td class="n">{:.1}</td></tr>"#,
                    short(u.wall_seconds),
                    short(u.cpu_seconds),
                    mib(u.peak_memory_bytes)
                );
            }
            None => out.push_str(r#"<td colspan="3">-</td></tr>"#),
        }
        if let Some(failure) = &job.failure {
            let _ = write!(out, r#"<tr class="sub"><td colspan="{}">{}</td></tr>"#, names.len() + 7, escape(failure));
        }
    }
    out.push_str("</table>");
    let rows: Vec<Bar> = tuning
        .jobs
        .iter()
        .enumerate()
        .filter_map(|(rank, j)| {
            Some(Bar { label: format!("{}. {}", rank + 1, tail(&j.name, 20)), value: j.objective?, mark: None })
        })
        .collect();
    out.push_str(&bars(&format!("{} per training job", tuning.objective), &tuning.objective, &rows));
    out
}

/// The last `n` characters of a long name (training job names share their tuning job's).
fn tail(name: &str, n: usize) -> String {
    let count = name.chars().count();
    if count <= n { name.to_string() } else { format!("…{}", name.chars().skip(count - n).collect::<String>()) }
}

fn evaluation_section(evaluation: &Evaluation) -> String {
    let mut out = format!(r#"<h2 id="evaluation">Evaluation: {}</h2>"#, escape(&evaluation.step));
    out.push_str(r#"<table class="metrics"><tr><th>metric</th><th>value</th><th>standard deviation</th></tr>"#);
    for (group, name, value, deviation) in &evaluation.metrics {
        let _ = write!(
            out,
            r#"<tr><td>{} {}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            escape(group),
            escape(name),
            short(*value),
            deviation.map_or("-".into(), short)
        );
    }
    out.push_str("</table>");
    if evaluation.labels.is_empty() {
        out.push_str("<p>No per-row predictions were found beside evaluation.json.</p>");
        return out;
    }
    let (scatter, histogram) =
        crate::evaluate::charts(&evaluation.labels, &evaluation.predictions, evaluation.classification);
    let _ = write!(out, r#"<div class="charts">{scatter}{histogram}</div>"#);
    out
}

fn check_section(check: &Check) -> String {
    let mut out = format!(r#"<h2 id="drift">Data quality: {}</h2>"#, escape(&check.step));
    let _ = write!(out, "<p>{}: {} violation(s).</p>", escape(&check.status), check.violation_count);
    out.push_str(r#"<table class="drift"><tr><th>feature</th><th>distance</th><th>threshold</th><th>method</th><th>drifted</th></tr>"#);
    for (feature, distance, threshold, method) in &check.drift {
        let drifted = distance > threshold;
        let _ = write!(
            out,
            r#"<tr class="feature"><td>{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td><td class="{}">{}</td></tr>"#,
            escape(feature),
            short(*distance),
            short(*threshold),
            escape(method),
            if drifted { "Failed" } else { "Succeeded" },
            if drifted { "yes" } else { "no" }
        );
    }
    out.push_str("</table>");
    let rows: Vec<Bar> =
        check.drift.iter().map(|(f, d, t, _)| Bar { label: f.clone(), value: *d, mark: Some(*t) }).collect();
    out.push_str(&bars("drift distance per feature (mark: threshold)", "distance", &rows));
    if !check.violations.is_empty() {
        out.push_str(r#"<table class="violations"><tr><th>feature</th><th>check</th><th>description</th></tr>"#);
        for (feature, kind, description) in &check.violations {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(feature),
                escape(kind),
                escape(description)
            );
        }
        out.push_str("</table>");
    }
    out
}

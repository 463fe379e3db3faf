//! `sagestep executions report`: the page of a real run (the shipped pipeline, processes)
//! opened in headless Chromium (Debian's `chromium`; `scripts/setup` installs it). The
//! browser must load it with no console message (errors, refused fetches), and its rendered
//! DOM must hold the charts, the drift rows, the tuning table and the resource table. A run
//! whose record carries markup in its names and messages renders it as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{assert_success, auto_mpg, repo, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_sagestep");

fn sagestep(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).arg("--store").arg(store).output().expect("run sagestep")
}

/// The shipped pipeline through the process engine; its execution id.
fn run_pipeline(store: &Path) -> String {
    let work = store.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let input = format!("InputData=file://{}", auto_mpg().display());
    let pipeline = repo().join("pipeline.json");
    let output = sagestep(
        store,
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--param",
            &input,
            "--param",
            "ArtifactRoot=s3://artifacts/auto-mpg",
            "--param",
            "ExecutionRoleArn=arn:aws:iam::000000000000:role/test",
            "--work-dir",
            work.to_str().unwrap(),
        ],
    );
    assert_success(&output);
    let listed = String::from_utf8_lossy(&sagestep(store, &["executions", "list"]).stdout).into_owned();
    listed.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("an execution").to_string()
}

fn report(store: &Path, id: &str) -> PathBuf {
    let page = store.join(format!("report-{id}.html"));
    let output = sagestep(store, &["executions", "report", id, "--output", page.to_str().unwrap()]);
    assert_success(&output);
    page
}

/// Chromium's rendered DOM of a page, and the console messages it logged. Chromium must be
/// installed: a missing browser fails the test.
fn render(page: &Path) -> (String, Vec<String>) {
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("chromium could not start ({e}): install it with scripts/setup (apt-get install chromium)")
        });
    assert!(output.status.success(), "chromium failed: {}", stderr(&output));
    let console = stderr(&output)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&output.stdout).into_owned(), console)
}

fn count(dom: &str, needle: &str) -> usize {
    dom.matches(needle).count()
}

#[test]
fn the_console_check_sees_errors() {
    // The check below is only as good as this: a page with a script error is caught.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>console.error('control'); nothing();</script></body></html>",
    )
    .unwrap();
    let (_, console) = render(&page);
    assert!(
        console.iter().any(|l| l.contains("control")) && console.iter().any(|l| l.contains("Uncaught")),
        "{console:?}"
    );
}

#[test]
fn the_report_of_a_run_renders_in_chromium_with_its_charts() {
    let store = tempfile::tempdir().unwrap();
    let id = run_pipeline(store.path());
    let page = report(store.path(), &id);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
    for fetch in ["src=", "href=", "url(", "@import", "<link", "<script", "<img"] {
        assert!(!html.contains(fetch), "the page holds `{fetch}`");
    }
    assert_eq!(html.replace("http://www.w3.org/2000/svg", "").matches("://").count(), 0, "an address in the page");

    let started = std::time::Instant::now();
    let (dom, console) = render(&page);
    eprintln!("chromium rendered the {} byte report in {:.2?}", html.len(), started.elapsed());
    assert!(console.is_empty(), "console messages: {console:#?}");
    // The charts: timeline, tuning objective, predicted against actual, residuals, drift.
    assert!(count(&dom, "<svg") >= 5, "{} charts", count(&dom, "<svg"));
    assert!(dom.contains(r#"id="timeline""#));
    assert!(count(&dom, r#"class="point""#) >= 20, "the scatter's points (29 test rows)");
    assert!(count(&dom, r#"class="bin""#) == 20, "the residuals' histogram");
    // Drift per feature: the nine features of test_set_2.
    assert_eq!(count(&dom, r#"<tr class="feature">"#), 9, "drift rows");
    assert!(dom.contains("<td>_c2</td>"));
    // Each tuning job: objective and hyperparameters.
    assert_eq!(count(&dom, r#"<tr class="trial">"#), 3, "tuning rows");
    assert!(
        dom.contains("<th>validation:rmse</th>") && dom.contains("<th>alpha</th>") && dom.contains("<th>lambda</th>")
    );
    // Resources: every job step with figures and how they were measured.
    assert!(dom.contains(r#"id="resources""#));
    let rows: Vec<&str> = dom.split(r#"<tr class="step">"#).skip(1).collect();
    assert_eq!(rows.len(), 12, "a row per step");
    let measured = rows.iter().filter(|r| r.split("</tr>").next().unwrap().contains("<td>rusage")).count();
    assert_eq!(measured, 6, "job steps with figures");

    // A screenshot of the page (what docs/report.png shows).
    let png = store.path().join("report.png");
    let shot = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2400"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", stderr(&shot));
    assert!(std::fs::metadata(&png).unwrap().len() > 20_000, "a blank screenshot");
}

#[test]
fn markup_in_a_record_is_shown_as_text() {
    let store = tempfile::tempdir().unwrap();
    let id = run_pipeline(store.path());
    // Names and messages with markup, as a hostile or careless definition could make them.
    let key = store.path().join(format!(".sagestep/executions/{id}.json"));
    let mut record: Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    let evil = "<script>document.title='pwned'</script><img src=x>";
    record["pipeline_name"] = evil.into();
    record["failure_reason"] = evil.into();
    record["steps"][0]["name"] = evil.into();
    record["steps"][0]["error"] = evil.into();
    std::fs::write(&key, serde_json::to_vec(&record).unwrap()).unwrap();
    let page = report(store.path(), &id);
    let (dom, console) = render(&page);
    assert!(console.is_empty(), "{console:#?}");
    assert!(!dom.contains("<script") && !dom.contains("<img"), "markup from the record became elements");
    assert!(!dom.contains("<title>pwned</title>"));
    assert!(count(&dom, "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x&gt;") >= 4, "shown as text");
}

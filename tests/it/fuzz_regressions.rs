//! Every fuzz finding (`tests/data/fuzz/<target>/`, copied there by `scripts/fuzz`) run again
//! through its target's function (`sagestep::fuzzing`, which the fuzz targets call too): each
//! must return (a value or an error) without a panic, quickly, in bounded memory. Each finding
//! runs in a child process of this test binary under `ulimit -v`, so a regressed allocation
//! bug fails this test instead of exhausting the machine's memory.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sagestep::fuzzing::TARGETS;

/// `<target>\n<path>`: the finding `one_finding` runs.
const FINDING_ENV: &str = "SAGESTEP_FUZZ_FINDING";
/// Far above what any finding takes once fixed (milliseconds), far below a hang.
const LIMIT: Duration = Duration::from_secs(30);
/// Address space of a finding's process (KiB): 4 GiB, twice libFuzzer's -rss_limit_mb.
const MEMORY_KIB: u64 = 4 << 20;

#[test]
fn fuzz_findings_return_cleanly() {
    let root = crate::util::repo().join("tests/data/fuzz");
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !TARGETS.iter().any(|t| t.name == name) {
            failures.push(format!("{}: no fuzz target is named `{name}`", dir.display()));
            continue;
        }
        let mut files = crate::util::files_below(&dir);
        files.sort();
        for file in files {
            if let Err(problem) = run_finding(&name, &file) {
                failures.push(format!("{}: {problem}", file.display()));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {checked} findings fail:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 0, "no findings under {}", root.display());
}

/// This test binary again, running only `one_finding` on `file`, in limited memory.
fn run_finding(target: &str, file: &std::path::Path) -> Result<(), String> {
    let output = tempfile::NamedTempFile::new().unwrap();
    // The target's scratch files (src/fuzzing.rs) go into the temp directory: this one.
    let scratch = tempfile::tempdir().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v "$1" && exec "$2" --exact fuzz_regressions::one_finding --nocapture --test-threads=1"#)
        .arg("sh")
        .arg(MEMORY_KIB.to_string())
        .arg(std::env::current_exe().unwrap())
        .env(FINDING_ENV, format!("{target}\n{}", file.display()))
        .env("TMPDIR", scratch.path())
        .stdout(output.reopen().unwrap())
        .stderr(output.reopen().unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(output.path()).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{status}:\n{}", tail.join("\n")))
}

/// One finding (named by `SAGESTEP_FUZZ_FINDING`) through its target; nothing without it.
#[test]
fn one_finding() {
    let Ok(spec) = std::env::var(FINDING_ENV) else { return };
    let (name, path) = spec.split_once('\n').expect("`<target>\\n<path>`");
    let target = TARGETS.iter().find(|t| t.name == name).expect("a fuzz target");
    (target.run)(&std::fs::read(path).expect("the finding is readable"));
}

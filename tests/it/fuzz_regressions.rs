//! Every fuzz finding (`tests/data/fuzz/<target>/`, copied there by `scripts/fuzz`) run again
//! through its target's function (`sagestep::fuzzing`, which the fuzz targets call too):
//! each must return (a value or an error) without a panic, quickly.

use std::sync::mpsc;
use std::time::Duration;

use sagestep::fuzzing::TARGETS;

/// Far above what any finding takes once fixed (milliseconds), far below a hang.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn fuzz_findings_return_cleanly() {
    let root = crate::util::repo().join("tests/data/fuzz");
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
            failures.push(format!("{}: no fuzz target is named `{name}`", dir.display()));
            continue;
        };
        let mut files = crate::util::files_below(&dir);
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let run = target.run;
            let (done, finished) = mpsc::channel();
            // A thread per input: a panic is caught at the join, a hang by the timeout.
            let worker = std::thread::spawn(move || {
                run(&bytes);
                let _ = done.send(());
            });
            match finished.recv_timeout(LIMIT) {
                Ok(()) => {
                    let _ = worker.join();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    failures.push(format!("{}: still running after {LIMIT:?}", file.display()));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let message = worker.join().err().map_or_else(String::new, |p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    });
                    failures.push(format!("{}: panicked: {message}", file.display()));
                }
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {checked} findings fail:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 0, "no findings under {}", root.display());
}

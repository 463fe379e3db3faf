//! Logging: human-readable text locally, JSON lines in images (CloudWatch parses them).
//!
//! Logs go to stderr so that stdout stays free for what a step prints on purpose (the
//! trainer's metric lines, which SageMaker reads from both streams).

use tracing_subscriber::EnvFilter;

use crate::contract::env::{SAGESTEP_LOG, SAGESTEP_LOG_FORMAT};

/// Install the global subscriber. Safe to call once per process.
pub fn init() {
    let filter = EnvFilter::try_from_env(SAGESTEP_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var(SAGESTEP_LOG_FORMAT).is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        // Colours only on a terminal: a log kept in a file (the runner's job logs, whose tail
        // can become a job's failure reason) stays plain text.
        builder.with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
    };
    // A second init (tests) keeps the first subscriber; nothing to report.
    drop(result);
}

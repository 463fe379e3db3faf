//! Time spent in each phase of training, reported at debug level: where a round goes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub const PHASES: [&str; 7] =
    ["gradient", "histogram", "partition", "split search", "train margins", "eval margins", "metrics"];
static NANOS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

/// Run `f`, adding its time to phase `i`.
pub fn time<T>(i: usize, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    NANOS[i].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

pub fn report() {
    let parts: Vec<String> =
        PHASES.iter().zip(&NANOS).map(|(p, n)| format!("{p} {:.2}s", n.load(Ordering::Relaxed) as f64 / 1e9)).collect();
    tracing::debug!("time by phase: {}", parts.join(", "));
}

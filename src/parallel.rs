//! How many cores work may be split over. `available_parallelism` reads cgroup files on every
//! call (measured: tens of microseconds), so it is asked once per process.

use std::sync::OnceLock;

pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

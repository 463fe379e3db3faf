//! How many cores work may be split over. `available_parallelism` reads cgroup files on every
//! call (measured: tens of microseconds), so it is asked once per process.

use std::sync::OnceLock;

pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Memory this process may use: the least of the machine's `MemTotal`, the cgroup limit (v2
/// `memory.max`, v1 `memory.limit_in_bytes`) and the address-space limit (`ulimit -v`).
pub fn memory_bytes() -> u64 {
    machine_or_cgroup_bytes().min(address_space_limit().unwrap_or(u64::MAX))
}

/// `Max address space` of `/proc/self/limits` (the soft limit), when one is set.
fn address_space_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..].split_whitespace().next()?.parse().ok()
}

fn machine_or_cgroup_bytes() -> u64 {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .flatten()
        .map_or(u64::MAX, |kb| kb * 1024);
    let limit = read("/sys/fs/cgroup/memory.max").or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    limit.map_or(total, |l| l.min(total))
}

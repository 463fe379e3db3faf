//! The memory budget of a multi-model server: how much loaded models may take. The limit is
//! the container's (cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`, the smallest
//! along the cgroup's ancestors), else the machine's `MemTotal`, or set outright; the budget
//! is the limit less a reserve for requests in flight and the model being parsed.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// The memory limit to plan for instead of the container's (bytes, or with a `K`/`M`/`G` or
/// `Ki`/`Mi`/`Gi` suffix).
pub const SAGESTEP_MEMORY_LIMIT: &str = "SAGESTEP_MEMORY_LIMIT";

/// cgroup v1 reports "no limit" as a huge page-rounded number (2^63 - 4096).
const V1_UNLIMITED: u64 = 1 << 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    /// What the server's resident memory, and the bytes its models hold, may reach.
    pub bytes: u64,
    /// The limit it comes from, and where that comes from, for the startup log.
    pub source: String,
}

impl MemoryBudget {
    pub fn from_env() -> Result<Self, ConfigError> {
        let (limit, source) = match super::var(SAGESTEP_MEMORY_LIMIT) {
            Some(text) => (
                parse_size(&text).ok_or(ConfigError::Invalid {
                    name: SAGESTEP_MEMORY_LIMIT,
                    expected: "a number of bytes, optionally with a K, M, G, Ki, Mi or Gi suffix",
                    given: text,
                })?,
                SAGESTEP_MEMORY_LIMIT.to_string(),
            ),
            None => container_limit(Path::new("/"))
                .or_else(|| {
                    mem_total(Path::new("/")).map(|b| (b, "MemTotal in /proc/meminfo (no cgroup limit)".into()))
                })
                .unwrap_or((u64::MAX, "nothing (no cgroup limit, no /proc/meminfo)".into())),
        };
        Ok(Self { bytes: limit.saturating_sub(reserve(limit)), source: format!("{limit} bytes from {source}") })
    }
}

/// This process's resident memory (`VmRSS`), if the system says.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok()?.checked_mul(1024)
}

/// Kept back from the limit: a tenth, at least 32 MiB (requests of up to 6 MiB decoded on
/// every core, the model being parsed, which takes a few times its file's size) and at most
/// 1 GiB.
fn reserve(limit: u64) -> u64 {
    (limit / 10).clamp(32 << 20, 1 << 30)
}

/// `1000`, `512M`, `2Gi`, `64k`: bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// The memory limit of this process's cgroup, under the file system root `fs` (tests pass
/// a fake tree): the smallest limit set on the cgroup or an ancestor.
fn container_limit(fs: &Path) -> Option<(u64, String)> {
    let cgroups = std::fs::read_to_string(fs.join("proc/self/cgroup")).ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (mount, file, source) = if id == "0" && controllers.is_empty() {
            (fs.join("sys/fs/cgroup"), "memory.max", "cgroup v2 memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (fs.join("sys/fs/cgroup/memory"), "memory.limit_in_bytes", "cgroup v1 memory.limit_in_bytes")
        } else {
            continue;
        };
        if let Some(limit) = smallest_limit(&mount, path, file) {
            return Some((limit, source.into()));
        }
    }
    None
}

/// Walk from the cgroup's directory up to the mount: inside a container the cgroup
/// namespace makes the path `/`, on a host it is the full path.
fn smallest_limit(mount: &Path, path: &str, file: &str) -> Option<u64> {
    let mut dir: PathBuf = mount.join(path.trim_start_matches('/'));
    let mut smallest: Option<u64> = None;
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            let limit = text.trim().parse::<u64>().ok().filter(|&b| b < V1_UNLIMITED);
            smallest = match (smallest, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            break;
        }
    }
    smallest
}

fn mem_total(fs: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(fs.join("proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("512M"), Some(512_000_000));
        assert_eq!(parse_size("2Gi"), Some(2 << 30));
        assert_eq!(parse_size(" 64 kib "), Some(64 << 10));
        assert_eq!(parse_size("12X"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn cgroup_v2_in_a_container_and_on_a_host() {
        let fs = tree(&[("proc/self/cgroup", "0::/\n"), ("sys/fs/cgroup/memory.max", "268435456\n")]);
        assert_eq!(container_limit(fs.path()), Some((268435456, "cgroup v2 memory.max".into())));
        // On a host: the limit is on an ancestor of the process's cgroup; "max" is no limit.
        let fs = tree(&[
            ("proc/self/cgroup", "0::/a/b\n"),
            ("sys/fs/cgroup/a/b/memory.max", "max\n"),
            ("sys/fs/cgroup/a/memory.max", "1000000\n"),
        ]);
        assert_eq!(container_limit(fs.path()).map(|l| l.0), Some(1000000));
        let fs = tree(&[("proc/self/cgroup", "0::/\n"), ("sys/fs/cgroup/memory.max", "max\n")]);
        assert_eq!(container_limit(fs.path()), None);
    }

    #[test]
    fn cgroup_v1_and_its_unlimited_value() {
        let v1 = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n";
        let fs = tree(&[("proc/self/cgroup", v1), ("sys/fs/cgroup/memory/memory.limit_in_bytes", "536870912\n")]);
        assert_eq!(container_limit(fs.path()), Some((536870912, "cgroup v1 memory.limit_in_bytes".into())));
        let fs =
            tree(&[("proc/self/cgroup", v1), ("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")]);
        assert_eq!(container_limit(fs.path()), None);
        let fs = tree(&[("proc/meminfo", "MemTotal:       24684544 kB\nMemFree: 1 kB\n")]);
        assert_eq!(mem_total(fs.path()), Some(24684544 * 1024));
    }

    #[test]
    fn reserve_is_a_tenth_within_bounds() {
        assert_eq!(reserve(100 << 20), 32 << 20);
        assert_eq!(reserve(4 << 30), (4u64 << 30) / 10);
        assert_eq!(reserve(64 << 30), 1 << 30);
    }
}

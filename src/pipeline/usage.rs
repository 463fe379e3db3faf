//! What a job's containers cost: wall time, CPU time and peak memory, per host and per job.
//!
//! - A local process (the process engine) is reaped with `wait4`, which hands back the
//!   kernel's `rusage` of that child alone: user + system CPU, exact whatever the job's
//!   length (threads count; children it did not wait for do not, and our steps start none).
//!   Its `ru_maxrss` is the peak resident set, but Linux folds in the memory the child had
//!   before `exec`: a copy of the runner's. So `ru_maxrss` is taken only when it is well above
//!   the runner's own peak at the spawn (by a quarter and 16 MiB: the kernel updates that peak
//!   lazily, so a spike of the runner's other threads can pass it unseen), where only the
//!   step can have put it. Otherwise the peak is the step's `VmHWM` (`/proc/<pid>/status`, the
//!   high-water mark of its own memory since `exec`), read right after the spawn and then
//!   every 1 to `PROCESS_SAMPLE_EVERY` (`sample_interval`): growth in the last interval before
//!   the exit is missed, and the record says `rusage_peak_sampled`.
//! - A container (the Docker engine) is measured from its cgroup on the Docker host, which the
//!   `docker run` client cannot report and which is removed when the container ends: a thread
//!   finds it from the container id (`--cidfile`), reads the CPU counter and the memory
//!   high-water mark every `SAMPLE_EVERY`, and keeps the last reading. A reading taken once no
//!   process is left in the cgroup is final (`cgroup`); otherwise up to one interval of CPU
//!   after the last reading is missing (`cgroup_sampled`). The memory high-water mark is the
//!   kernel's own, so no peak is missed between readings; it counts what the cgroup is charged
//!   for: resident memory and the page cache of files it read and wrote. cgroup v1
//!   (`cpuacct.usage`, `memory.max_usage_in_bytes`) and v2 (`cpu.stat`, `memory.peak`), Docker's
//!   `cgroupfs` and `systemd` drivers. A daemon whose cgroups this machine cannot see (a remote
//!   or rootless engine) gives no figures: the record says so.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often a container's cgroup is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How often a local process's memory high-water mark is read (the engine's wait loop), at
/// most: a tenth of its age, from 1 ms, so that short jobs are read often.
pub const PROCESS_SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The wait before the next reading of a process that has run for `age`.
pub fn sample_interval(age: Duration) -> Duration {
    (age / 10).clamp(Duration::from_millis(1), PROCESS_SAMPLE_EVERY)
}

/// One container's (or process's) figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
}

/// How a figure was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `wait4`'s rusage of the child process.
    Rusage,
    /// CPU from `wait4`'s rusage; the peak from the process's `VmHWM`, last read up to
    /// `PROCESS_SAMPLE_EVERY` before it ended.
    RusagePeakSampled,
    /// The container's cgroup, read after its last process ended.
    Cgroup,
    /// The container's cgroup, last read up to `SAMPLE_EVERY` before it was removed.
    CgroupSampled,
}

/// One host's container (or one server) of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostUsage {
    pub host: String,
    /// Absent when the engine could not measure it (see `unmeasured`).
    #[serde(flatten)]
    pub usage: Option<Usage>,
    pub measured_by: Option<Method>,
}

/// One job's figures: its hosts' CPU summed, the largest host's peak, the longest host's wall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUsage {
    pub job: String,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
    /// Every host, when the job had several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostUsage>,
    /// Hosts whose figures are missing (counted as zero above).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unmeasured_hosts: usize,
}

/// A step's figures in its execution record: its job's, or for a tuning step the sum of its
/// training jobs' CPU, the largest peak and the step's jobs one by one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// The longest container's wall time (jobs of a tuning step: the sum).
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
    /// `rusage` (processes), `cgroup` (containers), or both when a run mixed them.
    pub measured_by: Vec<Method>,
    /// Hosts of a multi-instance job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostUsage>,
    /// The training jobs of a tuning step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobUsage>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unmeasured_hosts: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl JobUsage {
    /// A job's figures from its hosts, in host order.
    pub fn of_hosts(job: &str, hosts: Vec<HostUsage>) -> Self {
        let measured: Vec<Usage> = hosts.iter().filter_map(|h| h.usage).collect();
        let unmeasured_hosts = hosts.len() - measured.len();
        Self {
            job: job.to_string(),
            wall_seconds: round3(measured.iter().map(|u| u.wall_seconds).fold(0.0, f64::max)),
            cpu_seconds: round3(measured.iter().map(|u| u.cpu_seconds).sum()),
            peak_memory_bytes: measured.iter().map(|u| u.peak_memory_bytes).max().unwrap_or(0),
            hosts: if hosts.len() > 1 { hosts } else { Vec::new() },
            unmeasured_hosts,
        }
    }
}

/// How the hosts' figures were measured, each way once.
fn methods(hosts: &[HostUsage]) -> Vec<Method> {
    let mut methods: Vec<Method> = hosts.iter().filter_map(|h| h.measured_by).collect();
    methods.sort_by_key(|m| *m as u8);
    methods.dedup();
    methods
}

impl Resources {
    /// One job's figures as a step's. `hosts` are every host's, also for a single host.
    pub fn of_job(job: JobUsage, hosts: &[HostUsage]) -> Option<Self> {
        if hosts.iter().all(|h| h.usage.is_none()) {
            return None;
        }
        Some(Self {
            measured_by: methods(hosts),
            wall_seconds: round3(job.wall_seconds),
            cpu_seconds: round3(job.cpu_seconds),
            peak_memory_bytes: job.peak_memory_bytes,
            hosts: job.hosts,
            jobs: Vec::new(),
            unmeasured_hosts: job.unmeasured_hosts,
        })
    }

    /// Several jobs (a tuning step's training jobs) as one step's figures.
    pub fn of_jobs(jobs: Vec<(JobUsage, Vec<HostUsage>)>) -> Option<Self> {
        let all_hosts: Vec<HostUsage> = jobs.iter().flat_map(|(_, h)| h.iter().cloned()).collect();
        if all_hosts.iter().all(|h| h.usage.is_none()) {
            return None;
        }
        let measured_by = methods(&all_hosts);
        let jobs: Vec<JobUsage> = jobs.into_iter().map(|(j, _)| j).collect();
        Some(Self {
            wall_seconds: round3(jobs.iter().map(|j| j.wall_seconds).sum()),
            cpu_seconds: round3(jobs.iter().map(|j| j.cpu_seconds).sum()),
            peak_memory_bytes: jobs.iter().map(|j| j.peak_memory_bytes).max().unwrap_or(0),
            measured_by,
            hosts: Vec::new(),
            unmeasured_hosts: jobs.iter().map(|j| j.unmeasured_hosts).sum(),
            jobs,
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Usage {
    /// Seconds to the millisecond, as the record keeps them.
    pub fn rounded(self) -> Self {
        Self { wall_seconds: round3(self.wall_seconds), cpu_seconds: round3(self.cpu_seconds), ..self }
    }
}

/// Wait for a child with `wait4`, returning its exit status and its own rusage; `None` while
/// it runs (`block` false). The child is reaped: do not wait for it through `Child` after.
pub fn reap(child: &Child, block: bool) -> std::io::Result<Option<(ExitStatus, Usage)>> {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: pid is our own unreaped child; both pointers are to live locals.
        let got = unsafe { libc::wait4(pid, &mut status, flags, &mut rusage) };
        if got == 0 {
            return Ok(None);
        }
        if got < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let usage = Usage {
            wall_seconds: 0.0,
            cpu_seconds: seconds(rusage.ru_utime) + seconds(rusage.ru_stime),
            // Linux reports kilobytes.
            peak_memory_bytes: (rusage.ru_maxrss.max(0) as u64) * 1024,
        };
        return Ok(Some((ExitStatus::from_raw(status), usage)));
    }
}

/// The peak resident set (`VmHWM`) of a live process, from `/proc/<pid>/status`.
pub fn peak_rss(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// A local process's peak memory while it runs: see the module's notes.
pub struct ProcessPeak {
    pid: String,
    /// The runner's own peak just after the spawn: about what the child's `ru_maxrss` may
    /// include.
    inherited: Option<u64>,
    sampled: Option<u64>,
}

impl ProcessPeak {
    /// Right after `spawn` (which returns once the child has called `exec`).
    pub fn start(child: &Child) -> Self {
        let mut peak = Self { pid: child.id().to_string(), inherited: peak_rss("self"), sampled: None };
        peak.sample();
        peak
    }

    pub fn sample(&mut self) {
        if let Some(now) = peak_rss(&self.pid) {
            self.sampled = Some(self.sampled.map_or(now, |s| s.max(now)));
        }
    }

    /// The process's figures from its rusage and the samples; `to_the_end` when the last
    /// sample was taken after the process's last allocation (a server stopped by us).
    pub fn finish(&self, rusage: Usage, to_the_end: bool) -> (Usage, Method) {
        match (self.inherited, self.sampled) {
            (Some(inherited), Some(sampled)) if rusage.peak_memory_bytes <= inherited + inherited / 4 + (16 << 20) => {
                let method = if to_the_end { Method::Rusage } else { Method::RusagePeakSampled };
                (Usage { peak_memory_bytes: sampled, ..rusage }, method)
            }
            _ => (rusage, Method::Rusage),
        }
    }
}

/// Reads a running container's cgroup until it ends; `finish` returns the last reading.
pub struct CgroupSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<(Reading, bool)>>>,
    started: Instant,
}

/// The cgroup's counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu_seconds: f64,
    peak_memory_bytes: u64,
}

impl CgroupSampler {
    /// Start watching the container whose id `docker run --cidfile` writes to `cidfile`.
    pub fn start(cidfile: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || sample(&cidfile, &flag));
        Self { stop, thread: Some(thread), started: Instant::now() }
    }

    /// The container has ended (its client returned, or it was removed): the figures, if the
    /// cgroup was ever found. Waits for the reader to see the cgroup empty or gone.
    pub fn finish(mut self) -> Option<(Usage, Method)> {
        let wall_seconds = self.started.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::SeqCst);
        let (reading, complete) = self.thread.take()?.join().ok()??;
        let usage =
            Usage { wall_seconds, cpu_seconds: reading.cpu_seconds, peak_memory_bytes: reading.peak_memory_bytes };
        Some((usage, if complete { Method::Cgroup } else { Method::CgroupSampled }))
    }
}

impl Drop for CgroupSampler {
    /// A sampler given up on (its server never came up) stops reading soon after.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The sampling loop: find the cgroup, read it until no process is left or it is gone.
/// Returns the last reading and whether it was taken with the cgroup empty (final).
fn sample(cidfile: &Path, stop: &AtomicBool) -> Option<(Reading, bool)> {
    // Once the client has returned, the container has ended: a cgroup not found by then, or
    // shortly after, never will be.
    let mut stopped_at: Option<Instant> = None;
    let mut last: Option<Reading> = None;
    let mut dirs: Option<CgroupDirs> = None;
    loop {
        if stop.load(Ordering::SeqCst) && stopped_at.is_none() {
            stopped_at = Some(Instant::now());
        }
        if dirs.is_none()
            && let Ok(id) = std::fs::read_to_string(cidfile)
            && !id.trim().is_empty()
        {
            dirs = CgroupDirs::find(id.trim());
        }
        if let Some(found) = &dirs {
            match found.read() {
                Some((reading, empty)) => {
                    last = Some(reading);
                    if empty {
                        return Some((reading, true));
                    }
                }
                // Removed: the last reading stands.
                None if last.is_some() => return last.map(|r| (r, false)),
                None => {}
            }
        }
        if stopped_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            return last.map(|r| (r, false));
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Where a container's counters are, under cgroup v1 or v2.
enum CgroupDirs {
    V1 { cpuacct: PathBuf, memory: PathBuf },
    V2(PathBuf),
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl CgroupDirs {
    /// The container's cgroup directories, if they exist now.
    fn find(id: &str) -> Option<Self> {
        let root = Path::new(CGROUP_ROOT);
        // Docker's cgroupfs driver, then its systemd driver.
        let names = [format!("docker/{id}"), format!("system.slice/docker-{id}.scope")];
        for name in &names {
            let (cpuacct, memory) = (root.join("cpuacct").join(name), root.join("memory").join(name));
            if cpuacct.is_dir() && memory.is_dir() {
                return Some(Self::V1 { cpuacct, memory });
            }
            let unified = root.join(name);
            if unified.join("cpu.stat").is_file() {
                return Some(Self::V2(unified));
            }
        }
        None
    }

    /// The counters, and whether the cgroup holds no process any more; `None` once removed.
    fn read(&self) -> Option<(Reading, bool)> {
        let text = |path: PathBuf| std::fs::read_to_string(path).ok();
        match self {
            Self::V1 { cpuacct, memory } => {
                let nanos: u64 = text(cpuacct.join("cpuacct.usage"))?.trim().parse().ok()?;
                let peak: u64 = text(memory.join("memory.max_usage_in_bytes"))?.trim().parse().ok()?;
                let empty = text(cpuacct.join("cgroup.procs"))?.trim().is_empty();
                Some((Reading { cpu_seconds: nanos as f64 / 1e9, peak_memory_bytes: peak }, empty))
            }
            Self::V2(dir) => {
                let stat = text(dir.join("cpu.stat"))?;
                let micros: u64 =
                    stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).and_then(|v| v.trim().parse().ok())?;
                // memory.peak needs Linux 5.19; before it, the current usage is the best there is.
                let peak = text(dir.join("memory.peak"))
                    .or_else(|| text(dir.join("memory.current")))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let empty = text(dir.join("cgroup.procs"))?.trim().is_empty();
                Some((Reading { cpu_seconds: micros as f64 / 1e6, peak_memory_bytes: peak }, empty))
            }
        }
    }
}

#[cfg(test)]
// The children are reaped by `reap` (wait4), which clippy does not see.
#[allow(clippy::zombie_processes)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_own_cpu_and_memory_are_reaped() {
        // About 64 MiB touched and some CPU spent by the child alone.
        let child = std::process::Command::new("sh")
            .args([
                "-c",
                "x=$(head -c 67108864 /dev/zero | tr '\\0' a); i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
            ])
            .spawn()
            .unwrap();
        let (status, usage) = loop {
            if let Some(done) = reap(&child, false).unwrap() {
                break done;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success());
        assert!(usage.cpu_seconds > 0.01, "{usage:?}");
        assert!(usage.peak_memory_bytes > 60 << 20, "{usage:?}");
    }

    #[test]
    fn a_small_child_of_a_large_parent_is_measured_small() {
        // The parent (this test process) holds 256 MiB; Linux folds what a child held before
        // exec into its ru_maxrss, so the child's own peak must come from elsewhere.
        let ballast = vec![1u8; 256 << 20];
        std::hint::black_box(&ballast);
        let child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let mut peak = ProcessPeak::start(&child);
        let (status, rusage) = loop {
            peak.sample();
            if let Some(done) = reap(&child, false).unwrap() {
                break done;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        drop(ballast);
        assert!(status.success());
        let (usage, method) = peak.finish(rusage, false);
        assert!(usage.peak_memory_bytes < 32 << 20, "{usage:?} {method:?} (rusage said {rusage:?})");
        assert!(usage.peak_memory_bytes > 0);
    }

    #[test]
    fn a_peak_the_runner_could_have_passed_on_is_replaced_by_the_samples() {
        let peak = ProcessPeak { pid: "0".into(), inherited: Some(100 << 20), sampled: Some(30) };
        let rusage = Usage { wall_seconds: 1.0, cpu_seconds: 0.5, peak_memory_bytes: 80 << 20 };
        assert_eq!(peak.finish(rusage, false).0.peak_memory_bytes, 30);
        assert_eq!(peak.finish(rusage, false).1, Method::RusagePeakSampled);
        assert_eq!(peak.finish(rusage, true).1, Method::Rusage);
        let above = Usage { peak_memory_bytes: 150 << 20, ..rusage };
        assert_eq!(peak.finish(above, false), (above, Method::Rusage));
        assert_eq!(sample_interval(Duration::from_millis(3)), Duration::from_millis(1));
        assert_eq!(sample_interval(Duration::from_secs(3)), PROCESS_SAMPLE_EVERY);
    }

    #[test]
    fn jobs_sum_cpu_and_keep_the_largest_peak() {
        let host = |name: &str, cpu: f64, peak: u64| HostUsage {
            host: name.into(),
            usage: Some(Usage { wall_seconds: cpu, cpu_seconds: cpu, peak_memory_bytes: peak }),
            measured_by: Some(Method::Rusage),
        };
        let hosts = vec![host("algo-1", 1.5, 100), host("algo-2", 2.0, 300)];
        let job = JobUsage::of_hosts("j", hosts.clone());
        assert_eq!((job.cpu_seconds, job.peak_memory_bytes, job.wall_seconds), (3.5, 300, 2.0));
        assert_eq!(job.hosts.len(), 2);
        let step = Resources::of_job(job.clone(), &hosts).unwrap();
        assert_eq!(step.measured_by, [Method::Rusage]);
        let one = JobUsage::of_hosts("k", vec![host("algo-1", 1.0, 50)]);
        assert!(one.hosts.is_empty(), "a single host is the job");
        let tuning = Resources::of_jobs(vec![(job, hosts), (one, vec![host("algo-1", 1.0, 50)])]).unwrap();
        assert_eq!((tuning.cpu_seconds, tuning.peak_memory_bytes, tuning.jobs.len()), (4.5, 300, 2));
        let unmeasured = HostUsage { host: "algo-1".into(), usage: None, measured_by: None };
        assert_eq!(Resources::of_job(JobUsage::of_hosts("u", vec![unmeasured.clone()]), &[unmeasured]), None);
    }
}

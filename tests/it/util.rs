//! Shared helpers: temporary `/opt/ml` trees, running the step binaries and images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's `shared/` folder: `SAGESTEP_SHARED`, else `../shared` beside the checkout.
pub fn shared() -> PathBuf {
    std::env::var_os("SAGESTEP_SHARED").map_or_else(|| repo().join("../shared"), PathBuf::from)
}

pub fn auto_mpg() -> PathBuf {
    repo().join("data/auto-mpg.data")
}

/// A temporary SageMaker root: `<tmp>/` plays `/opt/ml`.
pub struct MlTree {
    pub dir: tempfile::TempDir,
}

impl MlTree {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Every file below the tree, relative, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out: Vec<String> = files_below(self.root())
            .iter()
            .map(|path| path.strip_prefix(self.root()).unwrap().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    /// Run a step binary as a local process with this tree as its `/opt/ml`.
    pub fn run(&self, binary: &str, args: &[&str]) -> Output {
        Command::new(binary)
            .args(args)
            .env("SAGESTEP_ML_ROOT", self.root())
            .env_remove("SAGESTEP_LOG_FORMAT")
            .output()
            .expect("run the step binary")
    }

    /// Run a step image with this tree mounted as `/opt/ml`.
    pub fn docker_run(&self, image: &str, args: &[&str]) -> Output {
        let mount = format!("{}:/opt/ml", self.root().display());
        Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v", &mount, image])
            .args(args)
            .output()
            .expect("run docker")
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Assert success, showing the step's log otherwise.
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "exit {:?}\n{}", output.status.code(), stderr(output));
}

/// The image must have been built from the binary under test.
pub fn require_image(image: &str) {
    let status = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .expect("docker is installed and running");
    assert!(
        status.status.success(),
        "image {image} is missing: run docker/build-images.sh first ({})",
        stderr(&status)
    );
}

/// Every file below `dir`, recursively (none when `dir` does not exist).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A step's (or host's) `resources` in an execution record: figures there, measured the way
/// `engine` measures (`rusage` for processes, the cgroup for containers).
pub fn assert_measured(resources: &serde_json::Value, engine: &str, what: &str) {
    let allowed: &[&str] =
        if engine == "docker" { &["cgroup", "cgroup_sampled"] } else { &["rusage", "rusage_peak_sampled"] };
    let methods: Vec<&str> = match &resources["measured_by"] {
        serde_json::Value::Array(list) => list.iter().filter_map(serde_json::Value::as_str).collect(),
        other => other.as_str().into_iter().collect(),
    };
    assert!(
        !methods.is_empty() && methods.iter().all(|m| allowed.contains(m)),
        "{what}: measured by {methods:?}: {resources:#}"
    );
    assert!(resources["wall_seconds"].as_f64().is_some_and(|s| s > 0.0), "{what}: {resources:#}");
    assert!(resources["cpu_seconds"].as_f64().is_some_and(|s| s >= 0.0), "{what}: {resources:#}");
    // Every step binary maps more than a MiB; the runner's own memory must not show up
    // (tens of MiB), hence the upper bound for these small jobs.
    let peak = resources["peak_memory_bytes"].as_u64().unwrap_or(0);
    assert!((1 << 20..200 << 20).contains(&peak), "{what}: peak {peak}: {resources:#}");
}

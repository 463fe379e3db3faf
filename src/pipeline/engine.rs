//! How a job's container runs: as one of our binaries in a local process (the `process`
//! engine), or as the real image under Docker (`docker`), with the same `/opt/ml` tree,
//! environment and arguments either way. Images that are not ours always run under Docker.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::usage::{self, CgroupSampler, HostUsage, Method, ProcessPeak, Usage};

/// Our five step images, by binary name; an image URI whose repository is `sagestep-<name>`
/// (any registry, tag or digest) is ours.
pub const OUR_STEPS: [&str; 5] = ["preprocess", "train", "evaluate", "serve", "monitor"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Process,
    Docker,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("interrupted")]
    Interrupted,
    #[error("could not start `{program}`: {source}")]
    Start { program: String, source: std::io::Error },
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("could not create the Docker network `{name}`: {detail}")]
    Network { name: String, detail: String },
    #[error("the server of `{image}` did not answer /ping with 200 within {seconds} s{detail}")]
    NotHealthy { image: String, seconds: u64, detail: String },
}

/// One container to run.
#[derive(Debug, Clone)]
pub struct Container {
    /// Unique per run: the container's name under Docker.
    pub name: String,
    pub image: String,
    /// `ContainerEntrypoint` (replaces the image's entrypoint).
    pub entrypoint: Option<Vec<String>>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The host directory that is `/opt/ml` inside.
    pub ml_root: PathBuf,
    pub network_isolation: bool,
    /// One host of a multi-instance job: the job's Docker network and this host's name on it.
    pub network: Option<HostNetwork>,
}

/// A container's place on its job's user-defined Docker network, where the other hosts reach
/// it by name (`algo-2`), as on SageMaker and in its SDK's local mode.
#[derive(Debug, Clone)]
pub struct HostNetwork {
    pub network: String,
    pub host: String,
}

/// How a job's container ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    /// Stopped for running past its deadline (StoppingCondition.MaxRuntimeInSeconds).
    pub timed_out: bool,
    /// Stopped by the runner because another host of its job failed.
    pub cancelled: bool,
}

impl Exit {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0) && !self.timed_out && !self.cancelled
    }
}

pub struct Engine {
    pub kind: EngineKind,
    /// Where our binaries are (beside the `sagestep` executable).
    bin_dir: PathBuf,
    interrupted: Arc<AtomicBool>,
    /// Docker containers alive now, to stop on interrupt.
    containers: Mutex<Vec<String>>,
    /// What each container that ended cost, by container name (the last run of that name).
    usage: Mutex<HashMap<String, (Usage, Method)>>,
}

/// Where the process engine finds our binaries: `SAGESTEP_BIN_DIR`, else beside the running
/// executable.
pub fn default_bin_dir() -> PathBuf {
    std::env::var_os("SAGESTEP_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default())
}

/// The step binary an image URI stands for, if it is one of ours.
pub fn our_binary(image: &str) -> Option<&'static str> {
    let without_digest = image.split('@').next()?;
    let last = without_digest.rsplit('/').next()?;
    let repository = last.split(':').next()?;
    OUR_STEPS.into_iter().find(|step| repository.strip_prefix("sagestep-") == Some(*step))
}

impl Engine {
    pub fn new(kind: EngineKind, bin_dir: PathBuf, interrupted: Arc<AtomicBool>) -> Self {
        Self { kind, bin_dir, interrupted, containers: Mutex::new(Vec::new()), usage: Mutex::new(HashMap::new()) }
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Whether containers of this image run as local processes (else under Docker).
    pub fn runs_as_process(&self, image: &str) -> bool {
        self.as_process(image).is_some()
    }

    /// The step binary that stands in for this image, if it runs as a local process.
    fn as_process(&self, image: &str) -> Option<&'static str> {
        match self.kind {
            EngineKind::Process => our_binary(image),
            EngineKind::Docker => None,
        }
    }

    /// Run a container to its end, its output (stdout and stderr) going to `log`. Setting
    /// `cancel` stops it (another host of its job failed).
    pub fn run(
        &self,
        container: &Container,
        log: &Path,
        deadline: Option<Duration>,
        cancel: &AtomicBool,
    ) -> Result<Exit, EngineError> {
        let docker_name = self.as_process(&container.image).is_none().then(|| container.name.clone());
        let cidfile = docker_name.as_ref().map(|_| cidfile(log)).transpose()?;
        let started = Instant::now();
        let mut child = spawn_logged(self.command(container, None, cidfile.as_deref())?, log)?;
        let sampler = cidfile.map(CgroupSampler::start);
        if let Some(name) = &docker_name {
            self.containers.lock().expect("lock").push(name.clone());
        }
        let mut peak = docker_name.is_none().then(|| ProcessPeak::start(&child));
        let exit = self.wait(&mut child, docker_name.as_deref(), deadline, cancel, peak.as_mut());
        if let Some(name) = &docker_name {
            self.containers.lock().expect("lock").retain(|n| n != name);
        }
        let measured = match (sampler, &exit, &peak) {
            (Some(sampler), _, _) => sampler.finish(),
            (None, Ok((_, Some(rusage))), Some(peak)) => {
                Some(peak.finish(Usage { wall_seconds: started.elapsed().as_secs_f64(), ..*rusage }, false))
            }
            _ => None,
        };
        self.keep_usage(&container.name, measured);
        exit.map(|(exit, _)| exit)
    }

    fn keep_usage(&self, name: &str, measured: Option<(Usage, Method)>) {
        let mut usage = self.usage.lock().expect("lock");
        match measured {
            Some((figures, method)) => usage.insert(name.to_string(), (figures.rounded(), method)),
            None => usage.remove(name),
        };
    }

    /// What the container of this name cost when it last ran, if it could be measured.
    pub fn usage(&self, container: &str, host: &str) -> HostUsage {
        let found = self.usage.lock().expect("lock").get(container).copied();
        HostUsage { host: host.to_string(), usage: found.map(|(u, _)| u), measured_by: found.map(|(_, m)| m) }
    }

    /// Wait for a child, stopping it (and its container) on interrupt, on `cancel` or past the
    /// deadline. A local process's own rusage comes with its exit.
    fn wait(
        &self,
        child: &mut Child,
        docker_name: Option<&str>,
        deadline: Option<Duration>,
        cancel: &AtomicBool,
        mut peak: Option<&mut ProcessPeak>,
    ) -> Result<(Exit, Option<Usage>), EngineError> {
        let started = Instant::now();
        let failed = |source| EngineError::Io { what: "waiting for a job".into(), source };
        loop {
            if let Some(peak) = peak.as_deref_mut() {
                peak.sample();
            }
            match usage::reap(child, false) {
                Ok(Some((status, rusage))) => {
                    let exit = Exit { code: status.code(), timed_out: false, cancelled: false };
                    return Ok((exit, docker_name.is_none().then_some(rusage)));
                }
                Ok(None) => {}
                Err(source) => return Err(failed(source)),
            }
            let timed_out = deadline.is_some_and(|d| started.elapsed() > d);
            let cancelled = cancel.load(Ordering::SeqCst);
            if self.interrupted() || timed_out || cancelled {
                let (code, rusage) = match docker_name {
                    Some(name) => {
                        remove_container(name, child);
                        let _ = child.kill();
                        (child.wait().ok().and_then(|s| s.code()), None)
                    }
                    None => {
                        let _ = child.kill();
                        let reaped = usage::reap(child, true).map_err(failed)?;
                        (reaped.and_then(|(s, _)| s.code()), reaped.map(|(_, u)| u))
                    }
                };
                if self.interrupted() {
                    return Err(EngineError::Interrupted);
                }
                return Ok((Exit { code, timed_out, cancelled: !timed_out }, rusage));
            }
            std::thread::sleep(usage::sample_interval(started.elapsed()));
        }
    }

    /// The command that runs `container`: a job, or with `serve_on` a model server listening
    /// on that loopback port.
    /// Under Docker, `cidfile` receives the container's id (its resources are read from it).
    fn command(
        &self,
        container: &Container,
        serve_on: Option<u16>,
        cidfile: Option<&Path>,
    ) -> Result<Command, EngineError> {
        if let Some(binary) = self.as_process(&container.image) {
            let mut command = self.process_command(container, binary)?;
            if let Some(port) = serve_on {
                command.env(crate::contract::env::SAGEMAKER_BIND_TO_PORT, port.to_string());
            }
            return Ok(command);
        }
        let mut command = Command::new("docker");
        command.arg("run").arg("--rm").arg("--name").arg(&container.name);
        if let Some(path) = cidfile {
            command.arg("--cidfile").arg(path);
        }
        if let Some(port) = serve_on {
            // Published on loopback only; the image serves on 8080.
            command.arg("--detach").arg("--publish").arg(format!("127.0.0.1:{port}:8080"));
        } else if let Some(place) = &container.network {
            command.args(["--network", &place.network, "--network-alias", &place.host, "--hostname", &place.host]);
        } else if container.network_isolation {
            command.args(["--network", "none"]);
        }
        // Files the job writes into the mounted tree belong to the caller, not root.
        if let Some(user) = current_user() {
            command.arg("--user").arg(user);
        }
        command.arg("--volume").arg(format!("{}:/opt/ml", container.ml_root.display()));
        for (key, value) in &container.env {
            command.arg("--env").arg(format!("{key}={value}"));
        }
        let mut extra = Vec::new();
        if let Some(entrypoint) = &container.entrypoint
            && let Some((first, rest)) = entrypoint.split_first()
        {
            command.arg("--entrypoint").arg(first);
            extra.extend(rest.iter().cloned());
        }
        command.arg(&container.image).args(extra).args(&container.args);
        Ok(command)
    }

    fn process_command(&self, container: &Container, binary: &str) -> Result<Command, EngineError> {
        let mut args = Vec::new();
        if let Some(entrypoint) = &container.entrypoint
            && let Some((first, rest)) = entrypoint.split_first()
        {
            let named = Path::new(first).file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if named != binary {
                return Err(EngineError::Refused(format!(
                    "ContainerEntrypoint `{first}` is not the `{binary}` program of image `{}`; the process engine runs only our binaries (use --engine docker)",
                    container.image
                )));
            }
            args.extend(rest.iter().cloned());
        }
        args.extend(container.args.iter().cloned());
        let program = self.bin_dir.join(binary);
        if !program.is_file() {
            return Err(EngineError::Refused(format!(
                "the process engine needs the `{binary}` binary beside sagestep, at {} (build all binaries: cargo build --release --bins)",
                program.display()
            )));
        }
        let mut command = Command::new(program);
        command.args(args.iter().map(|a| rewrite_ml_path(a, &container.ml_root)));
        command.envs(&container.env);
        command.env(crate::contract::env::SAGESTEP_ML_ROOT, &container.ml_root);
        // Its own process group: a Ctrl-C at the terminal reaches the runner, which stops jobs
        // in order, rather than every job at once.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        Ok(command)
    }

    /// The command that starts a model server listening on this loopback port, for a caller
    /// that supervises the process itself (an endpoint's instances).
    pub fn server_command(&self, container: &Container, port: u16) -> Result<Command, EngineError> {
        self.command(container, Some(port), None)
    }

    /// Start a model server for a transform job and wait until `/ping` answers 200.
    pub fn start_server(&self, container: &Container, log: &Path, timeout: Duration) -> Result<Server, EngineError> {
        let port = free_port().map_err(|source| EngineError::Io { what: "finding a free port".into(), source })?;
        let process = self.as_process(&container.image).is_some();
        let cidfile = (!process).then(|| cidfile(log)).transpose()?;
        let started = Instant::now();
        let child = spawn_logged(self.command(container, Some(port), cidfile.as_deref())?, log)?;
        let mut server = Server {
            port,
            child: Some(child),
            container: (!process).then(|| container.name.clone()),
            name: container.name.clone(),
            started,
            sampler: cidfile.map(CgroupSampler::start),
        };
        if let Some(name) = &server.container {
            // `docker run --detach` returns once the container exists.
            let status = server.child.take().map(|mut c| c.wait());
            if !matches!(status, Some(Ok(s)) if s.success()) {
                return Err(EngineError::NotHealthy {
                    image: container.image.clone(),
                    seconds: 0,
                    detail: format!(": docker run failed (see {})", log.display()),
                });
            }
            self.containers.lock().expect("lock").push(name.clone());
        }
        let agent = http_agent(Duration::from_secs(2));
        let started = Instant::now();
        loop {
            if self.interrupted() {
                self.stop_server(&mut server);
                return Err(EngineError::Interrupted);
            }
            if let Ok(response) = agent.get(format!("http://127.0.0.1:{port}/ping")).call()
                && response.status() == 200
            {
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(EngineError::NotHealthy {
                    image: container.image.clone(),
                    seconds: started.elapsed().as_secs(),
                    detail: format!(": the server exited ({status}); see {}", log.display()),
                });
            }
            if started.elapsed() > timeout {
                self.stop_server(&mut server);
                return Err(EngineError::NotHealthy {
                    image: container.image.clone(),
                    seconds: timeout.as_secs(),
                    detail: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stop a model server; what it cost is kept under its container's name.
    pub fn stop_server(&self, server: &mut Server) {
        let mut measured = None;
        if let Some(mut child) = server.child.take() {
            // Read while it is alive, just before it is stopped: its high-water mark is whole.
            let peak = ProcessPeak::start(&child);
            let _ = child.kill();
            if let Ok(Some((_, rusage))) = usage::reap(&child, true) {
                let wall_seconds = server.started.elapsed().as_secs_f64();
                measured = Some(peak.finish(Usage { wall_seconds, ..rusage }, true));
            }
        }
        if let Some(name) = server.container.take() {
            docker_rm(&name);
            self.containers.lock().expect("lock").retain(|n| n != &name);
        }
        if let Some(sampler) = server.sampler.take() {
            measured = sampler.finish();
        }
        self.keep_usage(&server.name, measured);
    }

    /// Stop every container still running (after an interrupt).
    pub fn stop_all(&self) {
        let names: Vec<String> = self.containers.lock().expect("lock").drain(..).collect();
        for name in names {
            docker_rm(&name);
        }
    }

    /// Create a job's user-defined network; `internal` cuts it off from everything but its
    /// hosts (a job with network isolation: its hosts still talk to each other, as on
    /// SageMaker). Removed by `remove_network`, also on failure.
    pub fn create_network(&self, name: &str, internal: bool) -> Result<(), EngineError> {
        let mut command = Command::new("docker");
        command.args(["network", "create", "--label", "sagestep=job"]);
        if internal {
            command.arg("--internal");
        }
        let output = command
            .arg(name)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| EngineError::Start { program: "docker".into(), source })?;
        if !output.status.success() {
            return Err(EngineError::Network {
                name: name.to_string(),
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Remove a job's network once its containers are gone. `docker run --rm` removes a
    /// container just after its client returns, and the network cannot go while one is
    /// attached, so try again for a while.
    pub fn remove_network(&self, name: &str, containers: &[String]) {
        for container in containers {
            docker_rm(container);
        }
        let started = Instant::now();
        loop {
            let status = Command::new("docker")
                .args(["network", "rm", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let gone = status.is_ok_and(|s| s.success()) || !network_exists(name);
            if gone {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                tracing::warn!("could not remove the Docker network {name}");
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The image's identity for the registry: Docker's image id, or our binary's SHA-256.
    pub fn image_digest(&self, image: &str) -> Option<String> {
        if let Some(binary) = self.as_process(image) {
            let digest = crate::data::files::digest(&self.bin_dir.join(binary)).ok()?;
            return Some(format!("sha256:{} (process engine: the {binary} binary)", digest.sha256));
        }
        let output = Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

/// A running model server.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    container: Option<String>,
    /// Its container's name (also as a process: what its figures are kept under).
    name: String,
    started: Instant,
    sampler: Option<CgroupSampler>,
}

fn network_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["network", "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Kill and remove a container, if it exists.
fn docker_rm(name: &str) {
    let _ = Command::new("docker").args(["rm", "--force", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// Where `docker run --cidfile` writes a container's id: beside its log, fresh (Docker refuses
/// an existing file).
fn cidfile(log: &Path) -> Result<PathBuf, EngineError> {
    let path = log.with_extension("cid");
    match std::fs::remove_file(&path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            Err(EngineError::Io { what: format!("removing {}", path.display()), source })
        }
        _ => Ok(path),
    }
}

/// Start a command with stdout and stderr going to one log file.
fn spawn_logged(mut command: Command, log: &Path) -> Result<Child, EngineError> {
    let out = std::fs::File::create(log)
        .map_err(|source| EngineError::Io { what: format!("creating {}", log.display()), source })?;
    let err =
        out.try_clone().map_err(|source| EngineError::Io { what: format!("opening {}", log.display()), source })?;
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let program = format!("{:?}", command.get_program());
    command.spawn().map_err(|source| EngineError::Start { program, source })
}

/// Remove a job's container and wait for its `docker run` client to end. The container may
/// not exist yet when the client has only just started, so keep removing until the client,
/// which ends with its container, is gone: no container outlives an interrupt.
fn remove_container(name: &str, client: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        docker_rm(name);
        if matches!(client.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rewrite_ml_path(arg: &str, root: &Path) -> String {
    let root = root.display().to_string();
    let swap = |s: &str| -> Option<String> {
        if s == "/opt/ml" {
            Some(root.clone())
        } else {
            s.strip_prefix("/opt/ml/").map(|rest| format!("{root}/{rest}"))
        }
    };
    if let Some(swapped) = swap(arg) {
        return swapped;
    }
    // --flag=/opt/ml/...
    if let Some((flag, value)) = arg.split_once('=')
        && let Some(swapped) = swap(value)
    {
        return format!("{flag}={swapped}");
    }
    arg.to_string()
}

fn current_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // The owner of our own process's /proc entry is our uid and gid.
    let meta = std::fs::metadata("/proc/self").ok()?;
    Some(format!("{}:{}", meta.uid(), meta.gid()))
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_images_are_recognised_anywhere() {
        assert_eq!(our_binary("sagestep-train:0.1.0"), Some("train"));
        assert_eq!(our_binary("123.dkr.ecr.eu-west-1.amazonaws.com/sagestep-serve:1"), Some("serve"));
        assert_eq!(our_binary("r.example/team/sagestep-evaluate@sha256:ab"), Some("evaluate"));
        assert_eq!(our_binary("sagestep-monitor:0.1.0"), Some("monitor"));
        assert_eq!(our_binary("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"), None);
        assert_eq!(our_binary("sagestep-trainer:1"), None);
    }

    #[test]
    fn opt_ml_paths_move_to_the_job_tree() {
        let root = Path::new("/tmp/job");
        assert_eq!(rewrite_ml_path("/opt/ml/processing/input", root), "/tmp/job/processing/input");
        assert_eq!(rewrite_ml_path("--out=/opt/ml/x", root), "--out=/tmp/job/x");
        assert_eq!(rewrite_ml_path("/opt/mlx", root), "/opt/mlx");
        assert_eq!(rewrite_ml_path("42", root), "42");
    }
}

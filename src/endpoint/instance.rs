//! One instance of an endpoint: its container started by the runner's engine on a free
//! loopback port, tied to the supervisor by the kernel (`PR_SET_PDEATHSIG`: SIGKILL when the
//! supervisor dies, however it dies), and healthy once `/ping` answers 200.
//!
//! The parent-death signal follows the *thread* that forked, so instances are started only
//! from the supervisor's main thread, which lives as long as the process.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::EndpointError;
use super::deploy::Deployment;
use crate::pipeline::engine::{Container, Engine, free_port, http_agent};

/// How long an instance may take to answer `/ping` (as the batch transform waits).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Instance {
    /// `<variant>-<n>`: its log stream's name.
    pub id: String,
    pub port: u16,
    pub log: PathBuf,
    /// The server process, or under Docker `docker logs --follow` of its container (which
    /// ends when the container does).
    child: Child,
    /// Under Docker, the container's name.
    container: Option<String>,
}

/// The prefix of the Docker containers of endpoint `endpoint`'s instances.
pub fn container_prefix(endpoint: &str) -> String {
    format!("sagestep-endpoint-{endpoint}-")
}

/// Start one instance of `deployment` serving the model below `ml_root`.
pub fn start(
    engine: &Engine,
    deployment: &Deployment,
    ml_root: &Path,
    (endpoint, id): (&str, &str),
    log: &Path,
) -> Result<Instance, EndpointError> {
    let runtime = |what: &str, e: &dyn std::fmt::Display| EndpointError::Runtime(format!("{what}: {e}"));
    let port = free_port().map_err(|e| runtime("finding a free port", &e))?;
    let container = Container {
        name: format!("{}{id}", container_prefix(endpoint)),
        image: deployment.image.clone(),
        entrypoint: None,
        args: vec!["serve".into()],
        env: deployment.environment.clone(),
        ml_root: ml_root.to_path_buf(),
        network_isolation: false,
        network: None,
    };
    let mut command = engine.server_command(&container, port).map_err(|e| runtime("starting an instance", &e))?;
    let docker = !engine.runs_as_process(&container.image);
    if docker {
        // `docker run --detach` returns once the container runs; its output is followed below.
        let output = command.stdin(Stdio::null()).output().map_err(|e| runtime("starting docker", &e))?;
        if !output.status.success() {
            return Err(EndpointError::Runtime(format!(
                "docker could not start instance {id} of image {}: {}",
                container.image,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        command = std::process::Command::new("docker");
        command.args(["logs", "--follow", &container.name]);
    }
    let out = std::fs::File::create(log).map_err(|e| runtime(&format!("creating {}", log.display()), &e))?;
    let err = out.try_clone().map_err(|e| runtime(&format!("opening {}", log.display()), &e))?;
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    die_with_parent(&mut command);
    let spawned = command.spawn().map_err(|e| runtime(&format!("starting {:?}", command.get_program()), &e));
    let container = docker.then_some(container.name);
    match spawned {
        Ok(child) => Ok(Instance { id: id.to_string(), port, log: log.to_path_buf(), child, container }),
        Err(e) => {
            if let Some(name) = &container {
                remove_container(name);
            }
            Err(e)
        }
    }
}

fn remove_container(name: &str) {
    let _ = std::process::Command::new("docker")
        .args(["rm", "--force", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Remove every container of endpoint `endpoint` still there (a supervisor killed outright
/// cannot remove its own).
pub fn remove_containers(endpoint: &str) {
    let filter = format!("name=^{}", container_prefix(endpoint));
    let Ok(listed) =
        std::process::Command::new("docker").args(["ps", "--all", "--quiet", "--filter", &filter]).output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
        remove_container(id);
    }
}

/// SIGKILL the child when this thread's process dies; a child whose parent is already gone
/// by the time it runs exits at once.
fn die_with_parent(command: &mut std::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe system calls run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            Ok(())
        });
    }
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether its process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait until `/ping` answers 200; an instance that exits or stays silent fails.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), EndpointError> {
        let agent = http_agent(Duration::from_secs(2));
        let started = Instant::now();
        loop {
            if let Ok(response) = agent.get(format!("http://127.0.0.1:{}/ping", self.port)).call()
                && response.status() == 200
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EndpointError::Runtime(format!(
                    "instance {} exited ({status}) before answering /ping; see {}",
                    self.id,
                    self.log.display()
                )));
            }
            if started.elapsed() > timeout {
                self.stop();
                return Err(EndpointError::Runtime(format!(
                    "instance {} did not answer /ping with 200 within {} s; see {}",
                    self.id,
                    timeout.as_secs(),
                    self.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it (and remove its container) and reap it.
    pub fn stop(&mut self) {
        if let Some(name) = self.container.take() {
            remove_container(&name);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

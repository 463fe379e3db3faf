//! What `sagestep endpoints create` and `delete` do around the supervisor: create checks the
//! request, records the endpoint, starts the supervisor in a session of its own and waits
//! until the endpoint is `InService` (or says why not); delete signals the supervisor, waits
//! for it to drain and stop its instances, makes sure nothing of the endpoint still runs, and
//! removes its record and files.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::EndpointError;
use super::deploy;
use super::instance::HEALTH_TIMEOUT;
use super::record::{EndpointRecord, check_name, endpoint_arn, status, update_request};
use crate::storage::Storage;

/// How long `delete` waits for the supervisor to drain and stop before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

pub struct CreateRequest {
    pub name: String,
    pub package: String,
    pub instances: u32,
    pub port: u16,
    pub engine: String,
    /// Where the endpoint's files go; a fresh directory under the system's temporary one if
    /// not given.
    pub work_dir: Option<PathBuf>,
    /// The store options the supervisor is started with (`--store ...`).
    pub store_args: Vec<String>,
}

/// Create the endpoint and return its record once it is in service.
pub fn create(storage: &Storage, request: &CreateRequest) -> Result<EndpointRecord, EndpointError> {
    check_name(&request.name)?;
    if request.instances == 0 {
        return Err(EndpointError::Validation(
            "1 validation error detected: Value '0' at 'initialInstanceCount' failed to satisfy constraint: Member must have value greater than or equal to 1".into(),
        ));
    }
    let deployment = deploy::resolve(storage, &request.package)?;
    let work_dir = match &request.work_dir {
        Some(dir) => dir.join(&request.name),
        None => std::env::temp_dir().join("sagestep-endpoints").join(format!(
            "{}-{}",
            request.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )),
    };
    let now = crate::clock::rfc3339(crate::clock::now_secs());
    let record = EndpointRecord {
        endpoint_name: request.name.clone(),
        endpoint_status: status::CREATING.into(),
        failure_reason: None,
        model_package: request.package.clone(),
        image: deployment.image.clone(),
        desired_instance_count: request.instances,
        engine: request.engine.clone(),
        requested_port: request.port,
        port: None,
        pid: None,
        work_dir: work_dir.clone(),
        instances: Vec::new(),
        creation_time: now.clone(),
        last_modified_time: now,
    };
    record.create(storage)?;
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| EndpointError::Runtime(format!("creating {}: {e}", work_dir.display())))?;
    let log = work_dir.join("supervisor.log");
    let mut child = spawn_supervisor(&request.name, &request.store_args, &log)?;
    let deadline = HEALTH_TIMEOUT + Duration::from_secs(60);
    let started = Instant::now();
    loop {
        let current = EndpointRecord::load(storage, &request.name)?;
        match current.endpoint_status.as_str() {
            status::IN_SERVICE => return Ok(current),
            status::FAILED => {
                let _ = child.wait();
                return Err(EndpointError::Runtime(format!(
                    "endpoint {} failed: {} (delete it with `sagestep endpoints delete {}`)",
                    request.name,
                    current.failure_reason.unwrap_or_default(),
                    request.name
                )));
            }
            _ => {}
        }
        if let Ok(Some(exit)) = child.try_wait() {
            let reason = format!("its supervisor exited ({exit}) before it was in service: {}", tail(&log));
            let mut failed = current;
            failed.endpoint_status = status::FAILED.into();
            failed.failure_reason = Some(reason.clone());
            failed.save(storage)?;
            return Err(EndpointError::Runtime(format!("endpoint {} failed: {reason}", request.name)));
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EndpointError::Runtime(format!(
                "endpoint {} was not in service within {} s; see {}",
                request.name,
                deadline.as_secs(),
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `sagestep endpoints run-front NAME` with the store's options, in a new session (no
/// terminal, no process group of the caller's: it outlives the command that started it).
fn spawn_supervisor(name: &str, store_args: &[String], log: &Path) -> Result<std::process::Child, EndpointError> {
    let program =
        std::env::current_exe().map_err(|e| EndpointError::Runtime(format!("finding the sagestep executable: {e}")))?;
    let out =
        std::fs::File::create(log).map_err(|e| EndpointError::Runtime(format!("creating {}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| EndpointError::Runtime(format!("opening {}: {e}", log.display())))?;
    let mut command = Command::new(program);
    command.args(["endpoints", "run-front", name]).args(store_args);
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| EndpointError::Runtime(format!("starting the endpoint's supervisor: {e}")))
}

/// The last lines of a log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Delete the endpoint: drain and stop it, leave nothing running, remove its record and files.
pub fn delete(storage: &Storage, name: &str) -> Result<(), EndpointError> {
    let record = EndpointRecord::load(storage, name)?;
    if let Some(pid) = record.pid.filter(|pid| is_supervisor(*pid, name)) {
        signal(pid, libc::SIGTERM);
        let started = Instant::now();
        while alive(pid) && started.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            tracing::warn!(endpoint = name, pid, "the supervisor did not stop in time; killing it");
            signal(pid, libc::SIGKILL);
        }
    }
    // Its instances die with it (the parent-death signal); any left, say from a supervisor
    // that died between fork and exec, are stopped here.
    for instance in &record.instances {
        if let Some(pid) = instance.pid.filter(|pid| runs_below(*pid, &record.work_dir)) {
            signal(pid, libc::SIGKILL);
        }
    }
    if record.engine == "docker" {
        super::instance::remove_containers(name);
    }
    // The directory is the endpoint's own (`<work-dir>/<name>` or a fresh temporary one).
    let _ = std::fs::remove_dir_all(&record.work_dir);
    update_request::remove(storage, name);
    EndpointRecord::remove(storage, name)
}

/// Move the endpoint to another package, blue/green; returns its record once the new
/// instances serve alone.
pub fn update(storage: &Storage, name: &str, package: &str) -> Result<EndpointRecord, EndpointError> {
    let record = EndpointRecord::load(storage, name)?;
    if record.endpoint_status != status::IN_SERVICE {
        return Err(EndpointError::Validation(format!(
            "Cannot update in-progress endpoint \"{}\".",
            endpoint_arn(name)
        )));
    }
    let pid = record.pid.filter(|pid| is_supervisor(*pid, name)).ok_or_else(|| {
        EndpointError::Runtime(format!(
            "endpoint {name} is not running (its supervisor is gone); delete it and create it again"
        ))
    })?;
    deploy::resolve(storage, package)?;
    update_request::write(storage, name, package)?;
    signal(pid, libc::SIGHUP);
    let started = Instant::now();
    while update_request::read(storage, name)?.is_some() {
        if !alive(pid) {
            return Err(EndpointError::Runtime(format!("endpoint {name}'s supervisor exited during the update")));
        }
        if started.elapsed() > HEALTH_TIMEOUT + STOP_TIMEOUT {
            return Err(EndpointError::Runtime(format!("the update of endpoint {name} did not finish in time")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = EndpointRecord::load(storage, name)?;
    match &after.failure_reason {
        Some(reason) if after.model_package != package => Err(EndpointError::Runtime(reason.clone())),
        _ => Ok(after),
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory effects; a gone pid gives ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Whether `pid` is this endpoint's supervisor (a pid may have been reused since).
fn is_supervisor(pid: u32, name: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    alive(pid) && args.windows(2).any(|w| w[0] == b"run-front" && w[1] == name.as_bytes())
}

/// Whether `pid` is an instance whose `/opt/ml` is below `work_dir` (its environment says so).
fn runs_below(pid: u32, work_dir: &Path) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let wanted = format!("{}={}", crate::contract::env::SAGESTEP_ML_ROOT, work_dir.display());
    alive(pid) && environ.split(|b| *b == 0).any(|entry| entry.starts_with(wanted.as_bytes()))
}

//! The supervisor: the process an endpoint is (`sagestep endpoints run-front NAME`, started
//! by `create` in a session of its own). It starts the instances from its main thread (they
//! die with it), serves the front on a runtime of its own, restarts an instance whose process
//! died while the front routes around it, and on SIGTERM or SIGINT drains the front, stops
//! every instance and exits. The record in the store says what it is doing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::EndpointError;
use super::deploy::{self, Deployment};
use super::front::{self, Backend, Front};
use super::instance::{self, HEALTH_TIMEOUT, Instance};
use super::record::{EndpointRecord, InstanceRecord, VARIANT, status, update_request};
use crate::pipeline::engine::{Engine, EngineKind};
use crate::storage::Storage;

/// How often the supervisor looks at its instances and for a stop signal.
const TICK: Duration = Duration::from_millis(100);
/// How long in-flight requests may take to finish once the front stops accepting.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(70);

/// One running instance and the front's view of it.
struct Slot {
    instance: Instance,
    backend: Arc<Backend>,
}

struct Supervisor {
    storage: Storage,
    record: EndpointRecord,
    engine: Engine,
    /// What the current instances run, and where its model tree is.
    deployment: Deployment,
    ml_root: PathBuf,
    /// Deployments so far (each has its own model tree, `model-<n>`).
    generation: u32,
    /// Instances started so far: each gets the next number, so no log is ever overwritten.
    launched: u32,
    front: Arc<Front>,
    slots: Vec<Slot>,
}

/// Run endpoint `name` until told to stop. Setup failures are recorded (`Failed`, with the
/// reason) before they are returned.
pub fn run(storage: Storage, name: &str) -> Result<(), EndpointError> {
    let (stop, update) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    for (signal, flag) in [
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGHUP, &update),
    ] {
        signal_hook::flag::register(signal, Arc::clone(flag))
            .map_err(|e| EndpointError::Runtime(format!("installing the signal handler: {e}")))?;
    }
    let mut record = EndpointRecord::load(&storage, name)?;
    record.pid = Some(std::process::id());
    record.save(&storage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EndpointError::Runtime(format!("starting the runtime: {e}")))?;
    let mut supervisor = match Supervisor::start(storage.clone(), record.clone()) {
        Ok(supervisor) => supervisor,
        Err(e) => return Err(fail(&storage, record, e)),
    };
    let listener = match bind(supervisor.record.requested_port) {
        Ok(listener) => listener,
        Err(e) => return Err(supervisor.fail(e)),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let server = {
        let (router, shutdown) = (front::router(Arc::clone(&supervisor.front)), Arc::clone(&shutdown));
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.notified().await }).await
        })
    };
    supervisor.record.port = Some(port);
    supervisor.record.endpoint_status = status::IN_SERVICE.into();
    supervisor.save();
    tracing::info!(endpoint = name, port, "in service");
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        if update.swap(false, Ordering::SeqCst) {
            supervisor.apply_update();
        }
        supervisor.tend();
    }
    tracing::info!(endpoint = name, "stopping: draining the front");
    supervisor.record.endpoint_status = status::DELETING.into();
    supervisor.save();
    shutdown.notify_one();
    let drained = runtime.block_on(async { tokio::time::timeout(DRAIN_TIMEOUT, server).await });
    if drained.is_err() {
        tracing::warn!(endpoint = name, "requests still in flight after {} s", DRAIN_TIMEOUT.as_secs());
    }
    supervisor.stop_all();
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn bind(port: u16) -> Result<TcpListener, EndpointError> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| EndpointError::Runtime(format!("the front cannot listen on 127.0.0.1:{port}: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| EndpointError::Runtime(format!("the front's socket: {e}")))?;
    Ok(listener)
}

/// Record the failure, return it.
fn fail(storage: &Storage, mut record: EndpointRecord, error: EndpointError) -> EndpointError {
    record.endpoint_status = status::FAILED.into();
    record.failure_reason = Some(error.to_string());
    record.instances.clear();
    if let Err(e) = record.save(storage) {
        tracing::error!("could not record the failure: {e}");
    }
    error
}

impl Supervisor {
    fn start(storage: Storage, record: EndpointRecord) -> Result<Self, EndpointError> {
        let kind = if record.engine == "docker" { EngineKind::Docker } else { EngineKind::Process };
        let engine = deploy::engine(kind);
        if kind == EngineKind::Docker {
            instance::remove_containers(&record.endpoint_name);
        }
        let deployment = deploy::resolve(&storage, &record.model_package)?;
        let ml_root = record.work_dir.join("model-1");
        deploy::unpack(&storage, &engine, &deployment, &ml_root)?;
        let front = Front::new(&record.endpoint_name);
        let mut supervisor =
            Self { storage, record, engine, deployment, ml_root, generation: 1, launched: 0, front, slots: Vec::new() };
        supervisor.slots = supervisor.start_healthy(&supervisor.deployment.clone(), &supervisor.ml_root.clone())?;
        supervisor.front.set_backends(supervisor.slots.iter().map(|s| Arc::clone(&s.backend)).collect());
        Ok(supervisor)
    }

    /// The desired number of instances of `deployment`, each answering `/ping`.
    fn start_healthy(
        &mut self,
        deployment: &Deployment,
        ml_root: &std::path::Path,
    ) -> Result<Vec<Slot>, EndpointError> {
        let mut started = Vec::new();
        for _ in 0..self.record.desired_instance_count {
            started.push(self.launch(deployment, ml_root)?);
        }
        for slot in &mut started {
            slot.instance.wait_healthy(HEALTH_TIMEOUT)?;
            slot.backend.healthy.store(true, Ordering::Release);
        }
        Ok(started)
    }

    /// Start one instance (not yet healthy).
    fn launch(&mut self, deployment: &Deployment, ml_root: &std::path::Path) -> Result<Slot, EndpointError> {
        self.launched += 1;
        let id = format!("{VARIANT}-{}", self.launched);
        let log = self.record.work_dir.join(format!("{id}.log"));
        let instance = instance::start(&self.engine, deployment, ml_root, (&self.record.endpoint_name, &id), &log)?;
        let backend = Backend::new(&id, instance.port, log);
        Ok(Slot { instance, backend })
    }

    /// The update `update` asked for, done or failed, then its request removed.
    fn apply_update(&mut self) {
        let name = self.record.endpoint_name.clone();
        let package = match update_request::read(&self.storage, &name) {
            Ok(Some(package)) => package,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("reading the update request: {e}");
                update_request::remove(&self.storage, &name);
                return;
            }
        };
        tracing::info!(endpoint = %name, package = %package, "updating");
        self.record.endpoint_status = status::UPDATING.into();
        self.save();
        self.record.failure_reason = match self.update(&package) {
            Ok(()) => None,
            Err(e) => {
                Some(format!("the update to {package} failed, {} goes on serving: {e}", self.record.model_package))
            }
        };
        self.record.endpoint_status = status::IN_SERVICE.into();
        self.save();
        update_request::remove(&self.storage, &name);
    }

    /// Blue/green: the new package's instances are started and healthy before the front
    /// routes to them, and the old ones stop only once their requests are answered. If the
    /// new ones fail, the old ones go on serving.
    fn update(&mut self, package: &str) -> Result<(), EndpointError> {
        let deployment = deploy::resolve(&self.storage, package)?;
        let ml_root = self.record.work_dir.join(format!("model-{}", self.generation + 1));
        deploy::unpack(&self.storage, &self.engine, &deployment, &ml_root)?;
        let fresh = match self.start_healthy(&deployment, &ml_root) {
            Ok(fresh) => fresh,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&ml_root);
                return Err(e);
            }
        };
        self.front.set_backends(fresh.iter().map(|s| Arc::clone(&s.backend)).collect());
        let old = std::mem::replace(&mut self.slots, fresh);
        drain(old);
        let _ = std::fs::remove_dir_all(&self.ml_root);
        self.generation += 1;
        self.ml_root = ml_root;
        self.record.image = deployment.image.clone();
        self.record.model_package = deployment.package.clone();
        self.deployment = deployment;
        Ok(())
    }

    /// One look at the instances: one whose process died is replaced (the front routes
    /// around it meanwhile); one the front found unreachable is healthy again once it answers.
    fn tend(&mut self) {
        let mut changed = false;
        for k in 0..self.slots.len() {
            if self.slots[k].instance.alive() {
                continue;
            }
            let id = self.slots[k].instance.id.clone();
            self.slots[k].backend.healthy.store(false, Ordering::Release);
            tracing::warn!(instance = %id, "instance exited; starting another in its place");
            let (deployment, ml_root) = (self.deployment.clone(), self.ml_root.clone());
            let replaced = self.launch(&deployment, &ml_root);
            match replaced.and_then(|mut slot| slot.instance.wait_healthy(HEALTH_TIMEOUT).map(|()| slot)) {
                Ok(slot) => {
                    slot.backend.healthy.store(true, Ordering::Release);
                    self.slots[k] = slot;
                    changed = true;
                }
                Err(e) => tracing::error!(instance = %id, "could not restart it: {e}"),
            }
        }
        for slot in &self.slots {
            if !slot.backend.healthy.load(Ordering::Acquire) && ping(slot.backend.port) {
                slot.backend.healthy.store(true, Ordering::Release);
                changed = true;
            }
        }
        if changed {
            self.front.set_backends(self.slots.iter().map(|s| Arc::clone(&s.backend)).collect());
            self.save();
        }
    }

    fn save(&mut self) {
        self.record.instances = self
            .slots
            .iter()
            .map(|s| InstanceRecord {
                instance_id: s.instance.id.clone(),
                port: s.instance.port,
                pid: Some(s.instance.pid()),
                healthy: s.backend.healthy.load(Ordering::Acquire),
                log: s.instance.log.clone(),
            })
            .collect();
        if let Err(e) = self.record.save(&self.storage) {
            tracing::error!("could not update the endpoint's record: {e}");
        }
    }

    fn stop_all(&mut self) {
        for slot in &mut self.slots {
            slot.backend.healthy.store(false, Ordering::Release);
            slot.instance.stop();
        }
        self.slots.clear();
    }

    fn fail(mut self, error: EndpointError) -> EndpointError {
        self.stop_all();
        fail(&self.storage, self.record.clone(), error)
    }
}

/// Stop instances the front no longer routes to, each once its in-flight requests are done.
fn drain(old: Vec<Slot>) {
    let started = std::time::Instant::now();
    for mut slot in old {
        while slot.backend.in_flight.load(Ordering::Acquire) > 0 && started.elapsed() < DRAIN_TIMEOUT {
            std::thread::sleep(Duration::from_millis(5));
        }
        slot.backend.healthy.store(false, Ordering::Release);
        slot.instance.stop();
    }
}

fn ping(port: u16) -> bool {
    let agent = crate::pipeline::engine::http_agent(Duration::from_secs(1));
    agent.get(format!("http://127.0.0.1:{port}/ping")).call().is_ok_and(|r| r.status() == 200)
}

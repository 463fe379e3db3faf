//! Multi-model endpoints (`SAGEMAKER_MULTI_MODEL=true`), as the developer guide's container
//! contract (mms-container-apis) has them and answered with multi-model-server's bodies (the
//! built-in's server): the platform loads a model from a directory (any readable one; a
//! relative url below the models root) with `POST /models`, lists (`GET /models`), describes
//! (`GET /models/{name}`) and unloads (`DELETE /models/{name}`) it, and invokes it with
//! `POST /models/{name}/invoke` (or `/invocations` naming it in
//! `X-Amzn-SageMaker-Target-Model`).
//!
//! Loads that would take the models past the memory budget answer 507, so the platform
//! unloads others and retries; nothing is evicted here. Models are parsed and freed on one
//! loader thread, off the async workers, and the registry is locked only to look a name up
//! or to add or remove one, so loading or unloading one model never waits for, or holds up,
//! invocations of another.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::Notify;

use super::app::{execution_parameters_of, read_body, respond};
use super::error::ServeError;
use super::memory::{MemoryBudget, resident_bytes};
use super::{ConfigError, ServeConfig};
use crate::model::{Ensemble, ModelError};

/// Set to `true` by SageMaker on multi-model endpoints (the image carries the label
/// `com.amazonaws.sagemaker.capabilities.multi-models=true`).
pub const SAGEMAKER_MULTI_MODEL: &str = "SAGEMAKER_MULTI_MODEL";
/// Where a relative `url` lies (default `<ml root>/models`, i.e. `/opt/ml/models`): MMS's model store.
pub const SAGESTEP_MODELS_ROOT: &str = "SAGESTEP_MODELS_ROOT";
/// The model `/invocations` is for; SageMaker passes `TargetModel` in it.
const TARGET_MODEL: &str = "x-amzn-sagemaker-target-model";

/// A load request body is a name and a path: anything longer is not one.
const LOAD_BODY_LIMIT: u64 = 64 * 1024;
/// `GET /models` page size when the request names none, and the most it may ask for.
const PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
/// Bytes a registry entry costs beside its models: the name, url, map node and counters.
const ENTRY_BYTES: u64 = 512;

#[derive(Debug, Clone)]
pub struct MultiModelConfig {
    pub root: PathBuf,
    pub budget: MemoryBudget,
}

impl MultiModelConfig {
    /// `Some` when `SAGEMAKER_MULTI_MODEL` is `true`.
    pub fn from_env(root: PathBuf) -> Result<Option<Self>, ConfigError> {
        if !super::var(SAGEMAKER_MULTI_MODEL).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        Ok(Some(Self { root, budget: MemoryBudget::from_env()? }))
    }
}

/// A loaded model and the requests using it.
struct Loaded {
    url: String,
    ensemble: Arc<Ensemble>,
    /// Bytes accounted to it: its models, and their projection once a sparse request made it.
    bytes: AtomicU64,
    projection_counted: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

enum Slot {
    /// Taken by a load in progress, so that a second load of the name answers 409.
    Loading,
    Loaded(Arc<Loaded>),
}

/// The loaded models by name, and the memory they hold.
pub struct Registry {
    /// As configured; resolved (links followed) at each load, since SageMaker may create it
    /// after the server starts.
    root: PathBuf,
    budget: u64,
    models: RwLock<BTreeMap<String, Slot>>,
    /// Bytes of loaded models, and of unloaded ones still answering requests.
    used: AtomicU64,
    loader: Loader,
}

/// An invocation's hold on a model: an unload waits until every lease is dropped.
struct Lease(Arc<Loaded>);

impl Drop for Lease {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A name taken by a load in progress; freed on drop unless the model was stored.
struct Reservation<'a> {
    registry: &'a Registry,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut models = self.registry.models.write().unwrap_or_else(|e| e.into_inner());
        if matches!(models.get(&self.name), Some(Slot::Loading)) {
            models.remove(&self.name);
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The thread that parses every model and frees every unloaded one. mimalloc hands pages back
/// to the system only through the thread that allocated them: freed from another thread, a
/// model's memory would stay resident until its thread allocates again or exits (an idle
/// tokio blocking thread, after 10 s), and an unload should give the memory back when it
/// answers. One parse at a time is also what the memory reserve allows for.
struct Loader(std::sync::mpsc::Sender<Job>);

impl Loader {
    fn start() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new().name("model-loader".into()).spawn(move || {
            for job in queue {
                job();
            }
        })?;
        Ok(Self(jobs))
    }

    /// Run `work` on the loader thread; a panic in it is an internal error, not the thread's end.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ServeError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        });
        let stopped = || ServeError::Internal("the model loader thread has stopped".into());
        self.0.send(job).map_err(|_| stopped())?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(ServeError::Internal("loading the model panicked".into())),
            Err(_) => Err(stopped()),
        }
    }

    /// Drop `value` on the loader thread, which allocated it, and return the pages at once.
    async fn free<T: Send + 'static>(&self, value: T) {
        let freed = self.run(move || {
            drop(value);
            release_freed_memory();
        });
        if let Err(e) = freed.await {
            tracing::warn!("{e}");
        }
    }
}

/// Give the calling thread's freed pages back to the system now, not after mimalloc's delay.
fn release_freed_memory() {
    // SAFETY: mi_collect walks only the calling thread's heap; any thread may call it.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

impl Registry {
    pub fn new(config: &MultiModelConfig) -> std::io::Result<Self> {
        Ok(Self {
            root: config.root.clone(),
            budget: config.budget.bytes,
            models: RwLock::new(BTreeMap::new()),
            used: AtomicU64::new(0),
            loader: Loader::start()?,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Slot>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Slot>> {
        self.models.write().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, name: &str) -> Option<Arc<Loaded>> {
        match self.read().get(name) {
            Some(Slot::Loaded(model)) => Some(Arc::clone(model)),
            _ => None,
        }
    }

    /// Taken under the read lock, so an unload that has removed the name sees every lease.
    fn lease(&self, name: &str) -> Option<Lease> {
        match self.read().get(name) {
            Some(Slot::Loaded(model)) => {
                model.in_flight.fetch_add(1, Ordering::AcqRel);
                Some(Lease(Arc::clone(model)))
            }
            _ => None,
        }
    }

    fn reserve(&self, name: &str) -> Result<Reservation<'_>, ServeError> {
        let mut models = self.write();
        if models.contains_key(name) {
            return Err(ServeError::AlreadyLoaded(shown(name)));
        }
        models.insert(name.to_string(), Slot::Loading);
        Ok(Reservation { registry: self, name: name.to_string() })
    }

    /// Store a parsed model in its reserved name if the budget allows; else hand it back.
    /// `resident` is the process's resident memory with the model parsed: the allocator's
    /// overheads make it more than the bytes counted (see README), and it is what the
    /// container's limit applies to.
    fn commit(
        &self,
        reservation: Reservation<'_>,
        url: String,
        ensemble: Ensemble,
        resident: u64,
    ) -> Result<u64, (ServeError, Ensemble)> {
        let bytes = ensemble.heap_bytes() as u64 + ENTRY_BYTES;
        // Loads check and add under the write lock, so two cannot both take the last room.
        let mut models = self.write();
        let used = self.used.load(Ordering::Acquire);
        if used.saturating_add(bytes) > self.budget || resident > self.budget {
            let name = reservation.name.clone();
            let refused = ServeError::InsufficientMemory { name, needed: bytes, used, resident, budget: self.budget };
            return Err((refused, ensemble));
        }
        self.used.fetch_add(bytes, Ordering::AcqRel);
        let loaded = Loaded {
            url,
            ensemble: Arc::new(ensemble),
            bytes: AtomicU64::new(bytes),
            projection_counted: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        };
        models.insert(reservation.name.clone(), Slot::Loaded(Arc::new(loaded)));
        Ok(bytes)
    }

    /// Remove the name at once (new requests get 404), wait for the requests in flight, then
    /// free the model: its url and the bytes it held.
    async fn unload(&self, name: &str) -> Result<(String, u64), ServeError> {
        let model = {
            let mut models = self.write();
            // A name still loading is not loaded: it stays with its load.
            if !matches!(models.get(name), Some(Slot::Loaded(_))) {
                return Err(ServeError::ModelNotLoaded(shown(name)));
            }
            let Some(Slot::Loaded(model)) = models.remove(name) else { unreachable!("checked under the same lock") };
            model
        };
        loop {
            let idle = model.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a lease dropped in between still wakes us.
            idle.as_mut().enable();
            if model.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        let (url, bytes) = (model.url.clone(), model.bytes.load(Ordering::Acquire));
        self.loader.free(model).await;
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        Ok((url, bytes))
    }

    /// A sparse request makes the model's projection (a renumbered copy): count it too.
    fn count_projection(&self, model: &Loaded) {
        if let Some(projection) = model.ensemble.made_projection()
            && !model.projection_counted.swap(true, Ordering::AcqRel)
        {
            let bytes = (projection.ensemble.heap_bytes() + projection.used.capacity() * 4) as u64;
            model.bytes.fetch_add(bytes, Ordering::AcqRel);
            self.used.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// `url` resolved (links followed): an absolute path as given, any readable directory
    /// (the built-in loads `/opt/ml/model/<name>` as readily as the models root); a relative
    /// one below the models root (MMS's model store). `..` is refused before anything is read.
    fn resolve(&self, url: &str) -> Result<PathBuf, ServeError> {
        let path = Path::new(url);
        if url.is_empty() {
            return Err(ServeError::BadRequest("Parameter url is required.".into()));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(ServeError::RelativeUrl(shown(url)));
        }
        let full = if path.is_absolute() { path.to_path_buf() } else { self.root.join(path) };
        let resolved = std::fs::canonicalize(&full).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
                ServeError::ModelDirNotFound(shown(url))
            }
            _ => ServeError::InvalidField { field: "url", problem: format!("cannot be read: {e}"), given: shown(url) },
        })?;
        if !resolved.is_dir() {
            let problem = "must name a directory holding the model file".to_string();
            return Err(ServeError::InvalidField { field: "url", problem, given: shown(url) });
        }
        Ok(resolved)
    }

    /// Read and parse the model at `url` (blocking: file reads and parsing).
    fn read_model(&self, url: &str) -> Result<Ensemble, ServeError> {
        let path = self.resolve(url)?;
        let files = Ensemble::candidate_files(&path).map_err(|e| model_error(url, e))?;
        for file in &files {
            // A link in the directory may point anywhere: what it reads must be in the directory.
            if !std::fs::canonicalize(file).is_ok_and(|f| f.starts_with(&path)) {
                let problem = format!(
                    "holds `{}`, a link to a file outside the directory `{}`",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    path.display()
                );
                return Err(ServeError::InvalidField { field: "url", problem, given: shown(url) });
            }
        }
        let mut ensemble = Ensemble::load_files(&path, files).map_err(|e| model_error(url, e))?;
        // Per-node training statistics are only needed to write a model back.
        ensemble.compact();
        Ok(ensemble)
    }
}

/// A model that cannot load is the artifact's fault (400); a read error is not the caller's.
fn model_error(url: &str, e: ModelError) -> ServeError {
    match e {
        ModelError::Io { .. } => ServeError::Internal(format!("cannot read the model at `{url}`: {e}")),
        ModelError::NoModel { .. } => ServeError::BadModel {
            url: url.to_string(),
            problem: "the directory holds no model file (hidden files are ignored)".into(),
        },
        e => ServeError::BadModel { url: url.to_string(), problem: e.to_string() },
    }
}

/// A value quoted back in a message: escaped and cut short, so it cannot forge log lines.
fn shown(value: &str) -> String {
    let mut text: String = value.escape_debug().take(200).collect();
    if text.len() < value.escape_debug().count() {
        text.push('…');
    }
    text
}

/// Names are opaque keys, never paths; still, keep them to visible ASCII without slashes,
/// so they route as one URL path segment and cannot be mistaken for a path in a log.
fn check_name(name: &str) -> Result<(), ServeError> {
    let problem = if name.is_empty() {
        "must not be empty"
    } else if name.len() > 256 {
        "must be at most 256 characters"
    } else if name == "." || name == ".." {
        "must not be `.` or `..`"
    } else if name.chars().any(|c| !c.is_ascii_graphic() || c == '/' || c == '\\') {
        "must be visible ASCII characters other than `/` and `\\`"
    } else {
        return Ok(());
    };
    Err(ServeError::InvalidField { field: "model_name", problem: problem.into(), given: shown(name) })
}

pub struct MultiModelState {
    pub config: ServeConfig,
    pub registry: Registry,
}

pub fn app(state: Arc<MultiModelState>) -> Router {
    Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route(
            "/execution-parameters",
            get(|State(s): State<Arc<MultiModelState>>| async move { execution_parameters_of(&s.config) }),
        )
        .route("/invocations", post(invocations))
        .route("/models", get(list).post(load))
        .route("/models/{name}", get(describe).delete(unload))
        .route("/models/{name}/invoke", post(invoke))
        .fallback(|| async { mms_error(ServeError::NoSuchRoute) })
        .method_not_allowed_fallback(|| async { mms_error(ServeError::MethodNotAllowed) })
        .with_state(state)
}

/// An error as multi-model-server (the built-in's server) answers it: `{"code", "type",
/// "message"}`, `type` the name of MMS's exception class for the case. Errors a worker
/// reports on a request (payload, content type) are MMS's InternalServerException with
/// their own status, as MMS wraps its backend's errors.
fn mms_error(e: ServeError) -> Response {
    e.log();
    let status = e.status();
    let (kind, message) = match &e {
        ServeError::ModelNotLoaded(name) => ("ModelNotFoundException", format!("Model not found: {name}")),
        ServeError::AlreadyLoaded(name) => ("ConflictStatusException", format!("Model {name} is already registered.")),
        ServeError::RelativeUrl(_) | ServeError::ModelDirNotFound(_) => ("ModelNotFoundException", e.to_string()),
        ServeError::BadModel { .. } => ("InvalidModelException", e.to_string()),
        ServeError::BadRequest(_) | ServeError::InvalidField { .. } => ("BadRequestException", e.to_string()),
        ServeError::NoSuchRoute => ("ResourceNotFoundException", e.to_string()),
        ServeError::MethodNotAllowed => ("MethodNotAllowedException", e.to_string()),
        ServeError::Timeout(_) => ("RequestTimeoutException", e.to_string()),
        ServeError::NotReady => ("ServiceUnavailableException", e.to_string()),
        ServeError::InsufficientMemory { .. } => ("OutOfMemoryError", e.to_string()),
        _ => ("InternalServerException", e.to_string()),
    };
    json(status, serde_json::json!({"code": status.as_u16(), "type": kind, "message": message}))
}

/// MMS's success body: `{"status": "..."}`.
fn status_body(text: String) -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": text }))
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn summary(name: &str, model: &Loaded) -> serde_json::Value {
    serde_json::json!({"modelName": name, "modelUrl": model.url})
}

fn path_name(name: Result<UrlPath<String>, PathRejection>) -> Result<String, ServeError> {
    name.map(|UrlPath(n)| n).map_err(|e| ServeError::BadRequest(format!("the model name in the path: {e}")))
}

/// MMS's RegisterModelRequest, as SageMaker sends it.
#[derive(Deserialize)]
struct LoadRequest {
    model_name: Option<String>,
    url: Option<String>,
}

async fn load(State(state): State<Arc<MultiModelState>>, headers: HeaderMap, body: Body) -> Response {
    try_load(&state, &headers, body).await.unwrap_or_else(mms_error)
}

async fn try_load(state: &Arc<MultiModelState>, headers: &HeaderMap, body: Body) -> Result<Response, ServeError> {
    let started = Instant::now();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let bytes = read_body(body, LOAD_BODY_LIMIT, declared, state.config.body_timeout).await?;
    let request: LoadRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ServeError::BadRequest(format!(r#"the body must be JSON {{"model_name": "...", "url": "..."}}: {e}"#))
    })?;
    let Some(url) = request.url else { return Err(ServeError::BadRequest("Parameter url is required.".into())) };
    let Some(model_name) = request.model_name else {
        return Err(ServeError::BadRequest("Parameter model_name is required.".into()));
    };
    check_name(&model_name)?;
    let registry = &state.registry;
    let reservation = registry.reserve(&model_name)?;
    let parsing = Arc::clone(state);
    let request_url = url.clone();
    let (ensemble, resident) = registry
        .loader
        .run(move || {
            let ensemble = parsing.registry.read_model(&url)?;
            // The parse's garbage returned first, so that what is resident is what stays.
            release_freed_memory();
            Ok::<_, ServeError>((ensemble, resident_bytes().unwrap_or(0)))
        })
        .await??;
    let trees: usize = ensemble.members.iter().map(|m| m.model.forest.trees.len()).sum();
    let format = ensemble.members[0].model.format;
    let bytes = match registry.commit(reservation, request_url.clone(), ensemble, resident) {
        Ok(bytes) => bytes,
        Err((refused, ensemble)) => {
            registry.loader.free(ensemble).await;
            return Err(refused);
        }
    };
    tracing::info!(
        model = model_name,
        url = request_url,
        ?format,
        trees,
        bytes,
        used = registry.used.load(Ordering::Relaxed),
        resident,
        budget = registry.budget,
        millis = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    // MMS registers with workers, synchronously: its answer once they run.
    Ok(status_body("Workers scaled".into()))
}

/// `next_page_token` (the opaque token of the previous page) and `max_results` (MMS calls
/// it `limit`); other parameters are ignored.
fn page_query(uri: &Uri) -> Result<(Option<String>, usize), ServeError> {
    let mut after = None;
    let mut size = PAGE_SIZE;
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "next_page_token" if !value.is_empty() => {
                let name = decode_token(value).ok_or_else(|| {
                    ServeError::BadRequest(format!(
                        "`next_page_token` is not a token this server gave. Given: `{}`",
                        shown(value)
                    ))
                })?;
                after = Some(name);
            }
            "max_results" | "limit" => {
                size = value.parse().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                    ServeError::BadRequest(format!(
                        "`{key}` must be a whole number from 1 to {MAX_PAGE_SIZE}. Given: `{}`",
                        shown(value)
                    ))
                })?;
            }
            _ => {}
        }
    }
    Ok((after, size))
}

/// Page tokens are the last name listed, in hex: any name survives a query string.
fn encode_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

async fn list(State(state): State<Arc<MultiModelState>>, uri: Uri) -> Response {
    let (after, size) = match page_query(&uri) {
        Ok(query) => query,
        Err(e) => return mms_error(e),
    };
    let models = state.registry.read();
    let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut page: Vec<(&String, &Arc<Loaded>)> = models
        .range::<str, _>((start, Bound::Unbounded))
        .filter_map(|(name, slot)| match slot {
            Slot::Loaded(model) => Some((name, model)),
            Slot::Loading => None,
        })
        .take(size + 1)
        .collect();
    let next = (page.len() > size).then(|| {
        page.truncate(size);
        encode_token(page[size - 1].0)
    });
    let mut body = serde_json::json!({"models": page.iter().map(|(n, m)| summary(n, m)).collect::<Vec<_>>()});
    if let Some(token) = next {
        body["nextPageToken"] = token.into();
    }
    drop(models);
    json(StatusCode::OK, body)
}

async fn describe(State(state): State<Arc<MultiModelState>>, name: Result<UrlPath<String>, PathRejection>) -> Response {
    let result = path_name(name).and_then(|name| {
        let model = state.registry.get(&name).ok_or_else(|| ServeError::ModelNotLoaded(shown(&name)))?;
        let first = model.ensemble.first();
        let mut body = summary(&name, &model);
        body["format"] = serde_json::to_value(model.ensemble.members[0].model.format).unwrap_or_default();
        body["files"] = model.ensemble.members.len().into();
        body["trees"] = first.trees.len().into();
        let nodes: usize =
            model.ensemble.members.iter().flat_map(|m| &m.model.forest.trees).map(|t| t.nodes.len()).sum();
        body["nodes"] = nodes.into();
        body["features"] = model.ensemble.num_feature().into();
        body["objective"] = first.objective.name().into();
        body["memoryBytes"] = model.bytes.load(Ordering::Relaxed).into();
        Ok(json(StatusCode::OK, body))
    });
    result.unwrap_or_else(mms_error)
}

async fn unload(State(state): State<Arc<MultiModelState>>, name: Result<UrlPath<String>, PathRejection>) -> Response {
    let name = match path_name(name) {
        Ok(name) => name,
        Err(e) => return mms_error(e),
    };
    let started = Instant::now();
    match state.registry.unload(&name).await {
        Ok((url, bytes)) => {
            tracing::info!(
                model = name,
                bytes,
                used = state.registry.used.load(Ordering::Relaxed),
                millis = started.elapsed().as_millis() as u64,
                "model unloaded"
            );
            tracing::debug!(url, "unloaded");
            status_body(format!("Model \"{name}\" unregistered"))
        }
        Err(e) => mms_error(e),
    }
}

async fn invoke(
    State(state): State<Arc<MultiModelState>>,
    name: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    invoke_named(&state, path_name(name), headers, body).await
}

/// `/invocations` names its model in `X-Amzn-SageMaker-Target-Model`.
async fn invocations(State(state): State<Arc<MultiModelState>>, headers: HeaderMap, body: Body) -> Response {
    let name = match headers.get(TARGET_MODEL).map(|v| v.to_str()) {
        Some(Ok(name)) => Ok(name.to_string()),
        Some(Err(_)) => Err(ServeError::BadRequest("the X-Amzn-SageMaker-Target-Model header is not text".into())),
        None => Err(ServeError::BadRequest(
            "a multi-model server needs the model named: POST /models/{name}/invoke, or /invocations with the \
             X-Amzn-SageMaker-Target-Model header"
                .into(),
        )),
    };
    invoke_named(&state, name, headers, body).await
}

/// The lease is taken before the body is read, so an unload waits for a request still
/// uploading; a missing model is reported once the body is in, as any other error.
async fn invoke_named(
    state: &MultiModelState,
    name: Result<String, ServeError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let lease = name.as_ref().ok().and_then(|n| state.registry.lease(n));
    let ensemble = lease.as_ref().map(|l| Arc::clone(&l.0.ensemble));
    let response = respond(
        &state.config,
        &headers,
        body,
        move || ensemble.ok_or_else(|| name.map_or_else(|e| e, |n| ServeError::ModelNotLoaded(shown(&n)))),
        mms_error,
    )
    .await;
    if let Some(lease) = &lease {
        state.registry.count_projection(&lease.0);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "model-1.tar.gz", "8d5d4f6e0f2bb0b3", "A_b:c@d+e=f"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a\\b", "a b", "a\nb", "é", &"x".repeat(257)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_round_trip() {
        for name in ["a", "m0001", "A_b:c@d+e=f%"] {
            assert_eq!(decode_token(&encode_token(name)).as_deref(), Some(name));
        }
        assert_eq!(decode_token("6"), None);
        assert_eq!(decode_token("zz"), None);
        assert_eq!(decode_token("ff"), None, "not UTF-8");
    }

    #[test]
    fn page_queries() {
        let q = |s: &str| page_query(&s.parse::<Uri>().unwrap());
        assert_eq!(q("/models").unwrap(), (None, PAGE_SIZE));
        assert_eq!(q("/models?max_results=2&next_page_token=61").unwrap(), (Some("a".into()), 2));
        assert_eq!(q("/models?limit=7&other=1").unwrap(), (None, 7));
        assert!(q("/models?max_results=0").is_err());
        assert!(q("/models?max_results=1001").is_err());
        assert!(q("/models?next_page_token=xyz").is_err());
    }

    #[test]
    fn shown_values_are_escaped_and_cut() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(300)).chars().count(), 201);
    }
}

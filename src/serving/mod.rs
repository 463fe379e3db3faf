//! The serve step: SageMaker's inference contract (`/ping`, `/invocations`,
//! `/execution-parameters`) for real-time endpoints and batch transform, and multi-model
//! endpoints (`multi_model`).
//!
//! Knows nothing of how models are stored: it asks `model::Ensemble` to load a directory.

pub mod app;
pub mod codec;
pub mod error;
pub mod memory;
pub mod multi_model;
pub use crate::data::recordio;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use crate::contract::env;
use crate::model::Ensemble;
pub use app::{AppState, ExecutionParameters, app};
use codec::Output;
use multi_model::{MultiModelConfig, MultiModelState, Registry};

/// The real-time payload limit, as the built-in server's `MAX_CONTENT_LENGTH` (6 MiB).
pub const REALTIME_MAX_PAYLOAD: u64 = 6 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub model_dir: PathBuf,
    pub port: u16,
    pub default_accept: Output,
    /// `SAGEMAKER_INFERENCE_OUTPUT`, lowercased, spaces removed.
    pub selected_keys: Option<Vec<String>>,
    pub batch: bool,
    pub max_payload_bytes: u64,
    pub execution: ExecutionParameters,
    /// How long a client may take to send headers, and then its body.
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// Multi-model endpoints: `model_dir` is not read; models load on request.
    pub multi_model: Option<MultiModelConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`{name}` must be {expected}. Given: `{given}`")]
    Invalid { name: &'static str, expected: &'static str, given: String },
    #[error(
        "script mode is not supported: `SAGEMAKER_PROGRAM={0}` asks to serve with a user's inference script (the \
         built-in XGBoost's framework mode), which this static image cannot run. Serve the model with this image \
         and no SAGEMAKER_PROGRAM, or use AWS's XGBoost framework image (sagemaker-xgboost) for a custom script"
    )]
    ScriptMode(String),
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn parse_var<T: std::str::FromStr>(name: &'static str, expected: &'static str) -> Result<Option<T>, ConfigError> {
    var(name).map(|v| v.parse::<T>().map_err(|_| ConfigError::Invalid { name, expected, given: v })).transpose()
}

impl ServeConfig {
    /// SageMaker's environment: port, default Accept, selectable output, batch variables,
    /// multi-model mode (whose relative `url`s lie below `models_root`).
    pub fn from_env(model_dir: PathBuf, models_root: PathBuf, port: Option<u16>) -> Result<Self, ConfigError> {
        if let Some(program) = var(env::SAGEMAKER_PROGRAM) {
            return Err(ConfigError::ScriptMode(program));
        }
        let port = match port {
            Some(p) => p,
            None => parse_var(env::SAGEMAKER_BIND_TO_PORT, "a port number")?.unwrap_or(8080),
        };
        let default_accept = match var(env::SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT) {
            Some(v) => Output::parse(&v).ok_or(ConfigError::Invalid {
                name: env::SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT,
                expected: "text/csv, application/json, application/jsonlines or application/x-recordio-protobuf",
                given: v,
            })?,
            None => Output::Csv,
        };
        let selected_keys = var(env::SAGEMAKER_INFERENCE_OUTPUT).map(|v| {
            v.replace(' ', "").to_lowercase().split(',').filter(|k| !k.is_empty()).map(String::from).collect()
        });
        let batch = var(env::SAGEMAKER_BATCH).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let max_payload_mb: Option<u64> =
            parse_var(env::SAGEMAKER_MAX_PAYLOAD_IN_MB, "a whole number of MB (0 to 100)")?;
        if let Some(mb) = max_payload_mb.filter(|mb| *mb > 100) {
            return Err(ConfigError::Invalid {
                name: env::SAGEMAKER_MAX_PAYLOAD_IN_MB,
                expected: "at most 100",
                given: mb.to_string(),
            });
        }
        let strategy = match var(env::SAGEMAKER_BATCH_STRATEGY) {
            Some(v) if v.eq_ignore_ascii_case("MULTI_RECORD") => "MULTI_RECORD",
            Some(v) if v.eq_ignore_ascii_case("SINGLE_RECORD") => "SINGLE_RECORD",
            Some(v) => {
                return Err(ConfigError::Invalid {
                    name: env::SAGEMAKER_BATCH_STRATEGY,
                    expected: "MULTI_RECORD or SINGLE_RECORD",
                    given: v,
                });
            }
            None => "MULTI_RECORD",
        };
        let concurrent: Option<usize> = parse_var(env::SAGEMAKER_MAX_CONCURRENT_TRANSFORMS, "a positive whole number")?;
        let execution = ExecutionParameters {
            max_concurrent_transforms: concurrent.filter(|n| *n > 0).unwrap_or_else(crate::parallel::cores),
            batch_strategy: strategy,
            max_payload_in_mb: max_payload_mb.unwrap_or(6),
        };
        // In batch, the payload may be as large as the job allows (0 = unbounded stream, which
        // we cap at 100 MB).
        let max_payload_bytes = match (batch, max_payload_mb) {
            (true, Some(0)) => 100 * 1024 * 1024,
            (true, Some(mb)) => mb * 1024 * 1024,
            _ => REALTIME_MAX_PAYLOAD,
        };
        let request_timeout: u64 =
            parse_var(env::SAGESTEP_REQUEST_TIMEOUT_SECS, "a whole number of seconds")?.unwrap_or(30);
        Ok(Self {
            model_dir,
            port,
            default_accept,
            selected_keys,
            batch,
            max_payload_bytes,
            execution,
            header_timeout: Duration::from_secs(request_timeout.min(10)),
            body_timeout: Duration::from_secs(request_timeout),
            drain_timeout: Duration::from_secs(25),
            multi_model: MultiModelConfig::from_env(models_root)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeFailure {
    #[error("cannot listen on port {port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the model: {0}")]
    Model(#[from] crate::model::ModelError),
    #[error("the model loader stopped unexpectedly")]
    Loader,
    #[error("cannot start the model loader thread: {0}")]
    LoaderThread(#[source] std::io::Error),
}

type Loading = std::pin::Pin<Box<dyn Future<Output = Result<(), ServeFailure>> + Send>>;

/// Bind, load the model beside the listener (so `/ping` answers 503 until it is ready), serve
/// until SIGTERM or Ctrl-C, then stop accepting and let in-flight requests finish. In
/// multi-model mode nothing loads at start and `/ping` answers 200 at once.
pub async fn serve(config: ServeConfig) -> Result<(), ServeFailure> {
    let port = config.port;
    let listener =
        tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|source| ServeFailure::Bind { port, source })?;
    tracing::info!(port, "listening");
    let (router, loading) = match &config.multi_model {
        Some(mm) => {
            if !mm.root.is_dir() {
                tracing::warn!(root = %mm.root.display(), "the models root is not a directory (yet): loads fail until it is");
            }
            let registry = Registry::new(mm).map_err(ServeFailure::LoaderThread)?;
            tracing::info!(
                root = %mm.root.display(),
                budget_bytes = mm.budget.bytes,
                budget_source = mm.budget.source,
                "multi-model mode: ready"
            );
            let state = Arc::new(MultiModelState { config: config.clone(), registry });
            (multi_model::app(state), None)
        }
        None => {
            let state = Arc::new(AppState::new(config.clone()));
            (app(Arc::clone(&state)), Some(load_single(config.model_dir.clone(), state)))
        }
    };
    accept(listener, router, &config, loading).await
}

fn load_single(model_dir: PathBuf, state: Arc<AppState>) -> Loading {
    let task = tokio::task::spawn_blocking(move || {
        let ensemble = Ensemble::load(&model_dir)?;
        let first = ensemble.first();
        tracing::info!(
            format = ?ensemble.members[0].model.format,
            files = ensemble.members.len(),
            trees = first.trees.len(),
            features = ensemble.num_feature(),
            objective = first.objective.name(),
            xgboost_version = first.version.map(|v| v.to_string()),
            "model ready"
        );
        state.set_model(ensemble);
        Ok::<(), crate::model::ModelError>(())
    });
    Box::pin(async move {
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServeFailure::Model(e)),
            Err(_) => Err(ServeFailure::Loader),
        }
    })
}

/// The accept loop: each connection served with the header timeout; a failed model load
/// stops the server; SIGTERM or Ctrl-C stops accepting and drains.
async fn accept(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    config: &ServeConfig,
    loading: Option<Loading>,
) -> Result<(), ServeFailure> {
    let mut loading = loading.unwrap_or_else(|| Box::pin(std::future::pending()));
    let mut loaded = false;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(config.header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            result = &mut loading, if !loaded => {
                loaded = true;
                result?;
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("stopping: no new connections; finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all requests finished"),
        () = tokio::time::sleep(config.drain_timeout) => tracing::warn!("requests still in flight after the drain timeout"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
}

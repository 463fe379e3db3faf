//! The serve step: SageMaker's inference contract (`/ping`, `/invocations`,
//! `/execution-parameters`) for real-time endpoints and batch transform.
//!
//! Knows nothing of how models are stored: it asks `model::Ensemble` to load a directory.

pub mod app;
pub mod codec;
pub mod error;
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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`{name}` must be {expected}. Given: `{given}`")]
    Invalid { name: &'static str, expected: &'static str, given: String },
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn parse_var<T: std::str::FromStr>(name: &'static str, expected: &'static str) -> Result<Option<T>, ConfigError> {
    var(name).map(|v| v.parse::<T>().map_err(|_| ConfigError::Invalid { name, expected, given: v })).transpose()
}

impl ServeConfig {
    /// SageMaker's environment: port, default Accept, selectable output, batch variables.
    pub fn from_env(model_dir: PathBuf, port: Option<u16>) -> Result<Self, ConfigError> {
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
}

/// Bind, load the model beside the listener (so `/ping` answers 503 until it is ready), serve
/// until SIGTERM or Ctrl-C, then stop accepting and let in-flight requests finish.
pub async fn serve(config: ServeConfig) -> Result<(), ServeFailure> {
    let port = config.port;
    let listener =
        tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|source| ServeFailure::Bind { port, source })?;
    tracing::info!(port, "listening");
    let state = Arc::new(AppState::new(config.clone()));
    let router = app(Arc::clone(&state));

    let model_dir = config.model_dir.clone();
    let loaded_state = Arc::clone(&state);
    let mut loading = tokio::task::spawn_blocking(move || {
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
        loaded_state.set_model(ensemble);
        Ok::<(), crate::model::ModelError>(())
    });
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
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(ServeFailure::Model(e)),
                    Err(_) => return Err(ServeFailure::Loader),
                }
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

//! The HTTP routes as a thin adapter over the model: `fn app(state) -> Router`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde::Serialize;

use super::ServeConfig;
use super::codec::{self, Field, Input, Output};
use super::error::ServeError;
use crate::model::{Ensemble, Matrix, Objective, TreeLimit};

const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
/// Above this much work (payload values x trees, about 5 ms) prediction leaves the async
/// workers and may use every core; below it, one request is one thread's work, since
/// concurrent requests already fill the cores.
const BLOCKING_WORK: usize = 20_000_000;
/// Rows are decoded and predicted this many values at a time (4 MiB; at least one row), so a
/// sparse request costs the same whatever width the model declares or reads.
const BLOCK_VALUES: usize = 1 << 20;
/// The most predicted values one request may ask for (64 MiB of f32), and the largest
/// response body (256 MiB): beyond them, 413.
const MAX_PREDICTIONS: usize = 1 << 24;
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// `GET /execution-parameters`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionParameters {
    pub max_concurrent_transforms: usize,
    pub batch_strategy: &'static str,
    #[serde(rename = "MaxPayloadInMB")]
    pub max_payload_in_mb: u64,
}

pub struct AppState {
    config: ServeConfig,
    model: OnceLock<Arc<Ensemble>>,
}

impl AppState {
    pub fn new(config: ServeConfig) -> Self {
        Self { config, model: OnceLock::new() }
    }

    pub fn set_model(&self, ensemble: Ensemble) {
        let _ = self.model.set(Arc::new(ensemble));
    }

    fn model(&self) -> Result<&Arc<Ensemble>, ServeError> {
        self.model.get().ok_or(ServeError::NotReady)
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(invocations))
        .route("/execution-parameters", get(execution_parameters))
        .with_state(state)
}

async fn ping(State(state): State<Arc<AppState>>) -> Response {
    match state.model() {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn execution_parameters(State(state): State<Arc<AppState>>) -> Response {
    execution_parameters_of(&state.config)
}

pub(super) fn execution_parameters_of(config: &ServeConfig) -> Response {
    let body = serde_json::to_string(&config.execution).expect("serializes");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn invocations(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    respond(&state.config, &headers, body, || state.model().cloned(), IntoResponse::into_response).await
}

/// An invocation on the model `model` finds once the body is in: the response, with the
/// custom attributes echoed and one debug line; errors rendered by `render` (each mode's own
/// error body).
pub(super) async fn respond(
    config: &ServeConfig,
    headers: &HeaderMap,
    body: Body,
    model: impl FnOnce() -> Result<Arc<Ensemble>, ServeError>,
    render: fn(ServeError) -> Response,
) -> Response {
    let started = Instant::now();
    let custom = headers.get(CUSTOM_ATTRIBUTES).cloned();
    let result = invoke(config, headers, body, model).await;
    let (mut response, rows) = match result {
        Ok((response, rows)) => (response, rows),
        Err(e) => (render(e), 0),
    };
    if let Some(value) = custom {
        response.headers_mut().insert(CUSTOM_ATTRIBUTES, value);
    }
    tracing::debug!(
        status = response.status().as_u16(),
        rows,
        micros = started.elapsed().as_micros() as u64,
        content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        "invocation"
    );
    response
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<&str>, ServeError> {
    headers
        .get(&name)
        .map(|v| v.to_str().map_err(|_| ServeError::BadPayload(format!("the {name} header is not text"))))
        .transpose()
}

async fn invoke(
    config: &ServeConfig,
    headers: &HeaderMap,
    body: Body,
    model: impl FnOnce() -> Result<Arc<Ensemble>, ServeError>,
) -> Result<(Response, usize), ServeError> {
    let limit = config.max_payload_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // The body is read (or, when too large, drained up to a bound) before any answer, so that
    // a client still sending sees the status instead of a reset connection.
    let bytes = read_body(body, limit, declared, config.body_timeout).await?;
    // Nothing to predict is 204 before anything else is looked at, as the built-in answers:
    // whatever the Content-Type or Accept, and while the model is still loading.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((StatusCode::NO_CONTENT.into_response(), 0));
    }
    let input = Input::parse(header_text(headers, header::CONTENT_TYPE)?)?;
    let output = Output::negotiate(header_text(headers, header::ACCEPT)?, config.default_accept)?;
    let ensemble = &model()?;

    let work = bytes.len() / 4 * ensemble.first().trees.len();
    let (body, count) = if work > BLOCKING_WORK {
        // Large payloads predict off the async workers (and over every core), so that
        // /ping and small requests keep answering.
        let ensemble = Arc::clone(ensemble);
        let keys = config.selected_keys.clone();
        let threads = crate::parallel::cores();
        tokio::task::spawn_blocking(move || answer(&ensemble, keys.as_deref(), input, output, &bytes, threads))
            .await
            .map_err(|e| ServeError::Internal(format!("prediction failed: {e}")))??
    } else {
        answer(ensemble, config.selected_keys.as_deref(), input, output, &bytes, 1)?
    };
    if count == 0 {
        return Ok((StatusCode::NO_CONTENT.into_response(), 0));
    }
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(output.content_type()));
    Ok((response, count))
}

/// Beyond the limit, this much more is read and thrown away before answering 413; a client
/// sending more is cut off.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;

pub(super) async fn read_body(
    body: Body,
    limit: u64,
    declared: Option<u64>,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, ServeError> {
    let too_large = |size| ServeError::TooLarge { size, limit };
    let read = async {
        let mut body = body;
        let mut collected = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ServeError::BadPayload(format!("the request body could not be read: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            total += data.len() as u64;
            if total > limit + DRAIN_BYTES {
                break;
            }
            if total <= limit {
                collected.extend_from_slice(&data);
            }
        }
        if total > limit || declared.is_some_and(|d| d > limit) {
            return Err(too_large(total.max(declared.unwrap_or(0))));
        }
        Ok(bytes::Bytes::from(collected))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| ServeError::Timeout(timeout.as_secs()))?
}

/// Decode, predict and encode: the response body and the rows predicted.
fn answer(
    ensemble: &Ensemble,
    keys: Option<&[String]>,
    input: Input,
    output: Output,
    body: &[u8],
    threads: usize,
) -> Result<(Vec<u8>, usize), ServeError> {
    let (predictions, count) = predict(ensemble, input, body, threads)?;
    let first = ensemble.first();
    let rows = predictions.chunks(ensemble.outputs_per_row()).map(|p| match keys {
        None => vec![("score", if p.len() == 1 { Field::Score(p[0]) } else { Field::Scores(p.to_vec()) })],
        Some(keys) => select(&first.objective, first.num_groups, p, keys),
    });
    let body = codec::encode(output, rows, MAX_RESPONSE_BYTES)
        .map_err(|limit| ServeError::ResponseTooLarge(format!("the response would pass {limit} bytes")))?;
    Ok((body, count))
}

/// Decode the payload a block of rows at a time and predict each block: the predictions
/// (`rows x outputs`) and the row count.
fn predict(ensemble: &Ensemble, input: Input, body: &[u8], threads: usize) -> Result<(Vec<f32>, usize), ServeError> {
    let num_feature = ensemble.num_feature().max(1);
    // Sparse rows hold only the features the splits read.
    let (model, used, width) = if input.is_sparse() {
        let projection = ensemble.projection();
        (&projection.ensemble, &projection.used[..], projection.width())
    } else {
        (ensemble, &[][..], num_feature)
    };
    let outputs = ensemble.outputs_per_row();
    let mut predictions = Vec::new();
    let mut on_block = |values: &[f32], rows: usize| {
        if (predictions.len() / outputs + rows).saturating_mul(outputs) > MAX_PREDICTIONS {
            return Err(ServeError::ResponseTooLarge(format!(
                "the payload's rows would make more than {MAX_PREDICTIONS} predicted values ({outputs} a row)"
            )));
        }
        predictions.extend(model.predict_on(&Matrix::new(values, width), TreeLimit::SageMaker, threads));
        Ok(())
    };
    let count = codec::decode(input, body, num_feature, used, BLOCK_VALUES, &mut on_block)?;
    Ok((predictions, count))
}

/// `SAGEMAKER_INFERENCE_OUTPUT`: the selected keys of one row's predictions `p`, as the
/// built-in computes them. Keys the objective cannot answer are `Missing` (NaN in CSV, null in
/// JSON).
fn select<'k>(objective: &Objective, classes: usize, p: &[f32], keys: &'k [String]) -> Vec<(&'k str, Field)> {
    let name = objective.name();
    let probabilistic = matches!(name, "binary:logistic" | "multi:softprob");
    let scored = matches!(name, "binary:logitraw" | "binary:hinge" | "multi:softmax");
    // Python floats: the f32 widened, and `1.0 - p` in f64.
    let first = f64::from(p[0]);
    let (best, max) = p.iter().enumerate().fold((0, p[0]), |(b, m), (k, &v)| if v > m { (k, v) } else { (b, m) });
    let max = f64::from(max);
    let all = || p.iter().map(|&v| f64::from(v)).collect();
    let softprob = name == "multi:softprob";
    keys.iter()
        .map(|key| {
            let field = match key.as_str() {
                "predicted_label" if probabilistic || scored => match name {
                    "binary:logistic" => Field::Int(i64::from(first > 0.5)),
                    "binary:logitraw" => Field::Int(i64::from(first > 0.0)),
                    "multi:softprob" => Field::Int(best as i64),
                    _ => Field::Float(first),
                },
                "labels" if probabilistic || scored => {
                    let n = if name.starts_with("binary:") { 2 } else { classes };
                    Field::Ints((0..n as i64).collect())
                }
                "probability" if probabilistic => Field::Float(if softprob { max } else { first }),
                "probabilities" if probabilistic => {
                    if softprob {
                        Field::Floats(all())
                    } else {
                        Field::Floats(vec![1.0 - first, first])
                    }
                }
                "raw_score" if probabilistic || scored => Field::Float(if softprob { max } else { first }),
                "raw_scores" if probabilistic || scored => {
                    if softprob {
                        Field::Floats(all())
                    } else {
                        Field::Floats(vec![1.0 - first, first])
                    }
                }
                "predicted_score" if !(probabilistic || scored) => {
                    if p.len() == 1 {
                        Field::Float(first)
                    } else {
                        Field::Floats(all())
                    }
                }
                _ => Field::Missing,
            };
            (key.as_str(), field)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServeConfig {
        ServeConfig::from_env("/nonexistent".into(), "/nonexistent".into(), Some(8080)).unwrap()
    }

    async fn status(body: &'static str) -> StatusCode {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        match invoke(&config(), &headers, Body::from(body), || Err(ServeError::NotReady)).await {
            Ok((response, _)) => response.status(),
            Err(e) => e.into_response().status(),
        }
    }

    #[tokio::test]
    async fn an_empty_body_is_204_while_the_model_loads() {
        assert_eq!(status("").await, StatusCode::NO_CONTENT);
        assert_eq!(status("1,2\n").await, StatusCode::SERVICE_UNAVAILABLE);
    }
}

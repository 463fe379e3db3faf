//! The endpoint's front: SageMaker Runtime's `InvokeEndpoint` as botocore's service model
//! (`sagemaker-runtime` 2017-05-13) defines it, `POST /endpoints/{EndpointName}/invocations`,
//! routed round-robin over the healthy instances. Requests are signed by AWS clients; a local
//! endpoint has no IAM, so any signature is accepted.
//!
//! Errors come in the service's rest-json shapes, named by `x-amzn-ErrorType`:
//! `ValidationError` (400) for an unknown endpoint or a bad header, `ModelError` (424) when
//! the container answers an error (`OriginalStatusCode`, `OriginalMessage`, `LogStreamArn`),
//! `ServiceUnavailable` (503) when no instance is healthy. A body above 6,291,456 bytes gets
//! what AWS answers: 413 with no error type ("HTTP content length exceeded ... bytes.").

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::record::{ACCOUNT, VARIANT, region};

/// `BodyBlob`'s `max` in the service model, for the request and the response.
pub const MAX_BODY_BYTES: usize = 6_291_456;
/// How long a request waits for a healthy instance (one being restarted) before 503.
const WAIT_FOR_INSTANCE: Duration = Duration::from_secs(30);
/// The container must answer within 60 s (InvokeEndpoint's documentation).
const MODEL_TIMEOUT: Duration = Duration::from_secs(60);

const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
const TARGET_MODEL: &str = "x-amzn-sagemaker-target-model";
const TARGET_VARIANT: &str = "x-amzn-sagemaker-target-variant";
const INFERENCE_ID: &str = "x-amzn-sagemaker-inference-id";
const INVOKED_VARIANT: &str = "x-amzn-invoked-production-variant";
const ERROR_TYPE: &str = "x-amzn-errortype";
const REQUEST_ID: &str = "x-amzn-requestid";

/// One instance as the front routes to it.
pub struct Backend {
    pub id: String,
    pub port: u16,
    pub log: PathBuf,
    /// Set by the supervisor once `/ping` answers; cleared by the front when the instance
    /// cannot be reached, and by the supervisor when its process is gone.
    pub healthy: AtomicBool,
    /// Requests being forwarded to it now (an instance drains to 0 before it stops).
    pub in_flight: AtomicUsize,
}

impl Backend {
    pub fn new(id: &str, port: u16, log: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_string(),
            port,
            log,
            healthy: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        })
    }
}

pub struct Front {
    endpoint: String,
    backends: RwLock<Arc<Vec<Arc<Backend>>>>,
    next: AtomicUsize,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Front {
    pub fn new(endpoint: &str) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Arc::new(Self {
            endpoint: endpoint.to_string(),
            backends: RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
            client,
        })
    }

    /// Route to these instances from now on (requests already forwarded finish where they are).
    pub fn set_backends(&self, backends: Vec<Arc<Backend>>) {
        *self.backends.write().expect("lock") = Arc::new(backends);
    }

    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        Arc::clone(&self.backends.read().expect("lock"))
    }

    /// The next healthy instance in turn, waiting a while for one.
    async fn pick(&self) -> Option<Arc<Backend>> {
        let started = Instant::now();
        loop {
            let backends = self.backends();
            let n = backends.len();
            if n > 0 {
                let first = self.next.fetch_add(1, Ordering::Relaxed);
                for k in 0..n {
                    let backend = &backends[(first + k) % n];
                    if backend.healthy.load(Ordering::Acquire) {
                        return Some(Arc::clone(backend));
                    }
                }
            }
            if started.elapsed() > WAIT_FOR_INSTANCE {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn router(front: Arc<Front>) -> Router {
    Router::new()
        .route("/endpoints/{name}/invocations", post(invoke))
        .fallback(unknown_operation)
        .layer(DefaultBodyLimit::disable())
        .with_state(front)
}

/// What the front needs of one request's headers, checked as the service checks them.
struct Invocation {
    content_type: Option<HeaderValue>,
    accept: Option<HeaderValue>,
    custom_attributes: Option<HeaderValue>,
}

async fn invoke(State(front): State<Arc<Front>>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    if name != front.endpoint {
        return validation(&format!("Endpoint {name} of account {ACCOUNT} not found."));
    }
    let invocation = match check_headers(&headers) {
        Ok(invocation) => invocation,
        Err(message) => return validation(&message),
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large(body).await;
    }
    let mut body = body;
    let mut collected = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = next_data(&mut body).await {
        match chunk {
            Ok(chunk) if collected.len() + chunk.len() > MAX_BODY_BYTES => return too_large(body).await,
            Ok(chunk) => collected.extend_from_slice(&chunk),
            Err(e) => return validation(&format!("could not read the request body: {e}")),
        }
    }
    forward(&front, &invocation, collected.freeze()).await
}

/// Forward to an instance; one that cannot be reached is marked unhealthy and the request
/// goes to the next (an inference is safe to repeat).
async fn forward(front: &Front, invocation: &Invocation, body: Bytes) -> Response {
    loop {
        let Some(backend) = front.pick().await else {
            return service_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "No healthy instance is available to serve the request. Try your call again.",
            );
        };
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        let outcome = send(front, &backend, invocation, body.clone()).await;
        backend.in_flight.fetch_sub(1, Ordering::AcqRel);
        match outcome {
            Ok(response) => return response,
            Err(Unreachable(detail)) => {
                tracing::warn!(instance = %backend.id, "instance unreachable, routing around it: {detail}");
                backend.healthy.store(false, Ordering::Release);
            }
        }
    }
}

struct Unreachable(String);

async fn send(front: &Front, backend: &Backend, invocation: &Invocation, body: Bytes) -> Result<Response, Unreachable> {
    let mut request = hyper::Request::post(format!("http://127.0.0.1:{}/invocations", backend.port));
    for (name, value) in [
        (header::CONTENT_TYPE, &invocation.content_type),
        (header::ACCEPT, &invocation.accept),
        (HeaderName::from_static(CUSTOM_ATTRIBUTES), &invocation.custom_attributes),
    ] {
        if let Some(value) = value {
            request = request.header(name, value);
        }
    }
    let request = request.body(Full::new(body)).map_err(|e| Unreachable(e.to_string()))?;
    let response = tokio::time::timeout(MODEL_TIMEOUT, front.client.request(request))
        .await
        .map_err(|_| Unreachable(format!("no answer within {} s", MODEL_TIMEOUT.as_secs())))?
        .map_err(|e| Unreachable(e.to_string()))?;
    let (parts, incoming) = response.into_parts();
    let bytes = match Limited::new(incoming, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Ok(service_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                &format!("The model's response exceeds {MAX_BODY_BYTES} bytes."),
            ));
        }
        Err(e) => return Err(Unreachable(e.to_string())),
    };
    if !parts.status.is_success() {
        return Ok(model_error(&front.endpoint, backend, parts.status, &bytes));
    }
    let mut answer = Response::new(Body::from(bytes));
    let headers = answer.headers_mut();
    if let Some(value) = parts.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, value.clone());
    }
    if let Some(value) = parts.headers.get(CUSTOM_ATTRIBUTES) {
        headers.insert(HeaderName::from_static(CUSTOM_ATTRIBUTES), value.clone());
    }
    headers.insert(HeaderName::from_static(INVOKED_VARIANT), HeaderValue::from_static(VARIANT));
    headers.insert(HeaderName::from_static(REQUEST_ID), request_id());
    Ok(answer)
}

/// The service's validation of InvokeEndpoint's headers (botocore's shapes), in its words.
fn check_headers(headers: &HeaderMap) -> Result<Invocation, String> {
    let text = |name: &str, field: &str, max: usize| -> Result<Option<(HeaderValue, String)>, String> {
        let Some(value) = headers.get(name) else { return Ok(None) };
        let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if value.len() > max {
            return Err(constraint(&shown, field, &format!("Member must have length less than or equal to {max}")));
        }
        if !value.as_bytes().is_ascii() {
            return Err(constraint(&shown, field, "Member must satisfy regular expression pattern: \\p{ASCII}*"));
        }
        Ok(Some((value.clone(), shown)))
    };
    let content_type = text(header::CONTENT_TYPE.as_str(), "contentType", 1024)?.map(|(v, _)| v);
    let accept = text(header::ACCEPT.as_str(), "accept", 1024)?.map(|(v, _)| v);
    let custom_attributes = text(CUSTOM_ATTRIBUTES, "customAttributes", 1024)?.map(|(v, _)| v);
    if let Some((_, id)) = text(INFERENCE_ID, "inferenceId", 64)? {
        check_printable(&id, "inferenceId")?;
    }
    if let Some((_, model)) = text(TARGET_MODEL, "targetModel", 1024)? {
        check_printable(&model, "targetModel")?;
        return Err(format!(
            "TargetModel {model} was given, but this endpoint is not a multi-model endpoint; send no TargetModel"
        ));
    }
    if let Some((_, variant)) = text(TARGET_VARIANT, "targetVariant", 63)?
        && variant != VARIANT
    {
        return Err(format!("TargetVariant {variant} is not a variant of this endpoint (its variant is {VARIANT})"));
    }
    Ok(Invocation { content_type, accept, custom_attributes })
}

/// `\A\S[\p{Print}]*\z`, at least one character.
fn check_printable(value: &str, field: &str) -> Result<(), String> {
    let printable = |c: char| (' '..='~').contains(&c);
    let first_ok = value.chars().next().is_some_and(|c| printable(c) && c != ' ');
    if first_ok && value.chars().all(printable) {
        Ok(())
    } else if value.is_empty() {
        Err(constraint(value, field, "Member must have length greater than or equal to 1"))
    } else {
        Err(constraint(value, field, "Member must satisfy regular expression pattern: \\A\\S[\\p{Print}]*\\z"))
    }
}

fn constraint(value: &str, field: &str, rule: &str) -> String {
    format!("1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {rule}")
}

fn request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a header value")
}

fn service_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut response = (status, json!({ "message": message }).to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert(HeaderName::from_static(ERROR_TYPE), HeaderValue::from_static(kind));
    headers.insert(HeaderName::from_static(REQUEST_ID), request_id());
    response
}

fn validation(message: &str) -> Response {
    service_error(StatusCode::BAD_REQUEST, "ValidationError", message)
}

/// What AWS answers a body above the limit: 413, no error type (botocore names the error by
/// the status code). The rest of the body is read and dropped first (up to a bound), so that
/// a client still sending it reads the answer rather than a reset connection.
async fn too_large(mut body: Body) -> Response {
    const DISCARD_AT_MOST: usize = 64 << 20;
    let mut discarded = 0;
    while discarded < DISCARD_AT_MOST
        && let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(10), next_data(&mut body)).await
    {
        discarded += chunk.len();
    }
    let message = format!("HTTP content length exceeded {MAX_BODY_BYTES} bytes.");
    let mut response = (StatusCode::PAYLOAD_TOO_LARGE, json!({ "message": message }).to_string()).into_response();
    response.headers_mut().insert(HeaderName::from_static(REQUEST_ID), request_id());
    response
}

async fn unknown_operation() -> Response {
    service_error(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation")
}

/// The next piece of a body's data (trailers skipped); `None` at its end.
async fn next_data(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue,
            },
            Err(e) => return Some(Err(e)),
        }
    }
}

/// The container answered an error: `ModelError` with what it said, in AWS's words.
fn model_error(endpoint: &str, backend: &Backend, status: StatusCode, body: &[u8]) -> Response {
    let original = String::from_utf8_lossy(body).into_owned();
    let side = if status.is_client_error() { "client" } else { "server" };
    let message = format!(
        "Received {side} error ({}) from primary with message \"{original}\". See {} for more information.",
        status.as_u16(),
        backend.log.display()
    );
    let log_stream = format!(
        "arn:aws:logs:{}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}:log-stream:{VARIANT}/{}",
        region(),
        backend.id
    );
    let payload = json!({
        "Message": message,
        "OriginalStatusCode": status.as_u16(),
        "OriginalMessage": original,
        "LogStreamArn": log_stream,
    });
    let mut response = (StatusCode::FAILED_DEPENDENCY, payload.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert(HeaderName::from_static(ERROR_TYPE), HeaderValue::from_static("ModelError"));
    headers.insert(HeaderName::from_static(REQUEST_ID), request_id());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn headers_are_checked_as_the_service_model_constrains_them() {
        assert!(check_headers(&headers(&[("content-type", "text/csv"), (INFERENCE_ID, "7")])).is_ok());
        let long = "x".repeat(65);
        let err = check_headers(&headers(&[(INFERENCE_ID, &long)])).err().unwrap();
        assert!(
            err.contains(
                "at 'inferenceId' failed to satisfy constraint: Member must have length less than or equal to 64"
            ),
            "{err}"
        );
        let err = check_headers(&headers(&[(INFERENCE_ID, " x")])).err().unwrap();
        assert!(err.contains("regular expression pattern"), "{err}");
        let err = check_headers(&headers(&[(CUSTOM_ATTRIBUTES, &"a".repeat(1025))])).err().unwrap();
        assert!(err.contains("'customAttributes'"), "{err}");
        assert!(check_headers(&headers(&[(TARGET_VARIANT, "AllTraffic")])).is_ok());
        assert!(check_headers(&headers(&[(TARGET_VARIANT, "Other")])).is_err());
        assert!(check_headers(&headers(&[(TARGET_MODEL, "m.tar.gz")])).is_err());
    }
}

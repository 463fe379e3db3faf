//! One error type for the HTTP app, one status mapping, one JSON body:
//! `{"error": "...", "error_type": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The payload cannot be evaluated: which row and why.
    #[error("{0}")]
    BadPayload(String),
    #[error(
        "unsupported Content-Type `{0}`; use text/csv, text/libsvm, application/json, application/jsonlines or application/x-recordio-protobuf"
    )]
    UnsupportedMediaType(String),
    #[error(
        "unsupported Accept `{0}`; use text/csv, application/json, application/jsonlines or application/x-recordio-protobuf"
    )]
    NotAcceptable(String),
    #[error("the payload is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    /// The payload asks for a response larger than a request may hold.
    #[error("{0}; send fewer rows per request")]
    ResponseTooLarge(String),
    #[error("the request body was not received within {0} seconds")]
    Timeout(u64),
    #[error("the model is still loading")]
    NotReady,
    /// Multi-model: a request body that is not what the route takes.
    #[error("{0}")]
    BadRequest(String),
    /// Multi-model: `model_name` or `url` refused (the caller's mistake, or hostile).
    #[error("`{field}` {problem}. Given: `{given}`")]
    InvalidField { field: &'static str, problem: String, given: String },
    /// Multi-model: the `url` holds nothing that loads as a model.
    #[error("the model at `{url}` cannot be loaded: {problem}")]
    BadModel { url: String, problem: String },
    #[error("model `{0}` is not loaded")]
    ModelNotLoaded(String),
    /// Multi-model: a `url` with `..` (MMS's wording).
    #[error("Relative path is not allowed in url: {0}")]
    RelativeUrl(String),
    /// Multi-model: a `url` that names nothing (MMS's wording).
    #[error("Model not found in model store: {0}")]
    ModelDirNotFound(String),
    #[error("model `{0}` is already loaded")]
    AlreadyLoaded(String),
    #[error(
        "model `{name}` needs {needed} bytes of memory; loaded models hold {used} bytes and the server {resident} \
         resident bytes, of a {budget}-byte budget. Unload a model and retry"
    )]
    InsufficientMemory { name: String, needed: u64, used: u64, resident: u64, budget: u64 },
    /// Multi-model: no route at this path (MMS's wording).
    #[error("Requested resource is not found, please refer to API document.")]
    NoSuchRoute,
    /// Multi-model: the route takes other methods (MMS's wording).
    #[error("Requested method is not allowed, please refer to API document.")]
    MethodNotAllowed,
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadPayload(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::TooLarge { .. } | Self::ResponseTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) | Self::InvalidField { .. } | Self::BadModel { .. } => StatusCode::BAD_REQUEST,
            Self::ModelNotLoaded(_) | Self::RelativeUrl(_) | Self::ModelDirNotFound(_) => StatusCode::NOT_FOUND,
            Self::AlreadyLoaded(_) => StatusCode::CONFLICT,
            Self::InsufficientMemory { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Self::NoSuchRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadPayload(_) => "bad_payload",
            Self::UnsupportedMediaType(_) => "unsupported_content_type",
            Self::NotAcceptable(_) => "unsupported_accept",
            Self::TooLarge { .. } => "payload_too_large",
            Self::ResponseTooLarge(_) => "response_too_large",
            Self::Timeout(_) => "request_timeout",
            Self::NotReady => "model_not_ready",
            Self::BadRequest(_) => "bad_request",
            Self::InvalidField { field: "model_name", .. } => "invalid_model_name",
            Self::InvalidField { .. } => "invalid_url",
            Self::BadModel { .. } => "invalid_model",
            Self::ModelNotLoaded(_) => "model_not_found",
            Self::RelativeUrl(_) | Self::ModelDirNotFound(_) => "model_dir_not_found",
            Self::AlreadyLoaded(_) => "model_already_loaded",
            Self::InsufficientMemory { .. } => "insufficient_memory",
            Self::NoSuchRoute => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl ServeError {
    /// Logged at error level when the server is at fault, else at warning level.
    pub fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "{self}");
        } else {
            tracing::warn!(status = status.as_u16(), "{self}");
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = serde_json::json!({"error": self.to_string(), "error_type": self.error_type()});
        (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

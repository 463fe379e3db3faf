//! Environment variables that sagestep reads, each documented once.

/// Overrides the `/opt/ml` root (default `/opt/ml`), so that a step runs as a local process.
pub const SAGESTEP_ML_ROOT: &str = "SAGESTEP_ML_ROOT";

/// `json` for JSON log lines (set in every image: CloudWatch reads them), else human text.
pub const SAGESTEP_LOG_FORMAT: &str = "SAGESTEP_LOG_FORMAT";

/// A tracing `EnvFilter` directive, e.g. `info` or `sagestep=debug`. Default `info`.
pub const SAGESTEP_LOG: &str = "SAGESTEP_LOG";

/// Serving: seconds a client may take to send its headers (at most 10) and its body (default 30).
pub const SAGESTEP_REQUEST_TIMEOUT_SECS: &str = "SAGESTEP_REQUEST_TIMEOUT_SECS";

/// Several hosts on one machine: `algo-1=127.0.0.1:9101,algo-2=...`, each host's address
/// (the local runner sets it for the hosts of a job it runs as processes).
pub const SAGESTEP_CLUSTER_HOSTS: &str = "SAGESTEP_CLUSTER_HOSTS";

/// Serving and batch transform: `required`, `if-present` or `off`, whether a model must carry
/// a valid `model.sig` before it serves (default: `required` with a key, else `if-present`).
pub const SAGESTEP_MODEL_SIGNATURE: &str = "SAGESTEP_MODEL_SIGNATURE";
/// Serving and batch transform: the ECDSA P-256 public key (PEM text, or a PEM file's path)
/// model signatures must verify with.
pub const SAGESTEP_MODEL_PUBLIC_KEY: &str = "SAGESTEP_MODEL_PUBLIC_KEY";

/// Set by SageMaker on training containers.
pub const TRAINING_JOB_NAME: &str = "TRAINING_JOB_NAME";

/// Serving: the port to bind instead of 8080 (images labelled `accept-bind-to-port=true`).
pub const SAGEMAKER_BIND_TO_PORT: &str = "SAGEMAKER_BIND_TO_PORT";
/// Serving: the response type for `Accept: */*` or no Accept.
pub const SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: &str = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT";
/// Serving: comma list of keys to return (`predicted_label`, `probabilities`, ...).
pub const SAGEMAKER_INFERENCE_OUTPUT: &str = "SAGEMAKER_INFERENCE_OUTPUT";
/// Batch transform: set to `true` on every batch transform container.
pub const SAGEMAKER_BATCH: &str = "SAGEMAKER_BATCH";
/// Script mode: the user's inference script the built-in's framework mode would run.
pub const SAGEMAKER_PROGRAM: &str = "SAGEMAKER_PROGRAM";
/// Batch transform, set only when the user set them.
pub const SAGEMAKER_MAX_PAYLOAD_IN_MB: &str = "SAGEMAKER_MAX_PAYLOAD_IN_MB";
pub const SAGEMAKER_BATCH_STRATEGY: &str = "SAGEMAKER_BATCH_STRATEGY";
pub const SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: &str = "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS";

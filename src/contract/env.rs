//! Environment variables that sagestep reads, each documented once.

/// Overrides the `/opt/ml` root (default `/opt/ml`), so that a step runs as a local process.
pub const SAGESTEP_ML_ROOT: &str = "SAGESTEP_ML_ROOT";

/// `json` for JSON log lines (set in every image: CloudWatch reads them), else human text.
pub const SAGESTEP_LOG_FORMAT: &str = "SAGESTEP_LOG_FORMAT";

/// A tracing `EnvFilter` directive, e.g. `info` or `sagestep=debug`. Default `info`.
pub const SAGESTEP_LOG: &str = "SAGESTEP_LOG";

/// Set by SageMaker on training containers.
pub const TRAINING_JOB_NAME: &str = "TRAINING_JOB_NAME";

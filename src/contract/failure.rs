//! SageMaker's failure channels and process exit codes.
//!
//! A failed step writes a human message first (SageMaker keeps only the first 1024 characters)
//! with the cause chain after it, logs the same, and exits non-zero. User errors (bad input or
//! configuration) and internal errors exit with different codes.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::MlRoot;

/// Exit code for bad input or configuration: the user can fix it.
pub const EXIT_USER_ERROR: u8 = 1;
/// Exit code for an internal error (a bug or an environment fault): `EX_SOFTWARE`.
pub const EXIT_INTERNAL_ERROR: u8 = 70;

/// Who is at fault for an error: decides the exit code and the message prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    User,
    Internal,
}

/// Errors of a step know whose fault they are.
pub trait StepError: std::error::Error {
    fn fault(&self) -> Fault;
}

/// Which file SageMaker reads the failure reason from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `/opt/ml/output/failure`
    Training,
    /// `/opt/ml/output/message`
    Processing,
}

/// The error and its causes, one per line after the first: `msg\n  caused by: ...`.
pub fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror messages often repeat their source inline; do not print it twice.
        if !text.contains(&cause_text) {
            let _ = write!(text, "\n  caused by: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Report a failed step on every channel SageMaker reads, and return the exit code.
pub fn report(ml: &MlRoot, channel: Channel, err: &dyn StepError) -> ExitCode {
    let fault = err.fault();
    // Paths as the container sees them, as SageMaker's FailureReason would show them.
    let message = ml.shown(&match fault {
        Fault::User => describe(err),
        Fault::Internal => format!("internal error: {}", describe(err)),
    });
    tracing::error!(fault = ?fault, "{message}");
    let path = match channel {
        Channel::Training => ml.training_failure_file(),
        Channel::Processing => ml.processing_message_file(),
    };
    if let Err(write_err) = write_message(&path, &message) {
        tracing::warn!(path = %path.display(), "could not write the failure message: {write_err}");
    }
    ExitCode::from(match fault {
        Fault::User => EXIT_USER_ERROR,
        Fault::Internal => EXIT_INTERNAL_ERROR,
    })
}

fn write_message(path: &Path, message: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, message.as_bytes())
}

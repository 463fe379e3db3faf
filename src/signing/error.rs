//! What can go wrong signing or verifying a model, each naming the file at fault.

use std::path::PathBuf;

use crate::contract::failure::{Fault, StepError};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the signature `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{path}` is a symbolic link: a signed model must hold its files, not links (they could point outside it, and \
         the built-in loader would follow them)"
    )]
    Symlink { path: PathBuf },
    #[error("`{path}` is neither a regular file nor a directory (a device, socket or FIFO cannot be signed)")]
    SpecialFile { path: PathBuf },
    #[error("`{path}`: the file name is not UTF-8, which a signature's manifest cannot name")]
    NonUtf8Name { path: PathBuf },
    #[error("`{path}` is not a model signature: it is larger than {limit} bytes")]
    BundleTooLarge { path: PathBuf, limit: u64 },
    #[error("`{path}` is not a model signature: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("`{path}`: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error(
        "`{path}` was signed by another key: its key hint is `{found}`, the configured public key's is `{expected}`"
    )]
    OtherKey { path: PathBuf, found: String, expected: String },
    #[error(
        "`{path}`: the signature does not verify with the configured public key (signed by another key, or the signed \
         statement was edited)"
    )]
    BadSignature { path: PathBuf },
    #[error("`{model}` does not match its signature `{signature}`: {details}")]
    Mismatch { model: PathBuf, signature: PathBuf, details: String },
    #[error("key `{source_name}`: {reason}")]
    Key { source_name: String, reason: String },
    #[error("the signer failed: {0}")]
    Signer(String),
}

impl SignatureError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.into(), reason: reason.into() }
    }
}

impl StepError for SignatureError {
    /// A model, a signature or a key the user gave; only a failing write or signer is ours.
    fn fault(&self) -> Fault {
        match self {
            Self::Write { .. } | Self::Signer(_) => Fault::Internal,
            _ => Fault::User,
        }
    }
}

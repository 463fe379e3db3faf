//! Where step inputs and outputs live: a local path, a `file://` URI, or (later) S3.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("`{given}` is not a usable location: {reason}")]
    Invalid { given: String, reason: &'static str },
    #[error("`{uri}`: S3 locations are not supported by this build yet; download the data and pass a local path")]
    S3Unsupported { uri: String },
}

/// A parsed data location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    /// Parse `PATH`, `file:///abs/path` or `s3://bucket/key-or-prefix`.
    pub fn parse(given: &str) -> Result<Self, LocationError> {
        let invalid = |reason| LocationError::Invalid { given: given.to_string(), reason };
        if given.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(rest) = given.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("an s3:// URI needs a bucket name"));
            }
            return Ok(Self::S3 { bucket: bucket.to_string(), key: key.to_string() });
        }
        if let Some(rest) = given.strip_prefix("file://") {
            // file:///abs/path (empty authority) or file://localhost/abs/path.
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(invalid("a file:// URI needs an absolute path, e.g. file:///data/x.csv"));
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if given.contains("://") {
            return Err(invalid("the scheme is not one of file:// or s3://"));
        }
        Ok(Self::Local(PathBuf::from(given)))
    }

    /// The local path to read from. S3 needs the storage backend, which comes later.
    pub fn into_local_path(self) -> Result<PathBuf, LocationError> {
        match self {
            Self::Local(path) => Ok(path),
            Self::S3 { bucket, key } => Err(LocationError::S3Unsupported { uri: format!("s3://{bucket}/{key}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_uris() {
        assert_eq!(Location::parse("data/x.csv").unwrap(), Location::Local("data/x.csv".into()));
        assert_eq!(Location::parse("file:///d/x.csv").unwrap(), Location::Local("/d/x.csv".into()));
        assert_eq!(Location::parse("s3://b/k/p").unwrap(), Location::S3 { bucket: "b".into(), key: "k/p".into() });
        assert!(Location::parse("file://rel").is_err());
        assert!(Location::parse("http://x/y").is_err());
        assert!(Location::parse("s3:///k").is_err());
    }
}

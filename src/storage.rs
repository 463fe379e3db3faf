//! Where step inputs and outputs live: a local path, a `file://` URI, or (later) S3.

use std::path::{Path, PathBuf};

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

/// Where a file is written before it is renamed into place: `.<name>.partial` beside it, so
/// that the rename is atomic (one filesystem) and a leftover is hidden (data readers refuse
/// hidden files rather than read half a file).
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

/// Write `bytes` to `path` whole or not at all: to the partial file, synced, then renamed.
/// On failure the partial file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = partial_path(path);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

    #[test]
    fn atomic_writes_leave_the_whole_file_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/report.json");
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert!(!partial_path(&path).exists());
        assert_eq!(partial_path(&path).file_name().unwrap(), ".report.json.partial");
        // A directory in the way: an error, and no partial file left behind.
        std::fs::create_dir_all(dir.path().join("c/x")).unwrap();
        assert!(write_atomic(&dir.path().join("c/x"), b"1").is_err());
        assert!(!dir.path().join("c/.x.partial").exists());
    }
}

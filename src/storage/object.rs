//! Object storage as SageMaker sees it: buckets of keys, where a prefix is a plain string
//! prefix (`s3://b/data/test` also matches `data/test_set_2/x.csv`, as S3Prefix does).
//!
//! `ObjectStore` is the backend (a local directory here; S3 plugs in behind the same trait).
//! Every write is whole or absent: an object never appears half-written under its final key.

use std::path::{Path, PathBuf};

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Changes whenever the content is rewritten (S3's ETag; size and mtime locally).
    pub etag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("s3://{bucket}/{key}: no such object")]
    NoSuchKey { bucket: String, key: String },
    #[error("s3://{bucket}: no such bucket")]
    NoSuchBucket { bucket: String },
    #[error("s3://{bucket}/{key}: {reason}")]
    InvalidKey { bucket: String, key: String, reason: &'static str },
    #[error("s3://{bucket}/{key}: access denied: {detail}")]
    AccessDenied { bucket: String, key: String, detail: String },
    #[error("s3://{bucket}/{key}: bad credentials: {detail}")]
    Credentials { bucket: String, key: String, detail: String },
    #[error("s3://{bucket}/{key}: could not reach the store: {detail}")]
    Network { bucket: String, key: String, detail: String },
    #[error("s3://{bucket}/{key}: content check failed: {detail}")]
    Corrupt { bucket: String, key: String, detail: String },
    #[error("{what} `{path}`: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("s3://{bucket}/{key}: {detail}")]
    Other { bucket: String, key: String, detail: String },
    #[error("`{uri}`: nothing is stored there (no object has this prefix)")]
    NothingAt { uri: String },
    #[error(transparent)]
    Location(#[from] super::LocationError),
}

impl StoreError {
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io { what, path: path.to_path_buf(), source }
    }

    /// A fault of the store or the network that a retry may cure.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Network { .. })
    }
}

/// A bucket-and-key object store.
pub trait ObjectStore: Send + Sync {
    /// What the store is, for messages: `directory /x` or `S3 at http://...`.
    fn describe(&self) -> String;
    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    /// Copy an object to a local file (written beside it and renamed into place).
    fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<ObjectInfo, StoreError>;
    /// Store a local file under `key`, whole or not at all.
    fn upload(&self, src: &Path, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError>;
    fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError>;
    fn write(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// `write`, encrypted at rest with the KMS key `kms_key_id` (S3's SSE-KMS), as SageMaker
    /// stores what a job's `KmsKeyId` covers.
    fn write_encrypted(&self, bucket: &str, key: &str, bytes: &[u8], kms_key_id: &str) -> Result<(), StoreError>;
    /// Store `bytes` only if no object has `key`; `Ok(false)` if one has. Atomic: two callers
    /// racing for one key cannot both win (used to allocate registry versions).
    fn create_new(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<bool, StoreError>;
    fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError>;
}

/// A local file's stand-in for an ETag: it changes whenever the file is rewritten.
pub fn local_etag(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{:x}-{:x}.{:x}", meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// Refuse keys a directory cannot hold faithfully.
pub fn check_key(bucket: &str, key: &str) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidKey { bucket: bucket.into(), key: key.into(), reason };
    if bucket.is_empty() || bucket.contains('/') {
        return Err(invalid("the bucket name is empty or holds a '/'"));
    }
    if key.is_empty() || key.ends_with('/') {
        return Err(invalid("an object key must name a file, not a prefix"));
    }
    if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(invalid("the key has an empty, '.' or '..' path segment"));
    }
    Ok(())
}

/// A local directory as an object store: `s3://bucket/key` is `<root>/bucket/key`.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, bucket: &str, key: &str) -> Result<PathBuf, StoreError> {
        check_key(bucket, key)?;
        Ok(self.root.join(bucket).join(key))
    }

    fn info(key: String, meta: &std::fs::Metadata) -> ObjectInfo {
        ObjectInfo { key, size: meta.len(), etag: local_etag(meta) }
    }

    fn missing(bucket: &str, key: &str) -> StoreError {
        StoreError::NoSuchKey { bucket: bucket.into(), key: key.into() }
    }
}

impl ObjectStore for DirStore {
    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }

    fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let bucket_dir = self.root.join(bucket);
        if !bucket_dir.is_dir() {
            return Ok(Vec::new());
        }
        // Walk only the deepest directory the prefix names in full.
        let base = prefix.rfind('/').map_or("", |at| &prefix[..at]);
        let start = if base.is_empty() { bucket_dir.clone() } else { bucket_dir.join(base) };
        let mut found = Vec::new();
        if start.is_dir() {
            walk(&bucket_dir, &start, &mut found)?;
        }
        let mut objects: Vec<ObjectInfo> = found
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, meta)| Self::info(key, &meta))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<ObjectInfo, StoreError> {
        let src = self.path(bucket, key)?;
        let meta = std::fs::metadata(&src).map_err(|_| Self::missing(bucket, key))?;
        if !meta.is_file() {
            return Err(Self::missing(bucket, key));
        }
        copy_atomic(&src, dest)?;
        Ok(Self::info(key.to_string(), &meta))
    }

    fn upload(&self, src: &Path, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        let dest = self.path(bucket, key)?;
        copy_atomic(src, &dest)?;
        let meta = std::fs::metadata(&dest).map_err(|e| StoreError::io("reading back", &dest, e))?;
        Ok(Self::info(key.to_string(), &meta))
    }

    fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(bucket, key)?;
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory => Self::missing(bucket, key),
            _ => StoreError::io("reading", &path, e),
        })
    }

    fn write(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(bucket, key)?;
        super::write_atomic(&path, bytes).map_err(|e| StoreError::io("writing", &path, e))
    }

    /// A directory stands in for S3 on this machine: there is no key service to encrypt with,
    /// so the object is written as `write` writes it.
    fn write_encrypted(&self, bucket: &str, key: &str, bytes: &[u8], _kms_key_id: &str) -> Result<(), StoreError> {
        self.write(bucket, key, bytes)
    }

    fn create_new(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        use std::io::Write;
        let path = self.path(bucket, key)?;
        // Write the content aside, then hard-link it into place: link() fails if the name
        // exists, so the object appears whole and only one racer wins.
        let tmp = super::unique_partial_path(&path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("creating", dir, e))?;
        }
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io("writing", &tmp, e));
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(StoreError::io("creating", &path, e)),
        }
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let path = self.path(bucket, key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("deleting", &path, e)),
        }
    }
}

/// Every regular file below `dir` as (key relative to `bucket_dir`, metadata). Partial files
/// of unfinished writes are not objects.
fn walk(bucket_dir: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("listing", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".partial") {
            continue;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            // Deleted or renamed by a concurrent writer since the directory was read: not listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("listing", &path, e)),
        };
        if meta.is_dir() {
            walk(bucket_dir, &path, out)?;
        } else if meta.is_file() {
            let Ok(rel) = path.strip_prefix(bucket_dir) else { continue };
            out.push((rel.to_string_lossy().into_owned(), meta));
        }
    }
    Ok(())
}

/// Copy a file so that `dest` is either absent or complete.
pub fn copy_atomic(src: &Path, dest: &Path) -> Result<(), StoreError> {
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("creating", dir, e))?;
    }
    let tmp = super::unique_partial_path(dest);
    let result = std::fs::copy(src, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, dest));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StoreError::io("copying to", dest, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_string_prefixes_and_partials_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        store.write("b", "data/test/x.csv", b"1").unwrap();
        store.write("b", "data/test_set_2/y.csv", b"2").unwrap();
        store.write("b", "data/train/z.csv", b"3").unwrap();
        std::fs::write(dir.path().join("b/data/test/.w.csv.partial"), b"half").unwrap();
        let keys = |p: &str| store.list("b", p).unwrap().into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(keys("data/test"), ["data/test/x.csv", "data/test_set_2/y.csv"]);
        assert_eq!(keys("data/test/"), ["data/test/x.csv"]);
        assert_eq!(keys("data/t"), ["data/test/x.csv", "data/test_set_2/y.csv", "data/train/z.csv"]);
        assert!(keys("nothing/").is_empty());
        assert!(store.list("nobucket", "").unwrap().is_empty());
        assert!(matches!(store.read("b", "data/none"), Err(StoreError::NoSuchKey { .. })));
        assert!(store.write("b", "../escape", b"x").is_err());
        assert!(store.write("b", "a//b", b"x").is_err());
    }

    #[test]
    fn create_new_has_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        assert!(store.create_new("b", "v/1.json", b"first").unwrap());
        assert!(!store.create_new("b", "v/1.json", b"second").unwrap());
        assert_eq!(store.read("b", "v/1.json").unwrap(), b"first");
        assert_eq!(store.list("b", "v/").unwrap().len(), 1);
    }
}

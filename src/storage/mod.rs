//! Where step inputs and outputs live: a local path, a `file://` URI, or an object store
//! (`s3://`), and the moves between them that SageMaker makes for a job.

pub mod object;
pub mod s3;

use crate::data::files::Links;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use object::{DirStore, ObjectInfo, ObjectStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("`{given}` is not a usable location: {reason}")]
    Invalid { given: String, reason: &'static str },
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
}

/// URIs resolved against an object store (for `s3://`) or the filesystem (paths, `file://`),
/// plus a private area of the store for the runner's own records.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// With `--store s3://bucket/prefix`, the pipeline's `s3://B/K` is stored at
    /// `s3://bucket/prefix/B/K`; otherwise S3 URIs are used as they are.
    nest: Option<(String, String)>,
    /// Bucket and key prefix of the runner's records (registry, executions, cache).
    state_bucket: String,
    state_prefix: String,
}

/// One object found under a URI, and its path relative to the URI, as SageMaker lays it out
/// below a channel's or input's local directory.
#[derive(Debug, Clone)]
pub struct Found {
    pub location: Location,
    pub relative: String,
    pub size: u64,
    pub etag: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl Storage {
    /// A local directory standing in for S3: `s3://bucket/key` is `<root>/bucket/key`, and the
    /// runner's records live in `<root>/.sagestep` (no bucket name starts with a dot).
    pub fn local_dir(root: impl Into<PathBuf>) -> Self {
        Self::new(Arc::new(DirStore::new(root)), ".sagestep", "")
    }

    /// S3 as the environment configures it, for moving data in and out (`preprocess
    /// --input-data`, `sagestep cp`): no records area.
    pub fn s3() -> Result<Self, StoreError> {
        Ok(Self::new(Arc::new(s3::S3Store::from_env()?), "no-records", ""))
    }

    pub fn new(store: Arc<dyn ObjectStore>, state_bucket: &str, state_prefix: &str) -> Self {
        Self { store, nest: None, state_bucket: state_bucket.to_string(), state_prefix: dir_prefix(state_prefix) }
    }

    /// Open a store from the runner's `--store` value: `s3://bucket[/prefix]` (the pipeline's
    /// buckets nested below it, records in `<prefix>/.sagestep/`), `s3` (the pipeline's own
    /// S3 URIs; records at `records`, an `s3://` URI), or a local directory.
    pub fn open(spec: &str, records: Option<&str>) -> Result<Self, StoreError> {
        if spec == "s3" {
            let records = records.ok_or_else(|| LocationError::Invalid {
                given: "--store s3".into(),
                reason: "it needs --records s3://bucket/prefix for the runner's records (executions, registry, cache)",
            })?;
            let Location::S3 { bucket, key } = Location::parse(records)? else {
                return Err(
                    LocationError::Invalid { given: records.into(), reason: "--records must be an s3:// URI" }.into()
                );
            };
            return Ok(Self::new(Arc::new(s3::S3Store::from_env()?), &bucket, &key));
        }
        match Location::parse(spec)? {
            Location::S3 { bucket, key } => {
                let prefix = dir_prefix(&key);
                let mut storage = Self::new(Arc::new(s3::S3Store::from_env()?), &bucket, &format!("{prefix}.sagestep"));
                storage.nest = Some((bucket, prefix));
                Ok(storage)
            }
            Location::Local(path) => Ok(Self::local_dir(path)),
        }
    }

    pub fn describe(&self) -> String {
        match &self.nest {
            Some((bucket, prefix)) => format!("{} under s3://{bucket}/{prefix}", self.store.describe()),
            None => self.store.describe(),
        }
    }

    /// Where the pipeline's `s3://bucket/key` is in the store.
    fn place(&self, bucket: &str, key: &str) -> (String, String) {
        match &self.nest {
            Some((store_bucket, prefix)) => (store_bucket.clone(), format!("{prefix}{bucket}/{key}")),
            None => (bucket.to_string(), key.to_string()),
        }
    }

    /// Every object under `uri`: an S3 prefix (string-prefix match), or a local file or
    /// directory (recursive). Sorted; empty if nothing is there.
    pub fn list(&self, uri: &str) -> Result<Vec<Found>, StoreError> {
        match Location::parse(uri)? {
            Location::S3 { bucket, key: prefix } => {
                let (store_bucket, store_prefix) = self.place(&bucket, &prefix);
                let nested = store_prefix.len() - prefix.len();
                Ok(self
                    .store
                    .list(&store_bucket, &store_prefix)?
                    .into_iter()
                    .map(|object| {
                        let key = object.key[nested..].to_string();
                        Found {
                            relative: relative_to_prefix(&prefix, &key),
                            location: Location::S3 { bucket: bucket.clone(), key },
                            size: object.size,
                            etag: object.etag,
                        }
                    })
                    .collect())
            }
            Location::Local(path) => list_local(&path, Links::Within),
        }
    }

    /// Copy every object under `uri` into `dest_dir`, each at its relative path. Fails if
    /// there is none, as a SageMaker job does.
    pub fn fetch(&self, uri: &str, dest_dir: &Path) -> Result<Vec<Found>, StoreError> {
        let found = self.list(uri)?;
        if found.is_empty() {
            return Err(StoreError::NothingAt { uri: uri.to_string() });
        }
        self.download(&found, dest_dir)?;
        Ok(found)
    }

    /// Copy objects found by `list` into `dest_dir`, each at its relative path.
    pub fn download(&self, found: &[Found], dest_dir: &Path) -> Result<(), StoreError> {
        for object in found {
            let dest = dest_dir.join(&object.relative);
            match &object.location {
                Location::S3 { bucket, key } => {
                    let (bucket, key) = self.place(bucket, key);
                    self.store.download(&bucket, &key, &dest)?;
                }
                Location::Local(path) => object::copy_atomic(path, &dest)?,
            }
        }
        Ok(())
    }

    /// Store one local file at `uri`.
    pub fn put_file(&self, file: &Path, uri: &str) -> Result<Location, StoreError> {
        let location = Location::parse(uri)?;
        match &location {
            Location::S3 { bucket, key } => {
                let (bucket, key) = self.place(bucket, key);
                self.store.upload(file, &bucket, &key)?;
            }
            Location::Local(path) => object::copy_atomic(file, path)?,
        }
        Ok(location)
    }

    /// Store every file below `dir` under the prefix `uri`. All or nothing: if one upload
    /// fails, the ones already made are deleted again.
    pub fn put_dir(&self, dir: &Path, uri: &str) -> Result<Vec<Location>, StoreError> {
        // A directory that is not there holds nothing to store.
        // SageMaker uploads outputs without following links.
        let files = list_local(dir, Links::Skip)?;
        let base = uri.trim_end_matches('/');
        let mut stored = Vec::with_capacity(files.len());
        for file in files {
            let Location::Local(path) = &file.location else { unreachable!("local listing") };
            match self.put_file(path, &format!("{base}/{}", file.relative)) {
                Ok(location) => stored.push(location),
                Err(err) => {
                    self.remove(&stored);
                    return Err(err);
                }
            }
        }
        Ok(stored)
    }

    /// Delete objects (best effort: used to roll back).
    pub fn remove(&self, locations: &[Location]) {
        for location in locations {
            let result = match location {
                Location::S3 { bucket, key } => {
                    let (bucket, key) = self.place(bucket, key);
                    self.store.delete(&bucket, &key)
                }
                Location::Local(path) => {
                    std::fs::remove_file(path).or_else(ignore_missing).map_err(|e| StoreError::io("deleting", path, e))
                }
            };
            if let Err(err) = result {
                tracing::warn!("could not roll back {location}: {err}");
            }
        }
    }

    pub fn read(&self, uri: &str) -> Result<Vec<u8>, StoreError> {
        match Location::parse(uri)? {
            Location::S3 { bucket, key } => {
                let (bucket, key) = self.place(&bucket, &key);
                self.store.read(&bucket, &key)
            }
            Location::Local(path) => std::fs::read(&path).map_err(|e| StoreError::io("reading", &path, e)),
        }
    }

    pub fn write(&self, uri: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match Location::parse(uri)? {
            Location::S3 { bucket, key } => {
                let (bucket, key) = self.place(&bucket, &key);
                self.store.write(&bucket, &key, bytes)
            }
            Location::Local(path) => write_atomic(&path, bytes).map_err(|e| StoreError::io("writing", &path, e)),
        }
    }

    /// `write`, with the object encrypted by the KMS key `kms_key_id` when one is given (S3's
    /// SSE-KMS; a directory store has no encryption). A local path is written as `write` does.
    pub fn write_encrypted(&self, uri: &str, bytes: &[u8], kms_key_id: Option<&str>) -> Result<(), StoreError> {
        match (Location::parse(uri)?, kms_key_id) {
            (Location::S3 { bucket, key }, Some(kms_key_id)) => {
                let (bucket, key) = self.place(&bucket, &key);
                self.store.write_encrypted(&bucket, &key, bytes, kms_key_id)
            }
            _ => self.write(uri, bytes),
        }
    }

    // --- The runner's own records ----------------------------------------------------------

    pub fn state_uri(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.state_bucket, self.state_prefix)
    }

    pub fn state_read(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.store.read(&self.state_bucket, &format!("{}{key}", self.state_prefix)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::NoSuchKey { .. } | StoreError::NoSuchBucket { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn state_write(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.store.write(&self.state_bucket, &format!("{}{key}", self.state_prefix), bytes)
    }

    pub fn state_create_new(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.store.create_new(&self.state_bucket, &format!("{}{key}", self.state_prefix), bytes)
    }

    /// Keys (relative to the state area) under `prefix`.
    pub fn state_list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{}{prefix}", self.state_prefix);
        let objects = self.store.list(&self.state_bucket, &full)?;
        Ok(objects.into_iter().map(|o| o.key[self.state_prefix.len()..].to_string()).collect())
    }
}

/// `sagestep cp`: a local file or directory to an `s3://` key or prefix, or an `s3://` object
/// or prefix into a local directory, with S3 as the environment configures it. Returns how
/// many objects were copied.
pub fn copy(source: &str, destination: &str) -> Result<usize, StoreError> {
    let storage = Storage::s3()?;
    match (Location::parse(source)?, Location::parse(destination)?) {
        (Location::Local(path), Location::S3 { .. }) if path.is_dir() => Ok(storage.put_dir(&path, destination)?.len()),
        (Location::Local(path), Location::S3 { .. }) => storage.put_file(&path, destination).map(|_| 1),
        (Location::S3 { .. }, Location::Local(dir)) => Ok(storage.fetch(source, &dir)?.len()),
        _ => Err(LocationError::Invalid {
            given: format!("{source} {destination}"),
            reason: "one side must be local and the other s3://",
        }
        .into()),
    }
}

/// `a/b` -> `a/b/`; empty stays empty.
fn dir_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() { String::new() } else { format!("{trimmed}/") }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }
}

/// Where an object lands below a job's local directory, given the prefix that matched it:
/// the part of the key after the prefix's last full path segment, so `s3://b/d/train/` and
/// `s3://b/d/train` both put `d/train/x.csv` at `x.csv`, an exact key keeps its file name,
/// and a partial match (`d/test` matching `d/test_set_2/y.csv`) keeps `test_set_2/y.csv`.
pub fn relative_to_prefix(prefix: &str, key: &str) -> String {
    if key == prefix {
        return key.rsplit('/').next().unwrap_or(key).to_string();
    }
    let rest = &key[prefix.len()..];
    if prefix.is_empty() || prefix.ends_with('/') {
        return rest.to_string();
    }
    if let Some(below) = rest.strip_prefix('/') {
        return below.to_string();
    }
    let segment_start = prefix.rfind('/').map_or(0, |at| at + 1);
    key[segment_start..].to_string()
}

fn list_local(path: &Path, links: Links) -> Result<Vec<Found>, StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("reading", path, e)),
    };
    let found = |file: PathBuf, relative: String| -> Result<Found, StoreError> {
        let meta = std::fs::metadata(&file).map_err(|e| StoreError::io("reading", &file, e))?;
        Ok(Found { size: meta.len(), etag: object::local_etag(&meta), location: Location::Local(file), relative })
    };
    if meta.is_file() {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        return Ok(vec![found(path.to_path_buf(), name)?]);
    }
    let files = crate::data::files::list_files_with(path, links).or_else(|e| match e {
        crate::data::DataError::NoFiles { .. } => Ok(Vec::new()),
        other => {
            Err(StoreError::Other { bucket: String::new(), key: path.display().to_string(), detail: other.to_string() })
        }
    })?;
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(path).unwrap_or(&file).to_string_lossy().into_owned();
            found(file, relative)
        })
        .collect()
}

/// Where a file is written before it is renamed into place: `.<name>.partial` beside it, so
/// that the rename is atomic (one filesystem) and a leftover is hidden (data readers refuse
/// hidden files rather than read half a file).
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

/// A partial-file name of its own for one writer (process and call): writers racing for one
/// destination never share a partial file, and the last rename wins whole.
pub fn unique_partial_path(path: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let partial = partial_path(path);
    let name = partial.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    partial.with_file_name(format!("{name}.{}-{n}", std::process::id()))
}

/// Write `bytes` to `path` whole or not at all: to the partial file, synced, then renamed.
/// On failure the partial file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = unique_partial_path(path);
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
    fn objects_land_where_sagemaker_puts_them() {
        assert_eq!(relative_to_prefix("d/train", "d/train/x.csv"), "x.csv");
        assert_eq!(relative_to_prefix("d/train/", "d/train/sub/x.csv"), "sub/x.csv");
        assert_eq!(relative_to_prefix("d/model.tar.gz", "d/model.tar.gz"), "model.tar.gz");
        assert_eq!(relative_to_prefix("d/test", "d/test_set_2/y.csv"), "test_set_2/y.csv");
        assert_eq!(relative_to_prefix("", "a/b"), "a/b");
    }

    #[test]
    fn put_dir_then_fetch_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local_dir(dir.path().join("store"));
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.csv"), "1").unwrap();
        std::fs::write(src.join("sub/b.csv"), "2").unwrap();
        // Links in outputs are neither followed nor uploaded, as SageMaker does: a loop, a
        // link to a file inside, and one to a file outside the output directory.
        std::os::unix::fs::symlink("..", src.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink("a.csv", src.join("inside.csv")).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), src.join("outside")).unwrap();
        let stored = storage.put_dir(&src, "s3://bkt/run/out/").unwrap();
        assert_eq!(stored.len(), 2);
        let dest = dir.path().join("dest");
        let found = storage.fetch("s3://bkt/run/out", &dest).unwrap();
        assert_eq!(found.iter().map(|f| f.relative.as_str()).collect::<Vec<_>>(), ["a.csv", "sub/b.csv"]);
        assert_eq!(std::fs::read_to_string(dest.join("sub/b.csv")).unwrap(), "2");
        assert!(matches!(storage.fetch("s3://bkt/none", &dest), Err(StoreError::NothingAt { .. })));
        assert!(storage.state_create_new("registry/g/1.json", b"{}").unwrap());
        assert_eq!(storage.state_list("registry/").unwrap(), ["registry/g/1.json"]);
    }

    #[test]
    fn atomic_writes_leave_the_whole_file_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/report.json");
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "a partial file was left");
        // A directory in the way: an error, and no partial file left behind.
        std::fs::create_dir_all(dir.path().join("c/x")).unwrap();
        assert!(write_atomic(&dir.path().join("c/x"), b"1").is_err());
        assert_eq!(std::fs::read_dir(dir.path().join("c")).unwrap().count(), 1, "a partial file was left");
    }
}

//! Input discovery and opening: one file, or every regular file below a directory in sorted
//! order (as SageMaker lays out an S3 prefix); gzip detected from the bytes, not the name;
//! a SHA-256 of the stored bytes computed while reading.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::{DataError, Position};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 1 << 20;

/// What a directory walk does with a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Inputs: a link is read as what it points to, if that lies inside the walked directory
    /// and does not contain the link (a loop); anything else is an error naming the link.
    Within,
    /// Outputs: SageMaker neither follows nor uploads links; they are left out (and logged).
    Skip,
}

/// Every regular file at `path`: the file itself, or every file below the directory,
/// recursively, sorted by relative path so that the order does not depend on the filesystem.
/// Links are followed as inputs are (`Links::Within`).
pub fn list_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    list_files_with(path, Links::Within)
}

/// [`list_files`] with a choice of what links do.
pub fn list_files_with(path: &Path, links: Links) -> Result<Vec<PathBuf>, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DataError::Missing { path: path.to_path_buf() },
        _ => DataError::io(path, e),
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let root = std::fs::canonicalize(path).map_err(|e| DataError::io(path, e))?;
    let mut walk = Walk { links, root: &root, shown: path, files: Vec::new(), open: vec![root.clone()] };
    walk.directory(path)?;
    let mut files = walk.files;
    if files.is_empty() {
        return Err(DataError::NoFiles { path: path.to_path_buf() });
    }
    files.sort();
    Ok(files)
}

struct Walk<'a> {
    links: Links,
    /// The walked directory, canonical: links must resolve below it.
    root: &'a Path,
    /// The walked directory as given, for messages.
    shown: &'a Path,
    files: Vec<PathBuf>,
    /// Canonical directories on the way down to the current one: a link back to one is a loop.
    open: Vec<PathBuf>,
}

impl Walk<'_> {
    fn directory(&mut self, dir: &Path) -> Result<(), DataError> {
        let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            let own = std::fs::symlink_metadata(&path).map_err(|e| DataError::io(&path, e))?;
            if own.is_symlink() {
                self.link(&path)?;
            } else if own.is_dir() {
                self.descend(&path, path.clone())?;
            } else if own.is_file() {
                self.files.push(path);
            }
        }
        Ok(())
    }

    fn descend(&mut self, shown: &Path, canonical: PathBuf) -> Result<(), DataError> {
        self.open.push(canonical);
        let walked = self.directory(shown);
        self.open.pop();
        walked
    }

    fn link(&mut self, path: &Path) -> Result<(), DataError> {
        if self.links == Links::Skip {
            tracing::warn!(link = %path.display(), "a symbolic link is left out, as SageMaker leaves links out");
            return Ok(());
        }
        let relative = path.strip_prefix(self.shown).unwrap_or(path).display().to_string();
        let refuse =
            |problem: String| DataError::Link { root: self.shown.to_path_buf(), link: relative.clone(), problem };
        let target = std::fs::canonicalize(path).map_err(|e| refuse(format!("it points nowhere readable ({e})")))?;
        if !target.starts_with(self.root) {
            return Err(refuse(format!("it points outside the channel, to `{}`", target.display())));
        }
        if self.open.contains(&target) {
            return Err(refuse("it points to a directory that contains it (a loop)".into()));
        }
        let meta = std::fs::metadata(&target).map_err(|e| DataError::io(&target, e))?;
        if meta.is_dir() {
            self.descend(path, target)
        } else {
            if meta.is_file() {
                self.files.push(path.to_path_buf());
            }
            Ok(())
        }
    }
}

/// The SHA-256 and size of a file's stored (possibly compressed) bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digested {
    pub sha256: String,
    pub bytes: u64,
}

/// Hash a file. Callers run this on another core beside the parser: the second read comes
/// from the page cache.
pub fn digest(path: &Path) -> Result<Digested, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut bytes = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::io(path, e)),
        };
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(Digested { sha256: hex(&hasher.finalize()), bytes })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a file's bytes start as gzip's do (an empty file does not).
pub fn is_gzip(path: &Path) -> Result<bool, DataError> {
    let mut head = Vec::with_capacity(2);
    File::open(path).and_then(|f| f.take(2).read_to_end(&mut head)).map_err(|e| DataError::io(path, e))?;
    Ok(head.starts_with(&GZIP_MAGIC))
}

/// An opened input: its decompressed text.
pub struct Opened {
    pub reader: Box<dyn BufRead + Send>,
    pub gzip: bool,
}

/// Open a file for reading, transparently decompressing gzip (detected from the bytes).
pub fn open(path: &Path) -> Result<Opened, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    decompressed(path, file)
}

/// A SHA-256 taken of the stored bytes as they are read: one read of the file serves both.
#[derive(Clone, Default)]
pub struct RunningDigest(std::sync::Arc<std::sync::Mutex<(Sha256, u64)>>);

impl RunningDigest {
    /// The digest of every byte read so far (all of them once the reader reached the end).
    pub fn finish(&self) -> Digested {
        let (hasher, bytes) = self.0.lock().map(|s| s.clone()).unwrap_or_default();
        Digested { sha256: hex(&hasher.finalize()), bytes }
    }
}

struct Hashing {
    file: File,
    digest: RunningDigest,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Ok(mut state) = self.digest.0.lock() {
            state.0.update(&buf[..n]);
            state.1 += n as u64;
        }
        Ok(n)
    }
}

/// [`open`], hashing the stored bytes on the way.
pub fn open_hashed(path: &Path) -> Result<(Opened, RunningDigest), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let digest = RunningDigest::default();
    let opened = decompressed(path, Hashing { file, digest: digest.clone() })?;
    Ok((opened, digest))
}

fn decompressed(path: &Path, source: impl Read + Send + 'static) -> Result<Opened, DataError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, source);
    let head = buffered.fill_buf().map_err(|e| DataError::io(path, e))?;
    let gzip = head.starts_with(&GZIP_MAGIC);
    let reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };
    Ok(Opened { reader, gzip })
}

/// Every regular file at `path`, refusing hidden files (a leftover temporary file must never
/// be read as data silently).
pub fn data_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    let files = list_files(path)?;
    if let Some(hidden) = files.iter().find(|f| {
        f.strip_prefix(path).unwrap_or(f).components().any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    }) {
        return Err(DataError::Malformed {
            at: Position { file: hidden.clone(), line: 0, column: None },
            problem: "hidden files are not allowed in a data channel; remove it".into(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lists_sorted_recursively_and_reads_gzip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/z.csv"), "1\n").unwrap();
        std::fs::write(dir.path().join("a.csv"), "2\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"3,4\n").unwrap();
        std::fs::write(dir.path().join("c.gz"), gz.finish().unwrap()).unwrap();

        let files = list_files(dir.path()).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_owned()).collect();
        assert_eq!(names, [PathBuf::from("a.csv"), "b/z.csv".into(), "c.gz".into()]);

        let mut opened = open(&files[2]).unwrap();
        let mut text = String::new();
        opened.reader.read_to_string(&mut text).unwrap();
        assert!(opened.gzip);
        assert_eq!(text, "3,4\n");
        assert_eq!(digest(&files[2]).unwrap().sha256.len(), 64);
        // Hashed while read: the same digest.
        let (mut opened, hashed) = open_hashed(&files[2]).unwrap();
        opened.reader.read_to_string(&mut String::new()).unwrap();
        assert_eq!(hashed.finish(), digest(&files[2]).unwrap());
    }

    #[test]
    fn missing_and_empty_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = list_files(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");
        let err = list_files(dir.path()).unwrap_err();
        assert!(err.to_string().contains("holds no files"), "{err}");
    }
}

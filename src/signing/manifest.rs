//! The "files" serialization of OMS v1.0: every regular file below the model root, named by
//! its POSIX path relative to the root, with the SHA-256 of its content; sorted by path
//! components as model_signing sorts (`a/b` before `a.txt`). A single file is one resource
//! named `"."`, as model_signing 1.1.1 names it (OMS asks for the basename; Python then fails).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::SignatureError;

/// What model_signing ignores unless told otherwise, at the top level only.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Files are read in chunks of this size (model_signing reads 1 MiB).
const READ_CHUNK: usize = 1 << 20;

/// One file of the model and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    /// The POSIX path relative to the model root, or `"."` for a single-file model.
    pub name: String,
    pub sha256: [u8; 32],
}

/// Paths left out of the manifest: each a list of components relative to the model root; a
/// path ignores itself and everything below it.
#[derive(Clone, Debug, Default)]
pub struct Ignored(Vec<Vec<String>>);

impl Ignored {
    /// model_signing's CLI defaults: the git paths and the signature file.
    pub fn defaults(signature_name: &str) -> Self {
        let mut ignored = Self::default();
        for name in GIT_PATHS.iter().chain([&signature_name]) {
            ignored.add(name);
        }
        ignored
    }

    pub fn add(&mut self, relative: &str) {
        let parts: Vec<String> = components(relative).map(str::to_string).collect();
        if !parts.is_empty() && !self.0.contains(&parts) {
            self.0.push(parts);
        }
    }

    fn matches(&self, parts: &[&str]) -> bool {
        self.0.iter().any(|ignored| parts.len() >= ignored.len() && ignored.iter().zip(parts).all(|(a, b)| a == b))
    }

    /// The ignored paths as a bundle records them (`serialization.ignore_paths`).
    pub fn recorded(&self) -> Vec<String> {
        self.0.iter().map(|parts| parts.join("/")).collect()
    }
}

/// A path's components, `.` and empty ones dropped (`./a//b` is `a/b`).
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|part| !part.is_empty() && *part != ".")
}

/// Hash the model at `root` (a directory or one file), files hashed on every core, each
/// streamed. Links anywhere below the root, and special files, are refused.
pub fn hash_model(root: &Path, ignored: &Ignored) -> Result<Vec<FileDigest>, SignatureError> {
    let meta = std::fs::metadata(root).map_err(|e| SignatureError::io(root, e))?;
    let files = if meta.is_dir() {
        list_files(root, ignored)?
    } else if meta.is_file() {
        vec![(".".to_string(), root.to_path_buf())]
    } else {
        return Err(SignatureError::SpecialFile { path: root.to_path_buf() });
    };
    files.into_par_iter().map(|(name, path)| Ok(FileDigest { name, sha256: hash_file(&path)? })).collect()
}

/// Every regular file below `root`, sorted by path components; walked with a stack, so a deep
/// tree cannot overflow ours.
fn list_files(root: &Path, ignored: &Ignored) -> Result<Vec<(String, PathBuf)>, SignatureError> {
    let mut files: Vec<(Vec<String>, PathBuf)> = Vec::new();
    let mut pending: Vec<(Vec<String>, PathBuf)> = vec![(Vec::new(), root.to_path_buf())];
    while let Some((parts, dir)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| SignatureError::io(&dir, e))? {
            let entry = entry.map_err(|e| SignatureError::io(&dir, e))?;
            let path = entry.path();
            let name =
                entry.file_name().into_string().map_err(|_| SignatureError::NonUtf8Name { path: path.clone() })?;
            let mut child = parts.clone();
            child.push(name);
            let borrowed: Vec<&str> = child.iter().map(String::as_str).collect();
            if ignored.matches(&borrowed) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| SignatureError::io(&path, e))?;
            if kind.is_symlink() {
                return Err(SignatureError::Symlink { path });
            } else if kind.is_dir() {
                pending.push((child, path));
            } else if kind.is_file() {
                files.push((child, path));
            } else {
                return Err(SignatureError::SpecialFile { path });
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files.into_iter().map(|(parts, path)| (parts.join("/"), path)).collect())
}

/// SHA-256 of a file's content, streamed (sha2 picks SHA-NI at run time where the CPU has it).
pub fn hash_file(path: &Path) -> Result<[u8; 32], SignatureError> {
    let mut file = File::open(path).map_err(|e| SignatureError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(SignatureError::io(path, e)),
        }
    }
    Ok(hasher.finalize().into())
}

/// The root digest: SHA-256 over the raw digests, concatenated in the order listed.
pub fn root_digest(files: &[FileDigest]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.sha256);
    }
    hasher.finalize().into()
}

/// Check a resource name from a bundle: a relative POSIX path without `.`/`..`/empty
/// components (model_signing's verifier would read outside the root with `../`, #647).
pub fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    if bad && name != "." {
        return Err(format!("resource name `{name}` is not a relative path inside the model"));
    }
    Ok(())
}

//! `model.tar.gz` in and out. Reading refuses entries that would escape the target
//! directory (absolute paths, `..`, links, devices) and archives that unpack too large.

use std::io::Read;
use std::path::{Component, Path};

use flate2::read::GzDecoder;

use super::ModelError;

pub fn is_gzip_tar(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

fn refuse(path: &Path, problem: impl Into<String>) -> ModelError {
    ModelError::Archive { path: path.to_path_buf(), problem: problem.into() }
}

/// The regular, non-hidden files of a `.tar.gz`, in archive order, with their contents.
/// What they unpack to is bounded by `max_bytes` and by a quarter of the memory this process
/// may use (a gzip bomb is refused before it is inflated), and nothing is reserved from the
/// sizes the headers claim.
pub fn read_files(bytes: &[u8], path: &Path, max_bytes: u64) -> Result<Vec<(String, Vec<u8>)>, ModelError> {
    let max_bytes = max_bytes.min(crate::parallel::memory_bytes() / 4);
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut files = Vec::new();
    let mut total = 0u64;
    let entries = archive.entries().map_err(|e| refuse(path, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(path, format!("corrupt: {e}")))?;
        let name = entry.path().map_err(|e| refuse(path, e.to_string()))?.into_owned();
        let kind = entry.header().entry_type();
        check_entry_path(&name).map_err(|p| refuse(path, p))?;
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(refuse(
                path,
                format!("entry `{}` is a link or special file; only regular files are allowed", name.display()),
            ));
        }
        let hidden = name.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let size = entry.header().size().map_err(|e| refuse(path, e.to_string()))?;
        total = total.saturating_add(size);
        if total > max_bytes {
            return Err(refuse(path, format!("unpacks to more than {max_bytes} bytes")));
        }
        if hidden {
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| refuse(path, format!("corrupt: {e}")))?;
            continue;
        }
        // Grown as the bytes arrive (the header's size is a claim), never past it.
        let mut content = Vec::new();
        (&mut entry).take(size).read_to_end(&mut content).map_err(|e| refuse(path, format!("corrupt: {e}")))?;
        files.push((name.to_string_lossy().into_owned(), content));
    }
    Ok(files)
}

fn check_entry_path(name: &Path) -> Result<(), String> {
    for component in name.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(format!("entry `{}` would escape the model directory", name.display())),
        }
    }
    Ok(())
}

/// Unpack a `.tar.gz` into `dest` with the same checks.
pub fn unpack(archive_path: &Path, dest: &Path, max_bytes: u64) -> Result<Vec<String>, ModelError> {
    let bytes = std::fs::read(archive_path).map_err(|source| ModelError::Io { path: archive_path.into(), source })?;
    let files = read_files(&bytes, archive_path, max_bytes)?;
    let mut names = Vec::new();
    for (name, content) in files {
        let target = dest.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ModelError::Io { path: parent.into(), source })?;
        }
        std::fs::write(&target, content).map_err(|source| ModelError::Io { path: target.clone(), source })?;
        names.push(name);
    }
    Ok(names)
}

/// Pack every regular file below `dir` (sorted, relative paths) into a `.tar.gz` as
/// SageMaker packs `/opt/ml/model`, written to a temporary file and renamed.
pub fn pack(dir: &Path, archive_path: &Path) -> Result<(), ModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let mut files = Vec::new();
    collect(dir, dir, &mut files).map_err(io(dir))?;
    files.sort();
    let tmp = archive_path.with_extension("partial");
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut builder = tar::Builder::new(gz);
        builder.mode(tar::HeaderMode::Deterministic);
        for rel in &files {
            builder.append_path_with_name(dir.join(rel), rel)?;
        }
        builder.into_inner()?.finish()?.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, archive_path).map_err(io(archive_path)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(archive_path)(e))
        }
    }
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            collect(base, &path, out)?;
        } else if meta.is_file() {
            out.push(path.strip_prefix(base).expect("below base").to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name to test our own check.
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn reads_files_and_refuses_escapes_and_size() {
        let ok = tar_gz(&[("xgboost-model", b"abc"), (".hidden", b"x")]);
        let files = read_files(&ok, Path::new("m.tar.gz"), 100).unwrap();
        assert_eq!(files, vec![("xgboost-model".to_string(), b"abc".to_vec())]);
        let escape = tar_gz(&[("../evil", b"x")]);
        let err = read_files(&escape, Path::new("m.tar.gz"), 100).unwrap_err().to_string();
        assert!(err.contains("would escape"), "{err}");
        let absolute = tar_gz(&[("/etc/evil", b"x")]);
        assert!(read_files(&absolute, Path::new("m.tar.gz"), 100).is_err());
        let big = tar_gz(&[("a", &[0u8; 64]), ("b", &[0u8; 64])]);
        let err = read_files(&big, Path::new("m.tar.gz"), 100).unwrap_err().to_string();
        assert!(err.contains("more than 100 bytes"), "{err}");
        // A header claiming 3 GiB over 3 bytes: an error, with nothing reserved for the claim.
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_path("xgboost-model").unwrap();
        header.set_size(3 << 30);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend_from_slice(b"abc");
        builder.get_mut().write_all(&raw).unwrap();
        let claimed = builder.into_inner().unwrap().finish().unwrap();
        let err = read_files(&claimed, Path::new("m.tar.gz"), 4 << 30).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn refuses_links() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "xgboost-model", "/etc/passwd").unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let err = read_files(&bytes, Path::new("m.tar.gz"), 100).unwrap_err().to_string();
        assert!(err.contains("link or special file"), "{err}");
    }

    #[test]
    fn pack_then_unpack() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("m/sub")).unwrap();
        std::fs::write(dir.path().join("m/xgboost-model"), b"model").unwrap();
        std::fs::write(dir.path().join("m/sub/x"), b"x").unwrap();
        let archive = dir.path().join("model.tar.gz");
        pack(&dir.path().join("m"), &archive).unwrap();
        let out = dir.path().join("out");
        let names = unpack(&archive, &out, 1 << 20).unwrap();
        assert_eq!(names, ["sub/x", "xgboost-model"]);
        assert_eq!(std::fs::read(out.join("xgboost-model")).unwrap(), b"model");
    }
}

//! Checkpoints: `xgboost-checkpoint.<rounds>` in the checkpoint directory, written
//! atomically, the newest few kept. A restarted job resumes from the newest one that loads.

use std::path::{Path, PathBuf};

use super::error::Error;

pub const PREFIX: &str = "xgboost-checkpoint.";
const KEPT: usize = 3;

/// The `xgboost-checkpoint.<rounds>` files in `dir`, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<(usize, PathBuf)>> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let rounds = e.file_name().to_string_lossy().strip_prefix(PREFIX)?.parse().ok()?;
            Some((rounds, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The newest checkpoint `load` accepts; unreadable ones (a partial upload, another
/// engine's format) are skipped with a warning.
pub fn newest<T>(dir: &Path, load: impl Fn(&[u8]) -> Result<T, String>) -> Option<T> {
    let found = list(dir).ok()?;
    found.into_iter().rev().find_map(|(_, path)| {
        let loaded = std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| load(&bytes));
        match loaded {
            Ok(model) => Some(model),
            Err(e) => {
                tracing::warn!(path = %path.display(), "skipping an unreadable checkpoint: {e}");
                None
            }
        }
    })
}

/// Write the checkpoint after `rounds` rounds; drop all but the newest few.
pub fn save(dir: &Path, rounds: usize, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(format!("{PREFIX}{rounds}"));
    crate::storage::write_atomic(&path, bytes).map_err(|source| Error::Write { path: path.clone(), source })?;
    let old = list(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
    let excess = old.len().saturating_sub(KEPT);
    for (_, path) in old.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

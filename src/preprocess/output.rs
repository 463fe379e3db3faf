//! The second pass: the fitted transform applied to every labelled row, written to its set's
//! file. Every file is written beside its final name (`.<name>.partial`) and renamed only
//! once every host has written all of its files: outputs appear whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ARTIFACTS, Error, Report, TRANSFORM_FILE};
use crate::cluster::Hosts;
use crate::data::DataError;
use crate::features::Set;
use crate::features::fit::RowEncoder;
use crate::features::reader::{Columns, Object, Rows};
use crate::features::split::Assigner;

use super::scan::Recycle;

/// Where each set's rows go: `<set>/<set>.csv` for a job of one instance (the names before
/// several instances existed), `<set>/part-<host>.csv` for each host of several, so that no
/// two hosts write one S3 key.
pub struct Names {
    dir: PathBuf,
    part: Option<String>,
}

impl Names {
    pub fn new(dir: &Path, hosts: &Hosts) -> Self {
        Self { dir: dir.to_path_buf(), part: (hosts.world() > 1).then(|| format!("part-{}", hosts.current)) }
    }

    pub fn set(&self, set: Set) -> PathBuf {
        let name = set.name();
        self.dir.join(name).join(format!("{}.csv", self.part.as_deref().unwrap_or(name)))
    }

    pub fn report(&self) -> PathBuf {
        self.dir.join(ARTIFACTS).join(TRANSFORM_FILE)
    }
}

/// Files written whole under their partial names, waiting to be renamed; removed if dropped
/// before that.
#[derive(Default)]
pub struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    pub fn commit(mut self) -> Result<(), Error> {
        for (tmp, path) in std::mem::take(&mut self.files) {
            std::fs::rename(&tmp, &path).map_err(|source| Error::Write { path, source })?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in self.files.drain(..) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A file being written under its partial name.
struct Partial {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl Partial {
    fn create(path: PathBuf, staged: &mut Staged) -> Result<Self, Error> {
        let write_err = |source| Error::Write { path: path.clone(), source };
        let dir = path.parent().expect("output paths have a parent");
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let tmp = crate::storage::partial_path(&path);
        let file = std::fs::File::create(&tmp).map_err(write_err)?;
        // Staged at once: an error from here on removes it.
        staged.files.push((tmp, path.clone()));
        Ok(Self { path, out: std::io::BufWriter::with_capacity(1 << 20, file) })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.write_all(bytes).map_err(|source| Error::Write { path: self.path.clone(), source })
    }

    /// Flushed and synced: whole on disk before anything is renamed.
    fn finish(self) -> Result<(), Error> {
        let Self { path, out } = self;
        let write_err = |source| Error::Write { path: path.clone(), source };
        let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)
    }
}

/// Write this host's rows of each set (a file only for the sets it has rows of) and, on the
/// first host, the report; all staged, for [`Staged::commit`].
pub fn write(
    names: &Names,
    columns: &Columns,
    assigner: &Assigner,
    objects: &[Object],
    encoder: &RowEncoder<'_>,
    local_sets: &[u64; 4],
    report: Option<&Report<'_>>,
) -> Result<Staged, Error> {
    let mut staged = Staged::default();
    // A set's file is made when its first row comes: only sets this host has rows of.
    let mut files: [Option<Partial>; 4] = Default::default();
    let mut written = [0u64; 4];
    let buffers: Recycle<[Vec<u8>; 4]> = Recycle::new();
    let work = |hash: u64, rows: &Rows<'_>| -> Result<([Vec<u8>; 4], [u64; 4]), DataError> {
        // Sized for what the chunk's rows become (scaled numbers are longer than raw ones),
        // so that the buffers do not grow by copying.
        let mut out = buffers.take().unwrap_or_default();
        for (s, buffer) in out.iter_mut().enumerate() {
            buffer.clear();
            buffer.reserve(rows.bytes() * if s == 0 { 2 } else { 1 } / 2);
        }
        let mut counts = [0u64; 4];
        rows.for_each(|row| {
            if let Some(label) = row.label {
                let set = assigner.set(super::scan::row_key(assigner, hash, row));
                encoder.write_row(row, label, set.labelled(), &mut out[set as usize]);
                counts[set as usize] += 1;
            }
        })?;
        Ok((out, counts))
    };
    for object in objects {
        let hash = assigner.object(&object.key);
        super::scan::read_one(
            columns,
            object,
            false,
            |rows| work(hash, rows),
            |(out, counts)| {
                for (set, bytes) in Set::ALL.into_iter().zip(&out) {
                    if bytes.is_empty() {
                        continue;
                    }
                    let file = match &mut files[set as usize] {
                        Some(file) => file,
                        empty => empty.insert(Partial::create(names.set(set), &mut staged)?),
                    };
                    file.write(bytes)?;
                }
                written.iter_mut().zip(counts).for_each(|(w, n)| *w += n);
                buffers.give(out);
                Ok(())
            },
        )?;
    }
    // The statistics are of the rows the first pass read: the same rows, or nothing.
    if written != *local_sets {
        return Err(Error::Changed { first: *local_sets, second: written });
    }
    for file in files.into_iter().flatten() {
        file.finish()?;
    }
    if let Some(report) = report {
        let mut file = Partial::create(names.report(), &mut staged)?;
        let mut json = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::Write { path: names.report(), source: std::io::Error::other(e) })?;
        json.push(b'\n');
        file.write(&json)?;
        file.finish()?;
    }
    Ok(staged)
}

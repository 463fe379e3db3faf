//! The counting passes over a host's objects: the first gathers every statistic of the
//! training rows; later ones (only when a column has more distinct values than the budget)
//! count the values inside the medians' intervals.

use std::collections::{BTreeSet, HashSet};

use super::Error;
use crate::data::records::Dialect;
use crate::data::{DataError, files};
use crate::features::Set;
use crate::features::fit::{FitError, MAX_CATEGORIES};
use crate::features::reader::{Columns, Object, Opened, Row, Rows, SourceFile, read_object};
use crate::features::split::{Assigner, CutSearch, DIGITS};
use crate::features::stats::{Decoder, Encoder, KeyMap, MedianSearch, Moments, ValueCounts, key};

/// What one object's rows gave (or a range's, of an object several hosts read): everything
/// merged in a fixed order lives here.
#[derive(Debug, Clone)]
pub struct ObjectStats {
    pub key: String,
    /// The first cell read: 0 for a whole object.
    pub first_cell: u64,
    pub source: SourceFile,
    /// Rows per set.
    pub sets: [u64; 4],
    /// Per numeric column, the present values of its training rows, as folds to be folded on
    /// in order: one, over the cells from the object's first; or, for a range after the
    /// object's first, one per cell, since the whole object's fold goes on from the ranges
    /// before cell by cell (floating-point sums fold alike only in the same order).
    pub present: Vec<Vec<Moments>>,
}

impl ObjectStats {
    /// The fold of the present values over the object (its ranges joined first).
    pub fn folded(&self, numeric: usize) -> Vec<Moments> {
        let mut folded = vec![Moments::default(); numeric];
        for unit in &self.present {
            folded.iter_mut().zip(unit).for_each(|(f, m)| f.merge(m));
        }
        folded
    }

    /// Add the range read next (by cells) of the same object.
    pub fn join(&mut self, next: ObjectStats) {
        self.source.rows += next.source.rows;
        self.source.dropped_without_label += next.source.dropped_without_label;
        self.sets.iter_mut().zip(next.sets).for_each(|(s, n)| *s += n);
        self.present.extend(next.present);
    }
}

/// A host's first pass: its objects, and its exact counts (merged in any order).
#[derive(Debug, Default)]
pub struct HostStats {
    pub objects: Vec<ObjectStats>,
    pub values: Vec<ValueCounts>,
    pub categories: Vec<BTreeSet<Vec<u8>>>,
}

impl HostStats {
    pub fn set_counts(&self) -> [u64; 4] {
        let mut sets = [0u64; 4];
        for o in &self.objects {
            for (s, n) in sets.iter_mut().zip(o.sets) {
                *s += n;
            }
        }
        sets
    }

    pub fn rows(&self) -> u64 {
        self.objects.iter().map(|o| o.source.rows).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u64(self.objects.len() as u64);
        for o in &self.objects {
            let s = &o.source;
            e.bytes(o.key.as_bytes()).u64(o.first_cell).bytes(s.path.as_bytes()).bytes(s.sha256.as_bytes());
            let dialect = match s.dialect {
                Dialect::Whitespace => 0,
                Dialect::Delimited(c) => u64::from(c) + 1,
            };
            e.u64(s.bytes).u64(u64::from(s.gzip)).u64(dialect).u64(u64::from(s.header));
            e.u64(s.rows).u64(s.dropped_without_label);
            o.sets.iter().for_each(|&n| {
                e.u64(n);
            });
            e.u64(o.present.len() as u64);
            o.present.iter().flatten().for_each(|m| {
                e.moments(m);
            });
        }
        for c in &self.values {
            e.counts(c);
        }
        for set in &self.categories {
            e.u64(set.len() as u64);
            for c in set {
                e.bytes(c);
            }
        }
        e.0
    }

    pub fn decode(bytes: &[u8], columns: &Columns) -> Result<Self, String> {
        let mut d = Decoder::new(bytes);
        let n = d.len(8)?;
        let mut objects = Vec::new();
        for _ in 0..n {
            let key = d.text()?;
            let first_cell = d.u64()?;
            let path = d.text()?;
            let sha256 = d.text()?;
            let (bytes, gzip, dialect, header) = (d.u64()?, d.u64()? != 0, d.u64()?, d.u64()? != 0);
            let dialect = match dialect {
                0 => Dialect::Whitespace,
                c => Dialect::Delimited(
                    u32::try_from(c - 1).ok().and_then(char::from_u32).ok_or_else(|| format!("a delimiter {c}"))?,
                ),
            };
            let (rows, dropped_without_label) = (d.u64()?, d.u64()?);
            let mut sets = [0u64; 4];
            for s in &mut sets {
                *s = d.u64()?;
            }
            let numeric = columns.numeric.len();
            let units = d.len(24 * numeric)?;
            let mut present = Vec::with_capacity(units);
            for _ in 0..units {
                present.push((0..numeric).map(|_| d.moments()).collect::<Result<Vec<_>, _>>()?);
            }
            let source = SourceFile { path, sha256, bytes, gzip, dialect, header, rows, dropped_without_label };
            objects.push(ObjectStats { key, first_cell, source, sets, present });
        }
        let values = (0..columns.numeric.len()).map(|_| d.counts()).collect::<Result<Vec<_>, _>>()?;
        let mut categories = Vec::new();
        for _ in 0..columns.categorical.len() {
            let n = d.len(8)?;
            categories.push((0..n).map(|_| d.bytes().map(<[u8]>::to_vec)).collect::<Result<BTreeSet<_>, _>>()?);
        }
        d.finish()?;
        Ok(Self { objects, values, categories })
    }
}

/// Buffers handed back once consumed, for the next chunks: fresh memory costs the kernel a
/// zero-filled page per touch (a tenth of the run when every chunk allocated its own).
pub(super) struct Recycle<T>(std::sync::Mutex<Vec<T>>);

impl<T> Recycle<T> {
    pub(super) fn new() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }

    pub(super) fn take(&self) -> Option<T> {
        self.0.lock().ok().and_then(|mut v| v.pop())
    }

    pub(super) fn give(&self, item: T) {
        if let Ok(mut v) = self.0.lock() {
            v.push(item);
        }
    }
}

/// A labelled row's key in the split order (`object`: its object's hash).
#[inline]
pub(super) fn row_key(assigner: &Assigner, object: u64, row: &Row<'_>) -> u128 {
    assigner.key(row.identity(assigner.seed()), object, row.index)
}

/// The split's counting pass: this host's labelled rows, and per search the counts of the
/// keys under its prefix by their next digit.
#[derive(Debug, Default, PartialEq)]
pub struct SplitCounts {
    pub labelled: u64,
    pub counts: Vec<Vec<u64>>,
}

impl SplitCounts {
    /// Sparse: the nonzero counts only (a pass over few rows has few).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u64(self.labelled).u64(self.counts.len() as u64);
        for counts in &self.counts {
            let nonzero: Vec<(usize, u64)> = counts.iter().copied().enumerate().filter(|c| c.1 > 0).collect();
            e.u64(nonzero.len() as u64);
            for (digit, n) in nonzero {
                e.u64(digit as u64).u64(n);
            }
        }
        e.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut d = Decoder::new(bytes);
        let labelled = d.u64()?;
        let searches = d.len(8)?;
        let mut counts = Vec::with_capacity(searches);
        for _ in 0..searches {
            let mut dense = vec![0u64; DIGITS];
            for _ in 0..d.len(16)? {
                let digit = usize::try_from(d.u64()?).ok().filter(|&i| i < DIGITS).ok_or("a digit out of range")?;
                dense[digit] = d.u64()?;
            }
            counts.push(dense);
        }
        d.finish()?;
        Ok(Self { labelled, counts })
    }
}

/// One counting pass of the split over this host's objects.
pub fn split_counts(
    columns: &Columns,
    assigner: &Assigner,
    objects: &[Object],
    searches: &[CutSearch],
) -> Result<SplitCounts, Error> {
    let mut total = SplitCounts { labelled: 0, counts: vec![vec![0u64; DIGITS]; searches.len()] };
    let work = |hash: u64, rows: &Rows<'_>| -> Result<(u64, Vec<Vec<u16>>), DataError> {
        // Buckets hit, not dense counts: a chunk holds far fewer rows than there are digits.
        let mut hits: Vec<Vec<u16>> = vec![Vec::new(); searches.len()];
        let mut labelled = 0;
        rows.for_each(|row| {
            if row.label.is_some() {
                labelled += 1;
                let key = row_key(assigner, hash, row);
                for (h, search) in hits.iter_mut().zip(searches) {
                    if let Some(b) = search.bucket(key) {
                        h.push(b as u16);
                    }
                }
            }
        })?;
        Ok((labelled, hits))
    };
    for object in objects {
        let hash = assigner.object(&object.key);
        read_one(
            columns,
            object,
            false,
            |rows| work(hash, rows),
            |(labelled, hits): (u64, Vec<Vec<u16>>)| {
                total.labelled += labelled;
                for (t, hits) in total.counts.iter_mut().zip(hits) {
                    hits.into_iter().for_each(|b| t[usize::from(b)] += 1);
                }
                Ok(())
            },
        )?;
    }
    Ok(total)
}

/// One chunk's share of the first pass.
struct ChunkStats {
    sets: [u64; 4],
    dropped: u64,
    present: Vec<Moments>,
    /// Per numeric column: the training values' counts, by key.
    values: Vec<KeyMap>,
    categories: Vec<HashSet<Vec<u8>>>,
}

/// Read one object with `work` per chunk and `consume` in order; with `digest`, the SHA-256
/// of its stored bytes is taken from the same reads.
pub(super) fn read_one<T: Send>(
    columns: &Columns,
    object: &Object,
    digest: bool,
    work: impl Fn(&Rows<'_>) -> Result<T, DataError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), Error> + Send,
) -> Result<Opened, Error> {
    let mut failed: Option<Error> = None;
    let opened = read_object(columns, object, digest, work, |t| {
        consume(t).map_err(|e| {
            failed = Some(e);
            // Stops the read; the error itself is kept above.
            DataError::Empty { path: object.file.clone() }
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(opened?)
}

/// The first pass over this host's objects.
pub fn statistics(
    columns: &Columns,
    assigner: &Assigner,
    objects: &[Object],
    budget: usize,
) -> Result<HostStats, Error> {
    let (numeric, categorical) = (columns.numeric.len(), columns.categorical.len());
    let mut host = HostStats {
        objects: Vec::new(),
        values: vec![ValueCounts::default(); numeric],
        categories: vec![BTreeSet::new(); categorical],
    };
    let maps: Recycle<Vec<KeyMap>> = Recycle::new();
    for object in objects {
        let hash = assigner.object(&object.key);
        let first_cell = object.range.as_ref().map_or(0, |r| r.cells.start);
        let mut stats = ObjectStats {
            key: object.key.clone(),
            first_cell,
            source: SourceFile {
                path: object.name.clone(),
                sha256: String::new(),
                bytes: 0,
                gzip: false,
                dialect: Dialect::Whitespace,
                header: false,
                rows: 0,
                dropped_without_label: 0,
            },
            sets: [0; 4],
            present: Vec::new(),
        };
        // The range holding the object's start hashes the whole object beside its parsing
        // (a whole object is hashed as it is read).
        let hashed = object.range.is_some() && first_cell == 0;
        let (opened, digest) = std::thread::scope(|scope| {
            let digest = hashed.then(|| scope.spawn(|| files::digest(&object.file)));
            let opened = read_one(
                columns,
                object,
                true,
                |rows| chunk_statistics(columns, assigner, hash, rows, &maps),
                |chunk: ChunkStats| merge_chunk(columns, &mut host, &mut stats, chunk, &maps, budget),
            );
            let panicked = || Err(DataError::io(&object.file, std::io::Error::other("hashing it failed")));
            let digest = digest.map(|d| d.join().unwrap_or_else(|_| panicked()));
            (opened, digest)
        });
        let opened = opened?;
        let s = &mut stats.source;
        let digested = match digest {
            Some(d) => d?,
            None => opened.digest.unwrap_or_default(),
        };
        (s.sha256, s.bytes, s.gzip, s.dialect, s.header, s.rows) =
            (digested.sha256, digested.bytes, opened.gzip, opened.dialect, opened.header, opened.rows);
        host.objects.push(stats);
    }
    Ok(host)
}

/// One chunk's rows: set sizes, and the training rows' moments, value counts and categories.
fn chunk_statistics(
    columns: &Columns,
    assigner: &Assigner,
    hash: u64,
    rows: &Rows<'_>,
    maps: &Recycle<Vec<KeyMap>>,
) -> Result<ChunkStats, DataError> {
    let (numeric, categorical) = (columns.numeric.len(), columns.categorical.len());
    let mut stats = ChunkStats {
        sets: [0; 4],
        dropped: 0,
        present: vec![Moments::default(); numeric],
        values: maps.take().unwrap_or_else(|| vec![KeyMap::default(); numeric]),
        categories: vec![HashSet::new(); categorical],
    };
    rows.for_each(|row| {
        if row.label.is_none() {
            stats.dropped += 1;
            return;
        }
        let set = assigner.set(row_key(assigner, hash, row));
        stats.sets[set as usize] += 1;
        if set != Set::Train {
            return;
        }
        for ((m, counts), &x) in stats.present.iter_mut().zip(&mut stats.values).zip(row.numeric) {
            if !x.is_nan() {
                m.push(x);
                *counts.entry(key(x)).or_insert(0) += 1;
            }
        }
        for (c, seen) in stats.categories.iter_mut().enumerate() {
            if let Some(field) = row.categorical(c)
                && !seen.contains(field)
            {
                seen.insert(field.to_vec());
            }
        }
    })?;
    Ok(stats)
}

/// Add a chunk's statistics to its object's and the host's, in input order.
fn merge_chunk(
    columns: &Columns,
    host: &mut HostStats,
    stats: &mut ObjectStats,
    chunk: ChunkStats,
    maps: &Recycle<Vec<KeyMap>>,
    budget: usize,
) -> Result<(), Error> {
    stats.source.dropped_without_label += chunk.dropped;
    for (s, n) in stats.sets.iter_mut().zip(chunk.sets) {
        *s += n;
    }
    // From the object's first cell, one fold; after it, a fold per cell (see ObjectStats).
    match stats.present.first_mut() {
        Some(fold) if stats.first_cell == 0 => fold.iter_mut().zip(&chunk.present).for_each(|(m, c)| m.merge(c)),
        _ => stats.present.push(chunk.present),
    }
    for (counts, chunk_counts) in host.values.iter_mut().zip(&chunk.values) {
        for (&k, &n) in chunk_counts {
            counts.add(k, n, budget);
        }
    }
    let mut emptied = chunk.values;
    emptied.iter_mut().for_each(KeyMap::clear);
    maps.give(emptied);
    for (c, (all, seen)) in host.categories.iter_mut().zip(chunk.categories).enumerate() {
        all.extend(seen);
        if all.len() > MAX_CATEGORIES {
            let column = columns.names[columns.categorical[c]].clone();
            return Err(FitError::TooManyCategories { column, max: MAX_CATEGORIES }.into());
        }
    }
    Ok(())
}

/// A later pass: per open column, the counts of its training values inside its interval.
pub fn narrowed_counts(
    columns: &Columns,
    assigner: &Assigner,
    objects: &[Object],
    open: &[(usize, MedianSearch)],
    budget: usize,
) -> Result<Vec<ValueCounts>, Error> {
    let mut counts = vec![ValueCounts::default(); open.len()];
    let work = |hash: u64, rows: &Rows<'_>| -> Result<Vec<KeyMap>, DataError> {
        let mut counts = vec![KeyMap::default(); open.len()];
        rows.for_each(|row| {
            if row.label.is_some() && assigner.set(row_key(assigner, hash, row)) == Set::Train {
                for (c, (n, search)) in counts.iter_mut().zip(open) {
                    let x = row.numeric[*n];
                    if !x.is_nan() && search.contains(key(x)) {
                        *c.entry(key(x)).or_insert(0) += 1;
                    }
                }
            }
        })?;
        Ok(counts)
    };
    for object in objects {
        let hash = assigner.object(&object.key);
        read_one(
            columns,
            object,
            false,
            |rows| work(hash, rows),
            |chunk: Vec<KeyMap>| {
                for (c, chunk_counts) in counts.iter_mut().zip(&chunk) {
                    for (&k, &n) in chunk_counts {
                        c.add(k, n, budget);
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(counts)
}

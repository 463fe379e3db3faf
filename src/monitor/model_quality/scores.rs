//! Every row's score and label, tallied by distinct score, for the exact ROC and
//! precision-recall curves and AUC, in bounded memory at any size.
//!
//! A row is a 128-bit entry: the score's order key (descending scores sort first) above an
//! 8-bit tag (bit 0 the actual label, bits 1 to 5 its subsamples). Entries gather in a buffer;
//! a full buffer is sorted and folded into a sorted table of (entry, count), so that repeated
//! scores cost nothing. A table over its limit is written to a scratch file as a sorted run;
//! at the end the runs are merged. Memory: the buffer (16 B an entry) and the table (24 B),
//! under 100 MiB with the default limits; disk: about 10 B a distinct (score, tag).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::metric::SUBSAMPLES;

/// Bit 0 of a tag: the actual label is positive.
pub const POSITIVE: u8 = 1;
/// Rows held before sorting (16 MiB).
pub const BUFFER_ROWS: usize = 1 << 20;
/// Distinct (score, tag) entries held before spilling (24 MiB, 48 MiB while merging).
pub const TABLE_ENTRIES: usize = 1 << 20;
/// Samples tallied: all rows, then the subsamples.
pub const SAMPLES: usize = 1 + SUBSAMPLES;

/// The rows of one distinct score: `[negatives, positives]` for every sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Group {
    pub counts: [[u64; 2]; SAMPLES],
}

pub struct ScoreTally {
    buffer: Vec<u128>,
    buffer_rows: usize,
    table: Vec<(u128, u64)>,
    table_entries: usize,
    scratch: PathBuf,
    runs: Vec<PathBuf>,
}

/// An order key for `score`: larger scores get smaller keys.
fn key(score: f64) -> u64 {
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    let ascending = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
    !ascending
}

impl ScoreTally {
    /// A tally spilling to files in `scratch` (made when first needed).
    pub fn new(scratch: &Path) -> Self {
        Self::with_limits(scratch, BUFFER_ROWS, TABLE_ENTRIES)
    }

    pub fn with_limits(scratch: &Path, buffer_rows: usize, table_entries: usize) -> Self {
        Self {
            buffer: Vec::new(),
            buffer_rows: buffer_rows.max(1),
            table: Vec::new(),
            table_entries: table_entries.max(1),
            scratch: scratch.to_path_buf(),
            runs: Vec::new(),
        }
    }

    /// One row: a finite score and its tag.
    pub fn push(&mut self, score: f64, tag: u8) -> std::io::Result<()> {
        self.buffer.push((u128::from(key(score)) << 8) | u128::from(tag));
        if self.buffer.len() >= self.buffer_rows { self.fold() } else { Ok(()) }
    }

    /// Sort the buffer into the table; spill the table when it is over its limit.
    fn fold(&mut self) -> std::io::Result<()> {
        self.buffer.sort_unstable();
        let mut folded: Vec<(u128, u64)> = Vec::new();
        for &entry in &self.buffer {
            match folded.last_mut() {
                Some((last, count)) if *last == entry => *count += 1,
                _ => folded.push((entry, 1)),
            }
        }
        self.buffer.clear();
        self.table = merge_sorted(std::mem::take(&mut self.table), folded);
        if self.table.len() > self.table_entries {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.scratch)?;
        let path = self.scratch.join(format!(".sagestep-scores-{}-{}.run", std::process::id(), self.runs.len()));
        self.runs.push(path.clone());
        let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&path)?);
        for &(entry, count) in &self.table {
            out.write_all(&((entry >> 8) as u64).to_le_bytes())?;
            out.write_all(&[entry as u8])?;
            write_varint(&mut out, count)?;
        }
        out.flush()?;
        self.table = Vec::new();
        Ok(())
    }

    /// Whether any run went to disk (for tests and logs).
    pub fn spilled(&self) -> usize {
        self.runs.len()
    }

    /// Every distinct score's group, largest score first.
    pub fn finish(mut self, mut visit: impl FnMut(&Group)) -> std::io::Result<()> {
        self.fold()?;
        let mut grouper = Grouper::default();
        if self.runs.is_empty() {
            for &(entry, count) in &self.table {
                grouper.add(entry, count, &mut visit);
            }
        } else {
            if !self.table.is_empty() {
                self.spill()?;
            }
            merge_runs(&self.runs, |entry, count| grouper.add(entry, count, &mut visit))?;
        }
        grouper.end(&mut visit);
        Ok(())
    }
}

impl Drop for ScoreTally {
    fn drop(&mut self) {
        for run in &self.runs {
            let _ = std::fs::remove_file(run);
        }
    }
}

/// Two sorted tables as one, counts of equal entries added.
fn merge_sorted(a: Vec<(u128, u64)>, b: Vec<(u128, u64)>) -> Vec<(u128, u64)> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                let count = x.1 + y.1;
                let entry = x.0;
                a.next();
                b.next();
                (entry, count)
            }
            (Some(x), Some(y)) if x.0 < y.0 => a.next().expect("peeked"),
            (Some(_), Some(_)) => b.next().expect("peeked"),
            (Some(_), None) => a.next().expect("peeked"),
            (None, Some(_)) => b.next().expect("peeked"),
            (None, None) => return out,
        };
        out.push(next);
    }
}

/// Entries of one key gathered into a group.
#[derive(Default)]
struct Grouper {
    key: Option<u64>,
    group: Group,
}

impl Grouper {
    fn add(&mut self, entry: u128, count: u64, visit: &mut impl FnMut(&Group)) {
        let key = (entry >> 8) as u64;
        if self.key.is_some_and(|k| k != key) {
            visit(&self.group);
            self.group = Group::default();
        }
        self.key = Some(key);
        let tag = entry as u8;
        let label = usize::from(tag & POSITIVE);
        self.group.counts[0][label] += count;
        for s in 0..SUBSAMPLES {
            if (tag >> (s + 1)) & 1 == 1 {
                self.group.counts[s + 1][label] += count;
            }
        }
    }

    fn end(&mut self, visit: &mut impl FnMut(&Group)) {
        if self.key.is_some() {
            visit(&self.group);
        }
    }
}

fn write_varint(out: &mut impl Write, mut value: u64) -> std::io::Result<()> {
    while value >= 0x80 {
        out.write_all(&[value as u8 | 0x80])?;
        value >>= 7;
    }
    out.write_all(&[value as u8])
}

/// A sorted run read back entry by entry.
struct Run {
    reader: BufReader<std::fs::File>,
}

impl Run {
    fn next(&mut self) -> std::io::Result<Option<(u128, u64)>> {
        let mut head = [0u8; 9];
        match self.reader.read_exact(&mut head[..1]) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        self.reader.read_exact(&mut head[1..])?;
        let key = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let mut count = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8];
            self.reader.read_exact(&mut byte)?;
            count |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(Some(((u128::from(key) << 8) | u128::from(head[8]), count)));
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a count in a scratch run is longer than 64 bits"))
    }
}

/// The runs' entries in order (equal entries from different runs come one after the other).
fn merge_runs(paths: &[PathBuf], mut emit: impl FnMut(u128, u64)) -> std::io::Result<()> {
    let mut runs = Vec::with_capacity(paths.len());
    for path in paths {
        runs.push(Run { reader: BufReader::with_capacity(1 << 16, std::fs::File::open(path)?) });
    }
    let mut heap = BinaryHeap::new();
    for (i, run) in runs.iter_mut().enumerate() {
        if let Some((entry, count)) = run.next()? {
            heap.push(Reverse((entry, i, count)));
        }
    }
    while let Some(Reverse((entry, i, count))) = heap.pop() {
        emit(entry, count);
        if let Some((entry, count)) = runs[i].next()? {
            heap.push(Reverse((entry, i, count)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(tally: ScoreTally) -> Vec<Group> {
        let mut out = Vec::new();
        tally.finish(|g| out.push(*g)).unwrap();
        out
    }

    #[test]
    fn keys_order_scores_descending() {
        let scores = [f64::MAX, 1.0, 0.5, 1e-300, 0.0, -0.0, -1e-300, -2.0, f64::MIN];
        let keys: Vec<u64> = scores.iter().map(|&s| key(s)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
        assert_eq!(key(0.0), key(-0.0));
    }

    #[test]
    fn spilled_runs_give_the_same_groups_as_memory() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(f64, u8)> = (0..5000u64)
            .map(|i| (((i * 7919) % 613) as f64 / 613.0, ((i % 3 == 0) as u8) | (((i % 64) as u8) << 1)))
            .collect();
        let mut memory = ScoreTally::new(dir.path());
        let mut disk = ScoreTally::with_limits(dir.path(), 97, 200);
        for &(score, tag) in &rows {
            memory.push(score, tag).unwrap();
            disk.push(score, tag).unwrap();
        }
        assert_eq!(memory.spilled(), 0);
        assert!(disk.spilled() > 3, "{}", disk.spilled());
        let (a, b) = (groups(memory), groups(disk));
        assert_eq!(a.len(), 613);
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|g| g.counts[0][0] + g.counts[0][1]).sum::<u64>(), 5000);
        // The largest score first.
        assert_eq!(a[0].counts[0].iter().sum::<u64>(), rows.iter().filter(|r| r.0 == 612.0 / 613.0).count() as u64);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "runs are removed");
    }
}

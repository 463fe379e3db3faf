//! Rows held in memory and subsets of them read as channels. k-fold cross-validation parses
//! the train and validation channels once, with the trainer's own readers (every content
//! type), and trains each fold on row index sets over that matrix, as the built-in slices its
//! DMatrix (`train_val_dmatrix.slice(train_idx)`): no fold is written out and parsed again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::rows::RowBlock;

/// Rows per block a subset yields (as the binary readers' blocks).
const BLOCK_ROWS: usize = 1 << 16;

/// Parsed rows of one or more channels, in input order.
#[derive(Debug, Default)]
pub struct RowStore {
    labels: Vec<f32>,
    /// Empty while no row carried a weight; then one per row (1 for rows without).
    weights: Vec<f32>,
    values: Vec<f32>,
    /// Sparse rows: row `r` is `offsets[r]..offsets[r + 1]` of `values` and `indices`.
    offsets: Vec<usize>,
    indices: Vec<u32>,
    /// Dense width, or the largest feature index + 1 of sparse rows.
    width: usize,
    sparse: bool,
    /// Per row: its file (index into `files`) and line, for messages.
    file_of: Vec<u32>,
    lines: Vec<u64>,
    files: Vec<Arc<PathBuf>>,
}

impl RowStore {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    pub fn labels(&self) -> &[f32] {
        &self.labels
    }

    /// Bytes the rows take.
    pub fn bytes(&self) -> u64 {
        ((self.labels.len() + self.weights.len() + self.values.len() + self.indices.len()) * 4
            + self.offsets.len() * 8
            + self.lines.len() * 12) as u64
    }

    /// Append a block; the readers have checked its width against the channel's earlier rows.
    /// A dense block after dense rows of another width, or sparse after dense, is refused.
    pub fn push(&mut self, block: &RowBlock) -> Result<(), super::DataError> {
        if block.rows() == 0 {
            return Ok(());
        }
        if self.rows() == 0 {
            self.sparse = block.sparse;
            self.offsets = if block.sparse { vec![0] } else { Vec::new() };
            self.width = if block.sparse { 0 } else { block.width };
        } else if block.sparse != self.sparse || (!block.sparse && block.width != self.width) {
            let now = if block.sparse { "sparse rows".to_string() } else { format!("{} feature columns", block.width) };
            let before = if self.sparse { "sparse".to_string() } else { format!("{} feature columns", self.width) };
            return Err(super::DataError::Malformed {
                at: block.at(0, None),
                problem: format!("{now}; the rows before (of the other channel) are {before}"),
            });
        }
        if !block.weights.is_empty() && self.weights.is_empty() {
            self.weights = vec![1.0; self.rows()];
        }
        if !self.weights.is_empty() {
            if block.weights.is_empty() {
                self.weights.extend(std::iter::repeat_n(1.0, block.rows()));
            } else {
                self.weights.extend_from_slice(&block.weights);
            }
        }
        self.labels.extend_from_slice(&block.labels);
        self.values.extend_from_slice(&block.values);
        if block.sparse {
            let base = self.indices.len();
            self.offsets.extend(block.offsets[1..].iter().map(|&o| base + o as usize));
            self.indices.extend_from_slice(&block.indices);
            let widest = block.indices.iter().max().map_or(0, |&i| i as usize + 1);
            self.width = self.width.max(widest);
        }
        if self.files.last().is_none_or(|f| !Arc::ptr_eq(f, &block.file)) {
            self.files.push(Arc::clone(&block.file));
        }
        let file = (self.files.len() - 1) as u32;
        self.file_of.extend(std::iter::repeat_n(file, block.rows()));
        self.lines.extend((0..block.rows()).map(|r| block.lines.get(r).copied().unwrap_or(0)));
        Ok(())
    }

    /// Rows `rows` (in that order) as one block.
    fn block(&self, rows: &[u32]) -> RowBlock {
        let first = rows.first().map_or(0, |&r| self.file_of[r as usize] as usize);
        let mut block = RowBlock {
            file: self.files.get(first).cloned().unwrap_or_default(),
            width: if self.sparse { 0 } else { self.width },
            sparse: self.sparse,
            offsets: if self.sparse { vec![0] } else { Vec::new() },
            ..Default::default()
        };
        for &r in rows {
            let r = r as usize;
            block.labels.push(self.labels[r]);
            block.lines.push(self.lines[r]);
            if !self.weights.is_empty() {
                block.weights.push(self.weights[r]);
            }
            if self.sparse {
                let span = self.offsets[r]..self.offsets[r + 1];
                block.values.extend_from_slice(&self.values[span.clone()]);
                block.indices.extend_from_slice(&self.indices[span]);
                block.offsets.push(block.indices.len() as u32);
            } else {
                block.values.extend_from_slice(&self.values[r * self.width..(r + 1) * self.width]);
            }
        }
        block
    }
}

/// Some rows of a store, in increasing order.
#[derive(Debug, Clone)]
pub struct RowSet {
    store: Arc<RowStore>,
    rows: Arc<Vec<u32>>,
}

impl RowSet {
    /// The rows of `store` whose `keep` is true.
    pub fn of(store: &Arc<RowStore>, keep: impl Fn(usize) -> bool) -> Self {
        let rows = (0..store.rows()).filter(|&r| keep(r)).map(|r| r as u32).collect();
        Self { store: Arc::clone(store), rows: Arc::new(rows) }
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The store's width: a slice keeps its matrix's columns, as DMatrix.slice does.
    pub fn width(&self) -> usize {
        self.store.width
    }

    /// The files the store's rows came from.
    pub fn files(&self) -> Vec<PathBuf> {
        self.store.files.iter().map(|f| (**f).clone()).collect()
    }

    /// The bytes this subset's rows take.
    pub fn bytes(&self) -> u64 {
        self.store.bytes() * self.rows.len() as u64 / self.store.rows().max(1) as u64
    }

    /// The rows in blocks, in order.
    pub fn blocks(&self) -> impl Iterator<Item = RowBlock> + '_ {
        self.rows.chunks(BLOCK_ROWS).map(|rows| self.store.block(rows))
    }
}

/// Where a pass reads its rows: a channel's files, or rows in memory.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Files(&'a Path),
    Rows(&'a RowSet),
}

impl<'a> From<&'a Path> for Source<'a> {
    fn from(path: &'a Path) -> Self {
        Self::Files(path)
    }
}

impl<'a> From<&'a PathBuf> for Source<'a> {
    fn from(path: &'a PathBuf) -> Self {
        Self::Files(path)
    }
}

impl<'a> From<&'a Channel> for Source<'a> {
    fn from(channel: &'a Channel) -> Self {
        match channel {
            Channel::Files(path) => Self::Files(path),
            Channel::Rows(rows) => Self::Rows(rows),
        }
    }
}

impl Source<'_> {
    /// What messages name: the path, or the first file the rows came from.
    pub fn shown(&self) -> PathBuf {
        match self {
            Self::Files(path) => path.to_path_buf(),
            Self::Rows(rows) => rows.files().into_iter().next().unwrap_or_default(),
        }
    }
}

/// A channel to train on: its files, or rows in memory.
#[derive(Debug, Clone)]
pub enum Channel {
    Files(PathBuf),
    Rows(RowSet),
}

impl Channel {
    /// The channel's directory, when it is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Files(path) => Some(path),
            Self::Rows(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse_block(rows: &[(f32, &[(u32, f32)])]) -> RowBlock {
        let mut b = RowBlock { sparse: true, offsets: vec![0], ..Default::default() };
        for (label, entries) in rows {
            b.labels.push(*label);
            b.lines.push(b.labels.len() as u64);
            for (i, v) in *entries {
                b.indices.push(*i);
                b.values.push(*v);
            }
            b.offsets.push(b.indices.len() as u32);
        }
        b
    }

    #[test]
    fn subsets_read_back_their_rows_and_keep_the_width() {
        let mut store = RowStore::default();
        store.push(&sparse_block(&[(1.0, &[(1, 0.5), (8, 2.0)]), (2.0, &[(3, 1.0)])])).unwrap();
        store.push(&sparse_block(&[(3.0, &[(2, 4.0)])])).unwrap();
        let store = Arc::new(store);
        let odd = RowSet::of(&store, |r| r != 1);
        let blocks: Vec<RowBlock> = odd.blocks().collect();
        assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        assert_eq!(b.labels, [1.0, 3.0]);
        assert_eq!(b.entries(0).collect::<Vec<_>>(), [(1, 0.5), (8, 2.0)]);
        assert_eq!(b.entries(1).collect::<Vec<_>>(), [(2, 4.0)]);
        assert_eq!(odd.width(), 9);
        let mut dense = RowBlock { width: 2, values: vec![1.0, 2.0], labels: vec![0.0], ..Default::default() };
        dense.lines.push(1);
        let mut mixed = RowStore::default();
        mixed.push(&dense).unwrap();
        let err = mixed.push(&sparse_block(&[(1.0, &[(0, 1.0)])])).unwrap_err().to_string();
        assert!(err.contains("sparse rows; the rows before (of the other channel) are 2 feature columns"), "{err}");
    }
}

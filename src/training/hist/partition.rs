//! Which rows are in which node: one array of row ids, each node's rows a contiguous range,
//! split stably into left then right (XGBoost's `RowSetCollection`), so every node sums its
//! rows in input order.

use rayon::prelude::*;

use super::matrix::{Bin, BinnedMatrix, Storage};
use crate::with_bins;

/// Rows below this are split on one core.
const PARALLEL_ROWS: usize = 1 << 16;

#[derive(Debug, Default)]
pub struct Partition {
    rows: Vec<u32>,
    /// `(start, end)` in `rows` per node id.
    ranges: Vec<(usize, usize)>,
}

/// How a split sends rows: by the bin of `feature`, missing values by `default_left`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub feature: usize,
    /// Rows whose bin is at most this go left (-1: none do).
    pub bin: i32,
    pub default_left: bool,
}

impl Partition {
    /// Every row in the root.
    pub fn reset(&mut self, rows: usize) {
        self.rows.clear();
        self.rows.extend(0..rows as u32);
        self.ranges.clear();
        self.ranges.push((0, rows));
    }

    pub fn rows_of(&self, node: usize) -> &[u32] {
        let (start, end) = self.ranges[node];
        &self.rows[start..end]
    }

    /// Split each `(node, left, right, rule)`; the nodes' ranges are disjoint.
    pub fn split(&mut self, matrix: &BinnedMatrix, splits: &[(usize, usize, usize, Rule)]) {
        let mut order: Vec<usize> = (0..splits.len()).collect();
        order.sort_by_key(|&i| self.ranges[splits[i].0].0);
        // Carve the disjoint ranges out of the row array.
        let mut jobs: Vec<(usize, &mut [u32])> = Vec::with_capacity(splits.len());
        let mut rest: &mut [u32] = &mut self.rows;
        let mut consumed = 0;
        for &i in &order {
            let (start, end) = self.ranges[splits[i].0];
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - consumed);
            let (mine, tail) = tail.split_at_mut(end - start);
            rest = tail;
            consumed = end;
            jobs.push((i, mine));
        }
        let lefts: Vec<(usize, usize)> =
            jobs.into_par_iter().map(|(i, rows)| (i, split_rows(matrix, rows, splits[i].3))).collect();
        for (i, n_left) in lefts {
            let (node, left, right, _) = splits[i];
            let (start, end) = self.ranges[node];
            let size = left.max(right) + 1;
            if self.ranges.len() < size {
                self.ranges.resize(size, (0, 0));
            }
            self.ranges[left] = (start, start + n_left);
            self.ranges[right] = (start + n_left, end);
        }
    }
}

/// Stable partition of `rows` by `rule`; returns the number that went left.
fn split_rows(matrix: &BinnedMatrix, rows: &mut [u32], rule: Rule) -> usize {
    if rows.len() < PARALLEL_ROWS || rayon::current_num_threads() == 1 {
        let mut right = Vec::new();
        return partition_in_place(matrix, rows, rule, &mut right);
    }
    let chunk = rows.len().div_ceil(rayon::current_num_threads() * 4).max(PARALLEL_ROWS / 4);
    let parts: Vec<(Vec<u32>, Vec<u32>)> = rows
        .par_chunks(chunk)
        .map(|part| {
            let (mut l, mut r) = (Vec::with_capacity(part.len()), Vec::new());
            for &row in part {
                if goes_left(matrix, row as usize, rule) {
                    l.push(row);
                } else {
                    r.push(row);
                }
            }
            (l, r)
        })
        .collect();
    let mut at = 0;
    for (l, _) in &parts {
        rows[at..at + l.len()].copy_from_slice(l);
        at += l.len();
    }
    let n_left = at;
    for (_, r) in &parts {
        rows[at..at + r.len()].copy_from_slice(r);
        at += r.len();
    }
    n_left
}

fn partition_in_place(matrix: &BinnedMatrix, rows: &mut [u32], rule: Rule, right: &mut Vec<u32>) -> usize {
    right.clear();
    let mut w = 0;
    for i in 0..rows.len() {
        let row = rows[i];
        if goes_left(matrix, row as usize, rule) {
            rows[w] = row;
            w += 1;
        } else {
            right.push(row);
        }
    }
    rows[w..].copy_from_slice(right);
    w
}

#[inline]
fn goes_left(matrix: &BinnedMatrix, row: usize, rule: Rule) -> bool {
    match &matrix.storage {
        Storage::Dense { bins, missing } => {
            let b = with_bins!(bins, v => v[row * matrix.features + rule.feature].get());
            if b == *missing { rule.default_left } else { b as i64 <= i64::from(rule.bin) }
        }
        Storage::Sparse { .. } => match matrix.bin(row, rule.feature) {
            None => rule.default_left,
            Some(b) => b as i64 <= i64::from(rule.bin),
        },
    }
}

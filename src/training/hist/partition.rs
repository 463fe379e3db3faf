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
    /// Where a split writes its right rows (and, on several cores, its left ones) before
    /// they are put back in order.
    scratch: Vec<u32>,
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
        self.scratch.resize(rows, 0);
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
        // Carve the disjoint ranges out of the row and scratch arrays.
        let mut jobs: Vec<(usize, &mut [u32], &mut [u32])> = Vec::with_capacity(splits.len());
        let (mut rest, mut rest_scratch): (&mut [u32], &mut [u32]) = (&mut self.rows, &mut self.scratch);
        let mut consumed = 0;
        for &i in &order {
            let (start, end) = self.ranges[splits[i].0];
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - consumed);
            let (mine, tail) = tail.split_at_mut(end - start);
            let (_, scratch_tail) = std::mem::take(&mut rest_scratch).split_at_mut(start - consumed);
            let (scratch, scratch_tail) = scratch_tail.split_at_mut(end - start);
            rest = tail;
            rest_scratch = scratch_tail;
            consumed = end;
            jobs.push((i, mine, scratch));
        }
        let lefts: Vec<(usize, usize)> = jobs
            .into_par_iter()
            .map(|(i, rows, scratch)| (i, split_rows(matrix, rows, scratch, splits[i].3)))
            .collect();
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
fn split_rows(matrix: &BinnedMatrix, rows: &mut [u32], scratch: &mut [u32], rule: Rule) -> usize {
    let (f, bin, default_left) = (rule.feature, i64::from(rule.bin), rule.default_left);
    match (&matrix.storage, &matrix.columns) {
        (Storage::Dense { missing, .. }, Some(columns)) => {
            let missing = *missing;
            with_bins!(columns, v => {
                let column = &v[f * matrix.rows..(f + 1) * matrix.rows];
                split_by(
                    rows,
                    scratch,
                    |r| {
                        let b = column[r].get();
                        if b == missing { default_left } else { i64::from(b) <= bin }
                    },
                    |r| super::histogram::prefetch(column.as_ptr().wrapping_add(r)),
                )
            })
        }
        (Storage::Dense { bins, missing }, None) => {
            let (width, missing) = (matrix.features, *missing);
            with_bins!(bins, v => split_by(
                rows,
                scratch,
                |r| {
                    let b = v[r * width + f].get();
                    if b == missing { default_left } else { i64::from(b) <= bin }
                },
                |r| super::histogram::prefetch(v.as_ptr().wrapping_add(r * width + f)),
            ))
        }
        (Storage::Sparse { .. }, _) => split_by(
            rows,
            scratch,
            |r| match matrix.bin(r, f) {
                None => default_left,
                Some(b) => i64::from(b) <= bin,
            },
            |_| {},
        ),
    }
}

/// Rows ahead whose data is prefetched.
const AHEAD: usize = 16;

/// Stable partition by `goes_left(row)`, on several cores for a large node; `prefetch(row)`
/// asks for a later row's data ahead of its turn. `scratch` is as long as `rows`.
#[inline]
fn split_by(
    rows: &mut [u32],
    scratch: &mut [u32],
    goes_left: impl Fn(usize) -> bool + Sync,
    prefetch: impl Fn(usize) + Sync,
) -> usize {
    if rows.len() < PARALLEL_ROWS || rayon::current_num_threads() == 1 {
        let (mut l, mut r) = (0, 0);
        for i in 0..rows.len() {
            if let Some(&ahead) = rows.get(i + AHEAD) {
                prefetch(ahead as usize);
            }
            let row = rows[i];
            // Left rows move forward in place (l <= i); right ones wait in the scratch.
            if goes_left(row as usize) {
                rows[l] = row;
                l += 1;
            } else {
                scratch[r] = row;
                r += 1;
            }
        }
        rows[l..].copy_from_slice(&scratch[..r]);
        return l;
    }
    // Each chunk writes its left rows at the front of its scratch range, its right rows at
    // the back (reversed); then all left rows go back in order, then all right rows.
    let chunk = rows.len().div_ceil(rayon::current_num_threads() * 4).max(PARALLEL_ROWS / 4);
    let counts: Vec<(usize, usize)> = rows
        .par_chunks(chunk)
        .zip(scratch.par_chunks_mut(chunk))
        .map(|(part, out)| {
            let (mut l, mut r) = (0, 0);
            let n = out.len();
            for (i, &row) in part.iter().enumerate() {
                if let Some(&ahead) = part.get(i + AHEAD) {
                    prefetch(ahead as usize);
                }
                if goes_left(row as usize) {
                    out[l] = row;
                    l += 1;
                } else {
                    r += 1;
                    out[n - r] = row;
                }
            }
            (l, r)
        })
        .collect();
    let mut at = 0;
    for (c, &(l, _)) in counts.iter().enumerate() {
        rows[at..at + l].copy_from_slice(&scratch[c * chunk..c * chunk + l]);
        at += l;
    }
    let n_left = at;
    for (c, &(_, r)) in counts.iter().enumerate() {
        let end = ((c + 1) * chunk).min(scratch.len());
        for (k, &row) in scratch[end - r..end].iter().rev().enumerate() {
            rows[at + k] = row;
        }
        at += r;
    }
    n_left
}

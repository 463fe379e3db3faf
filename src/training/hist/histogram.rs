//! Gradient histograms: per node, the sum of its rows' gradients in every bin, accumulated in
//! f64 in row order (XGBoost's `BuildHist`), split across cores by row ranges. A sibling's
//! histogram is its parent's minus the one built (`SubtractionHist`).

use rayon::prelude::*;

use super::evaluate::Stats;
use super::matrix::{Bin, BinnedMatrix, Storage};
use crate::with_bins;
use hessboost::objective::GradPair;

/// Rows per task when one node's histogram is split across cores.
const ROWS_PER_TASK: usize = 1 << 15;

/// Histogram of the rows `rows` (row ids, in partition order).
pub fn build(matrix: &BinnedMatrix, offsets: &[u32], gpair: &[GradPair], rows: &[u32], total_bins: usize) -> Vec<Stats> {
    let threads = rayon::current_num_threads();
    if threads == 1 || rows.len() < 2 * ROWS_PER_TASK {
        let mut hist = vec![Stats::default(); total_bins];
        accumulate(matrix, offsets, gpair, rows, &mut hist);
        return hist;
    }
    let chunk = rows.len().div_ceil(threads).max(ROWS_PER_TASK);
    let partials: Vec<Vec<Stats>> = rows
        .par_chunks(chunk)
        .map(|part| {
            let mut hist = vec![Stats::default(); total_bins];
            accumulate(matrix, offsets, gpair, part, &mut hist);
            hist
        })
        .collect();
    let mut iter = partials.into_iter();
    let mut hist = iter.next().unwrap_or_else(|| vec![Stats::default(); total_bins]);
    for part in iter {
        for (a, b) in hist.iter_mut().zip(&part) {
            a.add(b.g, b.h);
        }
    }
    hist
}

/// `parent - built`, bin by bin.
pub fn subtract(parent: &[Stats], built: &[Stats]) -> Vec<Stats> {
    parent.iter().zip(built).map(|(p, b)| Stats::minus(*p, *b)).collect()
}

fn accumulate(matrix: &BinnedMatrix, offsets: &[u32], gpair: &[GradPair], rows: &[u32], hist: &mut [Stats]) {
    match &matrix.storage {
        Storage::Dense { bins, missing: u32::MAX } => {
            with_bins!(bins, b => dense::<_, false>(b, matrix.features, offsets, gpair, rows, hist, u32::MAX))
        }
        Storage::Dense { bins, missing } => {
            with_bins!(bins, b => dense::<_, true>(b, matrix.features, offsets, gpair, rows, hist, *missing))
        }
        Storage::Sparse { row_ptr, features, bins } => {
            with_bins!(bins, b => sparse(row_ptr, features, b, offsets, gpair, rows, hist))
        }
    }
}

#[inline(never)]
fn dense<B: Bin, const ANY_MISSING: bool>(
    bins: &[B],
    width: usize,
    offsets: &[u32],
    gpair: &[GradPair],
    rows: &[u32],
    hist: &mut [Stats],
    missing: u32,
) {
    let offsets = &offsets[..width];
    for &r in rows {
        let r = r as usize;
        let gp = gpair[r];
        let (g, h) = (f64::from(gp.grad), f64::from(gp.hess));
        let row = &bins[r * width..(r + 1) * width];
        for (b, &off) in row.iter().zip(offsets) {
            let b = b.get();
            if !ANY_MISSING || b != missing {
                let cell = &mut hist[(off + b) as usize];
                cell.g += g;
                cell.h += h;
            }
        }
    }
}

#[inline(never)]
fn sparse<B: Bin>(
    row_ptr: &[u64],
    features: &[u32],
    bins: &[B],
    offsets: &[u32],
    gpair: &[GradPair],
    rows: &[u32],
    hist: &mut [Stats],
) {
    for &r in rows {
        let r = r as usize;
        let gp = gpair[r];
        let (g, h) = (f64::from(gp.grad), f64::from(gp.hess));
        let span = row_ptr[r] as usize..row_ptr[r + 1] as usize;
        for (&f, b) in features[span.clone()].iter().zip(&bins[span]) {
            let cell = &mut hist[(offsets[f as usize] + b.get()) as usize];
            cell.g += g;
            cell.h += h;
        }
    }
}

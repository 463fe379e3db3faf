//! Gradient histograms: per node, the sum of its rows' gradients in every bin, accumulated in
//! f64 in row order (XGBoost's `BuildHist`). Cores split the features, never the rows: each
//! bin is summed by one core in row order, so the sums are single-threaded XGBoost's on any
//! number of cores, and no partial histograms need adding up. A sibling's histogram is its
//! parent's minus the one built (`SubtractionHist`).

use rayon::prelude::*;

use super::evaluate::Stats;
use super::matrix::{Bin, BinnedMatrix, Storage};
use crate::with_bins;
use hessboost::objective::GradPair;

/// Rows below which one core builds the whole histogram.
const PARALLEL_ROWS: usize = 1 << 12;

/// Histogram of the rows `rows` (row ids, in partition order). `offsets` are the cuts'
/// per-feature bin offsets (`features + 1` entries).
pub fn build(matrix: &BinnedMatrix, offsets: &[u32], gpair: &[GradPair], rows: &[u32], total_bins: usize) -> Vec<Stats> {
    let mut hist = vec![Stats::default(); total_bins];
    let features = matrix.features;
    let parts = if rows.len() < PARALLEL_ROWS { 1 } else { rayon::current_num_threads().min(features).max(1) };
    if parts == 1 {
        accumulate(matrix, offsets, gpair, rows, 0..features, &mut hist);
        return hist;
    }
    // Feature ranges of about equal bins; each owns a contiguous slice of the histogram.
    let mut bounds = vec![0usize];
    for p in 1..parts {
        let target = (total_bins * p / parts) as u32;
        let f = offsets.partition_point(|&o| o < target).min(features);
        if f > *bounds.last().unwrap() {
            bounds.push(f);
        }
    }
    bounds.push(features);
    let mut slices = Vec::with_capacity(bounds.len() - 1);
    let mut rest: &mut [Stats] = &mut hist;
    for w in bounds.windows(2) {
        let len = (offsets[w[1]] - offsets[w[0]]) as usize;
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        slices.push((w[0]..w[1], mine));
    }
    slices.into_par_iter().for_each(|(range, slice)| {
        let base = offsets[range.start] as usize;
        let local: Vec<u32> = offsets[range.start..=range.end].iter().map(|&o| o - base as u32).collect();
        accumulate(matrix, &local, gpair, rows, range, slice);
    });
    hist
}

/// `parent - built`, bin by bin.
pub fn subtract(parent: &[Stats], built: &[Stats]) -> Vec<Stats> {
    parent.iter().zip(built).map(|(p, b)| Stats::minus(*p, *b)).collect()
}

/// Add the rows into `hist`, which holds the bins of `features`; `offsets[i]` is where
/// feature `features.start + i` starts in `hist` (`features.len() + 1` entries).
fn accumulate(
    matrix: &BinnedMatrix,
    offsets: &[u32],
    gpair: &[GradPair],
    rows: &[u32],
    features: std::ops::Range<usize>,
    hist: &mut [Stats],
) {
    match &matrix.storage {
        Storage::Dense { bins, missing: u32::MAX } => {
            with_bins!(bins, b => dense::<_, false>(b, matrix.features, features, offsets, gpair, rows, hist, u32::MAX))
        }
        Storage::Dense { bins, missing } => {
            with_bins!(bins, b => dense::<_, true>(b, matrix.features, features, offsets, gpair, rows, hist, *missing))
        }
        Storage::Sparse { row_ptr, features: cols, bins } => {
            with_bins!(bins, b => sparse(row_ptr, cols, b, features, offsets, gpair, rows, hist))
        }
    }
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn dense<B: Bin, const ANY_MISSING: bool>(
    bins: &[B],
    width: usize,
    features: std::ops::Range<usize>,
    offsets: &[u32],
    gpair: &[GradPair],
    rows: &[u32],
    hist: &mut [Stats],
    missing: u32,
) {
    let n = features.end - features.start;
    let offsets = &offsets[..=n];
    // Bounds checked once, not per value: every row id is a row of the matrix and of
    // `gpair`, and a feature's bins are below its bin count (the matrix was binned with
    // these cuts), so `offsets[i] + bin < offsets[i + 1] <= hist.len()`.
    assert!(rows.iter().all(|&r| (r as usize) < gpair.len() && (r as usize + 1) * width <= bins.len()));
    assert!(features.end <= width && offsets[n] as usize <= hist.len());
    let (bins_ptr, hist_ptr) = (bins.as_ptr(), hist.as_mut_ptr());
    for (i, &r) in rows.iter().enumerate() {
        // Rows come in partition order: fetch a later row's data ahead of its turn.
        if let Some(&ahead) = rows.get(i + PREFETCH) {
            prefetch(gpair.as_ptr().wrapping_add(ahead as usize));
            prefetch(bins_ptr.wrapping_add(ahead as usize * width + features.start));
        }
        let r = r as usize;
        // SAFETY: `r < gpair.len()` and the row's bins lie in `bins` (asserted above).
        let gp = unsafe { *gpair.get_unchecked(r) };
        let (g, h) = (f64::from(gp.grad), f64::from(gp.hess));
        let row = unsafe { bins_ptr.add(r * width + features.start) };
        for k in 0..n {
            // SAFETY: `k < n` so the bin is inside the row; the cell index is below
            // `offsets[k + 1] <= hist.len()` (asserted above).
            unsafe {
                let b = (*row.add(k)).get();
                if !ANY_MISSING || b != missing {
                    let cell = &mut *hist_ptr.add((*offsets.get_unchecked(k) + b) as usize);
                    cell.g += g;
                    cell.h += h;
                }
            }
        }
    }
}

/// Rows ahead whose data is prefetched.
const PREFETCH: usize = 16;

#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn sparse<B: Bin>(
    row_ptr: &[u64],
    cols: &[u32],
    bins: &[B],
    features: std::ops::Range<usize>,
    offsets: &[u32],
    gpair: &[GradPair],
    rows: &[u32],
    hist: &mut [Stats],
) {
    let all = features.start == 0 && features.end + 1 == offsets.len();
    for &r in rows {
        let r = r as usize;
        let gp = gpair[r];
        let (g, h) = (f64::from(gp.grad), f64::from(gp.hess));
        let mut span = row_ptr[r] as usize..row_ptr[r + 1] as usize;
        if !all {
            // This core's features only: entries are sorted by feature.
            let row_cols = &cols[span.clone()];
            let lo = row_cols.partition_point(|&f| (f as usize) < features.start);
            let hi = row_cols.partition_point(|&f| (f as usize) < features.end);
            span = span.start + lo..span.start + hi;
        }
        for (&f, b) in cols[span.clone()].iter().zip(&bins[span]) {
            let cell = &mut hist[(offsets[f as usize - features.start] + b.get()) as usize];
            cell.g += g;
            cell.h += h;
        }
    }
}

//! Gradient histograms: per node, the sum of its rows' gradients in every bin, accumulated in
//! f64 in row order (XGBoost's `BuildHist`). Cores split the features, never the rows: each
//! bin is summed by one core in row order, so the sums are single-threaded XGBoost's on any
//! number of cores, and no partial histograms need adding up. A sibling's histogram is its
//! parent's minus the one built (`SubtractionHist`).
//!
//! The same loops build the distributed trainer's fixed-point histograms: generic over what a
//! bin accumulates ([`Accumulator`]): f64 sums of gradients, or i64 sums of quantized ones.

use rayon::prelude::*;

use super::evaluate::Stats;
use super::matrix::{Bin, BinnedMatrix, Storage};
use crate::with_bins;
use hessboost::objective::GradPair;

/// Rows below which one core builds the whole histogram.
const PARALLEL_ROWS: usize = 1 << 12;

/// What one bin of a histogram sums, from one row's gradient (`Input`), converted once per
/// row (`Row`) and added to every bin the row falls in.
pub trait Accumulator: Copy + Default + Send + Sync {
    type Input: Copy + Sync;
    type Row: Copy;
    fn row(input: Self::Input) -> Self::Row;
    fn add(&mut self, row: Self::Row);
}

/// XGBoost's: f64 sums of f32 gradients.
impl Accumulator for Stats {
    type Input = GradPair;
    type Row = (f64, f64);
    #[inline(always)]
    fn row(p: GradPair) -> (f64, f64) {
        (f64::from(p.grad), f64::from(p.hess))
    }
    #[inline(always)]
    fn add(&mut self, (g, h): (f64, f64)) {
        self.g += g;
        self.h += h;
    }
}

/// Fixed point: integer sums of quantized gradients, exact in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntSums {
    pub g: i64,
    pub h: i64,
}

impl Accumulator for IntSums {
    type Input = (i32, i32);
    type Row = (i64, i64);
    #[inline(always)]
    fn row((g, h): (i32, i32)) -> (i64, i64) {
        (i64::from(g), i64::from(h))
    }
    #[inline(always)]
    fn add(&mut self, (g, h): (i64, i64)) {
        self.g += g;
        self.h += h;
    }
}

/// Histogram of the rows `rows` (row ids, in partition order). `offsets` are the cuts'
/// per-feature bin offsets (`features + 1` entries).
pub fn build<A: Accumulator>(
    matrix: &BinnedMatrix,
    offsets: &[u32],
    gpair: &[A::Input],
    rows: &[u32],
    total_bins: usize,
) -> Vec<A> {
    let mut hist = vec![A::default(); total_bins];
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
    let mut rest: &mut [A] = &mut hist;
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
fn accumulate<A: Accumulator>(
    matrix: &BinnedMatrix,
    offsets: &[u32],
    gpair: &[A::Input],
    rows: &[u32],
    features: std::ops::Range<usize>,
    hist: &mut [A],
) {
    match &matrix.storage {
        Storage::Dense { bins, missing: u32::MAX } => {
            with_bins!(bins, b => dense::<_, _, false>(b, matrix.features, features, offsets, gpair, rows, hist, u32::MAX))
        }
        Storage::Dense { bins, missing } => {
            with_bins!(bins, b => dense::<_, _, true>(b, matrix.features, features, offsets, gpair, rows, hist, *missing))
        }
        Storage::Sparse { row_ptr, features: cols, bins } => {
            // One core's share of the features, or all of them (then no entry is skipped).
            let all = features.start == 0 && features.end == matrix.features;
            with_bins!(bins, b => sparse(row_ptr, cols, b, features, all, offsets, gpair, rows, hist))
        }
    }
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn dense<A: Accumulator, B: Bin, const ANY_MISSING: bool>(
    bins: &[B],
    width: usize,
    features: std::ops::Range<usize>,
    offsets: &[u32],
    gpair: &[A::Input],
    rows: &[u32],
    hist: &mut [A],
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
        let grad = A::row(unsafe { *gpair.get_unchecked(r) });
        let row = unsafe { bins_ptr.add(r * width + features.start) };
        for k in 0..n {
            // SAFETY: `k < n` so the bin is inside the row; the cell index is below
            // `offsets[k + 1] <= hist.len()` (asserted above).
            unsafe {
                let b = (*row.add(k)).get();
                if !ANY_MISSING || b != missing {
                    (*hist_ptr.add((*offsets.get_unchecked(k) + b) as usize)).add(grad);
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
fn sparse<A: Accumulator, B: Bin>(
    row_ptr: &[u64],
    cols: &[u32],
    bins: &[B],
    features: std::ops::Range<usize>,
    all: bool,
    offsets: &[u32],
    gpair: &[A::Input],
    rows: &[u32],
    hist: &mut [A],
) {
    for &r in rows {
        let r = r as usize;
        let grad = A::row(gpair[r]);
        let mut span = row_ptr[r] as usize..row_ptr[r + 1] as usize;
        if !all {
            // This core's features only: entries are sorted by feature.
            let row_cols = &cols[span.clone()];
            let lo = row_cols.partition_point(|&f| (f as usize) < features.start);
            let hi = row_cols.partition_point(|&f| (f as usize) < features.end);
            span = span.start + lo..span.start + hi;
        }
        for (&f, b) in cols[span.clone()].iter().zip(&bins[span]) {
            hist[(offsets[f as usize - features.start] + b.get()) as usize].add(grad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sparse rows over 60 features, enough rows that cores split the features: the split
    /// build equals one core's (a core's share used to take every entry of a row, and an
    /// entry past the share indexed past its slice).
    #[test]
    fn cores_splitting_sparse_features_build_one_cores_histogram() {
        let (features, bins_per_feature) = (60usize, 4u32);
        let offsets: Vec<u32> = (0..=features as u32).map(|f| f * bins_per_feature).collect();
        let total_bins = features * bins_per_feature as usize;
        let rows = 2 * PARALLEL_ROWS;
        let mut matrix = BinnedMatrix::new(features, false, bins_per_feature - 1, false, rows);
        let (mut gpair, mut total_h) = (Vec::new(), 0i64);
        for r in 0..rows as u32 {
            let entries = (0..8u32).map(|k| ((r * 7 + k * 13) % features as u32, (r + k) % bins_per_feature));
            let mut entries: Vec<(u32, u32)> = entries.collect();
            entries.sort();
            entries.dedup_by_key(|e| e.0);
            let h = 1 + (r % 3) as i32;
            total_h += i64::from(h) * entries.len() as i64;
            matrix.push_sparse_row(entries.into_iter());
            gpair.push(((r % 17) as i32 - 8, h));
        }
        let ids: Vec<u32> = (0..rows as u32).collect();
        let one_core = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let two_cores = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let serial: Vec<IntSums> = one_core.install(|| build(&matrix, &offsets, &gpair, &ids, total_bins));
        let split: Vec<IntSums> = two_cores.install(|| build(&matrix, &offsets, &gpair, &ids, total_bins));
        assert_eq!(serial.iter().map(|s| s.h).sum::<i64>(), total_h, "every entry counted once");
        assert_eq!(split, serial);
    }
}

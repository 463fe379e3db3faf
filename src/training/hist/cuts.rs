//! Histogram cut points: XGBoost's `HistogramCuts` (`src/common/hist_util.h`) and how
//! `MakeCuts` derives them from each feature's sketch. A value's bin is the index of the
//! first cut strictly greater than it, clamped to the feature's last bin.

use super::sketch::{self, Sketch};

/// The literal `1e-5f` XGBoost pads the extremes with.
const EPS5: f32 = 1e-5;

/// Cut points of every feature, in XGBoost's layout.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Cuts {
    /// Feature `f` owns `values[ptrs[f]..ptrs[f + 1]]`; every feature has at least one cut.
    pub ptrs: Vec<u32>,
    /// Upper bounds of the bins, strictly increasing within a feature.
    pub values: Vec<f32>,
    /// Below every value of the feature: the split value of a split at its first bin.
    pub min_values: Vec<f32>,
}

/// How many of the sorted `cuts` are at most `x`.
#[inline]
pub fn count_at_most(cuts: &[f32], x: f32) -> usize {
    cuts.partition_point(|&c| c <= x)
}

/// An unsigned key that orders as `f32::total_cmp` does.
#[inline]
fn order_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | (1 << 31) }
}

/// `count_at_most` for every feature, fast: binning runs once for every value of the data,
/// and a binary search over random values mispredicts half its branches. Each feature with
/// many cuts gets a table over its cuts' key range that starts a short forward scan.
pub struct Binner<'a> {
    cuts: &'a Cuts,
    tables: Vec<Option<Table>>,
}

struct Table {
    low: u32,
    shift: u32,
    /// Per bucket: the cuts whose key is below the bucket's first key.
    start: Vec<u16>,
}

const BUCKETS: usize = 1024;

impl<'a> Binner<'a> {
    pub fn new(cuts: &'a Cuts) -> Self {
        let tables = (0..cuts.features())
            .map(|f| {
                let c = cuts.feature_cuts(f);
                if c.len() < 32 || c.len() > usize::from(u16::MAX) {
                    return None;
                }
                let (low, high) = (order_key(c[0]), order_key(c[c.len() - 1]));
                let span = u64::from(high - low) + 1;
                let shift = (64 - (span.saturating_sub(1) / BUCKETS as u64).leading_zeros()).min(31);
                let mut start = Vec::with_capacity(BUCKETS);
                let mut i = 0usize;
                for b in 0..BUCKETS as u64 {
                    let first = u64::from(low) + (b << shift);
                    while i < c.len() && u64::from(order_key(c[i])) < first {
                        i += 1;
                    }
                    start.push(i as u16);
                }
                Some(Table { low, shift, start })
            })
            .collect();
        Self { cuts, tables }
    }

    /// How many of feature `f`'s cuts are at most `x` (x not NaN).
    #[inline]
    pub fn count_at_most(&self, f: usize, x: f32) -> usize {
        let c = self.cuts.feature_cuts(f);
        let Some(t) = &self.tables[f] else { return count_at_most(c, x) };
        let key = order_key(x);
        if key < t.low {
            return count_at_most(&c[..1], x);
        }
        let bucket = (((key - t.low) >> t.shift) as usize).min(BUCKETS - 1);
        let mut i = usize::from(t.start[bucket]);
        while i < c.len() && c[i] <= x {
            i += 1;
        }
        i
    }

    /// XGBoost's bin of `x` for feature `f` (`Cuts::bin`).
    #[inline]
    pub fn bin(&self, f: usize, x: f32) -> u32 {
        self.count_at_most(f, x).min(self.cuts.feature_cuts(f).len() - 1) as u32
    }
}

/// `c + |c| + 1e-5f`, evaluated in f64 and rounded once (C's `fabs(double)` promotes).
fn upper_bound(c: f32) -> f32 {
    (f64::from(c) + (f64::from(c).abs() + f64::from(EPS5))) as f32
}

impl Cuts {
    pub fn features(&self) -> usize {
        self.min_values.len()
    }

    pub fn total_bins(&self) -> usize {
        self.values.len()
    }

    pub fn feature_range(&self, f: usize) -> std::ops::Range<usize> {
        self.ptrs[f] as usize..self.ptrs[f + 1] as usize
    }

    pub fn feature_cuts(&self, f: usize) -> &[f32] {
        &self.values[self.feature_range(f)]
    }

    /// The most bins any one feature has.
    pub fn max_bins_per_feature(&self) -> usize {
        self.ptrs.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
    }

    /// The bin of `x` within feature `f` (0-based, local to the feature): the first cut
    /// strictly greater than `x`, clamped to the last bin (`SearchBin`).
    #[inline]
    pub fn bin(&self, f: usize, x: f32) -> u32 {
        let cuts = self.feature_cuts(f);
        count_at_most(cuts, x).min(cuts.len() - 1) as u32
    }

    /// An empty builder for `features` features.
    pub fn builder(features: usize) -> Self {
        Self { ptrs: vec![0], values: Vec::new(), min_values: Vec::with_capacity(features) }
    }

    /// Append the next feature's cuts, made from its sketch as `MakeCuts` does. `col_size`
    /// counts the feature's present entries (zero weights included).
    pub fn push_feature(&mut self, sketch: Option<Sketch>, col_size: usize, max_bin: usize) {
        let summary = match sketch {
            Some(s) if col_size > 0 => s.summary(),
            _ => Vec::new(),
        };
        self.push_summary(&summary, col_size, max_bin);
    }

    /// The cuts of one feature from its (unpruned) summary.
    pub fn push_summary(&mut self, summary: &[sketch::Entry], col_size: usize, max_bin: usize) {
        if col_size == 0 {
            self.min_values.push(EPS5);
            self.values.push(upper_bound(EPS5));
        } else if summary.is_empty() {
            // Present entries whose every weight is zero: the spec's reference (§8) path.
            let min = (0.0f64 - f64::from(EPS5)) as f32;
            self.min_values.push(min);
            self.values.push(upper_bound(min));
        } else {
            let num_cuts = col_size.min(max_bin * 8);
            let s = sketch::prune(summary, num_cuts);
            let max_num_bins = num_cuts.min(max_bin);
            let a = sketch::prune(&s, max_num_bins + 1);
            let first = f64::from(a[0].value);
            self.min_values.push(((first - first.abs()) - f64::from(EPS5)) as f32);
            self.values.extend(a[1..a.len().min(max_num_bins)].iter().map(|e| e.value));
            self.values.push(upper_bound(a[a.len() - 1].value));
        }
        self.ptrs.push(self.values.len() as u32);
    }
}

/// XGBoost's cuts of a dense matrix in memory (`rows x cols` row-major, NaN = missing),
/// each column sketched in row order.
pub fn from_dense(values: &[f32], cols: usize, weights: Option<&[f32]>, max_bin: usize) -> Cuts {
    let rows = values.len() / cols.max(1);
    let mut cuts = Cuts::builder(cols);
    for f in 0..cols {
        let column = (0..rows).map(|r| values[r * cols + f]).filter(|v| !v.is_nan());
        let col_size = column.clone().count();
        let mut sketch = Sketch::for_column(col_size, max_bin);
        for (r, v) in (0..rows).map(|r| (r, values[r * cols + f])).filter(|(_, v)| !v.is_nan()) {
            sketch.push(v, weights.map_or(1.0, |w| w[r]));
        }
        cuts.push_feature(Some(sketch), col_size, max_bin);
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts_of(values: &[f32], max_bin: usize) -> (f32, Vec<f32>) {
        let present: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        let mut sketch = Sketch::for_column(present.len(), max_bin);
        for &v in &present {
            sketch.push(v, 1.0);
        }
        let mut cuts = Cuts::builder(1);
        cuts.push_feature(Some(sketch), present.len(), max_bin);
        (cuts.min_values[0], cuts.values)
    }

    /// The special cases the spec verified against XGBoost (§7).
    #[test]
    fn special_columns_match_xgboost() {
        let (min, cuts) = cuts_of(&[3.5; 10], 256);
        assert_eq!((min, cuts), (-1e-5, vec![7.00001]));
        let (min, cuts) = cuts_of(&[f32::NAN; 4], 256);
        assert_eq!(min, 1e-5);
        assert_eq!(cuts, [3e-5_f32]);
        let (min, cuts) = cuts_of(&[-2.0, -7.0, -2.0], 256);
        assert_eq!((min, cuts), (-14.00001, vec![-2.0, 1e-5]));
        let (min, cuts) = cuts_of(&[0.0; 5], 256);
        assert_eq!((min, cuts), (-1e-5, vec![1e-5]));
    }

    #[test]
    fn branchless_count_is_partition_point() {
        let cuts = [1.0, 2.0, 2.5, 4.0, 8.0];
        for n in 0..=cuts.len() {
            for x in [0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 8.0, 9.0, f32::NAN] {
                assert_eq!(count_at_most(&cuts[..n], x), cuts[..n].partition_point(|&c| c <= x), "{n} {x}");
            }
        }
    }

    #[test]
    fn the_binner_counts_as_the_search_does() {
        let mut values: Vec<f32> = (0..300).map(|i| ((i as f32) * 0.37).sin() * 10f32.powi(i % 7 - 3)).collect();
        values.extend([0.0, -0.0, 1e-30, -1e30]);
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        sorted.dedup();
        let mut cuts = Cuts::builder(1);
        cuts.values = sorted.clone();
        cuts.ptrs = vec![0, sorted.len() as u32];
        cuts.min_values = vec![-2e30];
        let binner = Binner::new(&cuts);
        assert!(binner.tables[0].is_some());
        for x in values.iter().chain(&[f32::MAX, f32::MIN, 5e-7, -5e-7, 1234.5]) {
            assert_eq!(binner.count_at_most(0, *x), count_at_most(&sorted, *x), "{x}");
        }
    }

    #[test]
    fn bins_are_upper_bounds_clamped_to_the_last() {
        let mut cuts = Cuts::builder(1);
        cuts.ptrs = vec![0, 3];
        cuts.values = vec![1.0, 2.0, 3.5];
        cuts.min_values = vec![-1.0];
        assert_eq!([0.5, 1.0, 1.5, 2.0, 3.0, 9.0].map(|x| cuts.bin(0, x)), [0, 1, 1, 2, 2, 2]);
    }
}

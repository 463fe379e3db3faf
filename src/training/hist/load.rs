//! Reading a channel into quantized form without ever holding its float matrix: a scan
//! (rows, labels, weights, each feature's present count), a sketch pass (XGBoost's quantile
//! sketch per feature, in row order) and a binning pass. A set that is only predicted on
//! (validation) is binned in one pass against the training cuts.

use std::collections::HashMap;

use rayon::prelude::*;

use super::boost::DataSet;
use super::cuts::Cuts;
use super::matrix::BinnedMatrix;
use super::sketch::Sketch;
use crate::data::DataError;
use crate::data::blocks::{self, BlockSummary};
use crate::data::memory::Source;
use crate::data::rows::{Layout, RowBlock};

/// The features that occur, and where each sits in the compact numbering the trainer uses.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    /// Compact index -> the feature's index in the data (libsvm index, CSV column).
    pub original: Vec<u32>,
    /// Features XGBoost would record: the largest index + 1.
    pub num_feature: usize,
    pub(super) dense: bool,
}

impl FeatureMap {
    /// The compact index of data feature `index`, if it occurs in training.
    pub fn compact(&self, index: u32) -> Option<u32> {
        if self.dense {
            return ((index as usize) < self.original.len()).then_some(index);
        }
        self.original.binary_search(&index).ok().map(|i| i as u32)
    }

    pub fn len(&self) -> usize {
        self.original.len()
    }

    pub fn is_empty(&self) -> bool {
        self.original.is_empty()
    }
}

/// Labels and weights gathered in input order.
#[derive(Default)]
pub(super) struct Targets {
    pub(super) labels: Vec<f32>,
    pub(super) weights: Option<Vec<f32>>,
}

impl Targets {
    pub(super) fn take(&mut self, block: &RowBlock) {
        if !block.weights.is_empty() || self.weights.is_some() {
            let w = self.weights.get_or_insert_with(|| vec![1.0; self.labels.len()]);
            if block.weights.is_empty() {
                w.extend(std::iter::repeat_n(1.0, block.rows()));
            } else {
                w.extend_from_slice(&block.weights);
            }
        }
        self.labels.extend_from_slice(&block.labels);
    }
}

/// Per-feature present counts of one block.
pub(super) enum Counts {
    Dense(Vec<u64>),
    Sparse(HashMap<u32, u64>),
}

/// A training channel, quantized with XGBoost's cuts.
pub struct Loaded {
    pub set: DataSet,
    pub cuts: Cuts,
    pub features: FeatureMap,
    pub summary: BlockSummary,
}

/// Read, sketch and bin the training channel (its files, or rows in memory).
pub fn training(source: Source<'_>, layout: Layout, max_bin: usize, name: &str) -> Result<Loaded, DataError> {
    let clock = std::time::Instant::now();
    let sketched = match blocks::probe(source, layout)? {
        Some(probe) => sketch_guessing_sizes(source, layout, max_bin, &probe)?,
        None => scan_then_sketch(source, layout, max_bin)?,
    };
    let Sketched { targets, summary, features, col_size, sketches } = sketched;
    let mut cuts = Cuts::builder(features.len());
    for (sketch, &n) in sketches.into_iter().zip(&col_size) {
        cuts.push_feature(Some(sketch), n as usize, max_bin);
    }
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "sketched");

    let rows = summary.rows;
    let any_missing = !summary.sparse && col_size.iter().any(|&n| (n as usize) < rows);
    let largest = cuts.max_bins_per_feature().saturating_sub(1) as u32;
    let mut matrix = bin_pass(source, layout, &cuts, &features, !summary.sparse, largest, any_missing, rows, false)?;
    // The column copy speeds up splitting (a byte per row instead of a row's cache line) for
    // one more matrix of memory: made when that costs at most an eighth of the input's size.
    if matrix.bytes() as u64 <= summary.bytes / 8 {
        matrix.add_columns();
    }
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "binned");
    let set =
        DataSet { name: name.to_string(), matrix, labels: targets.labels, weights: targets.weights, row_keys: None };
    Ok(Loaded { set, cuts, features, summary })
}

/// What the sketching passes leave: targets, the features, their present counts and sketches.
struct Sketched {
    targets: Targets,
    summary: BlockSummary,
    features: FeatureMap,
    col_size: Vec<u64>,
    sketches: Vec<Sketch>,
}

/// Per-feature present counts of one block.
pub(super) fn count_block(block: &RowBlock) -> Counts {
    if block.sparse {
        let mut c = HashMap::new();
        for &i in &block.indices {
            *c.entry(i).or_insert(0u64) += 1;
        }
        Counts::Sparse(c)
    } else {
        let mut c = vec![0u64; block.width];
        for row in block.values.chunks(block.width.max(1)) {
            for (n, v) in c.iter_mut().zip(row) {
                *n += u64::from(!v.is_nan());
            }
        }
        Counts::Dense(c)
    }
}

pub(super) fn add_counts(dense: &mut Vec<u64>, sparse: &mut HashMap<u32, u64>, counts: Counts) {
    match counts {
        Counts::Dense(c) => {
            dense.resize(c.len().max(dense.len()), 0);
            for (a, b) in dense.iter_mut().zip(c) {
                *a += b;
            }
        }
        Counts::Sparse(c) => {
            for (i, n) in c {
                *sparse.entry(i).or_insert(0) += n;
            }
        }
    }
}

/// XGBoost sizes each feature's sketch by its present count, known only once the channel is
/// read. A dense text channel guesses the counts from its first block and sketches while
/// counting: one pass. A feature whose guess gave another sketch size is sketched again.
fn sketch_guessing_sizes(
    source: Source<'_>,
    layout: Layout,
    max_bin: usize,
    probe: &blocks::Probe,
) -> Result<Sketched, DataError> {
    let rows = probe.estimated_rows();
    let guessed: Vec<usize> =
        probe.present.iter().map(|&n| (rows * n as f64 / probe.rows as f64).round() as usize).collect();
    let mut sketches: Vec<Sketch> = guessed.iter().map(|&n| Sketch::for_column(n, max_bin)).collect();
    let mut targets = Targets::default();
    let mut counts = Vec::new();
    let all: Vec<bool> = vec![true; guessed.len()];
    let summary = blocks::for_each_block(
        source,
        layout,
        |block| {
            let c = count_block(&block);
            Ok((block, c))
        },
        |(block, c)| {
            targets.take(&block);
            add_counts(&mut counts, &mut HashMap::new(), c);
            push_dense(&mut sketches, &block, &all);
            Ok(())
        },
    )?;
    let redo: Vec<bool> = counts
        .iter()
        .zip(&guessed)
        .map(|(&n, &g)| Sketch::for_column(n as usize, max_bin).limit() != Sketch::for_column(g, max_bin).limit())
        .collect();
    if redo.len() != sketches.len() {
        // The width changed after the first block: the pass has reported it already.
        return scan_then_sketch(source, layout, max_bin);
    }
    if redo.iter().any(|&r| r) {
        tracing::debug!(features = redo.iter().filter(|&&r| r).count(), "sketching again with the exact sizes");
        for (f, sketch) in sketches.iter_mut().enumerate() {
            if redo[f] {
                *sketch = Sketch::for_column(counts[f] as usize, max_bin);
            }
        }
        blocks::for_each_block(source, layout, Ok, |block| {
            push_dense(&mut sketches, &block, &redo);
            Ok(())
        })?;
    }
    let features =
        FeatureMap { original: (0..summary.width as u32).collect(), num_feature: summary.width, dense: true };
    Ok(Sketched { targets, summary, features, col_size: counts, sketches })
}

/// Two passes: count every feature's entries, then sketch.
fn scan_then_sketch(source: Source<'_>, layout: Layout, max_bin: usize) -> Result<Sketched, DataError> {
    let mut targets = Targets::default();
    let mut dense_counts: Vec<u64> = Vec::new();
    let mut sparse_counts: HashMap<u32, u64> = HashMap::new();
    let summary = blocks::for_each_block(
        source,
        layout,
        |block| {
            let c = count_block(&block);
            Ok((block, c))
        },
        |(block, c)| {
            targets.take(&block);
            add_counts(&mut dense_counts, &mut sparse_counts, c);
            Ok(())
        },
    )?;
    let (features, col_size): (FeatureMap, Vec<u64>) = if summary.sparse {
        let mut used: Vec<(u32, u64)> = sparse_counts.into_iter().collect();
        used.sort_unstable();
        let original = used.iter().map(|u| u.0).collect();
        (FeatureMap { original, num_feature: summary.width, dense: false }, used.into_iter().map(|u| u.1).collect())
    } else {
        let original = (0..summary.width as u32).collect();
        (FeatureMap { original, num_feature: summary.width, dense: true }, dense_counts)
    };
    let mut sketches: Vec<Sketch> = col_size.iter().map(|&n| Sketch::for_column(n as usize, max_bin)).collect();
    if summary.sparse {
        blocks::for_each_block(
            source,
            layout,
            |block| Ok(by_feature(&block, &features)),
            |columns| {
                push_columns(&mut sketches, columns);
                Ok(())
            },
        )?;
    } else {
        let all = vec![true; sketches.len()];
        blocks::for_each_block(source, layout, Ok, |block| {
            push_dense(&mut sketches, &block, &all);
            Ok(())
        })?;
    }
    Ok(Sketched { targets, summary, features, col_size, sketches })
}

/// Push a dense block's values into the `wanted` features' sketches, features on every
/// core, each feature's values in row order.
fn push_dense(sketches: &mut [Sketch], block: &RowBlock, wanted: &[bool]) {
    let width = block.width;
    let weights = &block.weights;
    sketches.par_iter_mut().enumerate().filter(|(f, _)| wanted[*f] && *f < width).for_each(|(f, sketch)| {
        for r in 0..block.rows() {
            let v = block.values[r * width + f];
            if !v.is_nan() {
                sketch.push(v, weights.get(r).copied().unwrap_or(1.0));
            }
        }
    });
}

/// Push each feature's `(value, weight)` list into its sketch, features on every core.
fn push_columns(sketches: &mut [Sketch], columns: Vec<(u32, Vec<(f32, f32)>)>) {
    let mut jobs = Vec::with_capacity(columns.len());
    let mut rest: &mut [Sketch] = sketches;
    let mut consumed = 0usize;
    for (f, column) in columns {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(f as usize - consumed);
        let (mine, tail) = tail.split_first_mut().expect("features are in range");
        rest = tail;
        consumed = f as usize + 1;
        jobs.push((mine, column));
    }
    jobs.into_par_iter().for_each(|(sketch, column)| {
        for (v, w) in column {
            sketch.push(v, w);
        }
    });
}

/// A set that is only predicted on, binned with fine bins against `cuts`.
pub fn evaluation(
    source: Source<'_>,
    layout: Layout,
    cuts: &Cuts,
    features: &FeatureMap,
    name: &str,
) -> Result<(DataSet, BlockSummary), DataError> {
    // Fine bins run to cuts + 1, plus the missing sentinel.
    let largest = cuts.max_bins_per_feature() as u32 + 1;
    let dense = features.dense;
    let mut targets = Targets::default();
    let mut matrix = BinnedMatrix::new(features.len(), dense, largest, true, 0);
    let summary = blocks::for_each_block(
        source,
        layout,
        |block| {
            let binned = bin_block(&block, cuts, features, &matrix_template(features, dense, largest), true);
            Ok((block, binned))
        },
        |(block, binned)| {
            if dense && block.width != features.len() {
                return Err(DataError::Malformed {
                    at: crate::data::Position {
                        file: (*block.file).clone(),
                        line: block.lines.first().copied().unwrap_or(0),
                        column: None,
                    },
                    problem: format!("{} feature columns; the training data has {}", block.width, features.len()),
                });
            }
            targets.take(&block);
            matrix.append(&binned);
            Ok(())
        },
    )?;
    matrix.shrink_to_fit();
    Ok((
        DataSet { name: name.to_string(), matrix, labels: targets.labels, weights: targets.weights, row_keys: None },
        summary,
    ))
}

fn matrix_template(features: &FeatureMap, dense: bool, largest: u32) -> BinnedMatrix {
    BinnedMatrix::new(features.len(), dense, largest, true, 0)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn bin_pass(
    source: Source<'_>,
    layout: Layout,
    cuts: &Cuts,
    features: &FeatureMap,
    dense: bool,
    largest: u32,
    any_missing: bool,
    rows: usize,
    fine: bool,
) -> Result<BinnedMatrix, DataError> {
    let mut matrix = BinnedMatrix::new(features.len(), dense, largest, any_missing, rows);
    let template = matrix.block(0);
    blocks::for_each_block(
        source,
        layout,
        |block| Ok(bin_block(&block, cuts, features, &template, fine)),
        |binned| {
            matrix.append(&binned);
            Ok(())
        },
    )?;
    matrix.shrink_to_fit();
    Ok(matrix)
}

/// One block's bins, in `template`'s layout. Fine bins count the thresholds `[min, cuts..]`
/// at or below each value.
fn bin_block(
    block: &RowBlock,
    cuts: &Cuts,
    features: &FeatureMap,
    template: &BinnedMatrix,
    fine: bool,
) -> BinnedMatrix {
    let mut out = template.block(block.rows());
    let binner = super::cuts::Binner::new(cuts);
    let bin = |f: usize, v: f32| -> u32 {
        if fine { u32::from(v >= cuts.min_values[f]) + binner.count_at_most(f, v) as u32 } else { binner.bin(f, v) }
    };
    for r in 0..block.rows() {
        if out.is_dense() {
            let row = &block.values[r * block.width..(r + 1) * block.width];
            out.push_dense_row(row.iter().enumerate().map(|(f, &v)| (!v.is_nan()).then(|| bin(f, v))));
        } else {
            out.push_sparse_row(
                block.entries(r).filter_map(|(i, v)| features.compact(i).map(|f| (f, bin(f as usize, v)))),
            );
        }
    }
    out
}

/// A sparse block's present values and their row weights by compact feature, each
/// feature's in row order; only features with values, in increasing order.
fn by_feature(block: &RowBlock, features: &FeatureMap) -> Vec<(u32, Vec<(f32, f32)>)> {
    let weight = |r: usize| block.weights.get(r).copied().unwrap_or(1.0);
    let mut entries: Vec<(u32, f32, f32)> = Vec::with_capacity(block.values.len());
    for r in 0..block.rows() {
        for (i, v) in block.entries(r) {
            if let Some(f) = features.compact(i) {
                entries.push((f, v, weight(r)));
            }
        }
    }
    // Stable: each feature's values stay in row order.
    entries.sort_by_key(|e| e.0);
    let mut out: Vec<(u32, Vec<(f32, f32)>)> = Vec::new();
    for (f, v, w) in entries {
        match out.last_mut() {
            Some((last, column)) if *last == f => column.push((v, w)),
            _ => out.push((f, vec![(v, w)])),
        }
    }
    out
}

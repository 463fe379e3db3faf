//! Boosting rounds on quantized data, as XGBoost's `gbtree` runs them: gradients from the
//! objective at the current margins, one tree per output group (times `num_parallel_tree`),
//! the training margins updated from each leaf's rows (XGBoost's prediction cache), the
//! validation margins by walking the new trees, then the metrics.

use std::ops::ControlFlow;
use std::sync::Arc;

use hessboost::data::MetaInfo;
use hessboost::metric::Metric;
use hessboost::objective::{GradPair, Loss};

use super::cuts::Cuts;
use super::distributed::{self, QuantizedSums};
use super::evaluate::TreeParams;
use super::grow::{self, GrowContext, LocalSums, TreeNode};
use super::matrix::{Bin, BinnedMatrix, Storage};
use super::metric::Elementwise;
use super::objective::{self, Formula};
use super::partition::Partition;
use super::sample::{self, ColumnSampler};
use crate::cluster::Collective;
use crate::with_bins;

/// A labelled, quantized data set.
#[derive(Debug)]
pub struct DataSet {
    pub name: String,
    /// Training bins, or fine bins for a set that is only predicted on.
    pub matrix: BinnedMatrix,
    pub labels: Vec<f32>,
    pub weights: Option<Vec<f32>>,
    /// Per row, a key that names it wherever it is read (its file and line), for row sampling
    /// that does not depend on the host; `None`: the row's index.
    pub row_keys: Option<Vec<u64>>,
}

impl DataSet {
    pub fn meta(&self) -> MetaInfo<'_> {
        MetaInfo::new(&self.labels, self.weights.as_deref(), None)
    }
}

/// How the rounds run, beside the tree parameters.
pub struct Booster {
    pub tree: TreeParams,
    pub loss: Arc<dyn Loss>,
    /// Where XGBoost's own formulas replace the loss's.
    pub formula: Formula,
    pub groups: usize,
    pub num_parallel_tree: usize,
    pub subsample: f32,
    pub seed: u64,
    pub metrics: Vec<(String, MetricImpl)>,
    /// Margin each group starts from.
    pub base_margin: Vec<f32>,
}

/// A metric: XGBoost's element-wise ones computed here, the rest by hessboost.
pub enum MetricImpl {
    Elementwise(Elementwise),
    Other(Box<dyn Metric>),
}

impl MetricImpl {
    pub fn eval(&self, preds: &[f32], set: &DataSet) -> f64 {
        match self {
            Self::Elementwise(m) => m.eval(preds, &set.labels, set.weights.as_deref()),
            Self::Other(m) => m.eval_info(preds, &set.meta()),
        }
    }

    /// The metric over every host's rows of the set.
    pub fn eval_global(
        &self,
        preds: &[f32],
        set: &DataSet,
        name: &str,
        cluster: &dyn Collective,
        groups: usize,
    ) -> Result<f64, String> {
        let (labels, weights) = (&set.labels, set.weights.as_deref());
        let sums = match (self, name) {
            (Self::Elementwise(m), _) if groups == 1 => {
                let [e, w] = distributed::global_sums(cluster, labels.len(), |i| m.term(preds, labels, weights, i))
                    .map_err(|e| e.to_string())?;
                return Ok(m.finish(e, w));
            }
            (_, "mlogloss" | "merror") => {
                let error = name == "merror";
                distributed::global_sums(cluster, labels.len(), |i| {
                    let row = &preds[i * groups..(i + 1) * groups];
                    let k = labels[i] as usize;
                    let wt = weights.map_or(1.0f32, |w| w[i]);
                    let residue = if error {
                        // XGBoost's merror: the first largest probability is the prediction.
                        let best = row.iter().enumerate().fold(0, |b, (j, &p)| if p > row[b] { j } else { b });
                        f32::from(u8::from(best != k))
                    } else {
                        -row.get(k).copied().unwrap_or(0.0).max(1e-16).ln()
                    };
                    [f64::from(residue * wt), f64::from(wt)]
                })
                .map_err(|e| e.to_string())?
            }
            _ => return Err(format!("the metric `{name}` is not computed across hosts yet")),
        };
        Ok(if sums[1] == 0.0 { sums[0] } else { sums[0] / sums[1] })
    }
}

/// A finished round's trees (each with its output group) and metric values.
pub struct Round<'a> {
    pub iteration: usize,
    /// `(data set, metric, value)` in XGBoost's order: sets, then metrics.
    pub scores: &'a [(String, String, f64)],
}

/// The state of a training: its data, the trees so far and the margins they give.
pub struct Training {
    pub booster: Booster,
    pub cuts: Cuts,
    pub train: DataSet,
    pub evals: Vec<DataSet>,
    /// `rows x groups` per data set (train first).
    pub margins: Vec<Vec<f32>>,
    /// Every tree, with its group.
    pub trees: Vec<(u32, Vec<TreeNode>)>,
    pub round_bounds: Vec<usize>,
    partition: Partition,
    gpair: Vec<GradPair>,
    /// Several hosts (or the world of one on their arithmetic): sums over every host.
    pub cluster: Option<Arc<dyn Collective>>,
}

impl Training {
    pub fn new(booster: Booster, cuts: Cuts, train: DataSet, evals: Vec<DataSet>) -> Self {
        let g = booster.groups;
        let mut margins = Vec::with_capacity(1 + evals.len());
        for set in std::iter::once(&train).chain(&evals) {
            let mut m = vec![0.0f32; set.labels.len() * g];
            for row in m.chunks_mut(g) {
                row.copy_from_slice(&booster.base_margin);
            }
            margins.push(m);
        }
        Self {
            booster,
            cuts,
            train,
            evals,
            margins,
            trees: Vec::new(),
            round_bounds: vec![0],
            partition: Partition::default(),
            gpair: Vec::new(),
            cluster: None,
        }
    }

    /// Continue from earlier rounds' trees (a checkpoint): their margins are recomputed.
    pub fn resume(&mut self, trees: Vec<(u32, Vec<TreeNode>)>, round_bounds: Vec<usize>) {
        for (group, nodes) in &trees {
            self.add_to_margins(*group as usize, nodes);
        }
        self.trees = trees;
        self.round_bounds = round_bounds;
    }

    pub fn rounds(&self) -> usize {
        self.round_bounds.len() - 1
    }

    /// Run one round: its trees, then every data set's metrics.
    pub fn round(&mut self) -> Result<Vec<(String, String, f64)>, String> {
        let b = &self.booster;
        let iteration = self.rounds();
        let rows = self.train.labels.len();
        let g = b.groups;
        self.gpair.resize(rows * g, GradPair { grad: 0.0, hess: 0.0 });
        super::timing::time(0, || {
            objective::gradient(
                b.formula,
                b.loss.as_ref(),
                &self.margins[0],
                &self.train.meta(),
                &mut self.gpair,
                iteration,
            )
        });

        // One group and one tree per round grow on the gradients as they are (sampled in
        // place); otherwise each tree takes a copy of its group's column.
        let in_place = g == 1 && b.num_parallel_tree == 1;
        let mut column = if in_place { Vec::new() } else { vec![GradPair { grad: 0.0, hess: 0.0 }; rows] };
        let mut new_trees = Vec::with_capacity(g * b.num_parallel_tree);
        for group in 0..g {
            for _ in 0..b.num_parallel_tree {
                let tree_id = (self.trees.len() + new_trees.len()) as u64;
                let gradients: &mut [GradPair] = if in_place {
                    &mut self.gpair
                } else {
                    for (r, gp) in column.iter_mut().enumerate() {
                        *gp = self.gpair[r * g + group];
                    }
                    &mut column
                };
                let keys = self.train.row_keys.as_deref();
                sample::subsample_rows(gradients, |r| keys.map_or(r as u64, |k| k[r]), b.subsample, b.seed, tree_id);
                let mut sampler = ColumnSampler::new(
                    self.cuts.features(),
                    b.seed,
                    tree_id,
                    b.tree.colsample_bytree,
                    b.tree.colsample_bylevel,
                    b.tree.colsample_bynode,
                );
                let local;
                let global;
                let sums: &dyn grow::HistogramSource = match &self.cluster {
                    None => {
                        local = LocalSums { matrix: &self.train.matrix, cuts: &self.cuts, gpair: gradients };
                        &local
                    }
                    Some(cluster) => {
                        global = QuantizedSums::new(&self.train.matrix, &self.cuts, gradients, cluster.as_ref())
                            .map_err(|e| e.to_string())?;
                        &global
                    }
                };
                let ctx = GrowContext { params: &b.tree, matrix: &self.train.matrix, cuts: &self.cuts, sums };
                let nodes = grow::grow(&ctx, &mut sampler, &mut self.partition).map_err(|e| e.to_string())?;
                // The next tree resets the partition: take the leaves' rows now.
                super::timing::time(4, || add_from_partition(&self.partition, &nodes, &mut self.margins[0], g, group));
                new_trees.push((group as u32, nodes));
            }
        }
        for (group, nodes) in new_trees {
            super::timing::time(5, || self.add_to_eval_margins(group as usize, &nodes));
            self.trees.push((group, nodes));
        }
        self.round_bounds.push(self.trees.len());
        super::timing::time(6, || self.scores())
    }

    /// Add an earlier tree's leaf values to every data set's margins.
    fn add_to_margins(&mut self, group: usize, nodes: &[TreeNode]) {
        walk_into(&self.train.matrix, nodes, false, &mut self.margins[0], self.booster.groups, group);
        self.add_to_eval_margins(group, nodes);
    }

    fn add_to_eval_margins(&mut self, group: usize, nodes: &[TreeNode]) {
        for (i, set) in self.evals.iter().enumerate() {
            walk_into(&set.matrix, nodes, true, &mut self.margins[i + 1], self.booster.groups, group);
        }
    }

    /// Each data set's metrics at the current margins (over every host's rows).
    pub fn scores(&self) -> Result<Vec<(String, String, f64)>, String> {
        let mut out = Vec::new();
        let identity = objective::eval_is_identity(self.booster.formula, self.booster.loss.name());
        for (set, margins) in std::iter::once(&self.train).chain(&self.evals).zip(&self.margins) {
            // The margins themselves when the metrics read margins: no copy of every row.
            let transformed;
            let preds: &[f32] = if identity {
                margins
            } else {
                let mut p = margins.clone();
                objective::eval_transform(self.booster.formula, self.booster.loss.as_ref(), &mut p);
                transformed = p;
                &transformed
            };
            for (name, metric) in &self.booster.metrics {
                let value = match &self.cluster {
                    None => metric.eval(preds, set),
                    Some(c) => metric.eval_global(preds, set, name, c.as_ref(), self.booster.groups)?,
                };
                out.push((set.name.clone(), name.clone(), value));
            }
        }
        Ok(out)
    }

    /// Train until `num_round` rounds exist or `on_round` breaks.
    pub fn run(
        &mut self,
        num_round: usize,
        mut on_round: impl FnMut(&Self, Round<'_>) -> ControlFlow<()>,
    ) -> Result<(), String> {
        while self.rounds() < num_round {
            let scores = self.round()?;
            let round = Round { iteration: self.rounds() - 1, scores: &scores };
            if on_round(self, round).is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// Add a just-grown tree's leaf values to the training margins, each leaf to its rows.
fn add_from_partition(partition: &Partition, nodes: &[TreeNode], margins: &mut [f32], groups: usize, group: usize) {
    use rayon::prelude::*;
    /// The margins, written by several cores at rows no two leaves share.
    struct Shared(*mut f32, usize);
    // SAFETY: each leaf's rows are distinct from every other leaf's (a partition), so no two
    // tasks write one element.
    unsafe impl Sync for Shared {}
    impl Shared {
        fn add(&self, at: usize, value: f32) {
            assert!(at < self.1);
            // SAFETY: in bounds (checked), and only this leaf's task writes element `at`.
            unsafe { *self.0.add(at) += value };
        }
    }
    let shared = Shared(margins.as_mut_ptr(), margins.len());
    let leaves: Vec<usize> = (0..nodes.len()).filter(|&n| nodes[n].is_leaf()).collect();
    leaves.par_iter().for_each(|&nid| {
        let value = nodes[nid].value;
        for &r in partition.rows_of(nid) {
            shared.add(r as usize * groups + group, value);
        }
    });
}

/// Add `nodes`' leaf values to `margins[row * groups + group]`, walking each row down the
/// tree by its bins (`fine`: bins of a predicted-on set; else training bins).
fn walk_into(matrix: &BinnedMatrix, nodes: &[TreeNode], fine: bool, margins: &mut [f32], groups: usize, group: usize) {
    use rayon::prelude::*;
    const ROWS: usize = 4096;
    // A split on bin t sends training bins <= t left, fine bins <= t + 1.
    let shift = i64::from(fine);
    let mut walk = |bin_of: &(dyn Fn(usize, usize) -> Option<u32> + Sync)| {
        margins.par_chunks_mut(groups * ROWS).enumerate().for_each(|(chunk, out)| {
            for (i, row) in out.chunks_mut(groups).enumerate() {
                let r = chunk * ROWS + i;
                let mut n = 0usize;
                while !nodes[n].is_leaf() {
                    let node = &nodes[n];
                    let left = match bin_of(r, node.feature as usize) {
                        None => node.default_left,
                        Some(b) => i64::from(b) <= i64::from(node.bin) + shift,
                    };
                    n = if left { node.left as usize } else { node.right as usize };
                }
                row[group] += nodes[n].value;
            }
        });
    };
    match &matrix.storage {
        Storage::Dense { bins, missing } => {
            let (width, missing) = (matrix.features, *missing);
            with_bins!(bins, v => walk(&|r, f| {
                let b = v[r * width + f].get();
                (b != missing).then_some(b)
            }))
        }
        Storage::Sparse { .. } => walk(&|r, f| matrix.bin(r, f)),
    }
}

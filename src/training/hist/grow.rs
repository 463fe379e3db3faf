//! Growing one tree from histograms as XGBoost's CPU `hist` updater does
//! (`src/tree/updater_quantile_hist.cc` `UpdateTree`, `driver.h`): the root's histogram and
//! split, then level by level (depthwise) or best-first (lossguide): apply the splits,
//! partition the rows, build the smaller child's histogram and subtract for its sibling,
//! evaluate the children. Node ids, statistics and leaf values follow XGBoost's, so the tree
//! is XGBoost's tree.

use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::cuts::Cuts;
use super::evaluate::{self, Evaluator, NodeEntry, RT_EPS, Split, Stats, TreeParams};
use super::histogram;
use super::matrix::{BinnedMatrix, Storage};
use super::partition::{Partition, Rule};
use super::sample::ColumnSampler;
use crate::cluster::ClusterError;
use hessboost::objective::GradPair;

/// Nodes of one depth expanded together at most (`Driver`'s batch).
const MAX_NODE_BATCH: usize = 256;

/// A node of a grown tree, with XGBoost's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeNode {
    pub parent: i32,
    /// -1 for a leaf.
    pub left: i32,
    pub right: i32,
    /// Compact feature index.
    pub feature: u32,
    pub default_left: bool,
    /// Split value, or the leaf value (learning rate applied).
    pub value: f32,
    /// Feature-local bin the split sends left at or below (-1: none).
    pub bin: i32,
    pub loss_chg: f32,
    pub sum_hess: f32,
    pub base_weight: f32,
}

impl TreeNode {
    fn leaf(parent: i32, value: f32, sum_hess: f32) -> Self {
        Self {
            parent,
            left: -1,
            right: -1,
            feature: 0,
            default_left: false,
            value,
            bin: 0,
            loss_chg: 0.0,
            sum_hess,
            base_weight: value,
        }
    }

    pub fn is_leaf(&self) -> bool {
        self.left < 0
    }
}

/// Where a tree's gradient sums come from: this host's rows in f64 (XGBoost's sums), or
/// every host's rows in fixed point (`super::distributed`).
pub trait HistogramSource: Sync {
    /// The histograms of these nodes' rows (one list of row ids per node).
    fn histograms(&self, nodes: &[&[u32]]) -> Result<Vec<Vec<Stats>>, ClusterError>;

    /// The gradient sum of every row, given the root's histogram.
    fn root_sum(&self, root: &[Stats]) -> Result<Stats, ClusterError>;
}

/// One host's sums, as XGBoost makes them: f64 in row order.
pub struct LocalSums<'a> {
    pub matrix: &'a BinnedMatrix,
    pub cuts: &'a Cuts,
    pub gpair: &'a [GradPair],
}

impl HistogramSource for LocalSums<'_> {
    fn histograms(&self, nodes: &[&[u32]]) -> Result<Vec<Vec<Stats>>, ClusterError> {
        Ok(nodes
            .par_iter()
            .map(|rows| histogram::build(self.matrix, &self.cuts.ptrs, self.gpair, rows, self.cuts.total_bins()))
            .collect())
    }

    fn root_sum(&self, root: &[Stats]) -> Result<Stats, ClusterError> {
        let mut s = Stats::default();
        if matches!(self.matrix.storage, Storage::Dense { missing: u32::MAX, .. }) {
            // Every row has every feature: XGBoost sums the first feature's bins.
            for cell in &root[self.cuts.feature_range(0)] {
                s.add(cell.g, cell.h);
            }
        } else {
            for gp in self.gpair {
                s.add(f64::from(gp.grad), f64::from(gp.hess));
            }
        }
        Ok(s)
    }
}

/// What the grower reads: the quantized rows, their cuts, the parameters, and where the sums
/// come from.
pub struct GrowContext<'a> {
    pub params: &'a TreeParams,
    pub matrix: &'a BinnedMatrix,
    pub cuts: &'a Cuts,
    pub sums: &'a dyn HistogramSource,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    nid: usize,
    depth: u32,
    split: Split,
}

/// Orders the expansion queue: by node id (depthwise) or by gain then node id (lossguide).
struct Queued {
    c: Candidate,
    lossguide: bool,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// The heap's top is the greatest: the smallest id, or the largest gain.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let by_id = other.c.nid.cmp(&self.c.nid);
        if !self.lossguide || self.c.split.loss_chg == other.c.split.loss_chg {
            return by_id;
        }
        self.c.split.loss_chg.partial_cmp(&other.c.split.loss_chg).unwrap_or(by_id)
    }
}

/// `Driver`: which nodes are expanded next.
struct Driver<'a> {
    p: &'a TreeParams,
    queue: BinaryHeap<Queued>,
    num_leaves: u32,
}

impl<'a> Driver<'a> {
    fn new(p: &'a TreeParams) -> Self {
        Self { p, queue: BinaryHeap::new(), num_leaves: 1 }
    }

    fn push(&mut self, c: Candidate) {
        self.queue.push(Queued { c, lossguide: self.p.lossguide });
    }

    fn push_children(&mut self, cs: impl IntoIterator<Item = Candidate>) {
        for c in cs {
            if c.split.loss_chg > RT_EPS {
                self.push(c);
            }
        }
    }

    /// `ExpandEntry::IsValid`.
    fn valid(&self, c: &Candidate) -> bool {
        let s = &c.split;
        !(s.loss_chg <= RT_EPS
            || s.left.h == 0.0
            || s.right.h == 0.0
            || s.loss_chg < self.p.gamma
            || (self.p.max_depth > 0 && c.depth == self.p.max_depth)
            || (self.p.max_leaves > 0 && self.num_leaves == self.p.max_leaves))
    }

    fn child_valid(&self, parent: &Candidate) -> bool {
        !((self.p.max_depth > 0 && parent.depth + 1 >= self.p.max_depth)
            || (self.p.max_leaves > 0 && self.num_leaves >= self.p.max_leaves))
    }

    fn pop(&mut self) -> Vec<Candidate> {
        let Some(top) = self.queue.pop() else { return Vec::new() };
        if self.p.lossguide {
            if self.valid(&top.c) {
                self.num_leaves += 1;
                return vec![top.c];
            }
            return Vec::new();
        }
        let level = top.c.depth;
        let mut out = Vec::new();
        let mut e = Some(top);
        while let Some(q) = e.take() {
            if q.c.depth != level || out.len() >= MAX_NODE_BATCH {
                self.queue.push(q);
                break;
            }
            if self.valid(&q.c) {
                self.num_leaves += 1;
                out.push(q.c);
            }
            e = self.queue.pop();
        }
        out
    }
}

/// One tree's growth state.
struct Growth<'a> {
    ctx: &'a GrowContext<'a>,
    nodes: Vec<TreeNode>,
    snode: Vec<NodeEntry>,
    hists: Vec<Option<Vec<Stats>>>,
    ev: Evaluator,
}

/// Grow one tree; `partition` is left holding each leaf's rows.
pub fn grow(
    ctx: &GrowContext<'_>,
    sampler: &mut ColumnSampler,
    partition: &mut Partition,
) -> Result<Vec<TreeNode>, ClusterError> {
    let p = ctx.params;
    partition.reset(ctx.matrix.rows);
    let mut g = Growth { ctx, nodes: Vec::new(), snode: Vec::new(), hists: Vec::new(), ev: Evaluator::new(p) };

    // The root.
    let root_hist = super::timing::time(1, || ctx.sums.histograms(&[partition.rows_of(0)]))?.pop().expect("one node");
    let root_sum = ctx.sums.root_sum(&root_hist)?;
    let root_gain = g.ev.gain(p, 0, root_sum);
    let weight = g.ev.weight(p, 0, root_sum);
    g.snode.push(NodeEntry { stats: root_sum, root_gain });
    g.nodes.push(TreeNode { base_weight: weight, ..TreeNode::leaf(-1, p.eta * weight, root_sum.h as f32) });
    g.hists.push(Some(root_hist));
    let features = sampler.features(0);
    let split = evaluate::best_split(p, &g.ev, ctx.cuts, 0, &g.snode[0], g.hists[0].as_ref().unwrap(), &features);

    let mut driver = Driver::new(p);
    driver.push(Candidate { nid: 0, depth: 0, split });
    let mut expand = driver.pop();
    while !expand.is_empty() {
        let mut valid = Vec::new();
        let mut splits = Vec::with_capacity(expand.len());
        for c in &expand {
            let (left, right) = g.apply(c);
            splits.push((
                c.nid,
                left,
                right,
                Rule { feature: c.split.feature(), bin: c.split.bin, default_left: c.split.default_left() },
            ));
            if driver.child_valid(c) {
                valid.push(*c);
            }
        }
        super::timing::time(2, || partition.split(ctx.matrix, &splits));
        let children = if valid.is_empty() { Vec::new() } else { g.children(&valid, partition, sampler)? };
        for c in &expand {
            g.hists[c.nid] = None;
        }
        driver.push_children(children);
        expand = driver.pop();
    }
    Ok(g.nodes)
}

impl Growth<'_> {
    /// `ApplyTreeSplit`: the node becomes a split with two leaf children.
    fn apply(&mut self, c: &Candidate) -> (usize, usize) {
        let p = self.ctx.params;
        let s = &c.split;
        let mut parent_sum = s.left;
        parent_sum.add(s.right.g, s.right.h);
        let base_weight = self.ev.weight(p, c.nid, parent_sum);
        let wl = self.ev.weight(p, c.nid, s.left);
        let wr = self.ev.weight(p, c.nid, s.right);
        let (left, right) = (self.nodes.len(), self.nodes.len() + 1);
        let parent = c.nid as i32;
        self.nodes.push(TreeNode::leaf(parent, wl * p.eta, s.left.h as f32));
        self.nodes.push(TreeNode::leaf(parent, wr * p.eta, s.right.h as f32));
        self.nodes[c.nid] = TreeNode {
            parent: self.nodes[c.nid].parent,
            left: left as i32,
            right: right as i32,
            feature: s.feature() as u32,
            default_left: s.default_left(),
            value: s.value,
            bin: s.bin,
            loss_chg: s.loss_chg,
            sum_hess: parent_sum.h as f32,
            base_weight,
        };
        self.ev.add_split(p, c.nid, (left, right), s.feature(), (wl, wr));
        self.snode.resize(self.nodes.len(), NodeEntry::default());
        self.hists.resize(self.nodes.len(), None);
        self.snode[left] = NodeEntry { stats: s.left, root_gain: self.ev.gain(p, c.nid, s.left) };
        self.snode[right] = NodeEntry { stats: s.right, root_gain: self.ev.gain(p, c.nid, s.right) };
        (left, right)
    }

    /// Histograms of the children of `valid` (the one with less hessian built, its sibling
    /// subtracted) and their best splits.
    fn children(
        &mut self,
        valid: &[Candidate],
        partition: &Partition,
        sampler: &mut ColumnSampler,
    ) -> Result<Vec<Candidate>, ClusterError> {
        let pairs: Vec<(usize, usize, usize)> = valid
            .iter()
            .map(|c| {
                let node = self.nodes[c.nid];
                let (l, r) = (node.left as usize, node.right as usize);
                if c.split.right.h < c.split.left.h { (r, l, c.nid) } else { (l, r, c.nid) }
            })
            .collect();
        // One exchange per level on several hosts: the built histograms, together.
        let rows: Vec<&[u32]> = pairs.iter().map(|&(b, _, _)| partition.rows_of(b)).collect();
        let built = super::timing::time(1, || self.ctx.sums.histograms(&rows))?;
        for (&(b, s, parent), hist) in pairs.iter().zip(built) {
            let parent_hist =
                self.hists[parent].take().expect("the parent's histogram is kept until its children have theirs");
            self.hists[s] = Some(histogram::subtract(&parent_hist, &hist));
            self.hists[b] = Some(hist);
        }
        let mut entries = Vec::with_capacity(2 * valid.len());
        for c in valid {
            let node = self.nodes[c.nid];
            entries.push((node.left as usize, c.depth + 1));
            entries.push((node.right as usize, c.depth + 1));
        }
        let feature_sets: Vec<Vec<u32>> = entries.iter().map(|&(_, depth)| sampler.features(depth)).collect();
        let (p, ev, cuts) = (self.ctx.params, &self.ev, self.ctx.cuts);
        Ok(super::timing::time(3, || {
            entries
                .par_iter()
                .zip(&feature_sets)
                .map(|(&(nid, depth), features)| {
                    let hist = self.hists[nid].as_ref().expect("built above");
                    let split = evaluate::best_split(p, ev, cuts, nid, &self.snode[nid], hist, features);
                    Candidate { nid, depth, split }
                })
                .collect()
        }))
    }
}

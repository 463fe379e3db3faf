//! Grown trees as an XGBoost model (our `Forest`, written by the model module) and back:
//! node ids, split conditions, default directions and statistics as XGBoost stores them,
//! features renumbered from the trainer's compact indices to the data's.

use super::cuts::Cuts;
use super::grow::TreeNode;
use super::load::FeatureMap;
use crate::model::forest::{Forest, Node, NodeStats, Objective, Tree};

/// What the model records beside the trees.
pub struct ModelInfo<'a> {
    pub objective: Objective,
    pub objective_params: Vec<(String, String)>,
    pub num_feature: usize,
    pub groups: usize,
    /// `base_score` as XGBoost stores it (prediction space), one per group.
    pub base_score: Vec<f32>,
    pub num_parallel_tree: usize,
    pub features: &'a FeatureMap,
}

pub fn to_forest(info: &ModelInfo<'_>, trees: &[(u32, Vec<TreeNode>)], round_bounds: &[usize]) -> Forest {
    let trees_out: Vec<Tree> = trees
        .iter()
        .map(|(_, nodes)| Tree {
            nodes: nodes
                .iter()
                .map(|n| {
                    if n.is_leaf() {
                        Node::leaf(n.value)
                    } else {
                        let feature = info.features.original[n.feature as usize];
                        Node::split(feature, n.value, n.left, n.right, n.default_left, false)
                    }
                })
                .collect(),
            stats: nodes
                .iter()
                .map(|n| NodeStats { loss_change: n.loss_chg, sum_hessian: n.sum_hess, base_weight: n.base_weight })
                .collect(),
            categories: Vec::new(),
            depth: 0,
        })
        .collect();
    Forest {
        objective: info.objective.clone(),
        num_feature: info.num_feature,
        num_groups: info.groups,
        base_score: info.base_score.clone(),
        trees: trees_out,
        tree_group: trees.iter().map(|(g, _)| *g).collect(),
        tree_weights: None,
        round_bounds: round_bounds.to_vec(),
        num_parallel_tree: info.num_parallel_tree,
        best_iteration: None,
        best_ntree_limit: None,
        feature_names: Vec::new(),
        feature_types: Vec::new(),
        version: None,
        attributes: Vec::new(),
        objective_params: info.objective_params.clone(),
    }
}

/// A model's trees (a checkpoint) in the trainer's terms. Every split must be on a feature of
/// this data at one of its cut points: true of a checkpoint of the same training.
pub fn from_forest(forest: &Forest, cuts: &Cuts, features: &FeatureMap) -> Result<Vec<(u32, Vec<TreeNode>)>, String> {
    let mut out = Vec::with_capacity(forest.trees.len());
    for (t, tree) in forest.trees.iter().enumerate() {
        let mut nodes: Vec<TreeNode> = Vec::with_capacity(tree.nodes.len());
        for (i, n) in tree.nodes.iter().enumerate() {
            let stat = tree.stats.get(i).copied().unwrap_or_default();
            let mut node = TreeNode {
                parent: -1,
                left: n.left,
                right: n.right,
                feature: 0,
                default_left: n.default_left(),
                value: n.value,
                bin: 0,
                loss_chg: stat.loss_change,
                sum_hess: stat.sum_hessian,
                base_weight: stat.base_weight,
            };
            if !n.is_leaf() {
                let f = features.compact(n.feature() as u32).ok_or_else(|| {
                    format!("tree {t} splits on feature {}, which this data does not have", n.feature())
                })?;
                let fc = f as usize;
                node.feature = f;
                node.bin = if n.value == cuts.min_values[fc] {
                    -1
                } else {
                    cuts.feature_cuts(fc).iter().position(|&c| c == n.value).map(|i| i as i32).ok_or_else(|| {
                        format!(
                            "tree {t} splits feature {} at {}, which is not one of this data's cut points",
                            n.feature(),
                            n.value
                        )
                    })?
                };
            }
            nodes.push(node);
        }
        for i in 0..nodes.len() {
            if !nodes[i].is_leaf() {
                let (l, r) = (nodes[i].left as usize, nodes[i].right as usize);
                nodes[l].parent = i as i32;
                nodes[r].parent = i as i32;
            }
        }
        out.push((forest.tree_group[t], nodes));
    }
    Ok(out)
}

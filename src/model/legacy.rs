//! XGBoost's legacy binary model (0.90 to 2.0; SageMaker's 1.3-1 to 1.7-1 containers),
//! little-endian and packed: see `shared/spec/xgboost-models.md` section 1.6.

use super::ModelError;
use super::forest::{Forest, MAX_FEATURE, MAX_GROUPS, Node, NodeStats, Objective, Tree, Version};
use super::learner::{default_round_bounds, finish};

const LEARNER_PARAM_BYTES: usize = 136;
const GBTREE_PARAM_BYTES: usize = 160;
const TREE_PARAM_BYTES: usize = 148;
const NODE_BYTES: usize = 20;
const STAT_BYTES: usize = 16;

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &str) -> ModelError {
        ModelError::Invalid(format!("legacy binary cut short or corrupt at byte {}: {what}", self.i))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let end = self.i.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err(what))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn i32(&mut self, what: &str) -> Result<i32, ModelError> {
        Ok(self.u32(what)? as i32)
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    fn f32(&mut self, what: &str) -> Result<f32, ModelError> {
        Ok(f32::from_bits(self.u32(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let n = usize::try_from(self.u64(what)?).map_err(|_| self.err(what))?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(what))
    }

    /// A count of items of `size` bytes, bounded by what is left.
    fn count(&mut self, n: i64, size: usize, what: &str) -> Result<usize, ModelError> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n.saturating_mul(size) <= self.b.len() - self.i)
            .ok_or_else(|| self.err(what))
    }
}

/// Read a legacy binary model. Returns the forest and how many bytes it used (a pickle's
/// `CONFIG-offset:` snapshot appends a JSON config after it).
pub fn read(bytes: &[u8]) -> Result<Forest, ModelError> {
    let mut r = Reader { b: bytes, i: 0 };
    if bytes.starts_with(b"binf") {
        r.i = 4;
    }
    let param = r.take(LEARNER_PARAM_BYTES, "learner parameters")?;
    let le_u32 = |off: usize| u32::from_le_bytes(param[off..off + 4].try_into().unwrap());
    let base_score = f32::from_le_bytes(param[0..4].try_into().unwrap());
    let num_feature = le_u32(4) as usize;
    let num_class = le_u32(8) as i32;
    let contain_extra_attrs = le_u32(12) != 0;
    let major = le_u32(20);
    let minor = le_u32(24);
    let num_target = (le_u32(28) as usize).max(1);

    let objective_name = r.string("objective name")?;
    let booster = r.string("booster name")?;
    let objective = Objective::parse(&objective_name).map_err(ModelError::Invalid)?;
    if booster != "gbtree" && booster != "dart" {
        return Err(ModelError::Invalid(format!("booster `{booster}`: only gbtree and dart models are supported")));
    }

    let gb = r.take(GBTREE_PARAM_BYTES, "gbtree parameters")?;
    let gb_i32 = |off: usize| i32::from_le_bytes(gb[off..off + 4].try_into().unwrap());
    let num_trees = i64::from(gb_i32(0));
    let num_parallel_tree = usize::try_from(gb_i32(4)).unwrap_or(1).max(1);

    let num_trees = r.count(num_trees, TREE_PARAM_BYTES, "tree count")?;
    let mut trees = Vec::with_capacity(num_trees);
    for t in 0..num_trees {
        trees.push(read_tree(&mut r).map_err(|e| match e {
            ModelError::Invalid(m) => ModelError::Invalid(format!("tree {t}: {m}")),
            other => other,
        })?);
    }
    let mut tree_group = Vec::with_capacity(num_trees);
    for _ in 0..num_trees {
        let g = r.i32("tree_info")?;
        tree_group.push(u32::try_from(g).map_err(|_| ModelError::Invalid(format!("tree group {g}")))?);
    }
    // DART's weights are part of the booster's section, before the learner's attributes.
    let mut tree_weights = None;
    if booster == "dart" {
        let n = r.u64("DART weight count")?;
        let n = r.count(i64::try_from(n).unwrap_or(-1), 4, "DART weight count")?;
        if n != num_trees {
            return Err(ModelError::Invalid(format!("{n} DART weights for {num_trees} trees")));
        }
        let mut weights = Vec::with_capacity(n);
        for _ in 0..n {
            weights.push(r.f32("DART weight")?);
        }
        tree_weights = Some(weights);
    }
    let mut attributes = Vec::new();
    if contain_extra_attrs {
        let n = r.u64("attribute count")?;
        let n = r.count(i64::try_from(n).unwrap_or(-1), 16, "attribute count")?;
        for _ in 0..n {
            let key = r.string("attribute name")?;
            let value = r.string("attribute value")?;
            attributes.push((key, value));
        }
    }

    let groups = if objective.is_multiclass() { usize::try_from(num_class).unwrap_or(0).max(1) } else { num_target };
    if groups > MAX_GROUPS {
        return Err(ModelError::Invalid(format!(
            "the model declares {groups} outputs; at most {MAX_GROUPS} are supported"
        )));
    }
    let attr = |name: &str| attributes.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.trim().parse().ok());
    let forest = Forest {
        num_feature,
        num_groups: groups,
        base_score: vec![base_score; groups],
        round_bounds: default_round_bounds(trees.len(), groups, num_parallel_tree),
        trees,
        tree_group,
        tree_weights,
        num_parallel_tree,
        best_iteration: attr("best_iteration"),
        best_ntree_limit: attr("best_ntree_limit"),
        feature_names: Vec::new(),
        feature_types: Vec::new(),
        version: Some(Version(major, minor, 0)),
        objective,
        attributes: attributes.into_iter().filter(|(k, _)| k.starts_with("best_")).collect(),
        objective_params: Vec::new(),
    };
    finish(forest)
}

fn read_tree(r: &mut Reader<'_>) -> Result<Tree, ModelError> {
    let param = r.take(TREE_PARAM_BYTES, "tree parameters")?;
    let num_nodes = i32::from_le_bytes(param[4..8].try_into().unwrap());
    let size_leaf_vector = i32::from_le_bytes(param[20..24].try_into().unwrap());
    if size_leaf_vector > 1 {
        return Err(ModelError::Invalid("vector-leaf trees are not supported".into()));
    }
    let n = r.count(i64::from(num_nodes), NODE_BYTES + STAT_BYTES, "node count")?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let _parent = r.i32("node")?;
        let left = r.i32("node")?;
        let right = r.i32("node")?;
        let sindex = r.u32("node")?;
        let value = r.f32("node")?;
        if left == -1 {
            nodes.push(Node::leaf(value));
        } else {
            let feature = sindex & ((1 << 31) - 1);
            if feature > MAX_FEATURE {
                return Err(ModelError::Invalid(format!("feature index {feature} is too large")));
            }
            nodes.push(Node::split(feature, value, left, right, sindex >> 31 != 0, false));
        }
    }
    let mut stats = Vec::with_capacity(n);
    for _ in 0..n {
        let loss_change = r.f32("node statistics")?;
        let sum_hessian = r.f32("node statistics")?;
        let base_weight = r.f32("node statistics")?;
        let _leaf_child_count = r.i32("node statistics")?;
        stats.push(NodeStats { loss_change, sum_hessian, base_weight });
    }
    Ok(Tree { nodes, stats, categories: Vec::new(), depth: 0 })
}

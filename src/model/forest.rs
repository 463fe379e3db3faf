//! One in-memory forest, whatever format it came from, and prediction exactly as XGBoost
//! computes it: f32 accumulation in XGBoost's order, strict `<` splits, missing values by
//! `default_left`, categorical splits, DART weights, and each objective's transform.

use std::ops::Range;

/// A leaf or a split. A leaf has `left < 0`; its value is in `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// Split threshold, or the leaf value (eta already applied, as XGBoost stores it).
    pub value: f32,
    pub left: i32,
    pub right: i32,
    /// Feature index in the low 31 bits (as XGBoost's `sindex`); bit 31 = default left.
    packed: u32,
    categorical: bool,
}

/// The most outputs per row a model may declare (classes or targets): a corrupt count must
/// not become a huge allocation.
pub const MAX_GROUPS: usize = 1 << 16;

/// Rows that walk a tree together in batch prediction.
pub const LANES: usize = 8;

const DEFAULT_LEFT: u32 = 1 << 31;
const FEATURE_MASK: u32 = DEFAULT_LEFT - 1;
/// Largest feature index a node can hold.
pub const MAX_FEATURE: u32 = FEATURE_MASK;

impl Node {
    pub fn leaf(value: f32) -> Self {
        Self { value, left: -1, right: -1, packed: 0, categorical: false }
    }

    pub fn split(feature: u32, threshold: f32, left: i32, right: i32, default_left: bool, categorical: bool) -> Self {
        debug_assert!(feature <= MAX_FEATURE);
        let mut packed = feature & FEATURE_MASK;
        if default_left {
            packed |= DEFAULT_LEFT;
        }
        Self { value: threshold, left, right, packed, categorical }
    }

    pub fn is_leaf(&self) -> bool {
        self.left < 0
    }

    pub fn feature(&self) -> usize {
        (self.packed & FEATURE_MASK) as usize
    }

    pub fn default_left(&self) -> bool {
        self.packed & DEFAULT_LEFT != 0
    }

    /// Read another feature (renumbering features).
    pub fn set_feature(&mut self, feature: u32) {
        debug_assert!(feature <= MAX_FEATURE);
        self.packed = (self.packed & DEFAULT_LEFT) | (feature & FEATURE_MASK);
    }

    pub fn is_categorical(&self) -> bool {
        self.categorical
    }
}

/// A regression tree. Categorical splits keep their category lists aside.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Per-node statistics XGBoost stores (needed to write models back); may be empty.
    pub stats: Vec<NodeStats>,
    /// `(node, categories)` for each categorical split, sorted by node.
    pub categories: Vec<(u32, Vec<u32>)>,
    /// Levels from the root to the deepest leaf (set by [`Tree::lay_out_breadth_first`]).
    pub depth: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeStats {
    pub loss_change: f32,
    pub sum_hessian: f32,
    pub base_weight: f32,
}

impl Tree {
    /// Check that the nodes form a tree reachable from the root without cycles, so that
    /// prediction always terminates and never indexes out of bounds.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.nodes.len();
        if n == 0 {
            return Err("a tree has no nodes".into());
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice: not a tree"));
            }
            let node = &self.nodes[i];
            if node.is_leaf() {
                continue;
            }
            for child in [node.left, node.right] {
                let c = usize::try_from(child).ok().filter(|&c| c < n);
                stack.push(c.ok_or_else(|| format!("node {i} has child {child}, outside 0..{n}"))?);
            }
        }
        Ok(())
    }

    /// Renumber the nodes breadth-first so that every split's right child directly follows
    /// its left child (prediction relies on it). Statistics and category lists follow their
    /// nodes. Call after [`Tree::validate`].
    pub fn lay_out_breadth_first(&mut self) {
        let n = self.nodes.len();
        let mut order = Vec::with_capacity(n); // new index -> old index
        order.push(0usize);
        let mut depth_of = vec![0usize; n];
        let mut new_index = vec![0u32; n];
        let mut next = 0;
        while next < order.len() {
            let old = order[next];
            let node = self.nodes[old];
            if !node.is_leaf() {
                new_index[node.left as usize] = order.len() as u32;
                order.push(node.left as usize);
                new_index[node.right as usize] = order.len() as u32;
                order.push(node.right as usize);
                depth_of[node.left as usize] = depth_of[old] + 1;
                depth_of[node.right as usize] = depth_of[old] + 1;
            }
            next += 1;
        }
        let nodes: Vec<Node> = order
            .iter()
            .map(|&old| {
                let mut node = self.nodes[old];
                if !node.is_leaf() {
                    node.left = new_index[node.left as usize] as i32;
                    node.right = node.left + 1;
                }
                node
            })
            .collect();
        if self.stats.len() == n {
            self.stats = order.iter().map(|&old| self.stats[old]).collect();
        }
        for (node, _) in &mut self.categories {
            *node = new_index[*node as usize];
        }
        self.categories.sort_by_key(|(node, _)| *node);
        self.nodes = nodes;
        self.depth = depth_of.into_iter().max().unwrap_or(0);
    }

    /// The nodes a row passes through, root to leaf, appended to `path`.
    pub fn path(&self, row: &[f32], path: &mut Vec<usize>) {
        let mut i = 0usize;
        loop {
            path.push(i);
            let node = self.nodes[i];
            if node.left < 0 {
                return;
            }
            i = if self.go_left(&node, i, row) { node.left as usize } else { node.right as usize };
        }
    }

    /// Where a split at node `i` sends `row`: missing values (NaN, or beyond the row's end) by
    /// `default_left`, categorical splits by set membership, numeric ones by strict `<`.
    #[inline(always)]
    fn go_left(&self, node: &Node, i: usize, row: &[f32]) -> bool {
        let v = row.get(node.feature()).copied().unwrap_or(f32::NAN);
        if node.is_categorical() {
            if v.is_nan() { node.default_left() } else { !self.in_category(i as u32, v) }
        } else {
            // NaN compares false: a missing value goes left only by default.
            (v < node.value) | (v.is_nan() & node.default_left())
        }
    }

    /// XGBoost's `prune` updater: a split whose children are both leaves and whose loss
    /// change is below `min_split_loss` becomes a leaf worth `eta * weight`, bottom-up until
    /// nothing changes (the result does not depend on the order). `weights` holds every
    /// node's unscaled weight. Returns the number of splits removed.
    pub fn prune(&mut self, min_split_loss: f32, eta: f32, weights: &[f32]) -> usize {
        let mut removed = 0;
        loop {
            let mut changed = false;
            for i in (0..self.nodes.len()).rev() {
                let node = self.nodes[i];
                if node.is_leaf() || self.stats.len() != self.nodes.len() {
                    continue;
                }
                let both_leaves = self.nodes[node.left as usize].is_leaf() && self.nodes[node.right as usize].is_leaf();
                if both_leaves && self.stats[i].loss_change < min_split_loss {
                    self.nodes[i] = Node::leaf(eta * weights[i]);
                    self.stats[i].base_weight = weights[i];
                    self.categories.retain(|(n, _)| *n as usize != i);
                    removed += 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if removed > 0 {
            self.lay_out_breadth_first();
        }
        removed
    }

    /// The leaf value reached by `row` (missing = NaN or beyond the row's end).
    #[inline]
    pub fn leaf_value(&self, row: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            // Validated at load: indices are in bounds.
            let node = self.nodes[i];
            if node.left < 0 {
                return node.value;
            }
            // Laid out breadth-first at load: the right child follows the left one.
            i = node.left as usize + usize::from(!self.go_left(&node, i, row));
        }
    }

    /// The leaf values reached by several rows at once (no order between rows matters).
    #[inline]
    pub fn leaf_values(&self, rows: [&[f32]; LANES]) -> [f32; LANES] {
        let mut at = [0usize; LANES];
        // Exactly `depth` levels: a lane at a leaf stays there (a select, not a branch).
        for _ in 0..self.depth {
            for k in 0..LANES {
                let node = self.nodes[at[k]];
                // The decision of `go_left`, written out: through the helper this loop runs
                // about 25% slower at 1,000 rows (measured with benches/predict.sh).
                let v = rows[k].get(node.feature()).copied().unwrap_or(f32::NAN);
                let go_left = if node.is_categorical() {
                    if v.is_nan() { node.default_left() } else { !self.in_category(at[k] as u32, v) }
                } else {
                    (v < node.value) | (v.is_nan() & node.default_left())
                };
                let next = (node.left as usize).wrapping_add(usize::from(!go_left));
                at[k] = if node.left < 0 { at[k] } else { next };
            }
        }
        at.map(|i| self.nodes[i].value)
    }

    /// The leaf values one row reaches in several trees at once: [`Tree::leaf_values`] with
    /// lanes over trees instead of rows, its decision written out the same way (through a
    /// helper that loop runs 25% slower).
    #[inline]
    pub fn leaf_values_across(trees: &[Tree; LANES], row: &[f32]) -> [f32; LANES] {
        let mut at = [0usize; LANES];
        let depth = trees.iter().map(|t| t.depth).max().unwrap_or(0);
        for _ in 0..depth {
            for (k, tree) in trees.iter().enumerate() {
                let node = tree.nodes[at[k]];
                let v = row.get(node.feature()).copied().unwrap_or(f32::NAN);
                let go_left = if node.is_categorical() {
                    if v.is_nan() { node.default_left() } else { !tree.in_category(at[k] as u32, v) }
                } else {
                    (v < node.value) | (v.is_nan() & node.default_left())
                };
                let next = (node.left as usize).wrapping_add(usize::from(!go_left));
                at[k] = if node.left < 0 { at[k] } else { next };
            }
        }
        std::array::from_fn(|k| trees[k].nodes[at[k]].value)
    }

    /// XGBoost's `Decision`: listed categories go right; negative, fractional parts dropped.
    fn in_category(&self, node: u32, v: f32) -> bool {
        if !(0.0..16_777_216.0).contains(&v) {
            return false;
        }
        let category = v as u32;
        match self.categories.binary_search_by_key(&node, |(n, _)| *n) {
            Ok(k) => self.categories[k].1.binary_search(&category).is_ok(),
            Err(_) => false,
        }
    }
}

/// How predictions are turned from margins into outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objective {
    /// Margin is the output: `reg:squarederror`, `reg:linear`, `reg:absoluteerror`,
    /// `reg:pseudohubererror`, `reg:squaredlogerror`, `reg:quantileerror`, `binary:logitraw`,
    /// `rank:*`.
    Identity(String),
    /// `reg:logistic`, `binary:logistic`.
    Logistic(String),
    /// `binary:hinge`: 1 when the margin is positive.
    Hinge,
    /// `count:poisson`, `reg:gamma`, `reg:tweedie`, `survival:cox`, `survival:aft`.
    Exp(String),
    /// `multi:softprob`: one probability per class.
    SoftProb,
    /// `multi:softmax`: the index of the largest margin.
    SoftMax,
}

impl Objective {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "reg:squarederror"
            | "reg:linear"
            | "reg:absoluteerror"
            | "reg:pseudohubererror"
            | "reg:squaredlogerror"
            | "reg:quantileerror"
            | "binary:logitraw"
            | "rank:pairwise"
            | "rank:ndcg"
            | "rank:map" => Self::Identity(name.to_string()),
            "reg:logistic" | "binary:logistic" => Self::Logistic(name.to_string()),
            "binary:hinge" => Self::Hinge,
            "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => {
                Self::Exp(name.to_string())
            }
            "multi:softprob" => Self::SoftProb,
            "multi:softmax" => Self::SoftMax,
            other => return Err(format!("objective `{other}` is not supported")),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Identity(n) | Self::Logistic(n) | Self::Exp(n) => n,
            Self::Hinge => "binary:hinge",
            Self::SoftProb => "multi:softprob",
            Self::SoftMax => "multi:softmax",
        }
    }

    pub fn is_multiclass(&self) -> bool {
        matches!(self, Self::SoftProb | Self::SoftMax)
    }

    /// Is this a classification objective (evaluated with classification metrics)?
    pub fn is_classification(&self) -> bool {
        matches!(self, Self::SoftProb | Self::SoftMax | Self::Hinge)
            || matches!(self, Self::Logistic(n) if n == "binary:logistic")
            || matches!(self, Self::Identity(n) if n == "binary:logitraw")
    }

    /// XGBoost's `ProbToMargin` of a stored `base_score`, in f32.
    pub fn prob_to_margin(&self, base_score: f32) -> f32 {
        match self {
            Self::Logistic(_) => -(1.0f32 / base_score - 1.0f32).ln(),
            Self::Exp(_) => base_score.ln(),
            _ => base_score,
        }
    }
}

/// Which XGBoost computed the model: decides the few places where releases differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The forest, and what prediction needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    pub objective: Objective,
    pub num_feature: usize,
    /// Outputs per row: the number of classes for `multi:*`, else 1.
    pub num_groups: usize,
    /// `base_score` as stored (probability space), one per group.
    pub base_score: Vec<f32>,
    pub trees: Vec<Tree>,
    /// The output group of each tree.
    pub tree_group: Vec<u32>,
    /// DART's per-tree weights.
    pub tree_weights: Option<Vec<f32>>,
    /// Trees of each boosting round: round `i` is `round_bounds[i]..round_bounds[i + 1]`.
    pub round_bounds: Vec<usize>,
    pub num_parallel_tree: usize,
    /// What early stopping recorded (`best_iteration` attribute), if anything.
    pub best_iteration: Option<usize>,
    /// `best_ntree_limit` (1.x): the number of trees SageMaker's server predicts with.
    pub best_ntree_limit: Option<usize>,
    pub feature_names: Vec<String>,
    pub feature_types: Vec<String>,
    /// The XGBoost release that wrote the model, when the model says.
    pub version: Option<Version>,
    /// Other string attributes, kept to be written back.
    pub attributes: Vec<(String, String)>,
    /// The objective's parameters as the model states them (`tweedie_variance_power`,
    /// `huber_slope`, `max_delta_step`, `scale_pos_weight`): `(key, text)`; XGBoost's
    /// defaults where absent.
    pub objective_params: Vec<(String, String)>,
}

impl Forest {
    /// Drop what only writing the model back needs (per-node statistics) and spare capacity,
    /// for a server that holds many models: a node then costs `size_of::<Node>()` bytes.
    pub fn compact(&mut self) {
        for tree in &mut self.trees {
            tree.stats = Vec::new();
            tree.nodes.shrink_to_fit();
            tree.categories.shrink_to_fit();
        }
        self.trees.shrink_to_fit();
        self.tree_group.shrink_to_fit();
        self.round_bounds.shrink_to_fit();
    }

    /// Bytes the forest holds on the heap: the sizes of its allocations (the allocator rounds
    /// each up a little, which is not counted).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let strings = |v: &[String]| v.iter().map(|s| s.capacity() + size_of::<String>()).sum::<usize>();
        let trees: usize = self
            .trees
            .iter()
            .map(|t| {
                t.nodes.capacity() * size_of::<Node>()
                    + t.stats.capacity() * size_of::<NodeStats>()
                    + t.categories.capacity() * size_of::<(u32, Vec<u32>)>()
                    + t.categories.iter().map(|(_, c)| c.capacity() * size_of::<u32>()).sum::<usize>()
            })
            .sum();
        trees
            + self.trees.capacity() * size_of::<Tree>()
            + self.base_score.capacity() * size_of::<f32>()
            + self.tree_group.capacity() * size_of::<u32>()
            + self.tree_weights.as_ref().map_or(0, |w| w.capacity() * size_of::<f32>())
            + self.round_bounds.capacity() * size_of::<usize>()
            + strings(&self.feature_names)
            + strings(&self.feature_types)
            + self
                .attributes
                .iter()
                .chain(&self.objective_params)
                .map(|(k, v)| k.capacity() + v.capacity())
                .sum::<usize>()
            + (self.attributes.capacity() + self.objective_params.capacity()) * size_of::<(String, String)>()
    }

    /// Number of boosting rounds.
    pub fn rounds(&self) -> usize {
        self.round_bounds.len().saturating_sub(1)
    }

    /// The margin that prediction starts from, one per group, as XGBoost derives it at load.
    pub fn base_margin(&self) -> Vec<f32> {
        self.base_score
            .iter()
            .map(|&b| {
                // Before 1.0 the binary stored a margin: XGBoost transforms it to probability
                // space at load and back again, so do the same for the same f32.
                let b = match self.version {
                    Some(v) if v.0 == 0 && !self.objective.is_multiclass() => self.transform_scalar(b),
                    _ => b,
                };
                self.objective.prob_to_margin(b)
            })
            .collect()
    }

    fn transform_scalar(&self, margin: f32) -> f32 {
        let mut out = Vec::with_capacity(1);
        self.transform(&mut [margin], &mut out);
        out[0]
    }

    /// Sum the trees in `trees` (a range of tree indices) into `margins` (`rows x groups`),
    /// which starts as zeros. Each row follows XGBoost's accumulation order exactly.
    pub fn predict_margin(&self, rows: &Matrix<'_>, trees: Range<usize>, margins: &mut [f32]) {
        let groups = self.num_groups;
        debug_assert_eq!(margins.len(), rows.rows() * groups);
        let base = self.base_margin();
        // 1.2 and older sum the trees from zero and add the base last; later releases start
        // from the base and add each tree in turn. The last ulp depends on it.
        let base_first = self.version.is_none_or(|v| v >= Version(1, 3, 0));
        const BLOCK: usize = 64;
        let mut sums = vec![0.0f32; BLOCK * groups];
        for block_start in (0..rows.rows()).step_by(BLOCK) {
            let block = block_start..(block_start + BLOCK).min(rows.rows());
            let out = &mut sums[..block.len() * groups];
            for chunk in out.chunks_mut(groups) {
                if base_first {
                    chunk.copy_from_slice(&base);
                } else {
                    chunk.fill(0.0);
                }
            }
            // Each row's sums take the trees in order, whichever loop reaches them first.
            let mut add = |t: usize, r: usize, leaf: f32| {
                out[r * groups + self.tree_group[t] as usize] += match &self.tree_weights {
                    Some(w) => w[t] * leaf,
                    None => leaf,
                };
            };
            let full = block.len() / LANES * LANES;
            for t in trees.clone() {
                // Eight rows walk the tree together: their loads and compares overlap.
                for r in (0..full).step_by(LANES) {
                    let lanes: [&[f32]; LANES] = std::array::from_fn(|k| rows.row(block.start + r + k));
                    for (k, leaf) in self.trees[t].leaf_values(lanes).into_iter().enumerate() {
                        add(t, r + k, leaf);
                    }
                }
            }
            // A row left over walks eight trees together instead: a one-row request on a model
            // out of the caches is otherwise one chain of dependent misses per tree.
            for r in full..block.len() {
                let row = rows.row(block.start + r);
                let mut t = trees.start;
                while t + LANES <= trees.end {
                    let group: &[Tree; LANES] = self.trees[t..t + LANES].try_into().expect("LANES trees");
                    for (k, leaf) in Tree::leaf_values_across(group, row).into_iter().enumerate() {
                        add(t + k, r, leaf);
                    }
                    t += LANES;
                }
                for t in t..trees.end {
                    add(t, r, self.trees[t].leaf_value(row));
                }
            }
            let target = &mut margins[block.start * groups..block.end * groups];
            if base_first {
                target.copy_from_slice(out);
            } else {
                for (t, (s, g)) in target.iter_mut().zip(out.iter().zip(base.iter().cycle())) {
                    *t = g + s;
                }
            }
        }
    }

    /// Turn margins into predictions in place: `rows x groups` for `multi:softprob`, else one
    /// per row (`multi:softmax` shrinks `rows x groups` to `rows`).
    pub fn transform(&self, margins: &mut [f32], out: &mut Vec<f32>) {
        let new_sigmoid = self.version.is_none_or(|v| v >= Version(2, 0, 0));
        out.clear();
        match &self.objective {
            Objective::Identity(_) => out.extend_from_slice(margins),
            Objective::Logistic(_) => out.extend(margins.iter().map(|&m| sigmoid(m, new_sigmoid))),
            Objective::Hinge => out.extend(margins.iter().map(|&m| if m > 0.0 { 1.0 } else { 0.0 })),
            Objective::Exp(_) => out.extend(margins.iter().map(|&m| m.exp())),
            Objective::SoftProb => {
                for row in margins.chunks_mut(self.num_groups) {
                    softmax(row);
                    out.extend_from_slice(row);
                }
            }
            Objective::SoftMax => {
                for row in margins.chunks(self.num_groups) {
                    // The first of equal maxima, as XGBoost's argmax.
                    let mut best = 0;
                    for (k, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = k;
                        }
                    }
                    out.push(best as f32);
                }
            }
        }
    }

    /// Outputs per row after the transform.
    pub fn outputs_per_row(&self) -> usize {
        match self.objective {
            Objective::SoftMax => 1,
            _ => self.num_groups,
        }
    }

    /// The tree range to predict with: all trees, or the first `limit` rounds.
    pub fn tree_range(&self, limit: TreeLimit) -> Range<usize> {
        let rounds = match limit {
            TreeLimit::All => return 0..self.trees.len(),
            TreeLimit::Rounds(r) => r,
            TreeLimit::SageMaker => match self.best_ntree_limit {
                // best_ntree_limit counts trees per class: (best_iteration + 1) * parallel trees.
                Some(n) if n > 0 => n.div_ceil(self.num_parallel_tree.max(1)),
                _ => return 0..self.trees.len(),
            },
        };
        let r = rounds.min(self.rounds());
        0..self.round_bounds.get(r).copied().unwrap_or(self.trees.len())
    }

    /// Predictions for every row: `rows x outputs_per_row`, a large batch split over every core.
    pub fn predict(&self, rows: &Matrix<'_>, limit: TreeLimit) -> Vec<f32> {
        self.predict_on(rows, limit, crate::parallel::cores())
    }

    /// Predictions using at most `threads` threads.
    pub fn predict_on(&self, rows: &Matrix<'_>, limit: TreeLimit, threads: usize) -> Vec<f32> {
        let mut margins = self.margins_on(rows, limit, threads);
        let mut out = Vec::with_capacity(margins.len());
        self.transform(&mut margins, &mut out);
        out
    }

    /// Raw margins for every row: `rows x groups`. Splits large batches over every core.
    pub fn margins(&self, rows: &Matrix<'_>, limit: TreeLimit) -> Vec<f32> {
        self.margins_on(rows, limit, crate::parallel::cores())
    }

    /// Raw margins using at most `threads` threads (a batch too small to be worth the spawn
    /// stays on the calling thread).
    pub fn margins_on(&self, rows: &Matrix<'_>, limit: TreeLimit, threads: usize) -> Vec<f32> {
        let trees = self.tree_range(limit);
        let groups = self.num_groups;
        let mut margins = vec![0.0f32; rows.rows() * groups];
        let work = rows.rows() * trees.len();
        if threads > 1 && rows.rows() >= 2 * 64 && work >= 20_000 {
            let per_thread = rows.rows().div_ceil(threads).next_multiple_of(64);
            std::thread::scope(|scope| {
                let mut chunks = margins.chunks_mut(per_thread * groups).enumerate();
                // The calling thread takes the first chunk itself: one spawn fewer.
                let (_, first) = chunks.next().expect("at least one row");
                for (i, chunk) in chunks {
                    let part = rows.slice(i * per_thread, chunk.len() / groups);
                    let trees = trees.clone();
                    scope.spawn(move || self.predict_margin(&part, trees, chunk));
                }
                self.predict_margin(&rows.slice(0, first.len() / groups), trees.clone(), first);
            });
        } else {
            self.predict_margin(rows, trees, &mut margins);
        }
        margins
    }
}

/// How many trees to predict with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeLimit {
    /// Every tree, as `Booster.predict()` does by default.
    All,
    /// The first n boosting rounds.
    Rounds(usize),
    /// As SageMaker's XGBoost server: `best_ntree_limit` when the model carries one.
    SageMaker,
}

/// `XGBoost`'s sigmoid in f32: 2.0 clamps the exponent (and adds an epsilon that cannot change
/// an f32 sum of at least 1).
fn sigmoid(x: f32, clamped: bool) -> f32 {
    if clamped {
        let e = (-x).min(88.7f32).exp();
        1.0f32 / (e + 1.0f32)
    } else {
        1.0f32 / (1.0f32 + (-x).exp())
    }
}

/// XGBoost's `common::Softmax`: f32 exponentials summed in double.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(row[0], f32::max);
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let sum = sum as f32;
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Dense rows of f32 features, NaN for missing. Rows may be shorter than the model's
/// feature count (the rest is missing).
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    cols: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(data: &'a [f32], cols: usize) -> Self {
        assert!(cols > 0 && data.len().is_multiple_of(cols), "data is rows x cols");
        Self { data, cols }
    }

    pub fn rows(&self) -> usize {
        self.data.len() / self.cols
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    fn slice(&self, first_row: usize, rows: usize) -> Matrix<'a> {
        Matrix { data: &self.data[first_row * self.cols..(first_row + rows) * self.cols], cols: self.cols }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forest(objective: Objective, base_score: f32, version: Option<Version>) -> Forest {
        Forest {
            objective,
            num_feature: 1,
            num_groups: 1,
            base_score: vec![base_score],
            trees: vec![Tree { nodes: vec![Node::leaf(0.0)], ..Default::default() }],
            tree_group: vec![0],
            tree_weights: None,
            round_bounds: vec![0, 1],
            num_parallel_tree: 1,
            best_iteration: None,
            best_ntree_limit: None,
            feature_names: Vec::new(),
            feature_types: Vec::new(),
            version,
            attributes: Vec::new(),
            objective_params: Vec::new(),
        }
    }

    /// Random trees of depth up to 6 over 5 features, some splits categorical, laid out as
    /// loading lays them out.
    fn random_tree(seed: &mut u64) -> Tree {
        let mut next = move || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let mut tree = Tree::default();
        let mut open = vec![(0usize, 0usize)];
        tree.nodes.push(Node::leaf(0.0));
        while let Some((i, depth)) = open.pop() {
            let r = next();
            if depth == 6 || r % 4 == 0 {
                tree.nodes[i] = Node::leaf((r % 1000) as f32 / 97.0 - 5.0);
                continue;
            }
            let left = tree.nodes.len();
            tree.nodes.push(Node::leaf(0.0));
            tree.nodes.push(Node::leaf(0.0));
            let categorical = r % 7 == 0;
            let threshold = ((r >> 8) % 200) as f32 / 100.0 - 1.0;
            tree.nodes[i] =
                Node::split((r >> 20) as u32 % 5, threshold, left as i32, left as i32 + 1, r % 3 == 0, categorical);
            if categorical {
                tree.categories.push((i as u32, vec![0, 2]));
            }
            open.push((left, depth + 1));
            open.push((left + 1, depth + 1));
        }
        tree.categories.sort_by_key(|(n, _)| *n);
        tree.validate().unwrap();
        tree.lay_out_breadth_first();
        tree
    }

    /// Rows left over after the eight-row lanes walk eight trees together: the same margins,
    /// bit for bit, as each tree walked alone, for every row count and tree count (DART
    /// weights and several groups included).
    #[test]
    fn left_over_rows_walk_trees_together_exactly() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (n_trees, groups, dart) in [(1, 1, false), (7, 1, false), (8, 1, false), (29, 1, true), (30, 3, false)] {
            let mut f = forest(Objective::Identity("reg:squarederror".into()), 0.5, None);
            f.num_feature = 5;
            f.num_groups = groups;
            f.base_score = vec![0.5; groups];
            f.trees = (0..n_trees).map(|_| random_tree(&mut seed)).collect();
            f.tree_group = (0..n_trees as u32).map(|t| t % groups as u32).collect();
            f.round_bounds = (0..=n_trees).collect();
            if dart {
                f.tree_weights = Some((0..n_trees).map(|t| 0.5 + t as f32 / 64.0).collect());
            }
            for n_rows in [1usize, 2, 7, 8, 9, 65, 71] {
                let values: Vec<f32> = (0..n_rows * 5)
                    .map(|i| {
                        let r = (i as u64 * 2654435761) % 1000;
                        if r.is_multiple_of(11) {
                            f32::NAN
                        } else if r.is_multiple_of(5) {
                            (r % 4) as f32
                        } else {
                            r as f32 / 500.0 - 1.0
                        }
                    })
                    .collect();
                let rows = Matrix::new(&values, 5);
                let got = f.margins(&rows, TreeLimit::All);
                let want: Vec<f32> = (0..n_rows)
                    .flat_map(|r| {
                        let mut sums = f.base_margin();
                        for (t, tree) in f.trees.iter().enumerate() {
                            let leaf = tree.leaf_value(rows.row(r));
                            sums[f.tree_group[t] as usize] += f.tree_weights.as_ref().map_or(leaf, |w| w[t] * leaf);
                        }
                        sums
                    })
                    .collect();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{n_trees} trees, {groups} groups, {n_rows} rows");
            }
        }
    }

    /// Before 1.0 the binary stored base_score as a margin: XGBoost transforms it to
    /// probability space at load and back, so a stored margin of 0.25 predicts from 0.25.
    #[test]
    fn a_pre_1_0_base_score_is_a_margin() {
        let old = forest(Objective::Logistic("binary:logistic".into()), 0.25, Some(Version(0, 90, 0)));
        let margin = old.base_margin()[0];
        assert!((margin - 0.25).abs() < 1e-6, "{margin}");
        // From 1.0 it is a probability: 0.25 is the margin logit(0.25).
        let new = forest(Objective::Logistic("binary:logistic".into()), 0.25, Some(Version(1, 0, 0)));
        assert!((new.base_margin()[0] - (0.25f32 / 0.75).ln()).abs() < 1e-6);
        let poisson = forest(Objective::Exp("count:poisson".into()), 0.5, Some(Version(0, 90, 0)));
        assert!((poisson.base_margin()[0] - 0.5).abs() < 1e-6);
    }
}

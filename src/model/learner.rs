//! XGBoost's learner document (the JSON and UBJSON layouts, 1.0 to 3.x) to a [`Forest`],
//! and back in the layout current XGBoost writes.

use super::ModelError;
use super::forest::{Forest, MAX_FEATURE, MAX_GROUPS, Node, NodeStats, Objective, Tree, Version};
use super::value::Value;

fn bad(path: &str, problem: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid(format!("`{path}` {problem}"))
}

fn field<'a>(parent: &'a Value, path: &str, key: &str) -> Result<&'a Value, ModelError> {
    parent.get(key).ok_or_else(|| bad(&format!("{path}.{key}"), "is missing"))
}

/// XGBoost writes most parameters as strings (`"num_class":"0"`).
fn number_param(v: &Value, path: &str) -> Result<f64, ModelError> {
    match v {
        Value::Str(s) => s.trim().parse::<f64>().map_err(|_| bad(path, format!("is `{s}`, not a number"))),
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f, _) => Ok(*f),
        other => Err(bad(path, format!("is {}, not a number", other.type_name()))),
    }
}

fn usize_param(v: &Value, path: &str) -> Result<usize, ModelError> {
    let n = number_param(v, path)?;
    if n >= 0.0 && n.fract() == 0.0 && n < 1e12 {
        Ok(n as usize)
    } else {
        Err(bad(path, format!("is {n}, not a count")))
    }
}

/// `"5E-1"` (up to 3.0) or `"[5.4936256E0]"` / `"[a,b,c]"` (3.1 and later), read to f32.
pub(crate) fn parse_base_score(text: &str, path: &str) -> Result<Vec<f32>, ModelError> {
    let inner = text.trim().strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    inner
        .split(',')
        .map(|s| s.trim().parse::<f32>().map_err(|_| bad(path, format!("holds `{text}`, not numbers"))))
        .collect()
}

/// Read a learner document: `{"version": [..], "learner": {..}}`.
pub fn from_document(doc: &Value) -> Result<Forest, ModelError> {
    let version = doc.get("version").and_then(Value::to_i64s).and_then(|v| match v.as_slice() {
        [a, b, c, ..] => Some(Version(*a as u32, *b as u32, *c as u32)),
        _ => None,
    });
    let learner = field(doc, "", "learner")?;
    let params = field(learner, "learner", "learner_model_param")?;
    let p = "learner.learner_model_param";
    let num_feature = usize_param(field(params, p, "num_feature")?, &format!("{p}.num_feature"))?;
    let num_class = match params.get("num_class") {
        Some(v) => usize_param(v, &format!("{p}.num_class"))?,
        None => 0,
    };
    let num_target = match params.get("num_target") {
        Some(v) => usize_param(v, &format!("{p}.num_target"))?.max(1),
        None => 1,
    };
    let base_text = match field(params, p, "base_score")? {
        Value::Str(s) => s.clone(),
        other => number_param(other, &format!("{p}.base_score"))?.to_string(),
    };
    let base_score = parse_base_score(&base_text, &format!("{p}.base_score"))?;

    let objective_name = field(learner, "learner", "objective")?
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("learner.objective.name", "is missing"))?;
    let objective = Objective::parse(objective_name).map_err(|e| bad("learner.objective.name", e))?;

    let attributes: Vec<(String, String)> = match learner.get("attributes") {
        Some(Value::Object(fields)) => {
            fields.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()
        }
        _ => Vec::new(),
    };
    let attr = |name: &str| attributes.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.trim().parse().ok());
    let strings = |key: &str| -> Vec<String> {
        match learner.get(key) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };

    let booster = field(learner, "learner", "gradient_booster")?;
    let (trees_model, weight_drop, model_path) = gbtree_model(booster)?;
    let mut forest = read_gbtree(trees_model, &model_path, num_feature)?;
    forest.tree_weights = weight_drop;
    forest.objective = objective;
    forest.objective_params = objective_params(field(learner, "learner", "objective")?);
    forest.num_groups =
        if forest.objective.is_multiclass() { num_class.max(1) } else { num_target.max(num_class).max(1) };
    forest.base_score = broadcast(base_score, forest.num_groups, p)?;
    if forest.round_bounds.is_empty() {
        forest.round_bounds = default_round_bounds(forest.trees.len(), forest.num_groups, forest.num_parallel_tree);
    }
    forest.best_iteration = attr("best_iteration");
    forest.best_ntree_limit = attr("best_ntree_limit");
    forest.feature_names = strings("feature_names");
    forest.feature_types = strings("feature_types");
    forest.version = version;
    forest.attributes = attributes;
    finish(forest)
}

/// A vector base score must have one value per group, or one for all.
pub(crate) fn broadcast(base: Vec<f32>, groups: usize, path: &str) -> Result<Vec<f32>, ModelError> {
    if groups > MAX_GROUPS {
        return Err(bad(
            &format!("{path}.num_class"),
            format!("declares {groups} outputs; at most {MAX_GROUPS} are supported"),
        ));
    }
    match base.len() {
        1 => Ok(vec![base[0]; groups]),
        n if n == groups => Ok(base),
        n => Err(bad(&format!("{path}.base_score"), format!("has {n} values for {groups} outputs"))),
    }
}

/// Check what prediction relies on, once, at load.
pub(crate) fn finish(mut forest: Forest) -> Result<Forest, ModelError> {
    let groups = forest.num_groups;
    if forest.trees.len() != forest.tree_group.len() {
        return Err(ModelError::Invalid(format!(
            "{} trees but {} `tree_info` entries",
            forest.trees.len(),
            forest.tree_group.len()
        )));
    }
    if let Some(g) = forest.tree_group.iter().find(|&&g| g as usize >= groups) {
        return Err(ModelError::Invalid(format!("a tree belongs to output group {g}, but the model has {groups}")));
    }
    if let Some(w) = &forest.tree_weights
        && w.len() != forest.trees.len()
    {
        return Err(ModelError::Invalid(format!("{} DART weights for {} trees", w.len(), forest.trees.len())));
    }
    let bounds = &forest.round_bounds;
    if bounds.first() != Some(&0)
        || bounds.last() != Some(&forest.trees.len())
        || bounds.windows(2).any(|w| w[0] > w[1])
    {
        return Err(ModelError::Invalid("`iteration_indptr` does not cover the trees in order".into()));
    }
    for (i, tree) in forest.trees.iter_mut().enumerate() {
        tree.validate().map_err(|e| ModelError::Invalid(format!("tree {i}: {e}")))?;
        tree.lay_out_breadth_first();
    }
    Ok(forest)
}

/// The gbtree model object and DART weights, wherever the release put them.
fn gbtree_model(booster: &Value) -> Result<(&Value, Option<Vec<f32>>, String), ModelError> {
    let name = booster.get("name").and_then(Value::as_str).unwrap_or("gbtree");
    let path = "learner.gradient_booster";
    let weights = |v: Option<&Value>, at: &str| -> Result<Option<Vec<f32>>, ModelError> {
        v.map(|w| w.to_f32s().ok_or_else(|| bad(at, "is not a list of numbers"))).transpose()
    };
    match name {
        "gbtree" => {
            let model = field(booster, path, "model")?;
            // DART from 3.3 is written as gbtree plus weight_drop (3.3 beside "model", 3.4 inside).
            let drop = match model.get("weight_drop") {
                Some(w) => weights(Some(w), &format!("{path}.model.weight_drop"))?,
                None => weights(booster.get("weight_drop"), &format!("{path}.weight_drop"))?,
            };
            Ok((model, drop, format!("{path}.model")))
        }
        "dart" => {
            let inner = field(booster, path, "gbtree")?;
            let model = field(inner, &format!("{path}.gbtree"), "model")?;
            let drop = weights(booster.get("weight_drop"), &format!("{path}.weight_drop"))?;
            Ok((model, drop, format!("{path}.gbtree.model")))
        }
        other => Err(bad(&format!("{path}.name"), format!("is `{other}`; only gbtree and dart models are supported"))),
    }
}

fn read_gbtree(model: &Value, path: &str, num_feature: usize) -> Result<Forest, ModelError> {
    let param_path = format!("{path}.gbtree_model_param");
    let params = field(model, path, "gbtree_model_param")?;
    let num_parallel_tree = match params.get("num_parallel_tree") {
        Some(v) => usize_param(v, &format!("{param_path}.num_parallel_tree"))?.max(1),
        None => 1,
    };
    let Some(Value::Array(tree_values)) = model.get("trees") else {
        return Err(bad(&format!("{path}.trees"), "is missing or not a list"));
    };
    let trees = tree_values
        .iter()
        .enumerate()
        .map(|(i, t)| read_tree(t, &format!("{path}.trees[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let tree_group = field(model, path, "tree_info")?
        .to_i64s()
        .ok_or_else(|| bad(&format!("{path}.tree_info"), "is not a list of integers"))?
        .into_iter()
        .map(|g| u32::try_from(g).map_err(|_| bad(&format!("{path}.tree_info"), format!("holds {g}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let round_bounds = match model.get("iteration_indptr") {
        Some(v) => v
            .to_i64s()
            .ok_or_else(|| bad(&format!("{path}.iteration_indptr"), "is not a list of integers"))?
            .into_iter()
            .map(|x| usize::try_from(x).map_err(|_| bad(&format!("{path}.iteration_indptr"), format!("holds {x}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(Forest {
        objective: Objective::SoftProb,
        num_feature,
        num_groups: 1,
        base_score: Vec::new(),
        trees,
        tree_group,
        tree_weights: None,
        round_bounds,
        num_parallel_tree,
        best_iteration: None,
        best_ntree_limit: None,
        feature_names: Vec::new(),
        feature_types: Vec::new(),
        version: None,
        attributes: Vec::new(),
        objective_params: Vec::new(),
    })
}

/// Before 2.0 there is no `iteration_indptr`: a round is `groups x num_parallel_tree` trees.
pub(crate) fn default_round_bounds(trees: usize, groups: usize, num_parallel_tree: usize) -> Vec<usize> {
    let per_round = (groups * num_parallel_tree).max(1);
    let mut bounds: Vec<usize> = (0..trees).step_by(per_round).collect();
    bounds.push(trees);
    bounds
}

fn read_tree(tree: &Value, path: &str) -> Result<Tree, ModelError> {
    let ints = |key: &str| -> Result<Vec<i64>, ModelError> {
        field(tree, path, key)?.to_i64s().ok_or_else(|| bad(&format!("{path}.{key}"), "is not a list of integers"))
    };
    let floats = |key: &str| -> Result<Vec<f32>, ModelError> {
        field(tree, path, key)?.to_f32s().ok_or_else(|| bad(&format!("{path}.{key}"), "is not a list of numbers"))
    };
    if let Some(size) = tree.get("tree_param").and_then(|p| p.get("size_leaf_vector"))
        && number_param(size, &format!("{path}.tree_param.size_leaf_vector"))? > 1.0
    {
        return Err(bad(
            &format!("{path}.tree_param.size_leaf_vector"),
            "is above 1: vector-leaf (multi-output) trees are not supported",
        ));
    }
    let left = ints("left_children")?;
    let right = ints("right_children")?;
    let split_index = ints("split_indices")?;
    let conditions = floats("split_conditions")?;
    let default_left = ints("default_left")?;
    let n = left.len();
    let split_type = match tree.get("split_type") {
        Some(v) => v.to_i64s().ok_or_else(|| bad(&format!("{path}.split_type"), "is not a list of integers"))?,
        None => vec![0; n],
    };
    for (key, len) in [
        ("right_children", right.len()),
        ("split_indices", split_index.len()),
        ("split_conditions", conditions.len()),
        ("default_left", default_left.len()),
        ("split_type", split_type.len()),
    ] {
        if len != n {
            return Err(bad(&format!("{path}.{key}"), format!("has {len} entries; left_children has {n}")));
        }
    }
    let child = |c: i64, key: &str| i32::try_from(c).map_err(|_| bad(&format!("{path}.{key}"), format!("holds {c}")));
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        if left[i] == -1 {
            nodes.push(Node::leaf(conditions[i]));
            continue;
        }
        let feature = u32::try_from(split_index[i])
            .ok()
            .filter(|&f| f <= MAX_FEATURE)
            .ok_or_else(|| bad(&format!("{path}.split_indices"), format!("holds feature {}", split_index[i])))?;
        nodes.push(Node::split(
            feature,
            conditions[i],
            child(left[i], "left_children")?,
            child(right[i], "right_children")?,
            default_left[i] != 0,
            split_type[i] == 1,
        ));
    }
    let stats = match (tree.get("loss_changes"), tree.get("sum_hessian"), tree.get("base_weights")) {
        (Some(l), Some(h), Some(w)) => match (l.to_f32s(), h.to_f32s(), w.to_f32s()) {
            (Some(l), Some(h), Some(w)) if l.len() == n && h.len() == n && w.len() == n => {
                (0..n).map(|i| NodeStats { loss_change: l[i], sum_hessian: h[i], base_weight: w[i] }).collect()
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let categories = read_categories(tree, path, n)?;
    Ok(Tree { nodes, stats, categories, depth: 0 })
}

fn read_categories(tree: &Value, path: &str, n: usize) -> Result<Vec<(u32, Vec<u32>)>, ModelError> {
    let list = |key: &str| tree.get(key).and_then(Value::to_i64s).unwrap_or_default();
    let (nodes, segments, sizes, all) =
        (list("categories_nodes"), list("categories_segments"), list("categories_sizes"), list("categories"));
    if nodes.len() != segments.len() || nodes.len() != sizes.len() {
        return Err(bad(&format!("{path}.categories_nodes"), "does not match categories_segments/sizes"));
    }
    let mut out = Vec::with_capacity(nodes.len());
    for ((&node, &start), &size) in nodes.iter().zip(&segments).zip(&sizes) {
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(s, z)| Some(s..s.checked_add(z)?))
            .filter(|r| r.end <= all.len())
            .ok_or_else(|| bad(&format!("{path}.categories_segments"), "points outside `categories`"))?;
        let node = u32::try_from(node)
            .ok()
            .filter(|&x| (x as usize) < n)
            .ok_or_else(|| bad(&format!("{path}.categories_nodes"), format!("names node {node}, outside the tree")))?;
        let mut cats: Vec<u32> = all[range].iter().filter_map(|&c| u32::try_from(c).ok()).collect();
        cats.sort_unstable();
        out.push((node, cats));
    }
    out.sort_by_key(|(node, _)| *node);
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Writing
// ------------------------------------------------------------------------------------------

fn s(text: impl Into<String>) -> Value {
    Value::Str(text.into())
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn f32_text(f: f32) -> String {
    // XGBoost writes parameters as the shortest round-trip text in scientific notation.
    let text = format!("{f:E}");
    text
}

/// The learner document as XGBoost 3.x writes it. `base_score` is written as a scalar
/// string when every group shares one value, which 1.x and 3.x both read; as a vector only
/// when it must be.
pub fn to_document(forest: &Forest) -> Value {
    let folded = fold_base_margin(forest);
    let forest = folded.as_ref().unwrap_or(forest);
    let base_score = if forest.base_score.iter().all(|&b| b.to_bits() == forest.base_score[0].to_bits()) {
        f32_text(forest.base_score[0])
    } else {
        format!("[{}]", forest.base_score.iter().map(|&b| f32_text(b)).collect::<Vec<_>>().join(","))
    };
    let num_class = if forest.objective.is_multiclass() { forest.num_groups } else { 0 };
    let trees: Vec<Value> =
        forest.trees.iter().enumerate().map(|(i, t)| write_tree(t, i, forest.num_feature)).collect();
    let mut model = vec![
        (
            "gbtree_model_param",
            obj(vec![
                ("num_parallel_tree", s(forest.num_parallel_tree.to_string())),
                ("num_trees", s(forest.trees.len().to_string())),
            ]),
        ),
        ("iteration_indptr", Value::Array(forest.round_bounds.iter().map(|&b| Value::Int(b as i64)).collect())),
        ("tree_info", Value::Array(forest.tree_group.iter().map(|&g| Value::Int(i64::from(g))).collect())),
        ("trees", Value::Array(trees)),
    ];
    if let Some(weights) = &forest.tree_weights {
        model.push(("weight_drop", Value::F32Array(weights.clone())));
    }
    let booster = if forest.tree_weights.is_some() {
        // Written as 3.2 and older do, which every release from 1.0 reads.
        let weights = model.pop().expect("weight_drop pushed above").1;
        obj(vec![
            ("gbtree", obj(vec![("model", obj(model)), ("name", s("gbtree"))])),
            ("name", s("dart")),
            ("weight_drop", weights),
        ])
    } else {
        obj(vec![("model", obj(model)), ("name", s("gbtree"))])
    };
    let attributes = Value::Object(forest.attributes.iter().map(|(k, v)| (k.clone(), Value::Str(v.clone()))).collect());
    let names = |v: &[String]| Value::Array(v.iter().map(|n| s(n.clone())).collect());
    let version = forest.version.unwrap_or(Version(3, 2, 0));
    obj(vec![
        (
            "learner",
            obj(vec![
                ("attributes", attributes),
                ("feature_names", names(&forest.feature_names)),
                ("feature_types", names(&forest.feature_types)),
                ("gradient_booster", booster),
                (
                    "learner_model_param",
                    obj(vec![
                        ("base_score", s(base_score)),
                        ("boost_from_average", s("1")),
                        ("num_class", s(num_class.to_string())),
                        ("num_feature", s(forest.num_feature.to_string())),
                        ("num_target", s("1")),
                    ]),
                ),
                ("objective", objective_document(&forest.objective, num_class, &forest.objective_params)),
            ]),
        ),
        (
            "version",
            Value::Array(vec![
                Value::Int(i64::from(version.0)),
                Value::Int(i64::from(version.1)),
                Value::Int(i64::from(version.2)),
            ]),
        ),
    ])
}

/// XGBoost 1.x reads one `base_score` for all outputs (a 3.1+ vector is misread as 0.5).
/// When the groups' base scores differ, move each group's base margin into the leaves of its
/// first tree and store the base score whose margin is 0. Bit-exact for every release that
/// adds the base first: `0 + (leaf + base)` is `base + leaf` in f32, and the rest is unchanged.
/// `None` when nothing needs folding (or DART weights would make it inexact).
fn fold_base_margin(forest: &Forest) -> Option<Forest> {
    let first = forest.base_score.first()?;
    if forest.base_score.iter().all(|b| b.to_bits() == first.to_bits()) {
        return None;
    }
    let neutral = match forest.objective {
        Objective::Logistic(_) => 0.5,
        Objective::Exp(_) => 1.0,
        _ => 0.0,
    };
    let margins = forest.base_margin();
    let mut out = forest.clone();
    for (group, margin) in margins.iter().enumerate() {
        let tree = forest.tree_group.iter().position(|&g| g as usize == group)?;
        if forest.tree_weights.as_ref().is_some_and(|w| w[tree] != 1.0) {
            return None;
        }
        for node in out.trees[tree].nodes.iter_mut().filter(|n| n.is_leaf()) {
            node.value += margin;
        }
    }
    out.base_score = vec![neutral; forest.num_groups];
    Some(out)
}

/// The objective parameters a learner document states, as `(key, text)`.
fn objective_params(objective: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(groups) = objective {
        for (_, group) in groups {
            if let Value::Object(params) = group {
                for (key, value) in params {
                    if let Some(text) = value.as_str() {
                        out.push((key.clone(), text.to_string()));
                    }
                }
            }
        }
    }
    out
}

/// The objective's configuration: the model's own parameters, XGBoost's defaults elsewhere.
fn objective_document(objective: &Objective, num_class: usize, given: &[(String, String)]) -> Value {
    let name = objective.name().to_string();
    let param = |key: &str, default: &str| {
        let text = given.iter().find(|(k, _)| k == key).map_or(default, |(_, v)| v.as_str());
        obj(vec![(key, s(text.to_string()))])
    };
    let mut fields = vec![("name", s(name.clone()))];
    match name.as_str() {
        "multi:softprob" | "multi:softmax" => {
            fields.push(("softmax_multiclass_param", obj(vec![("num_class", s(num_class.to_string()))])))
        }
        "reg:pseudohubererror" => fields.push(("pseudo_huber_param", param("huber_slope", "1"))),
        "count:poisson" => fields.push(("poisson_regression_param", param("max_delta_step", "0.7"))),
        "reg:tweedie" => fields.push(("tweedie_regression_param", param("tweedie_variance_power", "1.5"))),
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:logistic"
        | "binary:logistic"
        | "binary:logitraw" => fields.push(("reg_loss_param", param("scale_pos_weight", "1"))),
        _ => {}
    }
    obj(fields)
}

/// `doc` (a learner document) with its trees replaced by `forest`'s, everything else as it
/// was: for editing another writer's model without changing how it says the rest.
pub fn with_trees(doc: &Value, forest: &Forest) -> Result<Value, ModelError> {
    let trees =
        Value::Array(forest.trees.iter().enumerate().map(|(i, t)| write_tree(t, i, forest.num_feature)).collect());
    let mut doc = doc.clone();
    if replace_trees(&mut doc, &trees) {
        Ok(doc)
    } else {
        Err(ModelError::Invalid("the document holds no `trees` list to replace".into()))
    }
}

fn replace_trees(value: &mut Value, trees: &Value) -> bool {
    let Value::Object(fields) = value else { return false };
    for (key, v) in fields.iter_mut() {
        if key == "trees" && matches!(v, Value::Array(_)) {
            *v = trees.clone();
            return true;
        }
        if replace_trees(v, trees) {
            return true;
        }
    }
    false
}

fn write_tree(tree: &Tree, id: usize, num_feature: usize) -> Value {
    let n = tree.nodes.len();
    let mut parents = vec![2147483647i32; n];
    for (i, node) in tree.nodes.iter().enumerate() {
        if !node.is_leaf() {
            parents[node.left as usize] = i as i32;
            parents[node.right as usize] = i as i32;
        }
    }
    let stat = |i: usize| tree.stats.get(i).copied().unwrap_or_default();
    let cat_nodes: Vec<i32> = tree.categories.iter().map(|(node, _)| *node as i32).collect();
    let mut segments = Vec::new();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    for (_, cats) in &tree.categories {
        segments.push(all.len() as i64);
        sizes.push(cats.len() as i64);
        all.extend(cats.iter().map(|&c| c as i32));
    }
    obj(vec![
        ("base_weights", Value::F32Array((0..n).map(|i| stat(i).base_weight).collect())),
        ("categories", Value::I32Array(all)),
        ("categories_nodes", Value::I32Array(cat_nodes)),
        ("categories_segments", Value::I64Array(segments)),
        ("categories_sizes", Value::I64Array(sizes)),
        (
            "default_left",
            Value::U8Array(tree.nodes.iter().map(|nd| u8::from(!nd.is_leaf() && nd.default_left())).collect()),
        ),
        ("id", Value::Int(id as i64)),
        ("left_children", Value::I32Array(tree.nodes.iter().map(|nd| nd.left).collect())),
        ("loss_changes", Value::F32Array((0..n).map(|i| stat(i).loss_change).collect())),
        ("parents", Value::I32Array(parents)),
        ("right_children", Value::I32Array(tree.nodes.iter().map(|nd| nd.right).collect())),
        ("split_conditions", Value::F32Array(tree.nodes.iter().map(|nd| nd.value).collect())),
        (
            "split_indices",
            Value::I32Array(tree.nodes.iter().map(|nd| if nd.is_leaf() { 0 } else { nd.feature() as i32 }).collect()),
        ),
        (
            "split_type",
            Value::U8Array(tree.nodes.iter().map(|nd| u8::from(!nd.is_leaf() && nd.is_categorical())).collect()),
        ),
        ("sum_hessian", Value::F32Array((0..n).map(|i| stat(i).sum_hessian).collect())),
        (
            "tree_param",
            obj(vec![
                ("num_deleted", s("0")),
                ("num_feature", s(num_feature.to_string())),
                ("num_nodes", s(n.to_string())),
                ("size_leaf_vector", s("1")),
            ]),
        ),
    ])
}

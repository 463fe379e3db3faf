//! SageMaker's built-in XGBoost hyperparameters: every name it accepts, its aliases, types,
//! ranges and dependency rules, validated in the built-in's order (aliases, required keys,
//! types, ranges, dependencies). `hyperparameters.json` holds strings only; values that a
//! Python SDK JSON-encoded (`"\"5\""`) are unquoted first.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HyperparameterError {
    #[error("Extraneous hyperparameter found: `{0}`; the built-in XGBoost algorithm has no such hyperparameter")]
    Unknown(String),
    #[error("Missing required hyperparameter: `{0}`")]
    Missing(&'static str),
    #[error("`{name}` must be {rule}. Given: `{given}`")]
    Invalid { name: String, rule: String, given: String },
    #[error("`{name}`: {rule}")]
    Dependency { name: String, rule: String },
    #[error(
        "script mode is not supported: `{0}` asks to run a user's training script (the built-in XGBoost's \
         framework mode), which this static image cannot run. Train with the built-in algorithm's \
         hyperparameters and no `sagemaker_program`/`sagemaker_submit_directory`, or use AWS's XGBoost \
         framework image (sagemaker-xgboost) for a custom script"
    )]
    ScriptMode(String),
}

/// SageMaker's framework-mode keys: with either, the built-in runs the user's script.
pub const SCRIPT_MODE_KEYS: [&str; 2] = ["sagemaker_program", "sagemaker_submit_directory"];

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer in a range; `None` is unbounded.
    Int(Option<i64>, Option<i64>),
    /// A float; bounds with `true` closed, `false` open.
    Float(Option<(f64, bool)>, Option<(f64, bool)>),
    Choice(&'static [&'static str]),
    Bool,
    /// A comma-separated list (eval_metric, updater).
    List,
    /// `(1,0,-1)`: monotone constraints.
    Tuple,
    /// `[[1,2],[3]]`: interaction constraints.
    Nested,
    /// `validation:<metric>`.
    Tuning,
}

const CLOSED: bool = true;
const OPEN: bool = false;

/// The built-in's hyperparameters (sagemaker-xgboost-container algorithm_mode).
const SPECS: &[(&str, Kind)] = &[
    ("num_round", Kind::Int(Some(1), None)),
    ("csv_weights", Kind::Int(Some(0), Some(1))),
    ("early_stopping_rounds", Kind::Int(Some(1), None)),
    ("nthread", Kind::Int(Some(1), None)),
    ("verbosity", Kind::Int(Some(0), Some(3))),
    ("booster", Kind::Choice(&["gbtree", "gblinear", "dart"])),
    ("tree_method", Kind::Choice(&["auto", "exact", "approx", "hist", "gpu_hist"])),
    ("predictor", Kind::Choice(&["auto", "cpu_predictor", "gpu_predictor"])),
    ("dsplit", Kind::Choice(&["row", "col"])),
    ("process_type", Kind::Choice(&["default", "update"])),
    ("grow_policy", Kind::Choice(&["depthwise", "lossguide"])),
    ("eta", Kind::Float(Some((0.0, CLOSED)), Some((1.0, CLOSED)))),
    ("gamma", Kind::Float(Some((0.0, CLOSED)), None)),
    ("max_depth", Kind::Int(Some(0), None)),
    ("min_child_weight", Kind::Float(Some((0.0, CLOSED)), None)),
    ("max_delta_step", Kind::Float(Some((0.0, CLOSED)), None)),
    ("subsample", Kind::Float(Some((0.0, OPEN)), Some((1.0, CLOSED)))),
    ("colsample_bytree", Kind::Float(Some((0.0, OPEN)), Some((1.0, CLOSED)))),
    ("colsample_bylevel", Kind::Float(Some((0.0, OPEN)), Some((1.0, CLOSED)))),
    ("colsample_bynode", Kind::Float(Some((0.0, OPEN)), Some((1.0, CLOSED)))),
    ("lambda", Kind::Float(Some((0.0, CLOSED)), None)),
    ("alpha", Kind::Float(Some((0.0, CLOSED)), None)),
    ("sketch_eps", Kind::Float(Some((0.0, OPEN)), Some((1.0, OPEN)))),
    ("scale_pos_weight", Kind::Float(Some((0.0, OPEN)), None)),
    ("max_leaves", Kind::Int(Some(0), None)),
    ("max_bin", Kind::Int(Some(0), None)),
    ("refresh_leaf", Kind::Int(Some(0), Some(1))),
    ("one_drop", Kind::Int(Some(0), Some(1))),
    ("rate_drop", Kind::Float(Some((0.0, CLOSED)), Some((1.0, CLOSED)))),
    ("skip_drop", Kind::Float(Some((0.0, CLOSED)), Some((1.0, CLOSED)))),
    ("lambda_bias", Kind::Float(Some((0.0, CLOSED)), Some((1.0, CLOSED)))),
    ("sample_type", Kind::Choice(&["uniform", "weighted"])),
    ("normalize_type", Kind::Choice(&["tree", "forest"])),
    ("tweedie_variance_power", Kind::Float(Some((1.0, OPEN)), Some((2.0, OPEN)))),
    ("updater", Kind::List),
    ("monotone_constraints", Kind::Tuple),
    ("interaction_constraints", Kind::Nested),
    (
        "objective",
        Kind::Choice(&[
            "aft_loss_distribution",
            "binary:logistic",
            "binary:logitraw",
            "binary:hinge",
            "count:poisson",
            "multi:softmax",
            "multi:softprob",
            "rank:pairwise",
            "rank:ndcg",
            "rank:map",
            "reg:linear",
            "reg:squarederror",
            "reg:logistic",
            "reg:gamma",
            "reg:pseudohubererror",
            "reg:squaredlogerror",
            "reg:absoluteerror",
            "reg:tweedie",
            "survival:aft",
            "survival:cox",
        ]),
    ),
    ("num_class", Kind::Int(Some(2), None)),
    ("base_score", Kind::Float(Some((0.0, CLOSED)), None)),
    ("seed", Kind::Int(Some(-(1 << 31) + 1), Some((1 << 31) - 2))),
    ("num_parallel_tree", Kind::Int(Some(1), None)),
    ("aft_loss_distribution", Kind::Choice(&["normal", "logistic", "extreme"])),
    ("aft_loss_distribution_scale", Kind::Float(Some((0.0, CLOSED)), None)),
    ("sampling_method", Kind::Choice(&["uniform", "gradient_based"])),
    ("prob_buffer_row", Kind::Float(Some((1.0, OPEN)), None)),
    ("save_model_on_termination", Kind::Bool),
    ("deterministic_histogram", Kind::Bool),
    ("use_dask_gpu_training", Kind::Bool),
    ("_kfold", Kind::Int(Some(2), None)),
    ("_num_cv_round", Kind::Int(Some(1), None)),
    ("_tuning_objective_metric", Kind::Tuning),
    ("eval_metric", Kind::List),
];

const ALIASES: &[(&str, &str)] =
    &[("learning_rate", "eta"), ("min_split_loss", "gamma"), ("reg_lambda", "lambda"), ("reg_alpha", "alpha")];

/// Metrics XGBoost's built-in maximizes; every other known metric is minimized.
pub const MAXIMIZE: &[&str] = &[
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
];
const MINIMIZE: &[&str] = &[
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
];

fn known_metric(name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name);
    MAXIMIZE.contains(&base) || MINIMIZE.contains(&base)
}

/// One validated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    List(Vec<String>),
    Ints(Vec<i64>),
    Nested(Vec<Vec<i64>>),
}

/// What XGBoost's post-growth prune needs: the node weight rule and the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrunePlan {
    pub gamma: f32,
    pub eta: f32,
    pub alpha: f64,
    pub lambda: f64,
    pub min_child_weight: f64,
    pub max_delta_step: f64,
}

impl PrunePlan {
    /// XGBoost's `CalcWeight` from a node's gradient sums, in double, stored as f32.
    pub fn weight(&self, g: f64, h: f64) -> f32 {
        if h < self.min_child_weight || h <= 0.0 {
            return 0.0;
        }
        let thresholded = if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        };
        let mut w = -thresholded / (h + self.lambda);
        if self.max_delta_step != 0.0 && w.abs() > self.max_delta_step {
            w = self.max_delta_step.copysign(w);
        }
        w as f32
    }
}

/// Validated hyperparameters: what the SageMaker layer uses, and XGBoost's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    pub values: BTreeMap<String, Parsed>,
    pub num_round: usize,
    pub early_stopping_rounds: Option<usize>,
    pub csv_weights: bool,
    pub save_model_on_termination: bool,
    /// `_tuning_objective_metric` without its `validation:` prefix.
    pub tuning_metric: Option<String>,
    /// The metrics reported each round: `eval_metric` and the tuning metric, the metric that
    /// drives early stopping last.
    pub eval_metrics: Vec<String>,
}

/// Strip a JSON encoding the Python SDK may have applied (`"\"0.2\""` -> `0.2`).
fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with('"')
        && raw.ends_with('"')
        && raw.len() >= 2
        && let Ok(Value::String(s)) = serde_json::from_str::<Value>(raw)
    {
        return s.trim().to_string();
    }
    raw.to_string()
}

fn invalid(name: &str, rule: impl Into<String>, given: &str) -> HyperparameterError {
    HyperparameterError::Invalid { name: name.to_string(), rule: rule.into(), given: given.to_string() }
}

fn bound_text(lower: Option<(f64, bool)>, upper: Option<(f64, bool)>) -> String {
    let l = lower.map_or("(-inf".to_string(), |(v, c)| format!("{}{v}", if c { "[" } else { "(" }));
    let u = upper.map_or("inf)".to_string(), |(v, c)| format!("{v}{}", if c { "]" } else { ")" }));
    format!("a number in {l}, {u}")
}

fn parse_value(name: &str, kind: Kind, text: &str) -> Result<Parsed, HyperparameterError> {
    match kind {
        Kind::Int(lo, hi) => {
            let v: i64 = text.parse().map_err(|_| invalid(name, "an integer", text))?;
            if lo.is_some_and(|l| v < l) || hi.is_some_and(|h| v > h) {
                let l = lo.map_or("-inf".into(), |l| l.to_string());
                let h = hi.map_or("inf".into(), |h| h.to_string());
                return Err(invalid(name, format!("an integer in [{l}, {h}]"), text));
            }
            Ok(Parsed::Int(v))
        }
        Kind::Float(lo, hi) => {
            let v: f64 =
                text.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| invalid(name, "a number", text))?;
            let below = lo.is_some_and(|(l, closed)| if closed { v < l } else { v <= l });
            let above = hi.is_some_and(|(h, closed)| if closed { v > h } else { v >= h });
            if below || above {
                return Err(invalid(name, bound_text(lo, hi), text));
            }
            Ok(Parsed::Float(v))
        }
        Kind::Choice(options) => {
            if options.contains(&text) {
                Ok(Parsed::Text(text.to_string()))
            } else {
                Err(invalid(name, format!("one of {}", options.join(", ")), text))
            }
        }
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Parsed::Bool(true)),
            "false" | "0" => Ok(Parsed::Bool(false)),
            _ => Err(invalid(name, "true or false", text)),
        },
        Kind::List => {
            let items: Vec<String> = text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if items.is_empty() {
                return Err(invalid(name, "a comma-separated list", text));
            }
            Ok(Parsed::List(items))
        }
        Kind::Tuple => {
            let inner = text.trim().trim_start_matches('(').trim_end_matches(')');
            let values: Result<Vec<i64>, _> =
                inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse::<i64>).collect();
            match values {
                Ok(v) if !v.is_empty() && v.iter().all(|x| (-1..=1).contains(x)) => Ok(Parsed::Ints(v)),
                _ => Err(invalid(name, "a tuple of -1, 0 and 1, e.g. `(1,0,-1)`", text)),
            }
        }
        Kind::Nested => {
            let parsed: Option<Vec<Vec<i64>>> = serde_json::from_str(text).ok();
            match parsed {
                Some(v) if !v.is_empty() && v.iter().flatten().all(|&i| i >= 1) => Ok(Parsed::Nested(v)),
                _ => Err(invalid(name, "nested lists of feature indices of at least 1, e.g. `[[1,2],[3,4]]`", text)),
            }
        }
        Kind::Tuning => match text.strip_prefix("validation:") {
            Some(metric) if known_metric(metric) => Ok(Parsed::Text(metric.to_string())),
            _ => Err(invalid(name, "`validation:<metric>` with a metric the algorithm reports", text)),
        },
    }
}

impl Hyperparameters {
    /// Validate the flat string map of `hyperparameters.json`.
    pub fn parse(raw: &BTreeMap<String, String>) -> Result<Self, HyperparameterError> {
        // 1. Aliases, and SageMaker's own keys, which are not the algorithm's.
        let mut given: BTreeMap<String, String> = BTreeMap::new();
        if let Some(key) = SCRIPT_MODE_KEYS.iter().find(|k| raw.contains_key(**k)) {
            return Err(HyperparameterError::ScriptMode(key.to_string()));
        }
        for (key, value) in raw {
            if key.starts_with("sagemaker_") {
                continue;
            }
            let name = ALIASES.iter().find(|(alias, _)| alias == key).map_or(key.as_str(), |(_, n)| n);
            if given.insert(name.to_string(), unquote(value)).is_some() {
                return Err(HyperparameterError::Dependency {
                    name: name.to_string(),
                    rule: "given twice (under its name and an alias)".into(),
                });
            }
        }
        // 2. Required keys.
        if !given.contains_key("num_round") {
            return Err(HyperparameterError::Missing("num_round"));
        }
        // 3 and 4. Names, types and ranges.
        let mut values = BTreeMap::new();
        for (name, text) in &given {
            let (_, kind) =
                SPECS.iter().find(|(n, _)| n == name).ok_or_else(|| HyperparameterError::Unknown(name.clone()))?;
            values.insert(name.clone(), parse_value(name, *kind, text)?);
        }
        let hp = Self::from_values(values)?;
        hp.check_dependencies()?;
        Ok(hp)
    }

    fn from_values(values: BTreeMap<String, Parsed>) -> Result<Self, HyperparameterError> {
        let int = |k: &str| match values.get(k) {
            Some(Parsed::Int(v)) => Some(*v),
            _ => None,
        };
        let flag = |k: &str| matches!(values.get(k), Some(Parsed::Bool(true)));
        let tuning_metric = match values.get("_tuning_objective_metric") {
            Some(Parsed::Text(m)) => Some(m.clone()),
            _ => None,
        };
        // The built-in reports the union of eval_metric and the tuning metric; early stopping
        // watches the tuning metric, else the last eval_metric: it goes last.
        let mut eval_metrics: Vec<String> = match values.get("eval_metric") {
            Some(Parsed::List(list)) => list.clone(),
            _ => Vec::new(),
        };
        if let Some(metric) = &tuning_metric {
            eval_metrics.retain(|m| m != metric);
            eval_metrics.push(metric.clone());
        }
        Ok(Self {
            num_round: int("num_round").expect("required and an integer") as usize,
            early_stopping_rounds: int("early_stopping_rounds").map(|v| v as usize),
            csv_weights: int("csv_weights") == Some(1),
            save_model_on_termination: flag("save_model_on_termination"),
            tuning_metric,
            eval_metrics,
            values,
        })
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(Parsed::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// `_kfold` and `_num_cv_round` (default 1): folds and repeats of cross-validation.
    pub fn kfold(&self) -> Option<(usize, usize)> {
        let int = |key: &str| match self.values.get(key) {
            Some(Parsed::Int(i)) => Some(*i as usize),
            _ => None,
        };
        Some((int("_kfold")?, int("_num_cv_round").unwrap_or(1)))
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        match self.values.get(key) {
            Some(Parsed::Float(f)) => Some(*f),
            Some(Parsed::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }

    /// `gamma` under `tree_method=exact`: XGBoost grows such trees without gamma and prunes
    /// them afterwards. `Ok(Some)` when that pass applies and we can redo it exactly (every
    /// row in every round, squared error); `Err` with the reason when it applies but we cannot.
    pub fn exact_prune(&self) -> Result<Option<PrunePlan>, String> {
        let Some(gamma) = self.float("gamma").filter(|g| *g > 0.0) else { return Ok(None) };
        if self.text("tree_method") != Some("exact") {
            return Ok(None);
        }
        if !matches!(self.objective(), "reg:squarederror" | "reg:linear") {
            return Err(format!("objective `{}`", self.objective()));
        }
        if self.float("subsample").is_some_and(|s| s < 1.0) {
            return Err("subsample below 1".into());
        }
        if !matches!(self.text("booster"), None | Some("gbtree")) {
            return Err("a booster other than gbtree".into());
        }
        Ok(Some(PrunePlan {
            gamma: gamma as f32,
            eta: self.float("eta").unwrap_or(0.3) as f32,
            alpha: self.float("alpha").unwrap_or(0.0),
            lambda: self.float("lambda").unwrap_or(1.0),
            min_child_weight: self.float("min_child_weight").unwrap_or(1.0),
            max_delta_step: self.float("max_delta_step").unwrap_or(0.0),
        }))
    }

    pub fn objective(&self) -> &str {
        self.text("objective").unwrap_or("reg:squarederror")
    }

    /// 5. Dependencies between hyperparameters.
    fn check_dependencies(&self) -> Result<(), HyperparameterError> {
        let dep = |name: &str, rule: String| Err(HyperparameterError::Dependency { name: name.into(), rule });
        let objective = self.objective();
        if objective.starts_with("multi:") && !self.values.contains_key("num_class") {
            return dep("num_class", format!("required with objective `{objective}` (an integer of at least 2)"));
        }
        let tree_method = self.text("tree_method").unwrap_or("auto");
        if self.values.contains_key("monotone_constraints") && !matches!(tree_method, "exact" | "hist") {
            return dep("monotone_constraints", format!("needs tree_method exact or hist. Given: `{tree_method}`"));
        }
        if self.values.contains_key("interaction_constraints") && !matches!(tree_method, "exact" | "hist" | "approx") {
            return dep(
                "interaction_constraints",
                format!("needs tree_method exact, hist or approx. Given: `{tree_method}`"),
            );
        }
        for metric in &self.eval_metrics {
            let base = metric.split('@').next().unwrap_or(metric);
            if !known_metric(metric) {
                return dep("eval_metric", format!("`{metric}` is not a metric the algorithm knows"));
            }
            if base == "auc" && !(objective.starts_with("binary:") || objective.starts_with("rank:")) {
                return dep("eval_metric", format!("`auc` needs a binary: or rank: objective. Given: `{objective}`"));
            }
            if base == "aft-nloglik" && objective != "survival:aft" {
                return dep("eval_metric", format!("`aft-nloglik` needs objective survival:aft. Given: `{objective}`"));
            }
        }
        if let Some(Parsed::List(updaters)) = self.values.get("updater") {
            const KNOWN: &[&str] = &[
                "grow_colmaker",
                "distcol",
                "grow_histmaker",
                "grow_skmaker",
                "sync",
                "refresh",
                "prune",
                "shotgun",
                "coord_descent",
            ];
            if let Some(u) = updaters.iter().find(|u| !KNOWN.contains(&u.as_str())) {
                return dep("updater", format!("`{u}` is not one of {}", KNOWN.join(", ")));
            }
            if self.text("booster") == Some("gblinear")
                && !(updaters.len() == 1 && matches!(updaters[0].as_str(), "shotgun" | "coord_descent"))
            {
                return dep("updater", "with booster gblinear, exactly one of shotgun or coord_descent".into());
            }
        }
        Ok(())
    }

    /// Valid for the built-in algorithm but not done by this trainer: refused, never ignored.
    pub fn unsupported(&self) -> Option<String> {
        if matches!(self.values.get("use_dask_gpu_training"), Some(Parsed::Bool(true))) {
            return Some("`use_dask_gpu_training=true`: GPU training is not supported; the images are CPU-only".into());
        }
        if self.text("dsplit") == Some("col") {
            return Some("`dsplit=col` (column-split distributed training) is not supported".into());
        }
        None
    }

    /// Whether a metric is maximized (for early stopping and tuning).
    pub fn maximize(metric: &str) -> bool {
        MAXIMIZE.contains(&metric.split('@').next().unwrap_or(metric))
    }

    /// XGBoost's parameters for the engine: everything but SageMaker's own keys, settings that
    /// change nothing on one CPU host, and the metric list (passed in its reporting order).
    pub fn xgboost_params(&self) -> Map<String, Value> {
        const SAGEMAKER_ONLY: &[&str] = &[
            "num_round",
            "csv_weights",
            "early_stopping_rounds",
            "save_model_on_termination",
            "_tuning_objective_metric",
            "_kfold",
            "_num_cv_round",
            "use_dask_gpu_training",
            "eval_metric",
            // No effect here: one host, CPU prediction, our training is always deterministic,
            // and verbosity only sets XGBoost's own log level (ours is SAGESTEP_LOG).
            "dsplit",
            "deterministic_histogram",
            "verbosity",
        ];
        let mut map = Map::new();
        for (name, value) in &self.values {
            if SAGEMAKER_ONLY.contains(&name.as_str()) {
                continue;
            }
            if name == "predictor" && matches!(value, Parsed::Text(t) if t != "gpu_predictor") {
                continue;
            }
            let json = match value {
                // 0/1 in SageMaker's schema, booleans in the engine's.
                Parsed::Int(i) if matches!(name.as_str(), "refresh_leaf" | "one_drop") => Value::from(*i == 1),
                Parsed::Int(i) => Value::from(*i),
                Parsed::Float(f) => Value::from(*f),
                Parsed::Text(t) => Value::from(t.clone()),
                Parsed::Bool(b) => Value::from(*b),
                Parsed::List(l) => Value::from(l.join(",")),
                Parsed::Ints(v) => {
                    Value::from(format!("({})", v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")))
                }
                Parsed::Nested(v) => Value::from(serde_json::to_string(v).expect("serializes")),
            };
            map.insert(name.clone(), json);
        }
        if !self.eval_metrics.is_empty() {
            map.insert("eval_metric".into(), Value::from(self.eval_metrics.clone()));
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(pairs: &[(&str, &str)]) -> Result<Hyperparameters, HyperparameterError> {
        Hyperparameters::parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn the_seeds_hyperparameters_are_valid() {
        let h = hp(&[
            ("num_round", "50"),
            ("max_depth", "5"),
            ("learning_rate", "\"0.2\""),
            ("gamma", "4"),
            ("min_child_weight", "6"),
            ("subsample", "0.7"),
            ("objective", "reg:squarederror"),
            ("_tuning_objective_metric", "validation:rmse"),
            ("sagemaker_estimator_module", "\"x\""),
            ("save_model_on_termination", "True"),
            ("eval_metric", "mae,rmse"),
        ])
        .unwrap();
        assert_eq!(h.num_round, 50);
        assert!(h.save_model_on_termination);
        assert_eq!(h.tuning_metric.as_deref(), Some("rmse"));
        assert_eq!(h.eval_metrics, ["mae", "rmse"], "the tuning metric last");
        let p = h.xgboost_params();
        assert_eq!(p["eta"], 0.2);
        assert!(!p.contains_key("num_round") && !p.contains_key("sagemaker_estimator_module"));
    }

    #[test]
    fn errors_name_the_parameter_the_rule_and_the_value() {
        let e = hp(&[("num_round", "10"), ("eta", "1.5")]).unwrap_err().to_string();
        assert_eq!(e, "`eta` must be a number in [0, 1]. Given: `1.5`");
        let e = hp(&[("num_round", "ten")]).unwrap_err().to_string();
        assert_eq!(e, "`num_round` must be an integer. Given: `ten`");
        assert_eq!(hp(&[("eta", "0.1")]).unwrap_err(), HyperparameterError::Missing("num_round"));
        let e = hp(&[("num_round", "1"), ("max_dept", "3")]).unwrap_err().to_string();
        assert!(e.contains("Extraneous hyperparameter found: `max_dept`"), "{e}");
        let e = hp(&[("num_round", "1"), ("subsample", "0")]).unwrap_err().to_string();
        assert_eq!(e, "`subsample` must be a number in (0, 1]. Given: `0`");
        let e = hp(&[("num_round", "1"), ("objective", "multi:softmax")]).unwrap_err().to_string();
        assert!(e.contains("`num_class`: required with objective `multi:softmax`"), "{e}");
        let e = hp(&[("num_round", "1"), ("eval_metric", "auc")]).unwrap_err().to_string();
        assert!(e.contains("`auc` needs a binary: or rank: objective"), "{e}");
        let e = hp(&[("num_round", "1"), ("monotone_constraints", "(1,0)"), ("tree_method", "approx")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs tree_method exact or hist"), "{e}");
        let e = hp(&[("num_round", "1"), ("_tuning_objective_metric", "validation:bogus")]).unwrap_err().to_string();
        assert!(e.contains("`_tuning_objective_metric` must be `validation:<metric>`"), "{e}");
        let e = hp(&[("num_round", "1"), ("eta", "0.1"), ("learning_rate", "0.2")]).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
    }
}

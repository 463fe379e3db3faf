//! A SageMaker training job: `/opt/ml/input/config/*.json`, the `train` and `validation`
//! channels, XGBoost's per-round metric lines, early stopping, checkpoints every few rounds,
//! SIGTERM between rounds, and `/opt/ml/model/xgboost-model` written by our model writer.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hessboost::prelude::{BoostedModel, DMatrix, ModelFormat, Trainer, TrainingParams};
use serde::Deserialize;

use super::hyperparameters::{HyperparameterError, Hyperparameters, PrunePlan};
use crate::contract::MlRoot;
use crate::contract::failure::{Fault, StepError};
use crate::data::DataError;
use crate::data::labelled::{self, ContentType, Labelled};

pub const MODEL_FILE: &str = "xgboost-model";
pub const CHECKPOINT_PREFIX: &str = "xgboost-checkpoint.";
const CHECKPOINTS_KEPT: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not valid: {problem}", path.display())]
    ConfigFormat { path: PathBuf, problem: String },
    #[error(transparent)]
    Hyperparameter(#[from] HyperparameterError),
    #[error("{0}")]
    Channel(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("these hyperparameters are valid for SageMaker's XGBoost but not supported by this trainer: {0}")]
    Unsupported(String),
    #[error("training failed: {0}")]
    Engine(String),
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StepError for Error {
    fn fault(&self) -> Fault {
        match self {
            Self::Engine(_) | Self::Write { .. } => Fault::Internal,
            _ => Fault::User,
        }
    }
}

/// One channel of `inputdataconfig.json`; every field optional (local mode omits some).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelConfig {
    pub content_type: Option<String>,
    pub training_input_mode: Option<String>,
    #[serde(rename = "S3DistributionType")]
    pub s3_distribution_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceConfig {
    pub current_host: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointConfig {
    pub local_path: Option<PathBuf>,
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Trained {
        rounds: usize,
        best_iteration: Option<usize>,
        stopped_by_signal: bool,
    },
    /// A secondary host of a replicated multi-host job: the first host trains.
    SkippedSecondaryHost {
        current: String,
        first: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub ml: MlRoot,
    /// Rounds between checkpoints.
    pub checkpoint_every: usize,
}

fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::ConfigFormat { path: path.to_path_buf(), problem: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(Error::Config { path: path.to_path_buf(), source }),
    }
}

/// `hyperparameters.json`: a flat object whose values should be strings; numbers and booleans
/// are tolerated as their text.
fn read_hyperparameters(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let raw: BTreeMap<String, serde_json::Value> = read_json(path)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(Error::ConfigFormat {
                path: path.to_path_buf(),
                problem: format!("hyperparameter `{k}` is {other}; values are strings"),
            }),
        })
        .collect()
}

pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<Outcome, Error> {
    let ml = &config.ml;
    let hp = Hyperparameters::parse(&read_hyperparameters(&ml.hyperparameters())?)?;
    if let Some(reason) = hp.unsupported() {
        return Err(Error::Unsupported(reason));
    }
    let channels: BTreeMap<String, ChannelConfig> = read_json(&ml.input_data_config())?;
    let resources: ResourceConfig = read_json(&ml.resource_config())?;

    // Channels: train (required), validation; `code` is tolerated as the built-in does.
    let data_dir = ml.root().join("input").join("data");
    let mut present: Vec<String> = channels.keys().cloned().collect();
    if let Ok(entries) = std::fs::read_dir(&data_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !present.contains(&name) {
                present.push(name);
            }
        }
    }
    if let Some(extra) = present.iter().find(|c| !matches!(c.as_str(), "train" | "validation" | "code")) {
        return Err(Error::Channel(format!(
            "Extraneous channel found: `{extra}`; the algorithm reads `train` and `validation`"
        )));
    }
    if !present.iter().any(|c| c == "train") {
        return Err(Error::Channel(format!(
            "the `train` channel is required (no {})",
            ml.channel_dir("train").display()
        )));
    }
    for (name, channel) in &channels {
        if let Some(mode) = &channel.training_input_mode
            && !matches!(mode.as_str(), "File" | "FastFile")
        {
            return Err(Error::Channel(format!(
                "channel `{name}`: TrainingInputMode `{mode}` is not supported; use File or FastFile"
            )));
        }
    }

    // Several hosts: until distributed training exists, only fully replicated data works,
    // and the first host trains alone.
    if resources.hosts.len() > 1 {
        if let Some((name, _)) =
            channels.iter().find(|(_, c)| c.s3_distribution_type.as_deref().is_some_and(|d| d != "FullyReplicated"))
        {
            return Err(Error::Channel(format!(
                "channel `{name}` is sharded across {} hosts; distributed training is not supported, use \
                 S3DistributionType FullyReplicated or one instance",
                resources.hosts.len()
            )));
        }
        let mut hosts = resources.hosts.clone();
        hosts.sort();
        let current = resources.current_host.clone().unwrap_or_default();
        if current != hosts[0] {
            return Ok(Outcome::SkippedSecondaryHost { current, first: hosts[0].clone() });
        }
    }

    let content_type = match channels.get("train").and_then(|c| c.content_type.as_deref()) {
        None => ContentType::Libsvm,
        Some(text) => ContentType::parse(text).ok_or_else(|| {
            Error::Channel(format!(
                "channel `train`: ContentType `{text}` is not supported; use text/csv, text/libsvm or application/x-parquet"
            ))
        })?,
    };
    let train = labelled::read(&ml.channel_dir("train"), Some(content_type), hp.csv_weights)?;
    let validation = if present.iter().any(|c| c == "validation") {
        Some(labelled::read(&ml.channel_dir("validation"), Some(content_type), hp.csv_weights)?)
    } else {
        None
    };
    let cols = train.cols.max(validation.as_ref().map_or(0, |v| v.cols));
    if content_type == ContentType::Csv && validation.as_ref().is_some_and(|v| v.cols != train.cols) {
        return Err(Error::Channel(format!(
            "the validation channel has {} feature columns, the train channel {}",
            validation.as_ref().unwrap().cols,
            train.cols
        )));
    }
    tracing::info!(
        rows = train.rows(),
        features = cols,
        validation_rows = validation.as_ref().map(Labelled::rows),
        "data loaded"
    );

    let dtrain = matrix(&train, cols)?;
    let dvalid = validation.as_ref().map(|v| matrix(v, cols)).transpose()?;
    let mut xgb = hp.xgboost_params();
    xgb.entry("nthread").or_insert_with(|| serde_json::Value::from(crate::parallel::cores()));
    // gamma under exact: XGBoost grows without gamma and prunes after each round.
    let prune = match hp.exact_prune() {
        Ok(plan) => plan,
        Err(reason) => {
            tracing::warn!(
                "gamma with tree_method=exact and {reason}: splits below gamma are refused while growing, \
                 not pruned afterwards as XGBoost does; trees may differ slightly from XGBoost's"
            );
            None
        }
    };
    if prune.is_some() {
        xgb.insert("gamma".into(), serde_json::Value::from(0.0));
    }
    let params = TrainingParams::from_xgboost(xgb).map_err(|e| Error::Unsupported(e.to_string()))?;

    // Resume from the newest valid checkpoint.
    let checkpoints: CheckpointConfig = read_json(&ml.checkpoint_config())?;
    let checkpoint_dir = checkpoints.local_path.unwrap_or_else(|| ml.checkpoint_dir());
    let mut model = newest_checkpoint(&checkpoint_dir);
    if let Some(m) = &model {
        tracing::info!(rounds = m.num_boost_rounds(), "resuming from a checkpoint");
    }

    let early = hp.early_stopping_rounds.filter(|_| dvalid.is_some() && !hp.eval_metrics.is_empty());
    if hp.early_stopping_rounds.is_some() && early.is_none() {
        tracing::warn!("early_stopping_rounds needs a validation channel and a metric; training all rounds");
    }
    let watched = hp.eval_metrics.last().cloned();
    let maximize = watched.as_deref().is_some_and(Hyperparameters::maximize);
    let mut stopper = EarlyStop { best: None, last: 0, patience: early, maximize };
    let mut last_scores: Vec<(String, f64)> = Vec::new();
    let mut stopped_by_signal = false;
    let every = config.checkpoint_every.max(1);

    loop {
        let done = model.as_ref().map_or(0, BoostedModel::num_boost_rounds);
        if done >= hp.num_round || stopper.finished() {
            break;
        }
        // Pruning edits each round's trees before the next round sees them.
        let chunk = if prune.is_some() { 1 } else { every.min(hp.num_round - done) };
        let mut trainer = Trainer::new(&params, &dtrain, chunk).eval(&dtrain, "train");
        if let Some(v) = &dvalid {
            trainer = trainer.eval(v, "validation");
        }
        if let Some(m) = &model {
            trainer = trainer.init_model(m);
        }
        let stop_flag = Arc::clone(&stop);
        let stopper_ref = &mut stopper;
        let scores_ref = &mut last_scores;
        let signalled = &mut stopped_by_signal;
        let result = trainer
            .on_round(move |round| {
                let mut line = format!("[{}]", round.iteration());
                scores_ref.clear();
                for (dataset, metric, value) in round.scores() {
                    line.push_str(&format!("\t{dataset}-{metric}:{value:.5}"));
                    scores_ref.push((format!("{dataset}:{metric}"), value));
                }
                println!("{line}");
                let _ = std::io::stdout().flush();
                if let Some(value) = round.scores().filter(|(d, _, _)| *d == "validation").last().map(|(_, _, v)| v) {
                    stopper_ref.observe(round.iteration(), value);
                }
                if stop_flag.load(Ordering::SeqCst) {
                    *signalled = true;
                    return ControlFlow::Break(());
                }
                if stopper_ref.finished() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })
            .train()
            .map_err(|e| Error::Engine(e.to_string()))?;
        let mut trained = result.model;
        if let Some(plan) = &prune {
            trained = prune_last_round(&trained, plan, &train, cols)?;
        }
        let rounds_now = trained.num_boost_rounds();
        model = Some(trained);
        let checkpoint_due = prune.is_none() || rounds_now % every == 0 || rounds_now >= hp.num_round;
        if checkpoint_due || stopped_by_signal || stopper.finished() {
            save_checkpoint(&checkpoint_dir, model.as_ref().unwrap())?;
        }
        if stopped_by_signal {
            tracing::warn!("SIGTERM: stopped between rounds after a checkpoint");
            break;
        }
    }

    let model = model.ok_or_else(|| Error::Engine("no round ran".into()))?;
    let rounds = model.num_boost_rounds();
    // XGBoost records the best round only under early stopping.
    let best = stopper.best.filter(|_| early.is_some());
    let best_iteration = best.map(|(i, _)| i);
    if !stopped_by_signal || hp.save_model_on_termination {
        write_model(&ml.model_dir(), &model, best_iteration, best.map(|(_, v)| v))?;
    }
    write_metrics(&ml.output_data_dir(), &last_scores, best_iteration)?;
    Ok(Outcome::Trained { rounds, best_iteration, stopped_by_signal })
}

fn matrix(data: &Labelled, cols: usize) -> Result<DMatrix, Error> {
    let features = data.widened(cols).into_owned();
    let engine = |e: hessboost::prelude::HessboostError| Error::Channel(format!("the data cannot be used: {e}"));
    let mut m = DMatrix::from_dense_vec(features, data.rows(), cols.max(1))
        .map_err(engine)?
        .with_labels(&data.labels)
        .map_err(engine)?;
    if let Some(w) = &data.weights {
        m = m.with_weights(w).map_err(engine)?;
    }
    Ok(m)
}

/// Early stopping on the last validation metric, across checkpoint chunks.
struct EarlyStop {
    best: Option<(usize, f64)>,
    last: usize,
    patience: Option<usize>,
    maximize: bool,
}

impl EarlyStop {
    fn observe(&mut self, iteration: usize, value: f64) {
        let better = match self.best {
            None => true,
            Some((_, best)) => {
                if self.maximize {
                    value > best
                } else {
                    value < best
                }
            }
        };
        if better {
            self.best = Some((iteration, value));
        }
        self.last = iteration;
    }

    fn finished(&self) -> bool {
        match (self.patience, self.best) {
            (Some(p), Some((best, _))) => self.last >= best + p,
            _ => false,
        }
    }
}

/// XGBoost's `prune` updater on the last round's trees (squared error, every row in the
/// round): node weights from the round's gradient sums, then bottom-up pruning; the edited
/// trees go back to the engine through XGBoost's JSON, everything else as it exported it.
fn prune_last_round(
    model: &BoostedModel,
    plan: &PrunePlan,
    data: &Labelled,
    cols: usize,
) -> Result<BoostedModel, Error> {
    use crate::model::{Matrix, learner, value};
    let fail = |what: &str, e: String| Error::Engine(format!("pruning ({what}): {e}"));
    let exported = model.encode(ModelFormat::XgboostJson).map_err(|e| fail("export", e.to_string()))?;
    let doc = value::parse_json(&exported).map_err(|e| fail("read", e.to_string()))?;
    let mut forest = learner::from_document(&doc).map_err(|e| fail("read", e.to_string()))?;
    let last = forest.round_bounds[forest.round_bounds.len().saturating_sub(2)]..forest.trees.len();

    // Gradients as XGBoost computes them before this round: f32 (margin - label) * weight.
    let features = data.widened(cols);
    let rows = Matrix::new(&features, cols);
    let mut margins = vec![0.0f32; rows.rows()];
    forest.predict_margin(&rows, 0..last.start, &mut margins);
    let weight = |r: usize| data.weights.as_ref().map_or(1.0f32, |w| w[r]);

    let mut removed = 0;
    let mut path = Vec::new();
    for t in last {
        let tree = &forest.trees[t];
        let mut sums = vec![(0.0f64, 0.0f64); tree.nodes.len()];
        for (r, (margin, label)) in margins.iter().zip(&data.labels).enumerate() {
            let w = weight(r);
            let (g, h) = ((margin - label) * w, w);
            path.clear();
            tree.path(rows.row(r), &mut path);
            for &n in &path {
                sums[n].0 += f64::from(g);
                sums[n].1 += f64::from(h);
            }
        }
        let weights: Vec<f32> = sums.iter().map(|&(g, h)| plan.weight(g, h)).collect();
        removed += forest.trees[t].prune(plan.gamma, plan.eta, &weights);
    }
    if removed == 0 {
        return BoostedModel::decode(&exported, ModelFormat::XgboostJson).map_err(|e| fail("import", e.to_string()));
    }
    let edited = learner::with_trees(&doc, &forest).map_err(|e| fail("edit", e.to_string()))?;
    let mut text = String::new();
    value::write_json(&edited, &mut text);
    BoostedModel::decode(text.as_bytes(), ModelFormat::XgboostJson).map_err(|e| fail("import", e.to_string()))
}

/// The newest checkpoint that loads; unreadable ones (a partial upload) are skipped.
fn newest_checkpoint(dir: &Path) -> Option<BoostedModel> {
    let found = checkpoint_files(dir).ok()?;
    found.into_iter().rev().find_map(|(_, path)| match BoostedModel::load(&path, ModelFormat::Binary) {
        Ok(model) => Some(model),
        Err(e) => {
            tracing::warn!(path = %path.display(), "skipping an unreadable checkpoint: {e}");
            None
        }
    })
}

/// The `xgboost-checkpoint.<rounds>` files in `dir`, oldest first.
fn checkpoint_files(dir: &Path) -> std::io::Result<Vec<(usize, PathBuf)>> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let rounds = e.file_name().to_string_lossy().strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()?;
            Some((rounds, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// `xgboost-checkpoint.<rounds>` in the engine's own format (exact continuation), written
/// atomically; the newest few are kept.
fn save_checkpoint(dir: &Path, model: &BoostedModel) -> Result<(), Error> {
    let rounds = model.num_boost_rounds();
    let path = dir.join(format!("{CHECKPOINT_PREFIX}{rounds}"));
    let bytes = model.encode(ModelFormat::Binary).map_err(|e| Error::Engine(e.to_string()))?;
    write_atomic(&path, &bytes)?;
    let old = checkpoint_files(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
    let excess = old.len().saturating_sub(CHECKPOINTS_KEPT);
    for (_, path) in old.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::storage::write_atomic(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// The model as XGBoost's UBJSON, re-read and written by our own writer, so that XGBoost
/// 1.7 and 3.x and our evaluator and server all read it the same way.
fn write_model(dir: &Path, model: &BoostedModel, best: Option<usize>, best_score: Option<f64>) -> Result<(), Error> {
    let exported = model.encode(ModelFormat::XgboostUbjson).map_err(|e| Error::Engine(format!("export: {e}")))?;
    let mut forest =
        crate::model::load(&exported).map_err(|e| Error::Engine(format!("re-reading the export: {e}")))?.forest;
    forest.version = None;
    forest.attributes.retain(|(k, _)| !k.starts_with("best_"));
    if let (Some(iteration), Some(score)) = (best, best_score) {
        forest.attributes.push(("best_iteration".into(), iteration.to_string()));
        forest.attributes.push(("best_score".into(), score.to_string()));
    }
    write_atomic(&dir.join(MODEL_FILE), &crate::model::to_ubjson(&forest))
}

/// `/opt/ml/output/data/metrics.json`: the last round's values, `validation:rmse` style.
fn write_metrics(dir: &Path, scores: &[(String, f64)], best: Option<usize>) -> Result<(), Error> {
    let mut map = serde_json::Map::new();
    for (name, value) in scores {
        map.insert(name.clone(), serde_json::Value::from(*value));
    }
    if let Some(b) = best {
        map.insert("best_iteration".into(), serde_json::Value::from(b));
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(map)).expect("serializes");
    write_atomic(&dir.join("metrics.json"), text.as_bytes())
}

//! One model trained on its channels: the engine the hyperparameters call for (our hist
//! trainer alone or across hosts, or hessboost), the rounds, and the model ended at the best
//! round when early stopping chose one. The job (`job`) and k-fold (`kfold`) both train
//! through `train_one`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hessboost::prelude::TrainingParams;

use super::engine::Engine;
use super::error::Error;
use super::hessboost_engine::HessboostEngine;
use super::hist::{self, HistEngine};
use super::hyperparameters::{Hyperparameters, Parsed, PrunePlan};
use super::pipe::ChannelPaths;
use super::{checkpoint, rounds};
use crate::cluster::Collective;
use crate::data::DataError;
use crate::data::labelled::{self, Labelled};
use crate::data::memory::Channel;
use crate::data::rows::{ContentType, Layout};
use crate::model::forest::Forest;

/// The model's file in `/opt/ml/model`, as the built-in names it.
pub const MODEL_FILE: &str = "xgboost-model";

/// What every model of a job is trained with.
pub(super) struct Setup<'a> {
    pub hp: &'a Hyperparameters,
    pub params: TrainingParams,
    pub prune: Option<PrunePlan>,
    pub content_type: ContentType,
    pub pool: &'a rayon::ThreadPool,
    pub stop: Arc<AtomicBool>,
    pub checkpoint_every: usize,
}

/// A trained model, ended at the best round when early stopping chose one.
pub(super) struct Trained {
    pub forest: crate::model::Forest,
    pub ran: rounds::Ran,
    pub rounds_trained: usize,
}

/// The channels one model trains on: the job's files, or rows in memory (k-fold's folds).
pub(super) struct Sets {
    pub train: Channel,
    pub validation: Option<Channel>,
}

impl Sets {
    pub fn files(paths: &ChannelPaths) -> Self {
        Self { train: Channel::Files(paths.train.clone()), validation: paths.validation.clone().map(Channel::Files) }
    }
}

/// Train one model on `sets`, checkpointing to `checkpoint_dir` (when `save_checkpoints`).
pub(super) fn train_one(
    setup: &Setup<'_>,
    sets: &Sets,
    checkpoint_dir: &Path,
    cluster: Option<Team>,
    save_checkpoints: bool,
) -> Result<Trained, Error> {
    let hp = setup.hp;
    let mut engine = setup.pool.install(|| make_engine(setup, sets, checkpoint_dir, cluster))?;
    let has_validation = sets.validation.is_some();
    let early = hp.early_stopping_rounds.filter(|_| has_validation && !hp.eval_metrics.is_empty());
    if hp.early_stopping_rounds.is_some() && early.is_none() {
        tracing::warn!("early_stopping_rounds needs a validation channel and a metric; training all rounds");
    }
    let maximize = hp.eval_metrics.last().is_some_and(|m| Hyperparameters::maximize(m));
    let plan = rounds::Plan {
        num_round: hp.num_round,
        checkpoint_every: setup.checkpoint_every,
        checkpoint_dir,
        early_stopping: early.map(|rounds| (rounds, maximize)),
        stop: Arc::clone(&setup.stop),
        // Only the first host writes checkpoints and the model, as the built-in.
        save_checkpoints,
    };
    let ran = setup.pool.install(|| rounds::run(engine.as_mut(), &plan))?;
    let mut forest = engine.forest()?;
    let rounds_trained = forest.rounds();
    // The built-in's EarlyStopping(save_best=True): the model ends at the best round.
    if let Some((best, score)) = ran.best {
        keep_rounds(&mut forest, best + 1);
        forest.attributes.retain(|(k, _)| !k.starts_with("best_"));
        forest.attributes.push(("best_iteration".into(), best.to_string()));
        forest.attributes.push(("best_score".into(), rounds::python_float(score)));
        forest.best_iteration = Some(best);
    }
    forest.version = None;
    Ok(Trained { forest, ran, rounds_trained })
}

/// The hosts training together, and what this one takes part with.
pub(super) struct Team {
    pub collective: Arc<dyn Collective>,
    /// SIGTERM's flag on this host.
    pub stop: Arc<AtomicBool>,
    /// The stop every host agreed on after the same round: what the round loop reads.
    pub agreed_stop: Arc<AtomicBool>,
    /// False on all but the first host when the validation channel is replicated: its rows
    /// count once.
    pub validation_rows: bool,
}

/// Our hist trainer where it serves, hessboost elsewhere; each resumes from the newest
/// checkpoint in its own format (several hosts: the first host's, sent to all).
fn make_engine(
    setup: &Setup<'_>,
    sets: &Sets,
    checkpoint_dir: &Path,
    team: Option<Team>,
) -> Result<Box<dyn Engine + Send>, Error> {
    if let Some(team) = team {
        return distributed_engine(setup, sets, checkpoint_dir, team);
    }
    match hist::unsupported(&setup.params, setup.hp.objective()) {
        None => {
            let inputs = hist_inputs(setup, sets, sets.validation.clone(), false);
            let resume = checkpoint::newest(checkpoint_dir, |bytes| {
                crate::model::load(bytes).map(|m| m.forest).map_err(|e| e.to_string())
            });
            if let Some(f) = &resume {
                tracing::info!(rounds = f.rounds(), "resuming from a checkpoint");
            }
            Ok(Box::new(HistEngine::new(&setup.params, &inputs, resume.as_ref(), None)?))
        }
        Some(reason) => {
            tracing::info!("training with hessboost's engine ({reason})");
            hessboost_engine(setup, sets, checkpoint_dir)
        }
    }
}

/// What our hist trainer reads, as the job's hyperparameters say.
fn hist_inputs(setup: &Setup<'_>, sets: &Sets, validation: Option<Channel>, empty_validation: bool) -> hist::Inputs {
    let hp = setup.hp;
    hist::Inputs {
        train: sets.train.clone(),
        validation,
        layout: Layout { content_type: setup.content_type, csv_weights: hp.csv_weights },
        objective_params: objective_params(hp),
        scale_pos_weight: hp.float("scale_pos_weight").unwrap_or(1.0) as f32,
        empty_validation,
    }
}

/// The hist trainer on several hosts: every host resumes from the first host's checkpoint.
fn distributed_engine(
    setup: &Setup<'_>,
    sets: &Sets,
    checkpoint_dir: &Path,
    team: Team,
) -> Result<Box<dyn Engine + Send>, Error> {
    let hp = setup.hp;
    if let Some(reason) = hist::unsupported(&setup.params, hp.objective()) {
        return Err(Error::Unsupported(format!(
            "training on several hosts (a ShardedByS3Key train channel) takes tree_method=hist with booster \
             gbtree; this configuration has {reason}"
        )));
    }
    if let Some(metric) = hp.eval_metrics.iter().find(|m| !hist::distributed_metric(m)) {
        return Err(Error::Unsupported(format!(
            "training on several hosts computes rmse, rmsle, mae, mape, logloss, error, mlogloss and merror; \
             `{metric}` is not computed across hosts yet"
        )));
    }
    let mine = if team.collective.rank() == 0 {
        checkpoint::newest(checkpoint_dir, |bytes| {
            crate::model::load(bytes).map(|_| bytes.to_vec()).map_err(|e| e.to_string())
        })
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let shared = team.collective.broadcast(0, &mine)?;
    let resume = if shared.is_empty() {
        None
    } else {
        Some(
            crate::model::load(&shared).map_err(|e| Error::Engine(format!("the first host's checkpoint: {e}")))?.forest,
        )
    };
    if let Some(f) = &resume {
        tracing::info!(rounds = f.rounds(), "every host resumes from the first host's checkpoint");
    }
    let has_validation = sets.validation.is_some();
    let validation = sets.validation.clone().filter(|_| team.validation_rows);
    let inputs = hist_inputs(setup, sets, validation, has_validation && !team.validation_rows);
    Ok(Box::new(HistEngine::new(
        &setup.params,
        &inputs,
        resume.as_ref(),
        Some((team.collective, team.stop, team.agreed_stop)),
    )?))
}

/// hessboost's engine on the whole data as floats.
fn hessboost_engine(setup: &Setup<'_>, sets: &Sets, checkpoint_dir: &Path) -> Result<Box<dyn Engine + Send>, Error> {
    let (content_type, csv_weights) = (setup.content_type, setup.hp.csv_weights);
    let train = read_dense(&sets.train, content_type, csv_weights)?;
    let valid = sets.validation.as_ref().map(|v| read_dense(v, content_type, csv_weights)).transpose()?;
    let cols = train.cols.max(valid.as_ref().map_or(0, |v| v.cols));
    if let Some(v) = &valid
        && content_type == ContentType::Csv
        && v.cols != train.cols
    {
        return Err(Error::Channel(format!(
            "the validation channel has {} feature columns, the train channel {}",
            v.cols, train.cols
        )));
    }
    tracing::info!(
        rows = train.rows(),
        features = cols,
        validation_rows = valid.as_ref().map(Labelled::rows),
        "data loaded"
    );
    let resume = checkpoint::newest(checkpoint_dir, HessboostEngine::load_checkpoint);
    if let Some(m) = &resume {
        tracing::info!(rounds = m.num_boost_rounds(), "resuming from a checkpoint");
    }
    Ok(Box::new(HessboostEngine::new(setup.params.clone(), train, valid.as_ref(), cols, setup.prune, resume)?))
}

/// The dense float matrix the hessboost engine needs, refused before it is made when it
/// would not fit in memory.
fn read_dense(channel: &Channel, content_type: ContentType, csv_weights: bool) -> Result<Labelled, Error> {
    let limit = dense_value_limit();
    labelled::read_channel(channel, content_type, csv_weights, limit).map_err(|e| match e {
        DataError::TooLarge { rows, cols } => Error::Channel(format!(
            "this configuration trains from the whole data as floats, and {rows} rows x {cols} features x 4 bytes \
             ({:.1} GB, or more: the rows were still being read) exceed a quarter of the {:.1} GB of memory; \
             use tree_method=hist (the default), which trains from quantized data",
            (rows as f64 * cols as f64 * 4.0) / 1e9,
            crate::parallel::memory_bytes() as f64 / 1e9,
        )),
        other => Error::Data(other),
    })
}

/// Floats the dense matrix may hold: a quarter of the memory (cgroup limit or physical), in
/// 4-byte values, leaving room for the engine's own copy and its working set.
fn dense_value_limit() -> usize {
    (crate::parallel::memory_bytes() / 4 / 4) as usize
}

/// `(key, text)` of the objective parameters the model records.
fn objective_params(hp: &Hyperparameters) -> Vec<(String, String)> {
    ["tweedie_variance_power", "scale_pos_weight", "max_delta_step"]
        .iter()
        .filter_map(|k| match hp.values.get(*k) {
            Some(Parsed::Float(v)) => Some((k.to_string(), v.to_string())),
            Some(Parsed::Int(v)) => Some((k.to_string(), v.to_string())),
            _ => None,
        })
        .collect()
}

/// Keep the first `rounds` rounds (`Booster[:rounds]`).
fn keep_rounds(forest: &mut Forest, rounds: usize) {
    if rounds >= forest.rounds() {
        return;
    }
    let trees = forest.round_bounds[rounds];
    forest.trees.truncate(trees);
    forest.tree_group.truncate(trees);
    if let Some(w) = &mut forest.tree_weights {
        w.truncate(trees);
    }
    forest.round_bounds.truncate(rounds + 1);
}

/// Write a file atomically (a temporary file renamed into place).
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::storage::write_atomic(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

//! A SageMaker training job: `/opt/ml/input/config/*.json`, the `train` and `validation`
//! channels, the engine for the hyperparameters, the rounds (`rounds`), and
//! `/opt/ml/model/xgboost-model` as the built-in saves it: with early stopping, the rounds up
//! to the best one, with `best_iteration` and `best_score`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hessboost::prelude::TrainingParams;
use serde::Deserialize;

use super::engine::Engine;
use super::hessboost_engine::HessboostEngine;
use super::hist::{self, HistEngine};
use super::hyperparameters::{HyperparameterError, Hyperparameters, Parsed};
use super::{checkpoint, rounds};
use crate::cluster::{self, Collective, Hosts};
use crate::contract::MlRoot;
use crate::contract::failure::{Fault, StepError};
use crate::data::DataError;
use crate::data::blocks::Layout;
use crate::data::labelled::{self, ContentType, Labelled};
use crate::emf::Unit;
use crate::model::forest::Forest;

pub const MODEL_FILE: &str = "xgboost-model";

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
    #[error("training across hosts failed: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
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
            Self::Cluster(e) if !e.is_config() => Fault::Internal,
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

pub(crate) fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::ConfigFormat { path: path.to_path_buf(), problem: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(Error::Config { path: path.to_path_buf(), source }),
    }
}

/// `hyperparameters.json`: a flat object whose values should be strings; numbers and booleans
/// are tolerated as their text.
pub(crate) fn read_hyperparameters(path: &Path) -> Result<BTreeMap<String, String>, Error> {
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
    crate::retain_freed_memory(1000);
    let ml = &config.ml;
    let hp = Hyperparameters::parse(&read_hyperparameters(&ml.hyperparameters())?)?;
    if let Some(reason) = hp.unsupported() {
        return Err(Error::Unsupported(reason));
    }
    let channels: BTreeMap<String, ChannelConfig> = read_json(&ml.input_data_config())?;
    let present = check_channels(ml, &channels)?;

    let role = role(ml, &channels)?;
    if let Role::Skip { current, first } = role {
        return Ok(Outcome::SkippedSecondaryHost { current, first });
    }
    let content_type = match channels.get("train").and_then(|c| c.content_type.as_deref()) {
        None => ContentType::Libsvm,
        Some(text) => ContentType::parse(text).ok_or_else(|| {
            Error::Channel(format!(
                "channel `train`: ContentType `{text}` is not supported; use text/csv, text/libsvm, application/x-parquet or application/x-recordio-protobuf"
            ))
        })?,
    };
    let has_validation = present.iter().any(|c| c == "validation");

    let mut xgb = hp.xgboost_params();
    let threads =
        xgb.get("nthread").and_then(serde_json::Value::as_u64).map_or_else(crate::parallel::cores, |n| n as usize);
    xgb.insert("nthread".into(), serde_json::Value::from(threads));
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
    let mut engine_xgb = xgb.clone();
    if prune.is_some() {
        engine_xgb.insert("gamma".into(), serde_json::Value::from(0.0));
    }
    let params = TrainingParams::from_xgboost(engine_xgb).map_err(|e| Error::Unsupported(e.to_string()))?;
    let checkpoints: CheckpointConfig = read_json(&ml.checkpoint_config())?;
    // LocalPath is a container path: under the process engine /opt/ml is this job's tree.
    let checkpoint_dir = checkpoints.local_path.map_or_else(|| ml.checkpoint_dir(), |p| ml.map(&p));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Engine(format!("cannot start {threads} threads: {e}")))?;
    let cluster = match &role {
        Role::Distributed { hosts, validation_sharded } => {
            let collective = join_cluster(ml, hosts)?;
            Some(Team {
                collective,
                stop: Arc::clone(&stop),
                agreed_stop: Arc::new(AtomicBool::new(false)),
                validation_rows: *validation_sharded || hosts.rank() == 0,
            })
        }
        _ => None,
    };
    // On several hosts the round loop stops on the agreed flag, never on this host's signal.
    let stop = cluster.as_ref().map_or(stop, |team| Arc::clone(&team.agreed_stop));
    let first_host = cluster.as_ref().is_none_or(|t| t.collective.rank() == 0);
    let paths = super::pipe::resolve(ml, &channels, has_validation)?;
    let setup =
        Setup { hp: &hp, params, prune, content_type, pool: &pool, stop, checkpoint_every: config.checkpoint_every };
    if let Some((folds, repeats)) = hp.kfold() {
        if cluster.is_some() {
            return Err(Error::Unsupported("`_kfold` with a ShardedByS3Key train channel on several hosts".into()));
        }
        let report = super::kfold::run(ml, &setup, &paths, folds, repeats, &checkpoint_dir)?;
        return Ok(Outcome::Trained {
            rounds: report.models,
            best_iteration: None,
            stopped_by_signal: report.stopped_by_signal,
        });
    }
    let Trained { forest, ran, rounds_trained } = train_one(&setup, &paths, &checkpoint_dir, cluster, first_host)?;
    drop(paths);
    let last = ran.best.map_or(forest.rounds().saturating_sub(1), |(best, _)| best);
    if first_host && (!ran.stopped_by_signal || hp.save_model_on_termination) {
        write_atomic(&ml.model_dir().join(MODEL_FILE), &crate::model::to_ubjson(&forest))?;
    }
    let scores = ran.scores_of(last).or_else(|| ran.history.last().map(|(_, s)| s));
    if first_host {
        write_metrics(&ml.output_data_dir(), scores.map_or(&[][..], Vec::as_slice), ran.best.map(|b| b.0))?;
    }
    tracing::info!(peak_memory_mb = peak_memory_mb(), rounds_trained, saved_rounds = forest.rounds(), "model saved");
    if first_host {
        let mut figures: Vec<(String, f64, Unit)> = scores
            .into_iter()
            .flatten()
            .map(|(set, metric, value)| (format!("{set}:{metric}"), *value, Unit::None))
            .collect();
        figures.push(("PeakMemory".into(), peak_memory_mb() as f64, Unit::Megabytes));
        figures.push(("Rounds".into(), forest.rounds() as f64, Unit::Count));
        crate::emf::emit("train", &figures);
    }
    Ok(Outcome::Trained {
        rounds: rounds_trained,
        best_iteration: ran.best.map(|b| b.0),
        stopped_by_signal: ran.stopped_by_signal,
    })
}

/// `train` is required; `validation` optional; `code` tolerated as the built-in does.
fn check_channels(ml: &MlRoot, channels: &BTreeMap<String, ChannelConfig>) -> Result<Vec<String>, Error> {
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
    for (name, channel) in channels {
        if let Some(mode) = &channel.training_input_mode
            && !matches!(mode.as_str(), "File" | "FastFile" | "Pipe")
        {
            return Err(Error::Channel(format!(
                "channel `{name}`: TrainingInputMode `{mode}` is not supported; use File, FastFile or Pipe"
            )));
        }
    }
    Ok(present)
}

/// What every model of a job is trained with.
pub(super) struct Setup<'a> {
    pub hp: &'a Hyperparameters,
    pub params: TrainingParams,
    pub prune: Option<super::hyperparameters::PrunePlan>,
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

/// Train one model on `paths`, checkpointing to `checkpoint_dir` (when `save_checkpoints`).
pub(super) fn train_one(
    setup: &Setup<'_>,
    paths: &super::pipe::ChannelPaths,
    checkpoint_dir: &Path,
    cluster: Option<Team>,
    save_checkpoints: bool,
) -> Result<Trained, Error> {
    let hp = setup.hp;
    let mut engine: Box<dyn Engine + Send> = setup.pool.install(|| {
        make_engine(paths, hp, setup.params.clone(), setup.prune, setup.content_type, checkpoint_dir, cluster)
    })?;
    let has_validation = paths.validation.is_some();
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
    collective: Arc<dyn Collective>,
    /// SIGTERM's flag on this host.
    stop: Arc<AtomicBool>,
    /// The stop every host agreed on after the same round: what the round loop reads.
    agreed_stop: Arc<AtomicBool>,
    /// False on all but the first host when the validation channel is replicated: its rows
    /// count once.
    validation_rows: bool,
}

/// Who trains: this host alone, several hosts together (a sharded train channel), or the
/// first host alone on replicated data (the others exit).
enum Role {
    Alone,
    Skip { current: String, first: String },
    Distributed { hosts: Hosts, validation_sharded: bool },
}

fn role(ml: &MlRoot, channels: &BTreeMap<String, ChannelConfig>) -> Result<Role, Error> {
    let hosts = Hosts::read(&ml.resource_config()).map_err(|e| Error::Channel(e.to_string()))?;
    let sharded = |c: &str| channels.get(c).and_then(|c| c.s3_distribution_type.as_deref()) == Some("ShardedByS3Key");
    // The distributed arithmetic on one host: the reference the tests compare hosts with.
    let forced = std::env::var(DISTRIBUTED_ENV).is_ok_and(|v| v == "1");
    if (hosts.world() > 1 && sharded("train")) || forced {
        return Ok(Role::Distributed { validation_sharded: sharded("validation"), hosts });
    }
    if hosts.world() > 1 {
        if sharded("validation") {
            return Err(Error::Channel(
                "the validation channel is ShardedByS3Key but the train channel is FullyReplicated; shard both \
                 (data-parallel training) or neither"
                    .into(),
            ));
        }
        // Replicated data: the first host trains on all of it (the built-in would train every
        // host on a copy of every row).
        let first = hosts.hosts[0].clone();
        if hosts.current != first {
            return Ok(Role::Skip { current: hosts.current, first });
        }
    }
    Ok(Role::Alone)
}

/// `SAGESTEP_DISTRIBUTED=1`: train with the hosts' arithmetic even alone.
pub const DISTRIBUTED_ENV: &str = "SAGESTEP_DISTRIBUTED";

/// Connect to the other hosts; they must run this build with this configuration.
fn join_cluster(ml: &MlRoot, hosts: &Hosts) -> Result<Arc<dyn Collective>, Error> {
    let settings = cluster::Settings::from_env().map_err(Error::Channel)?;
    // Every hyperparameter (num_round too) and the channel configuration, canonical.
    let all: BTreeMap<String, String> = read_hyperparameters(&ml.hyperparameters())?;
    let mut config = serde_json::to_vec(&all).expect("serializes");
    let channels: BTreeMap<String, serde_json::Value> = read_json(&ml.input_data_config())?;
    config.extend(serde_json::to_vec(&channels).expect("serializes"));
    let job = std::env::var("TRAINING_JOB_NAME").unwrap_or_default();
    let joined = cluster::join(hosts, &job, cluster::fingerprint(&config), &settings)?;
    Ok(Arc::from(joined))
}

/// Our hist trainer where it serves, hessboost elsewhere; each resumes from the newest
/// checkpoint in its own format (several hosts: the first host's, sent to all).
#[allow(clippy::too_many_arguments)]
fn make_engine(
    paths: &super::pipe::ChannelPaths,
    hp: &Hyperparameters,
    params: TrainingParams,
    prune: Option<super::hyperparameters::PrunePlan>,
    content_type: ContentType,
    checkpoint_dir: &Path,
    team: Option<Team>,
) -> Result<Box<dyn Engine + Send>, Error> {
    let validation = paths.validation.clone();
    let has_validation = validation.is_some();
    if let Some(team) = team {
        if let Some(reason) = hist::unsupported(&params, hp.objective()) {
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
                crate::model::load(&shared)
                    .map_err(|e| Error::Engine(format!("the first host's checkpoint: {e}")))?
                    .forest,
            )
        };
        if let Some(f) = &resume {
            tracing::info!(rounds = f.rounds(), "every host resumes from the first host's checkpoint");
        }
        let inputs = hist::Inputs {
            train: paths.train.clone(),
            validation: validation.filter(|_| team.validation_rows),
            layout: Layout { content_type, csv_weights: hp.csv_weights },
            objective_params: objective_params(hp),
            scale_pos_weight: hp.float("scale_pos_weight").unwrap_or(1.0) as f32,
            empty_validation: has_validation && !team.validation_rows,
        };
        return Ok(Box::new(HistEngine::new(
            &params,
            &inputs,
            resume.as_ref(),
            Some((team.collective, team.stop, team.agreed_stop)),
        )?));
    }
    match hist::unsupported(&params, hp.objective()) {
        None => {
            let inputs = hist::Inputs {
                train: paths.train.clone(),
                validation,
                layout: Layout { content_type, csv_weights: hp.csv_weights },
                objective_params: objective_params(hp),
                scale_pos_weight: hp.float("scale_pos_weight").unwrap_or(1.0) as f32,
                empty_validation: false,
            };
            let resume = checkpoint::newest(checkpoint_dir, |bytes| {
                crate::model::load(bytes).map(|m| m.forest).map_err(|e| e.to_string())
            });
            if let Some(f) = &resume {
                tracing::info!(rounds = f.rounds(), "resuming from a checkpoint");
            }
            Ok(Box::new(HistEngine::new(&params, &inputs, resume.as_ref(), None)?))
        }
        Some(reason) => {
            tracing::info!("training with hessboost's engine ({reason})");
            let train = read_dense(&paths.train, content_type, hp.csv_weights)?;
            let valid = validation.map(|v| read_dense(&v, content_type, hp.csv_weights)).transpose()?;
            let cols = train.cols.max(valid.as_ref().map_or(0, |v| v.cols));
            if content_type == ContentType::Csv && valid.as_ref().is_some_and(|v| v.cols != train.cols) {
                return Err(Error::Channel(format!(
                    "the validation channel has {} feature columns, the train channel {}",
                    valid.as_ref().unwrap().cols,
                    train.cols
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
            Ok(Box::new(HessboostEngine::new(params, train, valid.as_ref(), cols, prune, resume)?))
        }
    }
}

/// The dense float matrix the hessboost engine needs, refused before it is made when it
/// would not fit in memory.
fn read_dense(path: &Path, content_type: ContentType, csv_weights: bool) -> Result<Labelled, Error> {
    let limit = dense_value_limit();
    labelled::read_limited(path, Some(content_type), csv_weights, limit).map_err(|e| match e {
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

/// Peak resident memory of this process (`VmHWM`), in MB.
pub fn peak_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .flatten()
        .map_or(0, |kb| kb / 1024)
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::storage::write_atomic(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// `/opt/ml/output/data/metrics.json`: the saved model's last round, `validation:rmse` style.
fn write_metrics(dir: &Path, scores: &[(String, String, f64)], best: Option<usize>) -> Result<(), Error> {
    let mut map = serde_json::Map::new();
    for (set, metric, value) in scores {
        map.insert(format!("{set}:{metric}"), serde_json::Value::from(*value));
    }
    if let Some(b) = best {
        map.insert("best_iteration".into(), serde_json::Value::from(b));
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(map)).expect("serializes");
    write_atomic(&dir.join("metrics.json"), text.as_bytes())
}

//! A SageMaker training job: `/opt/ml/input/config/*.json`, the `train` and `validation`
//! channels, the engine for the hyperparameters, the rounds (`rounds`), and
//! `/opt/ml/model/xgboost-model` as the built-in saves it: with early stopping, the rounds up
//! to the best one, with `best_iteration` and `best_score`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hessboost::prelude::TrainingParams;

use super::config::{ChannelConfig, CheckpointConfig, read_hyperparameters, read_json};
use super::error::Error;
use super::fit::{MODEL_FILE, Sets, Setup, Team, Trained, train_one, write_atomic};
use super::hyperparameters::{Hyperparameters, PrunePlan};
use crate::cluster::{self, Collective, Hosts};
use crate::contract::MlRoot;
use crate::data::rows::ContentType;
use crate::emf::Unit;

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
    let content_type = train_content_type(&channels)?;
    let has_validation = present.iter().any(|c| c == "validation");
    let (threads, params, prune) = engine_params(&hp)?;
    let checkpoints: CheckpointConfig = read_json(&ml.checkpoint_config())?;
    // LocalPath is a container path: under the process engine /opt/ml is this job's tree.
    let checkpoint_dir = checkpoints.local_path.map_or_else(|| ml.checkpoint_dir(), |p| ml.map(&p));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Engine(format!("cannot start {threads} threads: {e}")))?;
    let cluster = match &role {
        Role::Distributed { hosts, validation_sharded } => Some(Team {
            collective: join_cluster(ml, hosts)?,
            stop: Arc::clone(&stop),
            agreed_stop: Arc::new(AtomicBool::new(false)),
            validation_rows: *validation_sharded || hosts.rank() == 0,
        }),
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
    let trained = train_one(&setup, &Sets::files(&paths), &checkpoint_dir, cluster, first_host)?;
    drop(paths);
    save(ml, &hp, trained, first_host)
}

/// The train channel's content type (libsvm when none is given, as the built-in).
fn train_content_type(channels: &BTreeMap<String, ChannelConfig>) -> Result<ContentType, Error> {
    match channels.get("train").and_then(|c| c.content_type.as_deref()) {
        None => Ok(ContentType::Libsvm),
        Some(text) => ContentType::parse(text).ok_or_else(|| {
            Error::Channel(format!(
                "channel `train`: ContentType `{text}` is not supported; use text/csv, text/libsvm, \
                 application/x-parquet or application/x-recordio-protobuf"
            ))
        }),
    }
}

/// The threads, the engine's parameters and the exact engine's pruning plan.
fn engine_params(hp: &Hyperparameters) -> Result<(usize, TrainingParams, Option<PrunePlan>), Error> {
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
    if prune.is_some() {
        xgb.insert("gamma".into(), serde_json::Value::from(0.0));
    }
    let params = TrainingParams::from_xgboost(xgb).map_err(|e| Error::Unsupported(e.to_string()))?;
    Ok((threads, params, prune))
}

/// The first host saves the model (unless a signal stopped it and the model is not to be
/// saved on termination) and its metrics; every host reports what it did.
fn save(ml: &MlRoot, hp: &Hyperparameters, trained: Trained, first_host: bool) -> Result<Outcome, Error> {
    let Trained { forest, ran, rounds_trained } = trained;
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

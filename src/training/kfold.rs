//! k-fold cross-validation as the built-in runs it (`_kfold`, `_num_cv_round`): the train and
//! validation channels together are split into `k` folds, `_num_cv_round` times; a model is
//! trained per fold on the other folds (`xgboost-model-<n>`, n counting every fold of every
//! repeat, checkpoints under `model-<n>`), the mean of the folds' last-round metrics is printed
//! as `[num_round]\ttrain-rmse:...\tvalidation-rmse:...` after each repeat (and over all repeats
//! when there are several), and the held-out predictions go to `predictions.csv`. The channels
//! are parsed once, by the trainer's readers (any content type), and each fold is a set of row
//! indices over those rows, as the built-in slices its DMatrix: nothing is written out and
//! parsed again, so a fold reads exactly what plain training reads.
//!
//! Departures, each for a reason: the folds are drawn from `seed` (the built-in's are random on
//! every run), and each fold's metrics are on its own training rows and held-out rows (the
//! built-in evaluates every fold on the whole train and validation channels, whose rows it
//! trained on, so its cross-validation metrics leak).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::error::Error;
use super::fit::{MODEL_FILE, Sets, Setup, train_one, write_atomic};
use super::pipe::ChannelPaths;
use crate::contract::MlRoot;
use crate::data::memory::{Channel, RowSet, RowStore};
use crate::data::rows::{ContentType, Layout};
use crate::data::{DataError, blocks, labelled};
use crate::model::{Ensemble, Member};

/// What the folds left.
pub struct Report {
    pub models: usize,
    pub stopped_by_signal: bool,
}

pub(super) fn run(
    ml: &MlRoot,
    setup: &Setup<'_>,
    paths: &ChannelPaths,
    folds: usize,
    repeats: usize,
    checkpoint_dir: &Path,
) -> Result<Report, Error> {
    let store =
        Arc::new(read_rows(paths, Layout { content_type: setup.content_type, csv_weights: setup.hp.csv_weights })?);
    let labels = store.labels();
    if labels.len() < folds {
        return Err(Error::Channel(format!("`_kfold` is {folds} but the channels hold {} rows", labels.len())));
    }
    let classification = setup.hp.objective().starts_with("binary:") || setup.hp.float("num_class").is_some();
    let seed = setup.hp.float("seed").unwrap_or(0.0) as u64;
    tracing::info!(
        repeats,
        folds,
        rows = labels.len(),
        "Run {repeats}-round of {folds}-fold cross validation with {} rows",
        labels.len()
    );
    let mut predictions = Predictions::new(labels, repeats, classification);
    let mut all_scores = Vec::new();
    let mut models = 0;
    for repeat in 0..repeats {
        let assignment = assign(labels, folds, classification, seed.wrapping_add(repeat as u64));
        let mut repeat_scores = Vec::new();
        for fold in 0..folds {
            tracing::info!("Train cross validation fold {}", fold + 1);
            let held_out: Vec<bool> = assignment.iter().map(|&f| f == fold).collect();
            let validation = RowSet::of(&store, |r| held_out[r]);
            let sets = Sets {
                train: Channel::Rows(RowSet::of(&store, |r| !held_out[r])),
                validation: Some(Channel::Rows(validation.clone())),
            };
            let n = repeat * folds + fold;
            let trained = train_one(setup, &sets, &checkpoint_dir.join(format!("model-{n}")), None, true)?;
            let bytes = crate::model::to_ubjson(&trained.forest);
            write_atomic(&ml.model_dir().join(format!("{MODEL_FILE}-{n}")), &bytes)?;
            models += 1;
            if trained.ran.stopped_by_signal {
                return Ok(Report { models, stopped_by_signal: true });
            }
            predictions.record(&held_out, &predict(&bytes, &validation, setup.content_type)?);
            repeat_scores.push(trained.ran.history.last().map(|(_, s)| s.clone()).unwrap_or_default());
        }
        tracing::info!("The metrics of round {} cross validation", repeat + 1);
        println!("{}", cv_line(setup.hp.num_round, &repeat_scores));
        all_scores.extend(repeat_scores);
    }
    if repeats > 1 {
        tracing::info!("The overall metrics of {repeats}-round cross validation");
        println!("{}", cv_line(setup.hp.num_round, &all_scores));
    }
    write_atomic(&ml.output_data_dir().join("predictions.csv"), predictions.to_csv().as_bytes())?;
    Ok(Report { models, stopped_by_signal: false })
}

/// Every row of the train then the validation channel, parsed once by the trainer's readers
/// (any content type) and held in memory, as the built-in holds its DMatrix: within a quarter
/// of the memory.
fn read_rows(paths: &ChannelPaths, layout: Layout) -> Result<RowStore, Error> {
    let budget = crate::parallel::memory_bytes() / 4;
    let mut store = RowStore::default();
    for channel in std::iter::once(&paths.train).chain(&paths.validation) {
        let read = blocks::for_each_block(channel, layout, Ok, |block| {
            store.push(&block)?;
            if store.bytes() > budget {
                return Err(DataError::TooLarge { rows: store.rows(), cols: block.width });
            }
            Ok(())
        });
        match read {
            Err(DataError::TooLarge { .. }) => {
                return Err(Error::Channel(format!(
                    "k-fold cross-validation holds the channels in memory, and they pass {} MiB (a quarter of the memory)",
                    budget >> 20
                )));
            }
            // An empty validation channel adds no rows; an empty train channel is refused.
            Err(DataError::Empty { .. }) if channel != &paths.train => {}
            other => {
                other?;
            }
        }
    }
    Ok(store)
}

/// Each row's fold for one repeat: a seeded shuffle cut into `k` parts whose sizes differ by at
/// most one (as scikit-learn's KFold); for classification each class is shuffled and dealt
/// round robin, so every fold holds each class in proportion (as StratifiedKFold).
fn assign(labels: &[f32], k: usize, stratified: bool, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix(seed ^ 0x6b66_6f6c_645f_6b66);
    let mut fold = vec![0usize; labels.len()];
    if stratified {
        let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, l) in labels.iter().enumerate() {
            classes.entry(l.to_bits()).or_default().push(i);
        }
        let mut dealt = 0;
        for rows in classes.values_mut() {
            rng.shuffle(rows);
            for &r in rows.iter() {
                fold[r] = dealt % k;
                dealt += 1;
            }
        }
    } else {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        rng.shuffle(&mut order);
        let (base, extra) = (labels.len() / k, labels.len() % k);
        let mut at = 0;
        for f in 0..k {
            let size = base + usize::from(f < extra);
            for &r in &order[at..at + size] {
                fold[r] = f;
            }
            at += size;
        }
    }
    fold
}

/// A small seeded generator (SplitMix64): the folds only need to be reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle(&mut self, items: &mut [usize]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A fold's model on its held-out rows, predicted as the evaluate step predicts.
fn predict(model: &[u8], rows: &RowSet, content_type: ContentType) -> Result<Vec<Vec<f32>>, Error> {
    let model = crate::model::load(model).map_err(|e| Error::Engine(format!("the fold's model does not load: {e}")))?;
    let ensemble = Ensemble::new(vec![Member { name: "fold".into(), model }]);
    let data = labelled::read_channel(&Channel::Rows(rows.clone()), content_type, false, usize::MAX)?;
    let predictions = crate::evaluate::predict_rows(&ensemble, &data);
    let per_row = ensemble.outputs_per_row().max(1);
    Ok(predictions.chunks(per_row).map(<[f32]>::to_vec).collect())
}

/// The held-out predictions of every repeat, by row.
struct Predictions {
    labels: Vec<f32>,
    classification: bool,
    /// Per row and repeat: the prediction (regression) or (probability, label).
    values: Vec<Vec<(f64, f64)>>,
}

impl Predictions {
    fn new(labels: &[f32], repeats: usize, classification: bool) -> Self {
        Self { labels: labels.to_vec(), classification, values: vec![Vec::with_capacity(repeats); labels.len()] }
    }

    fn record(&mut self, held_out: &[bool], predictions: &[Vec<f32>]) {
        let rows = held_out.iter().enumerate().filter(|(_, out)| **out).map(|(i, _)| i);
        for (row, p) in rows.zip(predictions) {
            let value = if !self.classification {
                (f64::from(p[0]), 0.0)
            } else if p.len() > 1 {
                // Softprob: the most probable class and its probability.
                let (class, prob) =
                    p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                (f64::from(prob), class as f64)
            } else {
                (f64::from(p[0]), f64::from(u8::from(p[0] > 0.5)))
            };
            self.values[row].push(value);
        }
    }

    /// The built-in's `predictions.csv`: label and mean prediction, or label, mean probability
    /// and the most frequent predicted class (the smallest on a tie), `%f` each.
    fn to_csv(&self) -> String {
        let mut out = String::new();
        for (label, values) in self.labels.iter().zip(&self.values) {
            let n = values.len().max(1) as f64;
            let mean = values.iter().map(|v| v.0).sum::<f64>() / n;
            out.push_str(&format!("{:.6},{mean:.6}", f64::from(*label)));
            if self.classification {
                let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
                values.iter().for_each(|v| *counts.entry(v.1 as u64).or_default() += 1);
                let top = counts.values().copied().max().unwrap_or(0);
                let mode = counts.iter().find(|(_, c)| **c == top).map_or(0, |(k, _)| *k);
                out.push_str(&format!(",{:.6}", mode as f64));
            }
            out.push('\n');
        }
        out
    }
}

/// `[num_round]` then, per metric and per data set, the folds' mean last-round value.
fn cv_line(num_round: usize, scores: &[super::engine::Scores]) -> String {
    let mut line = format!("[{num_round}]");
    let Some(first) = scores.first() else { return line };
    let metrics: Vec<&str> = first.iter().filter(|(set, _, _)| set == "train").map(|(_, m, _)| m.as_str()).collect();
    let sets: Vec<&str> = first.iter().map(|(set, _, _)| set.as_str()).fold(Vec::new(), |mut v, s| {
        if !v.contains(&s) {
            v.push(s);
        }
        v
    });
    for metric in metrics {
        for set in &sets {
            let values: Vec<f64> = scores
                .iter()
                .filter_map(|s| s.iter().find(|(st, m, _)| st == set && m == metric).map(|(_, _, v)| *v))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
            line.push_str(&format!("\t{set}-{metric}:{mean:.5}"));
        }
    }
    line
}

//! The hessboost engine: `exact`, `approx`, DART, `gblinear` and the objectives our hist
//! trainer leaves to it. It trains from the dense float matrix, so its data must fit in
//! memory as floats (checked before the matrix is made). Under `exact` with `gamma`, XGBoost
//! grows without gamma and prunes after each round; so do we.

use std::ops::ControlFlow;

use hessboost::prelude::{BoostedModel, DMatrix, ModelFormat, Trainer, TrainingParams};

use super::engine::{Engine, Scores};
use super::error::Error;
use super::hyperparameters::PrunePlan;
use crate::data::labelled::Labelled;
use crate::model::forest::Forest;

pub struct HessboostEngine {
    params: TrainingParams,
    dtrain: DMatrix,
    dvalid: Option<DMatrix>,
    train: Labelled,
    cols: usize,
    prune: Option<PrunePlan>,
    model: Option<BoostedModel>,
}

impl HessboostEngine {
    pub fn new(
        params: TrainingParams,
        train: Labelled,
        validation: Option<&Labelled>,
        cols: usize,
        prune: Option<PrunePlan>,
        checkpoint: Option<BoostedModel>,
    ) -> Result<Self, Error> {
        let dtrain = matrix(&train, cols)?;
        let dvalid = validation.map(|v| matrix(v, cols)).transpose()?;
        Ok(Self { params, dtrain, dvalid, train, cols, prune, model: checkpoint })
    }

    /// A checkpoint in this engine's format.
    pub fn load_checkpoint(bytes: &[u8]) -> Result<BoostedModel, String> {
        BoostedModel::decode(bytes, ModelFormat::Binary).map_err(|e| e.to_string())
    }
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

impl Engine for HessboostEngine {
    fn rounds(&self) -> usize {
        self.model.as_ref().map_or(0, BoostedModel::num_boost_rounds)
    }

    fn max_chunk(&self) -> usize {
        // Pruning edits each round's trees before the next round sees them.
        if self.prune.is_some() { 1 } else { usize::MAX }
    }

    fn train(
        &mut self,
        n: usize,
        on_round: &mut (dyn FnMut(usize, &Scores) -> ControlFlow<()> + Send),
    ) -> Result<(), Error> {
        let mut trainer = Trainer::new(&self.params, &self.dtrain, n).eval(&self.dtrain, "train");
        if let Some(v) = &self.dvalid {
            trainer = trainer.eval(v, "validation");
        }
        if let Some(m) = &self.model {
            trainer = trainer.init_model(m);
        }
        let result = trainer
            .on_round(|round| {
                let scores: Scores =
                    round.scores().map(|(set, metric, value)| (set.to_string(), metric.to_string(), value)).collect();
                on_round(round.iteration(), &scores)
            })
            .train()
            .map_err(|e| Error::Engine(e.to_string()))?;
        let mut trained = result.model;
        if let Some(plan) = &self.prune {
            trained = prune_last_round(&trained, plan, &self.train, self.cols)?;
        }
        self.model = Some(trained);
        Ok(())
    }

    fn forest(&self) -> Result<Forest, Error> {
        let model = self.model.as_ref().ok_or_else(|| Error::Engine("no round ran".into()))?;
        let exported = model.encode(ModelFormat::XgboostUbjson).map_err(|e| Error::Engine(format!("export: {e}")))?;
        Ok(crate::model::load(&exported).map_err(|e| Error::Engine(format!("re-reading the export: {e}")))?.forest)
    }

    fn checkpoint(&self) -> Result<Vec<u8>, Error> {
        let model = self.model.as_ref().ok_or_else(|| Error::Engine("no round ran".into()))?;
        model.encode(ModelFormat::Binary).map_err(|e| Error::Engine(e.to_string()))
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

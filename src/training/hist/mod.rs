//! Our `hist` trainer: XGBoost's CPU `hist` method on quantized data. The data is read in a
//! few streaming passes into bins (the float matrix is never whole in memory), cut where
//! XGBoost cuts (its weighted quantile sketch), and the trees grow with XGBoost's arithmetic,
//! so that a deterministic training gives XGBoost's trees. Objectives and metrics are
//! hessboost's (XGBoost's formulas).
//!
//! Layout: `sketch`, `cuts` (cut points), `matrix` (bins), `load` (channel -> bins),
//! `evaluate` (split finding), `histogram`, `partition`, `grow` (one tree), `sample`,
//! `boost` (rounds), `model` (trees <-> XGBoost model).

pub mod boost;
pub mod cuts;
pub mod distributed;
pub mod evaluate;
pub mod grow;
pub mod histogram;
pub mod load;
pub mod matrix;
pub mod metric;
pub mod model;
pub mod objective;
pub mod partition;
pub mod sample;
pub mod shards;
pub mod sketch;
pub mod timing;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hessboost::config::{GrowPolicy, MaxDeltaStep, Monotone, SamplingMethod, TrainingParams};
use hessboost::data::MetaInfo;

use self::boost::{Booster, Training};
use self::evaluate::TreeParams;
use self::load::FeatureMap;
use super::engine::{Engine, Scores};
use super::error::Error;
use crate::cluster::Collective;
use crate::data::DataError;
use crate::data::memory::Channel;
use crate::data::rows::Layout;
use crate::model::forest::{Forest, Objective};

/// Where the channels are and how their rows are laid out.
pub struct Inputs {
    pub train: Channel,
    pub validation: Option<Channel>,
    pub layout: Layout,
    /// Objective parameters to record in the model (`tweedie_variance_power`, ...).
    pub objective_params: Vec<(String, String)>,
    pub scale_pos_weight: f32,
    /// A validation set with no rows on this host (several hosts share a replicated one).
    pub empty_validation: bool,
}

/// Metrics the hosts compute together.
pub fn distributed_metric(name: &str) -> bool {
    metric::Elementwise::by_name(name).is_some() || matches!(name, "mlogloss" | "merror")
}

/// Why a configuration goes to the other engine, if it does.
pub fn unsupported(params: &TrainingParams, objective: &str) -> Option<String> {
    use hessboost::config::{BoosterKind, TreeMethod};
    if !matches!(params.booster, BoosterKind::GbTree) {
        return Some("a booster other than gbtree".into());
    }
    if !matches!(params.tree_method, TreeMethod::Hist | TreeMethod::Auto) {
        return Some("tree_method other than hist".into());
    }
    if !matches!(params.grow_policy, GrowPolicy::DepthWise | GrowPolicy::LossGuide) {
        return Some("grow policy".into());
    }
    if !params.interaction_constraints.is_empty() {
        return Some("interaction_constraints".into());
    }
    if params.sampling_method != SamplingMethod::Uniform {
        return Some("sampling_method gradient_based".into());
    }
    const OURS: &[&str] = &[
        "reg:squarederror",
        "reg:linear",
        "reg:logistic",
        "reg:pseudohubererror",
        "reg:squaredlogerror",
        "reg:gamma",
        "reg:tweedie",
        "count:poisson",
        "binary:logistic",
        "binary:logitraw",
        "binary:hinge",
        "multi:softmax",
        "multi:softprob",
    ];
    if !OURS.contains(&objective) {
        return Some(format!("objective `{objective}`"));
    }
    None
}

pub struct HistEngine {
    training: Training,
    features: FeatureMap,
    objective: Objective,
    objective_params: Vec<(String, String)>,
    base_score: Vec<f32>,
    num_feature: usize,
    /// Several hosts: the flag SIGTERM sets on this host, and the one the round loop reads,
    /// set on every host after the same round once any host was asked to stop. Two flags: a
    /// signal between the agreement and the round loop's check must wait for the next round's
    /// agreement, or this host would stop a round before the others.
    stop: Option<(Arc<AtomicBool>, Arc<AtomicBool>)>,
}

fn tree_params(params: &TrainingParams, objective: &str, features: &FeatureMap) -> TreeParams {
    let max_delta_step = match params.max_delta_step {
        MaxDeltaStep::ObjectiveDefault if objective == "count:poisson" => 0.7,
        MaxDeltaStep::ObjectiveDefault | MaxDeltaStep::Unbounded => 0.0,
        MaxDeltaStep::Bounded(v) => v,
        _ => 0.0,
    };
    let monotone = features
        .original
        .iter()
        .map(|&f| match params.monotone_constraints.get(f as usize) {
            Some(Monotone::Increasing) => 1,
            Some(Monotone::Decreasing) => -1,
            _ => 0,
        })
        .collect();
    TreeParams {
        eta: params.eta as f32,
        gamma: params.gamma as f32,
        max_depth: params.max_depth.map_or(0, |d| d.get() as u32),
        max_leaves: params.max_leaves.map_or(0, |l| l.get() as u32),
        min_child_weight: params.min_child_weight as f32,
        max_delta_step: max_delta_step as f32,
        lambda: params.lambda as f32,
        alpha: params.alpha as f32,
        lossguide: params.grow_policy == GrowPolicy::LossGuide,
        monotone,
        colsample_bytree: params.colsample_bytree as f32,
        colsample_bylevel: params.colsample_bylevel as f32,
        colsample_bynode: params.colsample_bynode as f32,
    }
}

/// A data set with no rows (a host whose share of a channel is empty).
fn empty_set(name: &str, features: &FeatureMap, largest: u32) -> boost::DataSet {
    boost::DataSet {
        name: name.into(),
        matrix: matrix::BinnedMatrix::new(features.len(), features.dense, largest, true, 0),
        labels: Vec::new(),
        weights: None,
        row_keys: None,
    }
}

/// The hosts of a distributed job: the collective, this host's stop request and the stop
/// every host agreed on.
pub type Cluster = (Arc<dyn Collective>, Arc<AtomicBool>, Arc<AtomicBool>);

/// The quantized channels.
struct Sets {
    train: boost::DataSet,
    evals: Vec<boost::DataSet>,
    features: FeatureMap,
    cuts: cuts::Cuts,
    /// The widest row of any channel (on every host).
    num_feature: usize,
}

impl HistEngine {
    /// Load and quantize the channels and set up the training: on this host alone
    /// (`cluster` `None`, XGBoost's arithmetic) or with every host of the job.
    pub fn new(
        params: &TrainingParams,
        inputs: &Inputs,
        checkpoint: Option<&Forest>,
        cluster: Option<Cluster>,
    ) -> Result<Self, Error> {
        let collective = cluster.as_ref().map(|(c, _, _)| c.as_ref());
        let Sets { train, evals, features, cuts, num_feature } = load_sets(params, inputs, collective)?;
        let loss = params.loss(1).map_err(|e| Error::Unsupported(e.to_string()))?;
        let objective_name = loss.name().to_string();
        let groups = loss.n_outputs();
        for set in std::iter::once(&train).chain(&evals) {
            loss.validate_info(&set.meta()).map_err(|e| Error::Channel(format!("the {} data: {e}", set.name)))?;
        }
        let base_margin = base_margin(params, loss.as_ref(), &train, groups, collective)?;
        let base_score = match params.base_score {
            Some(bs) => vec![bs as f32; groups],
            // XGBoost keeps a multiclass intercept as margins (softmax has no inverse link).
            None if groups > 1 => base_margin.clone(),
            None => {
                let mut b = base_margin.clone();
                loss.margins_to_probs(&mut b);
                b
            }
        };
        let metrics = eval_metrics(params, loss.as_ref(), groups)?;
        let booster = Booster {
            tree: tree_params(params, &objective_name, &features),
            formula: objective::Formula::for_objective(&objective_name, inputs.scale_pos_weight, groups),
            loss,
            groups,
            num_parallel_tree: params.num_parallel_tree.max(1),
            subsample: params.subsample as f32,
            seed: params.seed,
            metrics,
            base_margin,
        };
        let objective = Objective::parse(&objective_name).map_err(Error::Unsupported)?;
        let mut training = Training::new(booster, cuts, train, evals);
        training.cluster = cluster.as_ref().map(|(c, _, _)| Arc::clone(c));
        if let Some(forest) = checkpoint {
            let trees = model::from_forest(forest, &training.cuts, &features)
                .map_err(|e| Error::Channel(format!("the checkpoint does not continue this training: {e}")))?;
            training.resume(trees, forest.round_bounds.clone());
        }
        Ok(Self {
            training,
            features,
            objective,
            objective_params: inputs.objective_params.clone(),
            base_score,
            num_feature,
            stop: cluster.map(|(_, requested, agreed)| (requested, agreed)),
        })
    }
}

/// Load and quantize the train channel (this host's share, with cuts agreed by every host),
/// then the validation channel on the train channel's cuts.
fn load_sets(params: &TrainingParams, inputs: &Inputs, cluster: Option<&dyn Collective>) -> Result<Sets, Error> {
    let loaded = match cluster {
        None => load::training((&inputs.train).into(), inputs.layout, params.max_bin, "train")?,
        Some(c) => {
            let train = inputs.train.path().ok_or_else(|| {
                Error::Unsupported("training on several hosts reads its channels' files, not rows in memory".into())
            })?;
            shards::training(train, inputs.layout, params.max_bin, params.seed, c, params.subsample < 1.0).map_err(
                |e| match e {
                    shards::ShardError::Data(d) => Error::Data(d),
                    shards::ShardError::Cluster(c) => Error::Cluster(c),
                    shards::ShardError::Disagree(m) => Error::Channel(m),
                },
            )?
        }
    };
    let (features, cuts) = (loaded.features, loaded.cuts);
    let mut evals = Vec::new();
    let mut num_feature = features.num_feature;
    if let Some(validation) = &inputs.validation {
        let fine_largest = cuts.max_bins_per_feature() as u32 + 1;
        let (set, width) = match load::evaluation(validation.into(), inputs.layout, &cuts, &features, "validation") {
            Ok((set, summary)) => (set, summary.width),
            // A host's share of a sharded validation channel can be empty.
            Err(DataError::Missing { .. } | DataError::NoFiles { .. } | DataError::Empty { .. })
                if cluster.is_some() =>
            {
                (empty_set("validation", &features, fine_largest), 0)
            }
            Err(e) => return Err(e.into()),
        };
        num_feature = num_feature.max(width);
        evals.push(set);
    }
    if inputs.empty_validation {
        evals.push(empty_set("validation", &features, cuts.max_bins_per_feature() as u32 + 1));
    }
    if let Some(c) = cluster {
        let mut widest = [num_feature as f64];
        c.allreduce_max(&mut widest).map_err(Error::Cluster)?;
        num_feature = widest[0] as usize;
    }
    let train = loaded.set;
    tracing::info!(
        rows = train.labels.len(),
        features = num_feature,
        present_features = features.len(),
        validation_rows = evals.first().map(|v| v.labels.len()),
        bins = cuts.total_bins(),
        matrix_mb = train.matrix.bytes() / (1 << 20),
        "data loaded and quantized"
    );
    Ok(Sets { train, evals, features, cuts, num_feature })
}

/// The margins every row starts from: `base_score` when given, else the intercept XGBoost
/// estimates from the labels (summed over every host's rows in a distributed job).
fn base_margin(
    params: &TrainingParams,
    loss: &dyn hessboost::objective::Loss,
    train: &boost::DataSet,
    groups: usize,
    cluster: Option<&dyn Collective>,
) -> Result<Vec<f32>, Error> {
    let base_margin = match params.base_score {
        Some(bs) => {
            loss.validate_base_score(bs).map_err(|e| Error::Channel(format!("the data cannot be used: {e}")))?;
            let mut scores = vec![bs as f32; groups];
            loss.probs_to_margins(&mut scores);
            scores
        }
        None => {
            let meta = MetaInfo::new(&train.labels, train.weights.as_deref(), None);
            match cluster {
                None => loss.base_margins_info(&meta),
                Some(c) => {
                    distributed::intercept(loss, &meta, train.labels.len(), groups, c).map_err(Error::Cluster)?
                }
            }
        }
    };
    if base_margin.len() != groups || base_margin.iter().any(|m| !m.is_finite()) {
        return Err(Error::Channel(format!(
            "the estimated intercept is not finite ({base_margin:?}); check the labels"
        )));
    }
    Ok(base_margin)
}

/// The evaluation metrics (the objective's default when none is asked for): ours where
/// XGBoost's formula differs from hessboost's, hessboost's elsewhere.
fn eval_metrics(
    params: &TrainingParams,
    loss: &dyn hessboost::objective::Loss,
    groups: usize,
) -> Result<Vec<(String, boost::MetricImpl)>, Error> {
    let metric_list =
        if params.eval_metric.is_empty() { vec![loss.default_metric()] } else { params.eval_metric.clone() };
    metric_list
        .iter()
        .map(|m| {
            let name = m.name().into_owned();
            let metric = match metric::Elementwise::by_name(&name).filter(|_| groups == 1) {
                Some(ours) => boost::MetricImpl::Elementwise(ours),
                None => boost::MetricImpl::Other(m.build(groups).map_err(|e| Error::Unsupported(e.to_string()))?),
            };
            Ok((name, metric))
        })
        .collect()
}

impl Engine for HistEngine {
    fn rounds(&self) -> usize {
        self.training.rounds()
    }

    fn train(
        &mut self,
        n: usize,
        on_round: &mut (dyn FnMut(usize, &Scores) -> ControlFlow<()> + Send),
    ) -> Result<(), Error> {
        let target = self.training.rounds() + n;
        while self.training.rounds() < target {
            let scores = self.training.round().map_err(Error::Engine)?;
            if let (Some((requested, agreed)), Some(cluster)) = (&self.stop, &self.training.cluster)
                && distributed::any(cluster.as_ref(), requested.load(Ordering::SeqCst)).map_err(Error::Cluster)?
            {
                // Every host stops after the same round.
                agreed.store(true, Ordering::SeqCst);
            }
            if on_round(self.training.rounds() - 1, &scores).is_break() {
                break;
            }
        }
        timing::report();
        if let Some(cluster) = &self.training.cluster {
            tracing::info!(
                bytes_sent = cluster.bytes_sent(),
                trees = self.training.trees.len(),
                "exchanged with the other hosts"
            );
        }
        Ok(())
    }

    fn forest(&self) -> Result<Forest, Error> {
        let info = model::ModelInfo {
            objective: self.objective.clone(),
            objective_params: self.objective_params.clone(),
            num_feature: self.num_feature,
            groups: self.training.booster.groups,
            base_score: self.base_score.clone(),
            num_parallel_tree: self.training.booster.num_parallel_tree,
            features: &self.features,
        };
        Ok(model::to_forest(&info, &self.training.trees, &self.training.round_bounds))
    }

    fn checkpoint(&self) -> Result<Vec<u8>, Error> {
        Ok(crate::model::to_ubjson(&self.forest()?))
    }
}

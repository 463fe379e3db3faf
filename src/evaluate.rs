//! The evaluate step: a model (`model.tar.gz` or its files) and a labelled test set to
//! `evaluation.json`, in Model Monitor's layout, with the row count and model facts.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::contract::MlRoot;
use crate::contract::failure::{Fault, StepError};
use crate::data::DataError;
use crate::data::labelled;
use crate::data::rows::ContentType;
use crate::metrics::{self, BinaryMetrics, Bootstrap, MulticlassMetrics, RegressionMetrics};
use crate::model::{Ensemble, Matrix, ModelError, Objective, TreeLimit};

pub const EVALUATION_FILE: &str = "evaluation.json";
/// Beside `evaluation.json`: each test row's label and prediction, `label,prediction` with a
/// header, in test-set order (a classifier's prediction is its probability of class 1, or
/// its most probable class).
pub const PREDICTIONS_FILE: &str = "evaluation_predictions.csv";
/// Beside `evaluation.json`: predicted against actual, and the residuals' distribution.
pub const PLOT_FILE: &str = "evaluation.svg";

#[derive(Debug, Clone)]
pub struct Config {
    /// The job's `/opt/ml` tree: the report names paths as the container sees them.
    pub ml: MlRoot,
    /// A model file, a `model.tar.gz`, or a directory of either.
    pub model: PathBuf,
    /// A file or directory of label-first rows.
    pub test_data: PathBuf,
    pub content_type: Option<ContentType>,
    /// Receives `evaluation.json`.
    pub output_dir: PathBuf,
    pub bootstrap: Bootstrap,
}

impl Config {
    /// SageMaker processing paths: `processing/model`, `processing/test`, `processing/evaluation`.
    pub fn sagemaker_defaults(ml: &MlRoot) -> Self {
        Self {
            ml: ml.clone(),
            model: ml.processing_path("model"),
            test_data: ml.processing_path("test"),
            content_type: None,
            output_dir: ml.processing_path("evaluation"),
            bootstrap: Bootstrap::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(
        "the test data has {given} feature columns but the model expects {expected} (`{}`); \
         the test set must be label first, then the features the model was trained on",
        path.display()
    )]
    Width { path: PathBuf, given: usize, expected: usize },
    #[error("label {label} in row {row} is not a class of this {objective} model (expected {expected})")]
    Label { row: usize, label: f32, objective: String, expected: String },
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
            Self::Write { .. } => Fault::Internal,
            _ => Fault::User,
        }
    }
}

/// What the report says of the model.
#[derive(Debug, Serialize)]
pub struct ModelFacts {
    pub files: Vec<String>,
    pub format: crate::model::Format,
    pub xgboost_version: Option<String>,
    pub objective: String,
    pub trees: usize,
    pub trees_used: usize,
    pub num_feature: usize,
}

/// `evaluation.json`.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression_metrics: Option<RegressionMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_classification_metrics: Option<BinaryMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiclass_classification_metrics: Option<MulticlassMetrics>,
    pub rows: usize,
    pub model: ModelFacts,
    pub bootstrap_samples: usize,
    pub bootstrap_seed: u64,
}

pub fn run(config: &Config) -> Result<Evaluation, Error> {
    let ensemble = Ensemble::load(&config.model)?;
    let data = labelled::read(&config.test_data, config.content_type, false)?;
    let forest = ensemble.first();
    let expected = ensemble.num_feature();
    // Sparse rows (libsvm, sparse RecordIO) leave trailing absent columns out; dense rows
    // must match exactly.
    let sparse = data.sparse.is_some();
    if data.cols > expected || (data.cols < expected && !sparse) {
        return Err(Error::Width { path: config.test_data.clone(), given: data.cols, expected });
    }
    let predictions = predict_rows(&ensemble, &data);
    tracing::info!(rows = data.rows(), members = ensemble.members.len(), "predicted the test set");

    let labels: Vec<f64> = data.labels.iter().map(|&l| f64::from(l)).collect();
    let outputs: Vec<f64> = predictions.iter().map(|&p| f64::from(p)).collect();
    let per_row = per_row_predictions(&outputs, labels.len(), &forest.objective);
    let mut evaluation = Evaluation {
        regression_metrics: None,
        binary_classification_metrics: None,
        multiclass_classification_metrics: None,
        rows: data.rows(),
        model: ModelFacts {
            files: ensemble.members.iter().map(|m| config.ml.shown(&m.name)).collect(),
            format: ensemble.members[0].model.format,
            xgboost_version: forest.version.map(|v| v.to_string()),
            objective: forest.objective.name().to_string(),
            trees: forest.trees.len(),
            trees_used: forest.tree_range(TreeLimit::SageMaker).len(),
            num_feature: forest.num_feature,
        },
        bootstrap_samples: config.bootstrap.samples,
        bootstrap_seed: config.bootstrap.seed,
    };
    match &forest.objective {
        Objective::SoftProb | Objective::SoftMax => {
            check_labels(&data.labels, forest.num_groups, forest.objective.name())?;
            evaluation.multiclass_classification_metrics =
                Some(metrics::multiclass(&labels, &outputs, forest.num_groups, config.bootstrap));
        }
        objective if objective.is_classification() => {
            check_labels(&data.labels, 2, objective.name())?;
            let probabilities: Vec<f64> = match objective {
                // logitraw predicts margins: the probability is their sigmoid.
                Objective::Identity(_) => outputs.iter().map(|m| 1.0 / (1.0 + (-m).exp())).collect(),
                _ => outputs,
            };
            evaluation.binary_classification_metrics = Some(metrics::binary(&labels, &probabilities, config.bootstrap));
        }
        _ => evaluation.regression_metrics = Some(metrics::regression(&labels, &outputs, config.bootstrap)),
    }
    // The report last: once it is there, its companions are too.
    write_file(&config.output_dir.join(PREDICTIONS_FILE), predictions_csv(&labels, &per_row).as_bytes())?;
    write_file(&config.output_dir.join(PLOT_FILE), plot(&labels, &per_row, &forest.objective).as_bytes())?;
    write_report(&config.output_dir.join(EVALUATION_FILE), &evaluation)?;
    crate::emf::emit("evaluate", &evaluation.figures());
    Ok(evaluation)
}

fn check_labels(labels: &[f32], classes: usize, objective: &str) -> Result<(), Error> {
    match labels.iter().position(|&l| l.fract() != 0.0 || l < 0.0 || l as usize >= classes) {
        Some(row) => Err(Error::Label {
            row: row + 1,
            label: labels[row],
            objective: objective.to_string(),
            expected: format!("an integer from 0 to {}", classes - 1),
        }),
        None => Ok(()),
    }
}

fn write_report(path: &Path, evaluation: &Evaluation) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(evaluation).expect("the report serializes");
    text.push('\n');
    write_file(path, text.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::storage::write_atomic(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// One prediction per row: the model's output, or for `multi:softprob` the most probable
/// class (its outputs are one probability per class).
fn per_row_predictions(outputs: &[f64], rows: usize, objective: &Objective) -> Vec<f64> {
    let width = outputs.len().checked_div(rows).unwrap_or(1).max(1);
    if width == 1 || !matches!(objective, Objective::SoftProb) {
        return outputs.iter().step_by(width).copied().collect();
    }
    outputs
        .chunks(width)
        .map(|row| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(class, _)| class as f64))
        .collect()
}

/// `evaluation_predictions.csv`.
pub fn predictions_csv(labels: &[f64], predictions: &[f64]) -> String {
    let mut out = String::from("label,prediction\n");
    for (label, prediction) in labels.iter().zip(predictions) {
        out.push_str(&format!("{label},{prediction}\n"));
    }
    out
}

/// `evaluation.svg`: predicted against actual with the line y = x, and the distribution of
/// the residuals (actual - predicted).
pub fn plot(labels: &[f64], predictions: &[f64], objective: &Objective) -> String {
    let (left, right) = charts(labels, predictions, objective.is_classification());
    crate::plot::side_by_side(&left, crate::plot::WIDTH, &right, crate::plot::HEIGHT)
}

/// The two charts of an evaluation, as `<svg>` elements (also inlined by the run report).
pub fn charts(labels: &[f64], predictions: &[f64], classification: bool) -> (String, String) {
    let points: Vec<(f64, f64)> = labels.iter().copied().zip(predictions.iter().copied()).collect();
    let residuals: Vec<f64> = points.iter().map(|(actual, predicted)| actual - predicted).collect();
    let what = if classification { "predicted (probability or class)" } else { "predicted" };
    let scatter =
        crate::plot::scatter(&format!("{what} against actual, {} rows", labels.len()), "actual", what, &points, true);
    let histogram = crate::plot::histogram("residuals (actual - predicted)", "residual", &residuals, 20);
    (scatter, histogram)
}

impl Evaluation {
    /// Every metric's value by name (`mse`, `accuracy`, ...), for CloudWatch.
    pub fn figures(&self) -> Vec<(String, f64, crate::emf::Unit)> {
        let tree = serde_json::to_value(self).unwrap_or_default();
        let mut out = Vec::new();
        for group in ["regression_metrics", "binary_classification_metrics", "multiclass_classification_metrics"] {
            if let Some(metrics) = tree.get(group).and_then(serde_json::Value::as_object) {
                for (name, metric) in metrics {
                    if let Some(value) = metric.get("value").and_then(serde_json::Value::as_f64) {
                        out.push((name.clone(), value, crate::emf::Unit::None));
                    }
                }
            }
        }
        out.push(("Rows".into(), self.rows as f64, crate::emf::Unit::Count));
        out
    }
}

/// Predict labelled rows as the built-in's server does. Sparse rows are predicted on the
/// features the splits read: a hashed feature index of 2^31 - 1 costs nothing.
pub fn predict_rows(ensemble: &Ensemble, data: &labelled::Labelled) -> Vec<f32> {
    match &data.sparse {
        Some(sparse) => {
            let projection = ensemble.projection();
            let features = sparse.project(data.rows(), projection.width(), |i| projection.column(i as u64));
            projection.ensemble.predict(&Matrix::new(&features, projection.width()), TreeLimit::SageMaker)
        }
        None => {
            let width = ensemble.num_feature().max(data.cols);
            ensemble.predict(&Matrix::new(&data.widened(width), width.max(1)), TreeLimit::SageMaker)
        }
    }
}

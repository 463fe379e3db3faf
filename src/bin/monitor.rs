//! `monitor`: SageMaker processing step. Model Monitor's analyzer: data quality (a baseline,
//! `statistics.json` and `constraints.json`, from a data set, or a check of a data set against
//! one, `constraint_violations.json`) and, with `analysis_type=MODEL_QUALITY`, model quality
//! (predictions against ground truth, the same three files); with `ground_truth_source`, the
//! ground-truth merge that prepares a model-quality analysis of captured traffic.

use std::process::ExitCode;

use clap::Parser;
use sagestep::contract::MlRoot;
use sagestep::contract::failure::{self, Channel};
use sagestep::monitor::model_quality::settings::names as quality;
use sagestep::monitor::settings::{Given, names};

/// Profile a data set as SageMaker Model Monitor's analyzer does, and check it against a baseline.
///
/// Takes Model Monitor's environment variables (the flags below are the same settings), falling
/// back to `/opt/ml/config/processingjobconfig.json`'s `Environment`. Without a baseline it
/// writes `statistics.json` and `constraints.json` to `output_path`; with `baseline_constraints`
/// and/or `baseline_statistics` it also writes `constraint_violations.json`. Paths under
/// `/opt/ml` are mapped onto `SAGESTEP_ML_ROOT`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// `{"csv": {"header": true}}`, `{"json": {"lines": true}}` or `{"parquet": {}}`
    #[arg(long, env = names::DATASET_FORMAT)]
    dataset_format: Option<String>,
    /// Directory (or file) holding the data set
    #[arg(long, env = names::DATASET_SOURCE)]
    dataset_source: Option<String>,
    /// Directory for the outputs [default: <ml root>/processing/output]
    #[arg(long, env = names::OUTPUT_PATH)]
    output_path: Option<String>,
    /// A baseline's constraints.json: check the data set against it
    #[arg(long, env = names::BASELINE_CONSTRAINTS)]
    baseline_constraints: Option<String>,
    /// A baseline's statistics.json: compare distributions with it
    #[arg(long, env = names::BASELINE_STATISTICS)]
    baseline_statistics: Option<String>,
    /// `Enabled` writes /opt/ml/output/metrics/cloudwatch/cloudwatch_metrics.jsonl
    #[arg(long, env = names::PUBLISH_CLOUDWATCH_METRICS)]
    publish_cloudwatch_metrics: Option<String>,
    /// `LInfinity` (the only one implemented)
    #[arg(long, env = names::CATEGORICAL_DRIFT_METHOD)]
    categorical_drift_method: Option<String>,
    /// Drop the first N columns of every CSV row (a training set's label) before profiling
    #[arg(long, env = names::SKIP_COLUMNS)]
    skip_columns: Option<String>,
    #[arg(long, env = names::ENDPOINT_NAME, hide = true)]
    sagemaker_endpoint_name: Option<String>,
    #[arg(long, env = names::SCHEDULE_NAME, hide = true)]
    sagemaker_monitoring_schedule_name: Option<String>,
    #[arg(long, env = names::END_TIME, hide = true)]
    end_time: Option<String>,
    /// `MODEL_QUALITY` compares predictions with ground truth (else: data quality)
    #[arg(long, env = quality::ANALYSIS_TYPE)]
    analysis_type: Option<String>,
    /// Model quality: `Regression`, `BinaryClassification` or `MulticlassClassification`
    #[arg(long, env = quality::PROBLEM_TYPE)]
    problem_type: Option<String>,
    /// Model quality: the predicted label or value (a header name, `_cN`, or a captured output's index)
    #[arg(long, env = quality::INFERENCE_ATTRIBUTE)]
    inference_attribute: Option<String>,
    /// Model quality: the score of the positive class
    #[arg(long, env = quality::PROBABILITY_ATTRIBUTE)]
    probability_attribute: Option<String>,
    /// Model quality: predicted label = probability > this (when no inference attribute)
    #[arg(long, env = quality::PROBABILITY_THRESHOLD_ATTRIBUTE)]
    probability_threshold_attribute: Option<String>,
    /// Model quality: the actual label or value
    #[arg(long, env = quality::GROUND_TRUTH_ATTRIBUTE)]
    ground_truth_attribute: Option<String>,
    /// The ground-truth merge: join the captures under `dataset_source` with the ground truth here
    #[arg(long, env = sagestep::monitor::merge::GROUND_TRUTH_SOURCE)]
    ground_truth_source: Option<String>,
    #[arg(long, env = quality::START_TIME, hide = true)]
    start_time: Option<String>,
    #[arg(long, env = quality::METRIC_TIME, hide = true)]
    metric_time: Option<String>,
    #[arg(long, env = names::RECORD_PREPROCESSOR_SCRIPT, hide = true)]
    record_preprocessor_script: Option<String>,
    #[arg(long, env = names::POST_ANALYTICS_PROCESSOR_SCRIPT, hide = true)]
    post_analytics_processor_script: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    sagestep::logging::init();
    let ml = MlRoot::from_env();
    let mut given = Given::default();
    for (name, value) in [
        (names::DATASET_FORMAT, args.dataset_format),
        (names::DATASET_SOURCE, args.dataset_source),
        (names::OUTPUT_PATH, args.output_path),
        (names::BASELINE_CONSTRAINTS, args.baseline_constraints),
        (names::BASELINE_STATISTICS, args.baseline_statistics),
        (names::PUBLISH_CLOUDWATCH_METRICS, args.publish_cloudwatch_metrics),
        (names::CATEGORICAL_DRIFT_METHOD, args.categorical_drift_method),
        (names::SKIP_COLUMNS, args.skip_columns),
        (names::ENDPOINT_NAME, args.sagemaker_endpoint_name),
        (names::SCHEDULE_NAME, args.sagemaker_monitoring_schedule_name),
        (names::END_TIME, args.end_time),
        (names::RECORD_PREPROCESSOR_SCRIPT, args.record_preprocessor_script),
        (names::POST_ANALYTICS_PROCESSOR_SCRIPT, args.post_analytics_processor_script),
        (quality::ANALYSIS_TYPE, args.analysis_type),
        (quality::PROBLEM_TYPE, args.problem_type),
        (quality::INFERENCE_ATTRIBUTE, args.inference_attribute),
        (quality::PROBABILITY_ATTRIBUTE, args.probability_attribute),
        (quality::PROBABILITY_THRESHOLD_ATTRIBUTE, args.probability_threshold_attribute),
        (quality::GROUND_TRUTH_ATTRIBUTE, args.ground_truth_attribute),
        (quality::START_TIME, args.start_time),
        (quality::METRIC_TIME, args.metric_time),
        (sagestep::monitor::merge::GROUND_TRUTH_SOURCE, args.ground_truth_source),
    ] {
        given.set(name, value);
    }
    let merge = given.values.contains_key(sagestep::monitor::merge::GROUND_TRUTH_SOURCE);
    let outcome = sagestep::monitor::model_quality::settings::is_model_quality(&ml, &given).and_then(|quality| {
        if merge {
            sagestep::monitor::merge::run(&ml, &given).map(drop)
        } else if quality {
            sagestep::monitor::model_quality::job::run(&ml, &given).map(drop)
        } else {
            sagestep::monitor::run(&ml, &given).map(drop)
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failure::report(&ml, Channel::Processing, &err),
    }
}

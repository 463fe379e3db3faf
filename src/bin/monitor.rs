//! `monitor`: SageMaker processing step. Model Monitor's data-quality analyzer: a baseline
//! (`statistics.json`, `constraints.json`) from a data set, or a check of a data set against one
//! (`constraint_violations.json`).

use std::process::ExitCode;

use clap::Parser;
use sagestep::contract::MlRoot;
use sagestep::contract::failure::{self, Channel};
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
    ] {
        given.set(name, value);
    }
    match sagestep::monitor::run(&ml, &given) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => failure::report(&ml, Channel::Processing, &err),
    }
}

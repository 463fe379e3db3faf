//! `evaluate`: SageMaker processing step. A model and a labelled test set to `evaluation.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sagestep::contract::MlRoot;
use sagestep::contract::failure::{self, Channel};
use sagestep::data::rows::ContentType;
use sagestep::evaluate::{self, Config};
use sagestep::metrics::Bootstrap;

/// Evaluate an XGBoost model (any format, or a model.tar.gz) on a label-first test set.
///
/// Reads `/opt/ml/processing/model` and `/opt/ml/processing/test`, writes
/// `/opt/ml/processing/evaluation/evaluation.json`. The `/opt/ml` root is `SAGESTEP_ML_ROOT`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Model file, model.tar.gz, or a directory of them [default: <ml root>/processing/model]
    #[arg(long, env = "SAGESTEP_MODEL")]
    model: Option<PathBuf>,
    /// Test data file or directory, label first, no header [default: <ml root>/processing/test]
    #[arg(long, env = "SAGESTEP_TEST_DATA")]
    test_data: Option<PathBuf>,
    /// `text/csv` or `text/libsvm` [default: detected from the first line]
    #[arg(long, env = "SAGESTEP_CONTENT_TYPE", value_parser = parse_content_type)]
    content_type: Option<ContentType>,
    /// Directory for evaluation.json [default: <ml root>/processing/evaluation]
    #[arg(long, env = "SAGESTEP_OUTPUT_DIR")]
    output_dir: Option<PathBuf>,
    /// Bootstrap resamples for the standard deviations
    #[arg(long, default_value_t = Bootstrap::default().samples)]
    bootstrap_samples: usize,
    /// Seed of the bootstrap resampling
    #[arg(long, default_value_t = Bootstrap::default().seed)]
    seed: u64,
}

fn parse_content_type(text: &str) -> Result<ContentType, String> {
    ContentType::parse(text).ok_or_else(|| {
        format!("`{text}` is not text/csv, text/libsvm, application/x-parquet or application/x-recordio-protobuf")
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    sagestep::logging::init();
    let ml = MlRoot::from_env();
    let defaults = Config::sagemaker_defaults(&ml);
    let config = Config {
        ml: ml.clone(),
        model: args.model.unwrap_or(defaults.model),
        test_data: args.test_data.unwrap_or(defaults.test_data),
        content_type: args.content_type,
        output_dir: args.output_dir.unwrap_or(defaults.output_dir),
        bootstrap: Bootstrap { samples: args.bootstrap_samples, seed: args.seed },
    };
    match evaluate::run(&config) {
        Ok(evaluation) => {
            tracing::info!(rows = evaluation.rows, output = %ml.shown(&config.output_dir.to_string_lossy()), "evaluation complete");
            ExitCode::SUCCESS
        }
        Err(err) => failure::report(&ml, Channel::Processing, &err),
    }
}

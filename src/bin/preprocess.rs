//! `preprocess`: SageMaker processing step. Raw CSV to train/validation/test splits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sagestep::contract::MlRoot;
use sagestep::contract::failure::{self, Channel};
use sagestep::features::Ratios;
use sagestep::preprocess::{self, Config};

/// Split raw tabular data for XGBoost and fit the feature transform on the training rows.
///
/// Reads `/opt/ml/processing/input` (or `--input-data`), writes
/// `/opt/ml/processing/{train,validation,test_set_1,test_set_2}/` and
/// `/opt/ml/processing/artifacts/preprocessing.json`. The `/opt/ml` root is `SAGESTEP_ML_ROOT`.
/// Several instances (`/opt/ml/config/resourceconfig.json`) each read their share of the
/// input and fit one transform together.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Input file or directory: a path, `file:///...` or `s3://bucket/prefix`
    /// [default: <ml root>/processing/input]
    #[arg(long, env = "SAGESTEP_INPUT_DATA")]
    input_data: Option<String>,
    /// Directory that receives the split and artifact directories [default: <ml root>/processing]
    #[arg(long, env = "SAGESTEP_OUTPUT_DIR")]
    output_dir: Option<PathBuf>,
    /// Schema JSON (label, numeric, categorical, ignored columns, missing markers)
    /// [default: Auto MPG's]
    #[arg(long, env = "SAGESTEP_SCHEMA")]
    schema: Option<PathBuf>,
    /// Seed of the shuffle before splitting
    #[arg(long, env = "SAGESTEP_SEED", default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = Ratios::default().train)]
    train_ratio: f64,
    #[arg(long, default_value_t = Ratios::default().validation)]
    validation_ratio: f64,
    #[arg(long, default_value_t = Ratios::default().test)]
    test_ratio: f64,
    /// Distinct values counted exactly in one pass per host, shared by the numeric columns;
    /// beyond it, medians take further passes over the input (and stay exact)
    #[arg(long, env = "SAGESTEP_MEDIAN_BUDGET", default_value_t = preprocess::MEDIAN_BUDGET)]
    median_budget: usize,
    /// Bytes per cell of the grid objects are read on (tests use small cells: many in a small
    /// file); every host of a job must use the same
    #[arg(long, env = "SAGESTEP_PREPROCESS_CELL_BYTES", default_value_t = sagestep::features::cells::CELL_BYTES,
          value_parser = clap::value_parser!(u64).range(1..), hide = true)]
    cell_bytes: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    sagestep::logging::init();
    let ml = MlRoot::from_env();
    let defaults = Config::sagemaker_defaults(&ml);
    let config = Config {
        input: args.input_data.unwrap_or(defaults.input),
        output_dir: args.output_dir.unwrap_or(defaults.output_dir),
        schema: args.schema,
        seed: args.seed,
        ratios: Ratios { train: args.train_ratio, validation: args.validation_ratio, test: args.test_ratio },
        median_budget: args.median_budget,
        cell_bytes: args.cell_bytes,
        ..defaults
    };
    match preprocess::run(&config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => failure::report(&ml, Channel::Processing, &err),
    }
}

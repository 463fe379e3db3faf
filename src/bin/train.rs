//! `train`: SageMaker's training container. `docker run <image> train`, or no argument.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use sagestep::contract::MlRoot;
use sagestep::contract::failure::{self, Channel};
use sagestep::training::job::{self, Config, Outcome};

/// Train an XGBoost model under SageMaker's training contract (/opt/ml/input, /opt/ml/model,
/// /opt/ml/output/failure). The `/opt/ml` root is `SAGESTEP_ML_ROOT`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// `train`, as SageMaker passes it; no argument does the same
    #[arg(value_parser = ["train"])]
    command: Option<String>,
    /// Rounds between checkpoints
    #[arg(long, env = "SAGESTEP_CHECKPOINT_EVERY", default_value_t = 10)]
    checkpoint_every: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    sagestep::logging::init();
    let ml = MlRoot::from_env();
    // SIGTERM (StopTrainingJob, spot interruption) is checked between rounds.
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)) {
        tracing::warn!("cannot watch SIGTERM: {e}");
    }
    let config = Config { ml: ml.clone(), checkpoint_every: args.checkpoint_every };
    match job::run(&config, stop) {
        Ok(Outcome::Trained { rounds, best_iteration, stopped_by_signal }) => {
            tracing::info!(rounds, best_iteration, stopped_by_signal, "training complete");
            ExitCode::SUCCESS
        }
        Ok(Outcome::SkippedSecondaryHost { current, first }) => {
            tracing::info!(current, first, "not the first host: the first host trains on the replicated data");
            ExitCode::SUCCESS
        }
        Err(err) => failure::report(&ml, Channel::Training, &err),
    }
}

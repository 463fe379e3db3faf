//! `serve`: SageMaker's inference container. `docker run <image> serve`, or no argument.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sagestep::contract::MlRoot;
use sagestep::contract::failure::EXIT_USER_ERROR;
use sagestep::serving::{self, ServeConfig};

/// Serve an XGBoost model (any format, or a model.tar.gz) on SageMaker's inference contract.
///
/// Port 8080 or `SAGEMAKER_BIND_TO_PORT`; model from `/opt/ml/model`. Honours
/// `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`, `SAGEMAKER_INFERENCE_OUTPUT` and the batch
/// transform variables. With `SAGEMAKER_MULTI_MODEL=true`, serves a multi-model endpoint:
/// models load on request from below `/opt/ml/models`, within the container's memory limit
/// (or `SAGESTEP_MEMORY_LIMIT`).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// `serve`, as SageMaker passes it; no argument does the same
    #[arg(value_parser = ["serve"])]
    command: Option<String>,
    /// Model file, model.tar.gz, or a directory of them [default: <ml root>/model]
    #[arg(long, env = "SAGESTEP_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    /// Multi-model mode: the directory relative model `url`s lie below [default: <ml root>/models]
    #[arg(long, env = "SAGESTEP_MODELS_ROOT")]
    models_root: Option<PathBuf>,
    /// Port to listen on [default: SAGEMAKER_BIND_TO_PORT, else 8080]
    #[arg(long)]
    port: Option<u16>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    sagestep::logging::init();
    let ml = MlRoot::from_env();
    let model_dir = args.model_dir.unwrap_or_else(|| ml.model_dir());
    let models_root = args.models_root.unwrap_or_else(|| ml.root().join("models"));
    let config = match ServeConfig::from_env(model_dir, models_root, args.port) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EXIT_USER_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(sagestep::parallel::cores())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(sagestep::contract::failure::EXIT_INTERNAL_ERROR);
        }
    };
    match runtime.block_on(serving::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", sagestep::contract::failure::describe(&e));
            ExitCode::from(EXIT_USER_ERROR)
        }
    }
}

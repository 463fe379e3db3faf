//! The training job's one error type. The job, its configuration files, the engines, the
//! round loop, checkpoints and k-fold all return it; each variant knows whose fault it is.

use std::path::PathBuf;

use super::hyperparameters::HyperparameterError;
use crate::contract::failure::{Fault, StepError};
use crate::data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not valid: {problem}", path.display())]
    ConfigFormat { path: PathBuf, problem: String },
    #[error(transparent)]
    Hyperparameter(#[from] HyperparameterError),
    #[error("{0}")]
    Channel(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("these hyperparameters are valid for SageMaker's XGBoost but not supported by this trainer: {0}")]
    Unsupported(String),
    #[error("training failed: {0}")]
    Engine(String),
    #[error("training across hosts failed: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
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
            Self::Engine(_) | Self::Write { .. } => Fault::Internal,
            Self::Cluster(e) if !e.is_config() => Fault::Internal,
            _ => Fault::User,
        }
    }
}

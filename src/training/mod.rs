//! Training: the built-in algorithm's hyperparameters, the training job, its engines (our
//! quantized `hist` trainer and hessboost), the round loop with early stopping, checkpoints.

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod fit;
pub mod hessboost_engine;
pub mod hist;
pub mod hyperparameters;
pub mod job;
pub mod kfold;
pub mod pipe;
pub mod rounds;

pub use hyperparameters::{HyperparameterError, Hyperparameters};

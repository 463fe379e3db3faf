//! Training: the built-in algorithm's hyperparameters, the boosting engine adapter, metric
//! lines, early stopping and checkpoints.

pub mod hyperparameters;
pub mod job;

pub use hyperparameters::{HyperparameterError, Hyperparameters};

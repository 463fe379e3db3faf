//! SageMaker Pipelines on one machine: the definition format, its validation, and a runner
//! that executes a definition with our binaries as processes or with real images under Docker.

pub use crate::clock;
pub mod definition;
pub mod engine;
pub mod expr;
pub mod html;
pub mod jobs;
pub mod registry;
pub mod report;
pub mod runner;
pub mod tuning;
pub mod usage;
pub mod validate;

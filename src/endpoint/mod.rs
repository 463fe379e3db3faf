//! Real-time endpoints on this machine: an approved model package from the registry served
//! by N instances of its container behind a front that speaks SageMaker Runtime's
//! `InvokeEndpoint`, so that an application's boto3 `sagemaker-runtime` client works against
//! it unchanged.
//!
//! `sagestep endpoints create` checks the package, records the endpoint in the store and
//! starts its supervisor (`sagestep endpoints run-front NAME`, a process of its own session);
//! the supervisor unpacks the model, starts the instances (each dies with it: the kernel's
//! parent-death signal), serves the front, keeps the record current and, on SIGTERM, drains
//! the front, then stops every instance.
//!
//! record.rs      the endpoint's record in the store, DescribeEndpoint's shape
//! deploy.rs      from a registry package to what the instances run
//! instance.rs    one instance: its process, its health
//! front.rs       the InvokeEndpoint front: routing, validation, the service's error shapes
//! supervisor.rs  the supervisor process's life
//! control.rs     what the CLI does: create, delete (signals, waiting, nothing left)

pub mod control;
pub mod deploy;
pub mod front;
pub mod instance;
pub mod record;
pub mod supervisor;

use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The caller's request is wrong (the service's `ValidationException`).
    #[error("{0}")]
    Validation(String),
    #[error("endpoint record `{key}` is unreadable: {detail}")]
    Corrupt { key: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Starting or running the endpoint failed on this machine.
    #[error("{0}")]
    Runtime(String),
}

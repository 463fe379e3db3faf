//! From a model package in the registry to what an endpoint's instances run: only an
//! `Approved` package deploys; its first inference container gives the image, the model
//! artifact and the environment; the artifact is unpacked into an `/opt/ml/model` tree as the
//! runner's batch transform unpacks it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::EndpointError;
use crate::pipeline::engine::{Engine, EngineKind, default_bin_dir};
use crate::pipeline::jobs::{Jobs, text};
use crate::pipeline::registry::{Registry, RegistryError};
use crate::storage::Storage;

/// What an approved package deploys.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// GROUP/VERSION.
    pub package: String,
    pub image: String,
    /// The container as CreateModel takes it (`Image`, `ModelDataUrl`, `Environment`).
    pub container: Value,
    pub environment: BTreeMap<String, String>,
}

/// The package's deployable container, refused unless it is `Approved`.
pub fn resolve(storage: &Storage, package: &str) -> Result<Deployment, EndpointError> {
    let record = Registry::new(storage).describe(package).map_err(|e| match e {
        RegistryError::Store(store) => EndpointError::Store(store),
        other => EndpointError::Validation(other.to_string()),
    })?;
    let status = text(&record, "/ModelApprovalStatus").unwrap_or("PendingManualApproval");
    if status != "Approved" {
        return Err(EndpointError::Validation(format!(
            "model package {package} has ModelApprovalStatus {status}: only an Approved package is deployed (approve it with `sagestep registry approve {package}`)"
        )));
    }
    let container = record.pointer("/InferenceSpecification/Containers/0").cloned().ok_or_else(|| {
        EndpointError::Validation(format!("model package {package} has no InferenceSpecification.Containers"))
    })?;
    let image = text(&container, "/Image")
        .ok_or_else(|| EndpointError::Validation(format!("model package {package}: its container has no Image")))?
        .to_string();
    let environment = container
        .get("Environment")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect())
        .unwrap_or_default();
    Ok(Deployment { package: package.to_string(), image, container, environment })
}

/// The engine that runs an endpoint's instances (never interrupted from outside: the
/// supervisor stops them itself).
pub fn engine(kind: EngineKind) -> Engine {
    Engine::new(kind, default_bin_dir(), Arc::new(AtomicBool::new(false)))
}

/// Unpack the package's `ModelDataUrl` into `<ml_root>/model`.
pub fn unpack(
    storage: &Storage,
    engine: &Engine,
    deployment: &Deployment,
    ml_root: &Path,
) -> Result<(), EndpointError> {
    let jobs = Jobs::new(storage, engine, ml_root.to_path_buf(), String::new());
    let model_dir = crate::contract::MlRoot::new(ml_root).model_dir();
    jobs.unpack_model(&deployment.container, &model_dir)
        .map_err(|f| EndpointError::Runtime(format!("unpacking model package {}: {}", deployment.package, f.message)))
}

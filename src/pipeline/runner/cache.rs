//! CacheConfig: a step's result is reused when its key (type, engine, arguments with the
//! per-execution parts masked, and the identity of every input object) is found in the store
//! within `ExpireAfter`, and what it produced is still stored. Which URIs a step reads and
//! produces is its executor's business (`steps::Executor`).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::state::{KeyScope, Shared, StepScope};
use super::steps::Executor;
use crate::pipeline::clock;
use crate::pipeline::definition::Step;
use crate::pipeline::engine::EngineKind;
use crate::pipeline::expr;
use crate::pipeline::jobs::JobFailure;

/// A step's cache key: its type, the engine, the seed if it draws with it, and its arguments resolved in `KeyScope` (so
/// per-execution output prefixes do not defeat the cache), and the identity (size, ETag) of
/// every input object, so changed data is never served from the cache.
pub(super) fn key(
    shared: &Shared,
    step: &Step,
    executor: &dyn Executor,
    arguments: &Value,
    engine: EngineKind,
    seed: u64,
) -> Result<String, JobFailure> {
    let scope = KeyScope { inner: StepScope { shared } };
    let masked =
        expr::resolve(&step.arguments, &scope, &step.path).map_err(|e| JobFailure::client(e.to_string()))?.to_string();
    let mut hasher = Sha256::new();
    hasher.update(step.kind.as_str());
    // A run with the images must run the images, not reuse what the binaries made.
    hasher.update(format!("\0{engine:?}\0"));
    hasher.update(masked.as_bytes());
    // Another seed draws other trials: a different result, not a cache hit.
    if executor.seeded() {
        hasher.update(format!("\0seed {seed}\0"));
    }
    for uri in executor.inputs(arguments) {
        hasher.update([0]);
        hasher.update(uri.as_bytes());
        for object in shared.storage.list(&uri)? {
            hasher.update(format!("\n{}\t{}\t{}", object.relative, object.size, object.etag).as_bytes());
        }
    }
    Ok(crate::data::files::hex(&hasher.finalize()))
}

fn entry_key(shared: &Shared, step: &Step, key: &str) -> String {
    format!("cache/{}/{}/{key}.json", shared.pipeline_name, step.name)
}

/// The execution that made a still-valid result under `key`, and its properties.
pub(super) fn lookup(shared: &Shared, step: &Step, executor: &dyn Executor, key: &str) -> Option<(String, Value)> {
    let bytes = shared.storage.state_read(&entry_key(shared, step, key)).ok()??;
    let entry: Value = serde_json::from_slice(&bytes).ok()?;
    let created = entry.get("created")?.as_f64()?;
    let expire = step.cache.as_ref()?.expire_after;
    if let Some(expire) = expire
        && clock::now_secs() - created > expire.as_secs_f64()
    {
        return None;
    }
    let properties = entry.get("properties")?.clone();
    // A cached result is only good while what it produced is still stored.
    for uri in executor.outputs(&properties) {
        if shared.storage.list(&uri).map(|found| found.is_empty()).unwrap_or(true) {
            return None;
        }
    }
    Some((entry.get("execution_id")?.as_str()?.to_string(), properties))
}

pub(super) fn store(shared: &Shared, step: &Step, key: &str, properties: &Value) {
    let entry = json!({"execution_id": shared.execution_id, "created": clock::now_secs(), "properties": properties});
    let bytes = serde_json::to_vec(&entry).expect("JSON");
    if let Err(err) = shared.storage.state_write(&entry_key(shared, step, key), &bytes) {
        tracing::warn!("could not record step {} in the cache: {err}", step.name);
    }
}

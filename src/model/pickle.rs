//! A pickled `xgboost.core.Booster` (SageMaker's 0.90-x, 1.0-1 and 1.2-x containers): the
//! model is the `handle` bytes of the pickled state.

use serde_pickle::{DeOptions, HashableValue, Value as Pickled};

use super::ModelError;

/// What a pickle holds: the raw model bytes and the Python-side limit SageMaker's server uses.
pub struct Unpickled {
    pub handle: Vec<u8>,
    pub best_ntree_limit: Option<usize>,
}

pub fn unpickle(bytes: &[u8]) -> Result<Unpickled, ModelError> {
    let value = serde_pickle::value_from_slice(bytes, DeOptions::new().replace_unresolved_globals())
        .map_err(|e| ModelError::Invalid(format!("pickle: {e}")))?;
    let Pickled::Dict(state) = value else {
        return Err(ModelError::Invalid("pickle: not a pickled Booster (no state dict)".into()));
    };
    let get = |key: &str| state.get(&HashableValue::String(key.to_string()));
    let handle = match get("handle") {
        Some(Pickled::Bytes(b)) => b.clone(),
        Some(Pickled::List(items)) => {
            // Some protocols give a bytearray as a list of ints.
            items
                .iter()
                .map(|i| match i {
                    Pickled::I64(v) => u8::try_from(*v).map_err(|_| ()),
                    _ => Err(()),
                })
                .collect::<Result<Vec<u8>, ()>>()
                .map_err(|()| ModelError::Invalid("pickle: `handle` is not bytes".into()))?
        }
        Some(_) => return Err(ModelError::Invalid("pickle: `handle` is not bytes".into())),
        None => return Err(ModelError::Invalid("pickle: the Booster has no `handle`".into())),
    };
    let best_ntree_limit = match get("best_ntree_limit") {
        Some(Pickled::I64(n)) if *n > 0 => Some(*n as usize),
        _ => None,
    };
    Ok(Unpickled { handle, best_ntree_limit })
}

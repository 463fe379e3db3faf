//! The training job's configuration files as the built-in reads them: `inputdataconfig.json`'s
//! channels, `checkpointconfig.json`, and `hyperparameters.json` (values are strings).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::Error;

/// One channel of `inputdataconfig.json`; every field optional (local mode omits some).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelConfig {
    pub content_type: Option<String>,
    pub training_input_mode: Option<String>,
    #[serde(rename = "S3DistributionType")]
    pub s3_distribution_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointConfig {
    pub local_path: Option<PathBuf>,
}

/// A JSON configuration file; an absent file is the default (local mode omits some).
pub(crate) fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::ConfigFormat { path: path.to_path_buf(), problem: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(Error::Config { path: path.to_path_buf(), source }),
    }
}

/// `hyperparameters.json`: a flat object whose values should be strings; numbers and booleans
/// are tolerated as their text.
pub(crate) fn read_hyperparameters(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let raw: BTreeMap<String, serde_json::Value> = read_json(path)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(Error::ConfigFormat {
                path: path.to_path_buf(),
                problem: format!("hyperparameter `{k}` is {other}; values are strings"),
            }),
        })
        .collect()
}

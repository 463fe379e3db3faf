//! An endpoint's record in the store (`endpoints/<name>.json` in the record area): what was
//! asked for, what runs (the supervisor's pid and port, each instance), and its status. The
//! command that creates an endpoint writes it first; from then on only the endpoint's
//! supervisor changes it, until `delete` removes it once the supervisor is gone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::EndpointError;
use crate::pipeline::registry::arn;
use crate::storage::{Location, Storage};

/// The variant every local endpoint has: the SDK's default name for a single variant.
pub const VARIANT: &str = "AllTraffic";
/// The account of local ARNs (as the registry's).
pub const ACCOUNT: &str = "000000000000";

/// The region of local ARNs: AWS_REGION, else AWS_DEFAULT_REGION, else `local`.
pub fn region() -> String {
    std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).unwrap_or_else(|_| "local".to_string())
}

/// DescribeEndpoint's `EndpointStatus` values the local endpoint goes through.
pub mod status {
    pub const CREATING: &str = "Creating";
    pub const IN_SERVICE: &str = "InService";
    pub const UPDATING: &str = "Updating";
    pub const DELETING: &str = "Deleting";
    pub const FAILED: &str = "Failed";
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointRecord {
    pub endpoint_name: String,
    pub endpoint_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// GROUP/VERSION of the deployed package.
    pub model_package: String,
    /// The package's container image (what DeployedImages reports).
    pub image: String,
    pub desired_instance_count: u32,
    /// `process` or `docker`.
    pub engine: String,
    /// The port asked for (0: any free one).
    pub requested_port: u16,
    /// The front's port once it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The supervisor process (`sagestep endpoints run-front NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Where the endpoint's model trees and logs live while it runs.
    pub work_dir: PathBuf,
    #[serde(default)]
    pub instances: Vec<InstanceRecord>,
    pub creation_time: String,
    pub last_modified_time: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceRecord {
    pub instance_id: String,
    pub port: u16,
    pub pid: Option<u32>,
    pub healthy: bool,
    pub log: PathBuf,
}

fn key(name: &str) -> String {
    format!("endpoints/{name}.json")
}

pub fn endpoint_arn(name: &str) -> String {
    arn("endpoint", name)
}

/// AWS's refusal of a name it holds no endpoint for (DescribeEndpoint, DeleteEndpoint).
pub fn not_found(name: &str) -> EndpointError {
    EndpointError::Validation(format!("Could not find endpoint \"{}\".", endpoint_arn(name)))
}

/// `EndpointName` as botocore constrains it: at most 63 characters matching
/// `^[a-zA-Z0-9](-*[a-zA-Z0-9])*`.
pub fn check_name(name: &str) -> Result<(), EndpointError> {
    let constraint = if name.len() > 63 {
        "Member must have length less than or equal to 63"
    } else if name.is_empty()
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
    } else {
        return Ok(());
    };
    Err(EndpointError::Validation(format!(
        "1 validation error detected: Value '{name}' at 'endpointName' failed to satisfy constraint: {constraint}"
    )))
}

impl EndpointRecord {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a record serialises")
    }

    /// Store a new record; refused, as CreateEndpoint refuses, when the name is taken.
    pub fn create(&self, storage: &Storage) -> Result<(), EndpointError> {
        if storage.state_create_new(&key(&self.endpoint_name), &self.bytes())? {
            Ok(())
        } else {
            Err(EndpointError::Validation(format!(
                "Cannot create already existing endpoint \"{}\".",
                endpoint_arn(&self.endpoint_name)
            )))
        }
    }

    pub fn save(&mut self, storage: &Storage) -> Result<(), EndpointError> {
        self.last_modified_time = crate::clock::rfc3339(crate::clock::now_secs());
        storage.state_write(&key(&self.endpoint_name), &self.bytes())?;
        Ok(())
    }

    pub fn load(storage: &Storage, name: &str) -> Result<Self, EndpointError> {
        let bytes = storage.state_read(&key(name))?.ok_or_else(|| not_found(name))?;
        serde_json::from_slice(&bytes).map_err(|e| EndpointError::Corrupt { key: key(name), detail: e.to_string() })
    }

    /// Every endpoint in the store, by name.
    pub fn list(storage: &Storage) -> Result<Vec<Self>, EndpointError> {
        let mut names: Vec<String> = storage
            .state_list("endpoints/")?
            .into_iter()
            .filter_map(|k| k.strip_prefix("endpoints/")?.strip_suffix(".json").map(str::to_string))
            .filter(|n| !n.contains('/'))
            .collect();
        names.sort();
        names.iter().map(|n| Self::load(storage, n)).collect()
    }

    pub fn remove(storage: &Storage, name: &str) -> Result<(), EndpointError> {
        let location = Location::parse(&storage.state_uri(&key(name)))
            .map_err(|e| EndpointError::Corrupt { key: key(name), detail: e.to_string() })?;
        storage.remove(&[location]);
        Ok(())
    }

    pub fn url(&self) -> Option<String> {
        self.port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// DescribeEndpoint's answer.
    pub fn describe(&self) -> Value {
        let healthy = self.instances.iter().filter(|i| i.healthy).count();
        let mut described = json!({
            "EndpointName": self.endpoint_name,
            "EndpointArn": endpoint_arn(&self.endpoint_name),
            "EndpointConfigName": self.endpoint_name,
            "ProductionVariants": [{
                "VariantName": VARIANT,
                "DeployedImages": [{"SpecifiedImage": self.image, "ResolvedImage": self.image,
                                    "ResolutionTime": self.creation_time}],
                "CurrentWeight": 1.0,
                "DesiredWeight": 1.0,
                "CurrentInstanceCount": healthy,
                "DesiredInstanceCount": self.desired_instance_count,
            }],
            "EndpointStatus": self.endpoint_status,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
        });
        if let Some(reason) = &self.failure_reason {
            described["FailureReason"] = json!(reason);
        }
        described
    }
}

/// `update`'s request to the supervisor: the package to move to (read on SIGHUP, removed
/// once the update is done or has failed).
pub mod update_request {
    use super::{EndpointError, Location, Storage};

    fn key(name: &str) -> String {
        format!("endpoint-updates/{name}.json")
    }

    pub fn write(storage: &Storage, name: &str, package: &str) -> Result<(), EndpointError> {
        let body = serde_json::json!({ "ModelPackage": package }).to_string();
        storage.state_write(&key(name), body.as_bytes())?;
        Ok(())
    }

    pub fn read(storage: &Storage, name: &str) -> Result<Option<String>, EndpointError> {
        let Some(bytes) = storage.state_read(&key(name))? else { return Ok(None) };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| EndpointError::Corrupt { key: key(name), detail: e.to_string() })?;
        Ok(value["ModelPackage"].as_str().map(str::to_string))
    }

    pub fn remove(storage: &Storage, name: &str) {
        if let Ok(location) = Location::parse(&storage.state_uri(&key(name))) {
            storage.remove(&[location]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EndpointRecord {
        EndpointRecord {
            endpoint_name: "ep-1".into(),
            endpoint_status: status::CREATING.into(),
            failure_reason: None,
            model_package: "G/1".into(),
            image: "sagestep-serve:0.1.0".into(),
            desired_instance_count: 2,
            engine: "process".into(),
            requested_port: 0,
            port: None,
            pid: None,
            work_dir: "/tmp/w".into(),
            instances: vec![],
            creation_time: "2026-12-07T00:00:00Z".into(),
            last_modified_time: "2026-12-07T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_name_is_taken_once_and_gone_after_removal() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local_dir(dir.path());
        let mut first = record();
        first.create(&storage).unwrap();
        let again = record().create(&storage).unwrap_err().to_string();
        assert!(again.contains("Cannot create already existing endpoint"), "{again}");
        first.port = Some(8123);
        first.save(&storage).unwrap();
        assert_eq!(EndpointRecord::load(&storage, "ep-1").unwrap().url().unwrap(), "http://127.0.0.1:8123");
        assert_eq!(EndpointRecord::list(&storage).unwrap().len(), 1);
        EndpointRecord::remove(&storage, "ep-1").unwrap();
        let missing = EndpointRecord::load(&storage, "ep-1").unwrap_err().to_string();
        assert!(missing.starts_with("Could not find endpoint \"arn:aws:sagemaker:"), "{missing}");
        assert!(EndpointRecord::list(&storage).unwrap().is_empty());
    }

    #[test]
    fn names_follow_the_service_pattern() {
        assert!(check_name("ep-1").is_ok());
        for bad in ["", "-ep", "ep-", "ep_1", &"e".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describe_has_the_service_shape() {
        let mut r = record();
        r.instances.push(InstanceRecord {
            instance_id: "i-1".into(),
            port: 1,
            pid: Some(2),
            healthy: true,
            log: "/l".into(),
        });
        let d = r.describe();
        assert_eq!(d["ProductionVariants"][0]["VariantName"], "AllTraffic");
        assert_eq!(d["ProductionVariants"][0]["CurrentInstanceCount"], 1);
        assert_eq!(d["ProductionVariants"][0]["DesiredInstanceCount"], 2);
        assert_eq!(d["EndpointStatus"], "Creating");
        assert!(d["EndpointArn"].as_str().unwrap().ends_with(":endpoint/ep-1"));
        assert!(d.get("FailureReason").is_none());
    }
}

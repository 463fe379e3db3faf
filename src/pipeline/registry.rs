//! A local SageMaker Model Registry in the store: model package groups, versions numbered
//! from 1 and allocated atomically, approval status with its history, the inference
//! specification, the metrics pointer with a copy of the report, and lineage.
//!
//! Layout (under the store's record area): `registry/<group>/group.json` and
//! `registry/<group>/versions/<00000001>.json`.

use serde_json::{Value, json};

use super::clock;
use crate::storage::{Storage, StoreError};

pub const APPROVAL_STATUSES: [&str; 3] = ["PendingManualApproval", "Approved", "Rejected"];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "model package group name `{0}` is invalid: 1 to 63 letters, digits and single hyphens, starting and ending with a letter or digit"
    )]
    GroupName(String),
    #[error("ModelApprovalStatus `{0}` is not one of PendingManualApproval, Approved, Rejected")]
    Status(String),
    #[error("no model package `{0}` in the registry")]
    Missing(String),
    #[error("`{0}` is not a model package name; expected <group>/<version>, e.g. AutoMpgPackageGroupName/1")]
    PackageName(String),
    #[error("registry record `{key}` is not valid JSON: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Registry<'s> {
    storage: &'s Storage,
}

/// A synthetic ARN for local records: region from AWS_REGION, account zeros.
pub fn arn(kind: &str, name: &str) -> String {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "local".to_string());
    format!("arn:aws:sagemaker:{region}:000000000000:{kind}/{}", name.to_ascii_lowercase())
}

fn check_group(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok { Ok(()) } else { Err(RegistryError::GroupName(name.to_string())) }
}

pub fn check_status(status: &str) -> Result<(), RegistryError> {
    if APPROVAL_STATUSES.contains(&status) { Ok(()) } else { Err(RegistryError::Status(status.to_string())) }
}

impl<'s> Registry<'s> {
    pub fn new(storage: &'s Storage) -> Self {
        Self { storage }
    }

    fn read(&self, key: &str) -> Result<Option<Value>, RegistryError> {
        match self.storage.state_read(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| RegistryError::Corrupt { key: key.to_string(), source }),
        }
    }

    fn version_key(group: &str, version: u64) -> String {
        format!("registry/{group}/versions/{version:08}.json")
    }

    /// Register a new version of `group` from a CreateModelPackage request (resolved) plus
    /// what the runner knows; returns the stored record.
    pub fn register(&self, group: &str, mut package: Value) -> Result<Value, RegistryError> {
        check_group(group)?;
        let status =
            package.get("ModelApprovalStatus").and_then(Value::as_str).unwrap_or("PendingManualApproval").to_string();
        check_status(&status)?;
        let now = clock::rfc3339(clock::now_secs());
        let group_record = json!({
            "ModelPackageGroupName": group,
            "ModelPackageGroupArn": arn("model-package-group", group),
            "ModelPackageGroupStatus": "Completed",
            "CreationTime": now,
        });
        let group_bytes = serde_json::to_vec_pretty(&group_record).expect("JSON");
        self.storage.state_create_new(&format!("registry/{group}/group.json"), &group_bytes)?;
        // The next number from the keys alone: no need to read every record.
        let mut version = self.version_keys(group)?.last().map_or(0, |(n, _)| *n) + 1;
        loop {
            let name = format!("{group}/{version}");
            let fields = package.as_object_mut().expect("a package is an object");
            fields.insert("ModelPackageGroupName".into(), json!(group));
            fields.insert("ModelPackageVersion".into(), json!(version));
            fields.insert("ModelPackageName".into(), json!(name));
            fields.insert("ModelPackageArn".into(), json!(arn("model-package", &name)));
            fields.insert("ModelPackageStatus".into(), json!("Completed"));
            fields.insert("ModelApprovalStatus".into(), json!(status));
            fields.insert("CreationTime".into(), json!(now));
            fields.insert("LastModifiedTime".into(), json!(now));
            fields.insert(
                "ApprovalHistory".into(),
                json!([{"ModelApprovalStatus": status, "Time": now, "Description": "registered"}]),
            );
            let bytes = serde_json::to_vec_pretty(&package).expect("JSON");
            // Two registrations racing for one number: the loser takes the next.
            if self.storage.state_create_new(&Self::version_key(group, version), &bytes)? {
                return Ok(package);
            }
            version += 1;
        }
    }

    /// Every version number of a group and its record's key, in order.
    fn version_keys(&self, group: &str) -> Result<Vec<(u64, String)>, RegistryError> {
        let mut keys: Vec<(u64, String)> = self
            .storage
            .state_list(&format!("registry/{group}/versions/"))?
            .into_iter()
            .filter_map(|key| {
                let number = key.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()?;
                Some((number, key))
            })
            .collect();
        keys.sort_by_key(|(n, _)| *n);
        Ok(keys)
    }

    /// Every version of a group, oldest first.
    pub fn versions(&self, group: &str) -> Result<Vec<(u64, Value)>, RegistryError> {
        let mut out = Vec::new();
        for (number, key) in self.version_keys(group)? {
            if let Some(record) = self.read(&key)? {
                out.push((number, record));
            }
        }
        Ok(out)
    }

    pub fn groups(&self) -> Result<Vec<String>, RegistryError> {
        let mut groups: Vec<String> = self
            .storage
            .state_list("registry/")?
            .into_iter()
            .filter_map(|key| key.strip_prefix("registry/")?.strip_suffix("/group.json").map(str::to_string))
            .collect();
        groups.sort();
        Ok(groups)
    }

    fn split(package: &str) -> Result<(&str, u64), RegistryError> {
        let (group, version) =
            package.rsplit_once('/').ok_or_else(|| RegistryError::PackageName(package.to_string()))?;
        let version = version.parse().map_err(|_| RegistryError::PackageName(package.to_string()))?;
        Ok((group, version))
    }

    pub fn describe(&self, package: &str) -> Result<Value, RegistryError> {
        let (group, version) = Self::split(package)?;
        self.read(&Self::version_key(group, version))?.ok_or_else(|| RegistryError::Missing(package.to_string()))
    }

    /// UpdateModelPackage: a new approval status, recorded in the history.
    pub fn set_status(&self, package: &str, status: &str, description: Option<&str>) -> Result<Value, RegistryError> {
        check_status(status)?;
        let (group, version) = Self::split(package)?;
        let mut record = self.describe(package)?;
        let now = clock::rfc3339(clock::now_secs());
        let fields = record.as_object_mut().expect("a record is an object");
        fields.insert("ModelApprovalStatus".into(), json!(status));
        fields.insert("LastModifiedTime".into(), json!(now));
        if let Some(text) = description {
            fields.insert("ApprovalDescription".into(), json!(text));
        }
        let entry = json!({"ModelApprovalStatus": status, "Time": now, "Description": description.unwrap_or("")});
        match fields.get_mut("ApprovalHistory").and_then(Value::as_array_mut) {
            Some(history) => history.push(entry),
            None => {
                fields.insert("ApprovalHistory".into(), json!([entry]));
            }
        }
        let bytes = serde_json::to_vec_pretty(&record).expect("JSON");
        self.storage.state_write(&Self::version_key(group, version), &bytes)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_from_one_and_approval_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local_dir(dir.path());
        let registry = Registry::new(&storage);
        let first = registry.register("Group-1", json!({"ModelApprovalStatus": "PendingManualApproval"})).unwrap();
        let second = registry.register("Group-1", json!({})).unwrap();
        assert_eq!((first["ModelPackageVersion"].as_u64(), second["ModelPackageVersion"].as_u64()), (Some(1), Some(2)));
        let approved = registry.set_status("Group-1/1", "Approved", Some("looks good")).unwrap();
        assert_eq!(approved["ApprovalHistory"].as_array().unwrap().len(), 2);
        assert_eq!(registry.describe("Group-1/1").unwrap()["ModelApprovalStatus"], "Approved");
        assert!(matches!(registry.set_status("Group-1/1", "Approve", None), Err(RegistryError::Status(_))));
        assert!(matches!(registry.describe("Group-1/9"), Err(RegistryError::Missing(_))));
        assert!(matches!(registry.register("bad_name", json!({})), Err(RegistryError::GroupName(_))));
        assert_eq!(registry.groups().unwrap(), ["Group-1"]);
    }

    #[test]
    fn concurrent_registrations_get_distinct_versions() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local_dir(dir.path());
        let versions: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        Registry::new(&storage).register("G", json!({})).unwrap()["ModelPackageVersion"]
                            .as_u64()
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=8).collect::<Vec<_>>(), "{versions:?}");
    }
}

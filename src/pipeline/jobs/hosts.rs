//! The hosts of one job. SageMaker runs `InstanceCount` copies of a job's container, named
//! `algo-1..n`, each with its own `/opt/ml` and its share of every input, able to reach the
//! others by name; the job fails if any host fails. Here each host gets a tree of its own
//! under the job's work directory. Under Docker the hosts share a user-defined network made
//! for the job (`sagestep-<job>`, aliases `algo-i`, as the SDK's local mode does), removed
//! afterwards whatever happened; as processes they find each other on loopback through
//! `SAGESTEP_CLUSTER_HOSTS` (see `crate::cluster`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::{JobFailure, Jobs, create_dir};
use crate::pipeline::engine::{Container, Engine, EngineError, Exit, HostNetwork};
use crate::storage::Found;

/// The most instances a job may ask for (SageMaker's API limit for processing and training).
pub const MAX_INSTANCES: u64 = 100;

/// How an input's objects fall to the hosts (`S3DataDistributionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Every host gets every object.
    FullyReplicated,
    /// Each object goes to one host.
    ShardedByS3Key,
}

impl Distribution {
    pub fn parse(given: Option<&str>, what: &str) -> Result<Self, JobFailure> {
        match given.unwrap_or("FullyReplicated") {
            "FullyReplicated" => Ok(Self::FullyReplicated),
            "ShardedByS3Key" => Ok(Self::ShardedByS3Key),
            other => Err(JobFailure::client(format!(
                "{what}: distribution type `{other}` is not FullyReplicated or ShardedByS3Key"
            ))),
        }
    }
}

/// Each host's objects, host by host. Sharded: the objects in key order dealt round robin,
/// object k to host k mod n, so each host gets about 1/n of them and hosts beyond the number of
/// objects get none (SageMaker gives "about 1/n" without saying how; this is our rule).
pub fn distribute(objects: &[Found], hosts: usize, distribution: Distribution) -> Vec<Vec<Found>> {
    let mut sorted = objects.to_vec();
    sorted.sort_by_cached_key(|f| f.location.to_string());
    (0..hosts)
        .map(|host| match distribution {
            Distribution::FullyReplicated => sorted.clone(),
            Distribution::ShardedByS3Key => sorted.iter().skip(host).step_by(hosts.max(1)).cloned().collect(),
        })
        .collect()
}

/// The instance count a request asks for (absent: 1).
pub(super) fn instance_count(value: Option<&Value>, what: &str) -> Result<usize, JobFailure> {
    let Some(value) = value else { return Ok(1) };
    match value.as_u64() {
        Some(n @ 1..=MAX_INSTANCES) => Ok(n as usize),
        _ => Err(JobFailure::client(format!(
            "{what}: `InstanceCount` must be a whole number from 1 to {MAX_INSTANCES}. Given: {value}"
        ))),
    }
}

/// One host of a job.
pub(super) struct Host {
    /// `algo-1`, `algo-2`, ...
    pub name: String,
    /// Its `/opt/ml` tree.
    pub root: PathBuf,
    /// Its container's name under Docker, which also names its log: the job's name for a
    /// single host (as before there were several), `<job>-algo-i` otherwise.
    pub container: String,
}

/// The hosts of one job, `algo-1..n` in order.
pub(super) struct Cluster {
    pub job: String,
    pub hosts: Vec<Host>,
}

impl Cluster {
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// A host's failure as the job's: named by host when the job has several.
    pub fn blame(&self, host: &Host, mut failure: JobFailure) -> JobFailure {
        if self.hosts.len() > 1 {
            failure.message = format!("host {}: {}", host.name, failure.message);
        }
        failure
    }
}

/// How the hosts' containers ended.
pub(super) struct Ran {
    /// Each host's log, in host order.
    pub logs: Vec<String>,
    /// The first host to fail, and why.
    pub failure: Option<JobFailure>,
}

impl Jobs<'_> {
    /// Empty `/opt/ml` trees for the `count` hosts of a job.
    pub(super) fn cluster(&self, job: &str, count: usize) -> Result<Cluster, JobFailure> {
        let dir = self.work.join(job);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| JobFailure::service(format!("clearing {}: {e}", dir.display())))?;
        }
        let hosts = (1..=count)
            .map(|i| {
                let name = format!("algo-{i}");
                let root = dir.join(&name);
                create_dir(&root)?;
                let container = if count == 1 { job.to_string() } else { format!("{job}-{name}") };
                Ok(Host { name, root, container })
            })
            .collect::<Result<Vec<Host>, JobFailure>>()?;
        let named = hosts.iter().map(|h| (h.name.clone(), h.container.clone())).collect();
        self.hosts.lock().expect("lock").insert(job.to_string(), named);
        Ok(Cluster { job: job.to_string(), hosts })
    }

    /// Copy an input's objects into each host's directory for it (`local`), as `distribution`
    /// deals them. Fails if there is nothing at `uri`, as a SageMaker job does; a host dealt
    /// nothing gets an empty directory.
    pub(super) fn stage_input(
        &self,
        cluster: &Cluster,
        uri: &str,
        distribution: Distribution,
        local: impl Fn(&Host) -> Result<PathBuf, JobFailure>,
    ) -> Result<(), JobFailure> {
        let found = self.storage.list(uri)?;
        if found.is_empty() {
            return Err(crate::storage::StoreError::NothingAt { uri: uri.to_string() }.into());
        }
        for (host, share) in cluster.hosts.iter().zip(distribute(&found, cluster.hosts.len(), distribution)) {
            let dir = local(host)?;
            create_dir(&dir)?;
            self.storage.download(&share, &dir)?;
        }
        Ok(())
    }

    /// Run one container per host, built from `template`, all at once; when one fails the
    /// others are stopped, as SageMaker stops a job. `failure_file` is where a host explains
    /// a failure (below its tree).
    pub(super) fn run_hosts(
        &self,
        cluster: &Cluster,
        template: &Container,
        deadline: Option<Duration>,
        failure_file: &str,
    ) -> Result<Ran, JobFailure> {
        let several = cluster.hosts.len() > 1;
        let docker = !self.engine.runs_as_process(&template.image);
        let network = (several && docker).then(|| format!("sagestep-{}", cluster.job));
        let _network = match &network {
            Some(name) => Some(NetworkGuard::create(self.engine, name, template.network_isolation, cluster)?),
            None => None,
        };
        let loopback = if several && !docker { Some(loopback_addresses(cluster)?) } else { None };
        let containers: Vec<Container> = cluster
            .hosts
            .iter()
            .map(|host| {
                let mut container = template.clone();
                container.name = host.container.clone();
                container.ml_root = host.root.clone();
                container.network =
                    network.as_ref().map(|n| HostNetwork { network: n.clone(), host: host.name.clone() });
                if let Some(addresses) = &loopback {
                    container.env.insert(crate::contract::env::SAGESTEP_CLUSTER_HOSTS.into(), addresses.clone());
                }
                container
            })
            .collect();
        let cancel = AtomicBool::new(false);
        // Hosts in the order they failed; the first names the job's failure.
        let failed: Mutex<Vec<(usize, Result<Exit, EngineError>)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for (i, container) in containers.iter().enumerate() {
                let (cancel, failed) = (&cancel, &failed);
                scope.spawn(move || {
                    let exit = self.engine.run(container, &self.log_path(&container.name), deadline, cancel);
                    if !matches!(&exit, Ok(e) if e.succeeded() || e.cancelled) {
                        cancel.store(true, Ordering::SeqCst);
                        failed.lock().expect("lock").push((i, exit));
                    }
                });
            }
        });
        let logs: Vec<String> = cluster.hosts.iter().map(|h| self.keep_log(&h.container)).collect();
        if self.engine.interrupted() {
            return Err(JobFailure::interrupted());
        }
        let first = failed.into_inner().expect("lock").into_iter().next();
        let failure = match first {
            None => None,
            Some((i, Err(err))) => Some(cluster.blame(&cluster.hosts[i], err.into())),
            Some((i, Ok(exit))) => {
                let host = &cluster.hosts[i];
                Some(cluster.blame(host, Self::failure_reason(&host.root.join(failure_file), exit, &logs[i])))
            }
        };
        Ok(Ran { logs, failure })
    }

    /// The files of every host's `sub` directory in one place, hosts in order, a later host's
    /// file replacing an earlier one's of the same name (as the later upload would in S3).
    /// With one host, its own directory.
    pub(super) fn merged_dir(&self, cluster: &Cluster, sub: &Path, name: &str) -> Result<PathBuf, JobFailure> {
        if let [only] = cluster.hosts.as_slice() {
            return Ok(only.root.join(sub));
        }
        let merged = self.work.join(&cluster.job).join(name);
        create_dir(&merged)?;
        for host in &cluster.hosts {
            copy_tree(&host.root.join(sub), &merged)
                .map_err(|e| JobFailure::service(format!("merging the hosts' {}: {e}", sub.display())))?;
        }
        Ok(merged)
    }
}

/// `algo-1=127.0.0.1:<port>,...`: a free loopback port per host, for hosts that are processes.
fn loopback_addresses(cluster: &Cluster) -> Result<String, JobFailure> {
    // Held together until all are chosen, so no two hosts get one port.
    let listeners = cluster
        .hosts
        .iter()
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| JobFailure::service(format!("finding free ports for the hosts: {e}")))?;
    let mut pairs = Vec::new();
    for (host, listener) in cluster.hosts.iter().zip(&listeners) {
        let port = listener.local_addr().map_err(|e| JobFailure::service(e.to_string()))?.port();
        pairs.push(format!("{}=127.0.0.1:{port}", host.name));
    }
    Ok(pairs.join(","))
}

/// A job's Docker network, removed (with any container left on it) when dropped: after a
/// success, a failure or an interrupt alike.
struct NetworkGuard<'a> {
    engine: &'a Engine,
    name: String,
    containers: Vec<String>,
}

impl<'a> NetworkGuard<'a> {
    fn create(engine: &'a Engine, name: &str, internal: bool, cluster: &Cluster) -> Result<Self, JobFailure> {
        engine.create_network(name, internal)?;
        tracing::debug!("created Docker network {name}");
        let containers = cluster.hosts.iter().map(|h| h.container.clone()).collect();
        Ok(Self { engine, name: name.to_string(), containers })
    }
}

impl Drop for NetworkGuard<'_> {
    fn drop(&mut self) {
        self.engine.remove_network(&self.name, &self.containers);
    }
}

/// Copy every file below `from` into `to` at its relative path (a missing `from` holds none).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&source, &dest)?;
        } else if entry.file_type()?.is_file() {
            std::fs::copy(&source, &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;

    fn objects(keys: &[&str]) -> Vec<Found> {
        keys.iter()
            .map(|k| Found {
                location: Location::S3 { bucket: "b".into(), key: format!("p/{k}") },
                relative: k.to_string(),
                size: 1,
                etag: String::new(),
            })
            .collect()
    }

    fn keys(share: &[Found]) -> Vec<&str> {
        share.iter().map(|f| f.relative.as_str()).collect()
    }

    #[test]
    fn sharded_objects_are_dealt_round_robin_in_key_order() {
        let found = objects(&["c", "a", "e", "b", "d"]);
        let shares = distribute(&found, 2, Distribution::ShardedByS3Key);
        assert_eq!(shares.iter().map(|s| keys(s)).collect::<Vec<_>>(), [vec!["a", "c", "e"], vec!["b", "d"]]);
        // More hosts than objects: the extra hosts get none.
        let shares = distribute(&found[..2], 3, Distribution::ShardedByS3Key);
        assert_eq!(shares.iter().map(|s| s.len()).collect::<Vec<_>>(), [1, 1, 0]);
        let shares = distribute(&found, 3, Distribution::FullyReplicated);
        assert!(shares.iter().all(|s| keys(s) == ["a", "b", "c", "d", "e"]));
    }

    #[test]
    fn instance_counts_are_checked() {
        assert_eq!(instance_count(None, "x").unwrap(), 1);
        assert_eq!(instance_count(Some(&serde_json::json!(3)), "x").unwrap(), 3);
        for bad in [serde_json::json!(0), serde_json::json!(1.5), serde_json::json!("2"), serde_json::json!(101)] {
            let err = instance_count(Some(&bad), "ResourceConfig").unwrap_err().message;
            assert!(err.starts_with("ResourceConfig: `InstanceCount` must be"), "{err}");
        }
    }
}

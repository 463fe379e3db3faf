//! The hosts of a multi-instance job working as one: who they are (`resourceconfig.json`),
//! and a collective over them (sums, gathers, broadcasts) with a fixed reduction order, so
//! every host holds bit-identical results.
//!
//! SageMaker starts `InstanceCount` containers that see each other as `algo-1..n`; rank is a
//! host's index in the sorted host list, rank 0 (`algo-1`) writes what the job keeps. The
//! transport (`ring`) is a TCP ring of our own: the Rust candidates (timely_communication,
//! MPI bindings; `../shared/spec/distributed-training.md` section 4) retry connections
//! forever, panic on an I/O error or need an MPI runtime in the image, where a SageMaker job
//! must fail within a timeout with its failure file written. It sits behind `Collective`, with
//! `Local` as the world of one.

pub mod collective;
pub mod ring;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use collective::{Collective, Local};

/// Port a host listens on, as the built-in's first collective (rabit's 9099).
pub const DEFAULT_PORT: u16 = 9099;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("`{}`: {problem}", path.display())]
    Config { path: std::path::PathBuf, problem: String },
    #[error("cannot resolve host `{host}` within {waited:?}: {problem}")]
    Resolve { host: String, waited: Duration, problem: String },
    #[error("cannot connect to host `{host}` ({addr}) within {waited:?}: {source}")]
    Connect {
        host: String,
        addr: String,
        waited: Duration,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("host `{host}` did not connect within {waited:?}")]
    NoPeer { host: String, waited: Duration },
    #[error("host `{host}` is not of this job: {problem}")]
    Handshake { host: String, problem: String },
    #[error("lost host `{host}` during {operation}: {source}")]
    Lost {
        host: String,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no word from host `{host}` for {timeout:?} during {operation}; it stopped or is stuck")]
    Timeout { host: String, operation: &'static str, timeout: Duration },
    #[error("host `{host}` sent a malformed message during {operation}: {problem}")]
    Protocol { host: String, operation: &'static str, problem: String },
}

impl ClusterError {
    /// A problem of the job's configuration (the user's), not of a host or the network.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config { .. } | Self::Handshake { .. })
    }
}

/// The hosts of the job, sorted, and which one this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    pub hosts: Vec<String>,
    pub current: String,
}

#[derive(serde::Deserialize, Default)]
struct ResourceConfig {
    current_host: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

impl Hosts {
    /// One host: the world of one.
    pub fn single() -> Self {
        Self { hosts: vec!["algo-1".into()], current: "algo-1".into() }
    }

    /// From `resourceconfig.json` (absent: one host). Hosts are sorted; the current host must
    /// be one of them.
    pub fn read(path: &Path) -> Result<Self, ClusterError> {
        let bad = |problem: String| ClusterError::Config { path: path.to_path_buf(), problem };
        let config: ResourceConfig = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::single()),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut hosts = config.hosts;
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            return Ok(Self::single());
        }
        let current = config.current_host.ok_or_else(|| bad("`current_host` is missing".into()))?;
        if !hosts.contains(&current) {
            return Err(bad(format!("`current_host` `{current}` is not one of `hosts` {hosts:?}")));
        }
        Ok(Self { hosts, current })
    }

    pub fn rank(&self) -> usize {
        self.hosts.iter().position(|h| *h == self.current).expect("checked when read")
    }

    pub fn world(&self) -> usize {
        self.hosts.len()
    }
}

/// How to reach the hosts and how long to wait.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port every host listens on (SageMaker: each host has its own address).
    pub port: u16,
    /// `SAGESTEP_CLUSTER_HOSTS=algo-1=127.0.0.1:9101,...`: explicit addresses (several
    /// hosts on one machine, as the local runner's process engine runs them).
    pub addresses: BTreeMap<String, SocketAddr>,
    /// How long hosts may take to come up (DNS, then the connection).
    pub startup: Duration,
    /// How long one exchange may wait for a peer.
    pub timeout: Duration,
}

impl Settings {
    /// From the environment: `SAGESTEP_CLUSTER_PORT`, `SAGESTEP_CLUSTER_HOSTS`,
    /// `SAGESTEP_CLUSTER_STARTUP_SECS` (default 900, as the built-in waits for DNS) and
    /// `SAGESTEP_COLLECTIVE_TIMEOUT_SECS` (default 1800, as XGBoost).
    pub fn from_env() -> Result<Self, String> {
        let secs = |name: &str, default: u64| -> Result<Duration, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Duration::from_secs)
                    .map_err(|_| format!("`{name}` must be seconds. Given: `{v}`")),
                Err(_) => Ok(Duration::from_secs(default)),
            }
        };
        let port = match std::env::var("SAGESTEP_CLUSTER_PORT") {
            Ok(v) => v.trim().parse().map_err(|_| format!("`SAGESTEP_CLUSTER_PORT` must be a port. Given: `{v}`"))?,
            Err(_) => DEFAULT_PORT,
        };
        let mut addresses = BTreeMap::new();
        if let Ok(list) = std::env::var("SAGESTEP_CLUSTER_HOSTS") {
            for item in list.split(',').filter(|s| !s.trim().is_empty()) {
                let (host, addr) = item
                    .split_once('=')
                    .and_then(|(h, a)| Some((h.trim().to_string(), a.trim().parse::<SocketAddr>().ok()?)))
                    .ok_or_else(|| format!("`SAGESTEP_CLUSTER_HOSTS`: `{item}` is not `host=ip:port`"))?;
                addresses.insert(host, addr);
            }
        }
        Ok(Self {
            port,
            addresses,
            startup: secs("SAGESTEP_CLUSTER_STARTUP_SECS", 900)?,
            timeout: secs("SAGESTEP_COLLECTIVE_TIMEOUT_SECS", 1800)?,
        })
    }
}

/// Join the job's collective: the world of one for a single host, else the TCP ring.
/// `fingerprint` identifies the build and configuration; hosts that differ are refused.
pub fn join(
    hosts: &Hosts,
    job: &str,
    fingerprint: [u8; 32],
    settings: &Settings,
) -> Result<Box<dyn Collective>, ClusterError> {
    if hosts.world() == 1 {
        return Ok(Box::new(Local));
    }
    Ok(Box::new(ring::Ring::connect(hosts, job, fingerprint, settings)?))
}

/// A digest of this binary and `config`: hosts of one job must agree on both.
pub fn fingerprint(config: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Ok(exe) = std::fs::read("/proc/self/exe") {
        hasher.update(&exe);
    }
    hasher.update(config);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_sorted_and_ranked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resourceconfig.json");
        std::fs::write(&path, r#"{"current_host": "algo-1", "hosts": ["algo-3", "algo-1", "algo-2"]}"#).unwrap();
        let h = Hosts::read(&path).unwrap();
        assert_eq!((h.rank(), h.world()), (0, 3));
        std::fs::write(&path, r#"{"current_host": "algo-9", "hosts": ["algo-1", "algo-2"]}"#).unwrap();
        assert!(Hosts::read(&path).unwrap_err().to_string().contains("`algo-9` is not one of"));
        assert_eq!(Hosts::read(&dir.path().join("absent.json")).unwrap(), Hosts::single());
    }
}

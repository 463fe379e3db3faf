//! What the hosts of a job do together. Every operation has a fixed order: integer sums are
//! exact whatever the order; gathers return items by rank; so every host ends with the same
//! bits.

use super::ClusterError;

pub trait Collective: Send + Sync {
    /// This host's rank (index in the sorted host list).
    fn rank(&self) -> usize;

    /// Hosts in the job.
    fn world(&self) -> usize;

    /// Element-wise sum over every host, in place (integers: exact, order-free).
    fn allreduce_sum(&self, values: &mut [i64]) -> Result<(), ClusterError>;

    /// Every host's bytes, indexed by rank.
    fn allgather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>, ClusterError>;

    /// Bytes sent to peers so far (for measurements).
    fn bytes_sent(&self) -> u64 {
        0
    }

    /// The root host's bytes on every host.
    fn broadcast(&self, root: usize, mine: &[u8]) -> Result<Vec<u8>, ClusterError> {
        let mut all = self.allgather(if self.rank() == root { mine } else { &[] })?;
        Ok(std::mem::take(&mut all[root]))
    }

    /// Element-wise maximum over every host, in place.
    fn allreduce_max(&self, values: &mut [f64]) -> Result<(), ClusterError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        for other in self.allgather(&bytes)? {
            for (v, chunk) in values.iter_mut().zip(other.chunks_exact(8)) {
                *v = v.max(f64::from_le_bytes(chunk.try_into().expect("8 bytes")));
            }
        }
        Ok(())
    }

    /// Fail unless every host sends the same `value` (a check that hosts agree).
    fn agree(&self, what: &str, value: &[u8]) -> Result<(), String> {
        let all = self.allgather(value).map_err(|e| e.to_string())?;
        match all.iter().position(|v| v != value) {
            None => Ok(()),
            Some(rank) => Err(format!("host {rank} has another {what} than host {}", self.rank())),
        }
    }
}

/// One host: every operation is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }

    fn world(&self) -> usize {
        1
    }

    fn allreduce_sum(&self, _values: &mut [i64]) -> Result<(), ClusterError> {
        Ok(())
    }

    fn allgather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>, ClusterError> {
        Ok(vec![mine.to_vec()])
    }
}

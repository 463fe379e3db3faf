//! What the hosts tell each other: each exchange carries either a host's result or its
//! failure, so that a host that fails makes every other fail at the same exchange, with its
//! message, instead of leaving them waiting for the collective's timeout.

use super::Error;
use crate::cluster::{Collective, Hosts};
use crate::contract::failure::{Fault, StepError, describe};
use crate::features::stats::{Decoder, Encoder, ValueCounts};

pub struct Together<'a> {
    collective: &'a dyn Collective,
    hosts: &'a Hosts,
}

const OK: u8 = 0;
const USER_FAILURE: u8 = 1;
const INTERNAL_FAILURE: u8 = 2;

impl<'a> Together<'a> {
    pub fn new(collective: &'a dyn Collective, hosts: &'a Hosts) -> Self {
        Self { collective, hosts }
    }

    /// Send this host's result (its bytes, by `encode`) or its failure to every host, and
    /// receive theirs, by rank. This host's own failure comes back as it was; another's as
    /// [`Error::Peer`].
    pub fn share<T>(
        &self,
        local: Result<T, Error>,
        encode: impl FnOnce(&T) -> Vec<u8>,
    ) -> Result<(T, Vec<Vec<u8>>), Error> {
        let message = match &local {
            Ok(value) => {
                let mut m = vec![OK];
                m.extend(encode(value));
                m
            }
            Err(e) => {
                let mut m = vec![if e.fault() == Fault::User { USER_FAILURE } else { INTERNAL_FAILURE }];
                m.extend(describe(e).into_bytes());
                m
            }
        };
        let gathered = self.collective.allgather(&message);
        let value = local?;
        let mut all = gathered?;
        for (rank, bytes) in all.iter_mut().enumerate() {
            match bytes.first().copied() {
                Some(OK) => {
                    bytes.remove(0);
                }
                status => {
                    let fault = if status == Some(USER_FAILURE) { Fault::User } else { Fault::Internal };
                    let message = String::from_utf8_lossy(bytes.get(1..).unwrap_or_default()).into_owned();
                    return Err(Error::Peer { host: self.hosts.hosts[rank].clone(), message, fault });
                }
            }
        }
        Ok((value, all))
    }
}

pub fn encode_counts(counts: &[ValueCounts]) -> Vec<u8> {
    let mut e = Encoder::default();
    for c in counts {
        e.counts(c);
    }
    e.0
}

pub fn decode_counts(bytes: &[u8], columns: usize) -> Result<Vec<ValueCounts>, String> {
    let mut d = Decoder::new(bytes);
    let counts = (0..columns).map(|_| d.counts()).collect::<Result<Vec<_>, _>>()?;
    d.finish()?;
    Ok(counts)
}

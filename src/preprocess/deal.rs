//! Which host reads what. Every host sends the objects it holds (key, size); every host then
//! computes the same deal from the same lists, alone: an object only one host holds
//! (`ShardedByS3Key`) is read there; an object several hosts hold (`FullyReplicated`: all of
//! them) is dealt to one of its holders, the largest objects first, each to the holder with
//! the fewest bytes so far (ties: the lower rank). Who reads a row never changes what is
//! computed from it (see `scan`), so any deal gives the same outputs; this one balances.

use std::collections::BTreeMap;

use crate::features::stats::{Decoder, Encoder};

/// An object as one host holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    /// Stored bytes (compressed, for gzip).
    pub bytes: u64,
}

pub fn encode(held: &[Held]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.u64(held.len() as u64);
    for h in held {
        e.bytes(h.key.as_bytes()).u64(h.bytes);
    }
    e.0
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Held>, String> {
    let mut d = Decoder::new(bytes);
    let n = d.len(16)?;
    let held = (0..n).map(|_| Ok(Held { key: d.text()?, bytes: d.u64()? })).collect::<Result<Vec<_>, String>>()?;
    d.finish()?;
    Ok(held)
}

/// Two hosts hold an object under one key with different sizes: they do not see the same
/// input, so no deal of it is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub key: String,
    /// (rank, bytes) of the two hosts that disagree.
    pub first: (usize, u64),
    pub second: (usize, u64),
}

/// Every object and its holders (ranks, ascending), by key.
fn holders(held: &[Vec<Held>]) -> Result<BTreeMap<&str, (u64, Vec<usize>)>, Mismatch> {
    let mut objects: BTreeMap<&str, (u64, Vec<usize>)> = BTreeMap::new();
    for (rank, list) in held.iter().enumerate() {
        for h in list {
            let entry = objects.entry(&h.key).or_insert((h.bytes, Vec::new()));
            if entry.0 != h.bytes {
                let first = entry.1[0];
                return Err(Mismatch { key: h.key.clone(), first: (first, entry.0), second: (rank, h.bytes) });
            }
            if entry.1.last() != Some(&rank) {
                entry.1.push(rank);
            }
        }
    }
    Ok(objects)
}

/// The keys each rank reads, in key order.
pub fn deal(held: &[Vec<Held>]) -> Result<Vec<Vec<String>>, Mismatch> {
    let objects = holders(held)?;
    let mut dealt: Vec<Vec<String>> = vec![Vec::new(); held.len()];
    let mut load = vec![0u64; held.len()];
    let mut shared: Vec<(&str, u64, &[usize])> = Vec::new();
    for (&key, (bytes, ranks)) in &objects {
        match ranks.as_slice() {
            [only] => {
                dealt[*only].push(key.to_string());
                load[*only] += bytes;
            }
            ranks => shared.push((key, *bytes, ranks)),
        }
    }
    // Largest first (ties by key): the greedy deal is then within a third of the best.
    shared.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (key, bytes, ranks) in shared {
        let rank = *ranks.iter().min_by_key(|&&r| (load[r], r)).expect("a shared object has holders");
        dealt[rank].push(key.to_string());
        load[rank] += bytes;
    }
    for keys in &mut dealt {
        keys.sort();
    }
    Ok(dealt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(objects: &[(&str, u64)]) -> Vec<Held> {
        objects.iter().map(|&(key, bytes)| Held { key: key.into(), bytes }).collect()
    }

    #[test]
    fn replicated_objects_are_dealt_among_their_holders_by_size() {
        let all = held(&[("a", 10), ("b", 40), ("c", 30), ("d", 20)]);
        let dealt = deal(&[all.clone(), all.clone()]).unwrap();
        // b (40) to 0, c (30) to 1, d (20) to 1, a (10) to 0: 50 each.
        assert_eq!(dealt, [vec!["a".to_string(), "b".into()], vec!["c".into(), "d".into()]]);
        let dealt = deal(&[all.clone(), all.clone(), all]).unwrap();
        assert_eq!(dealt, [vec!["b".to_string()], vec!["c".into()], vec!["a".into(), "d".into()]]);
    }

    #[test]
    fn sharded_objects_stay_with_their_host_and_count_in_its_load() {
        // Host 0 holds a big shard of its own: the replicated objects go to host 1 first.
        let mut zero = held(&[("own", 100)]);
        zero.extend(held(&[("r1", 30), ("r2", 20)]));
        let one = held(&[("r1", 30), ("r2", 20)]);
        let dealt = deal(&[zero, one, vec![]]).unwrap();
        assert_eq!(dealt, [vec!["own".to_string()], vec!["r1".into(), "r2".into()], vec![]]);
        // Ties go to the lower rank.
        let same = held(&[("x", 5)]);
        assert_eq!(deal(&[same.clone(), same]).unwrap(), [vec!["x".to_string()], vec![]]);
    }

    #[test]
    fn the_deal_is_the_same_whatever_order_hosts_list_objects_in() {
        let a = held(&[("p", 7), ("q", 9), ("r", 3)]);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(deal(&[a.clone(), b.clone()]).unwrap(), deal(&[a, b]).unwrap());
    }

    #[test]
    fn a_key_of_two_sizes_is_refused() {
        let err = deal(&[held(&[("k", 1)]), held(&[("j", 3)]), held(&[("k", 2)])]).unwrap_err();
        assert_eq!(err, Mismatch { key: "k".into(), first: (0, 1), second: (2, 2) });
    }

    #[test]
    fn held_lists_round_trip_and_garbage_is_an_error() {
        let list = held(&[("a/b.csv", 12), ("c", 0)]);
        assert_eq!(decode(&encode(&list)).unwrap(), list);
        assert!(decode(&encode(&list)[..5]).is_err());
        assert!(decode(&[0xff; 8]).is_err());
    }
}

//! Which host reads what. Every host sends the objects it holds (key, size, compressed or
//! not); every host then computes the same deal from the same lists, alone: an object only
//! one host holds (`ShardedByS3Key`) is read there; an object several hosts hold
//! (`FullyReplicated`: all of them) and larger than a cell is cut into ranges of cells, one
//! per holder in rank order, so that every holder reads a part of it; a compressed object
//! cannot be cut (gzip has no offsets to seek to) and, as objects of one cell, is dealt whole
//! to one of its holders, the largest first, each to the holder with the fewest bytes so far
//! (ties: the lower rank). Who reads a row never changes what is computed from it (see
//! `scan`), so any deal gives the same outputs; this one balances.

use std::collections::BTreeMap;

use crate::features::cells;
use crate::features::stats::{Decoder, Encoder};

/// An object as one host holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    /// Stored bytes (compressed, for gzip).
    pub bytes: u64,
    pub gzip: bool,
}

/// What a host reads of an object: all of it, or a range of its cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub key: String,
    pub cells: Option<std::ops::Range<u64>>,
}

impl Share {
    fn whole(key: &str) -> Self {
        Self { key: key.to_string(), cells: None }
    }
}

pub fn encode(held: &[Held]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.u64(held.len() as u64);
    for h in held {
        e.bytes(h.key.as_bytes()).u64(h.bytes).u64(u64::from(h.gzip));
    }
    e.0
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Held>, String> {
    let mut d = Decoder::new(bytes);
    let n = d.len(24)?;
    let held = (0..n)
        .map(|_| Ok(Held { key: d.text()?, bytes: d.u64()?, gzip: d.u64()? != 0 }))
        .collect::<Result<Vec<_>, String>>()?;
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

/// Every object, whether it is compressed, and its holders (ranks, ascending), by key.
#[allow(clippy::type_complexity)]
fn holders(held: &[Vec<Held>]) -> Result<BTreeMap<&str, (u64, bool, Vec<usize>)>, Mismatch> {
    let mut objects: BTreeMap<&str, (u64, bool, Vec<usize>)> = BTreeMap::new();
    for (rank, list) in held.iter().enumerate() {
        for h in list {
            let entry = objects.entry(&h.key).or_insert((h.bytes, h.gzip, Vec::new()));
            if entry.0 != h.bytes {
                let first = entry.2[0];
                return Err(Mismatch { key: h.key.clone(), first: (first, entry.0), second: (rank, h.bytes) });
            }
            if entry.2.last() != Some(&rank) {
                entry.2.push(rank);
            }
        }
    }
    Ok(objects)
}

/// What each rank reads, in key order (an object's ranges in rank order), on a grid of
/// `cell_bytes`.
pub fn deal(held: &[Vec<Held>], cell_bytes: u64) -> Result<Vec<Vec<Share>>, Mismatch> {
    let objects = holders(held)?;
    let mut dealt: Vec<Vec<Share>> = vec![Vec::new(); held.len()];
    let mut load = vec![0u64; held.len()];
    let mut shared: Vec<(&str, u64, &[usize])> = Vec::new();
    for (&key, (bytes, gzip, ranks)) in &objects {
        let cells = cells::count(*bytes, cell_bytes);
        match ranks.as_slice() {
            [only] => {
                dealt[*only].push(Share::whole(key));
                load[*only] += bytes;
            }
            ranks if !gzip && cells > 1 => {
                // Ranges as even as whole cells allow: holder i of m reads [i K / m, (i + 1) K / m).
                let m = ranks.len() as u128;
                let at = |i: u128| (i * u128::from(cells) / m) as u64;
                for (i, &rank) in ranks.iter().enumerate() {
                    let range = at(i as u128)..at(i as u128 + 1);
                    if !range.is_empty() {
                        load[rank] += (range.end - range.start).saturating_mul(cell_bytes).min(*bytes);
                        dealt[rank].push(Share { key: key.to_string(), cells: Some(range) });
                    }
                }
            }
            ranks => shared.push((key, *bytes, ranks)),
        }
    }
    // Largest first (ties by key): the greedy deal is then within a third of the best.
    shared.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (key, bytes, ranks) in shared {
        let rank = *ranks.iter().min_by_key(|&&r| (load[r], r)).expect("a shared object has holders");
        dealt[rank].push(Share::whole(key));
        load[rank] += bytes;
    }
    for shares in &mut dealt {
        shares.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(dealt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects of one cell or less (the grid of 100 bytes): dealt whole.
    const CELL: u64 = 100;

    fn held(objects: &[(&str, u64)]) -> Vec<Held> {
        objects.iter().map(|&(key, bytes)| Held { key: key.into(), bytes, gzip: false }).collect()
    }

    fn keys(dealt: Vec<Vec<Share>>) -> Vec<Vec<String>> {
        dealt
            .into_iter()
            .map(|shares| {
                assert!(shares.iter().all(|s| s.cells.is_none()), "{shares:?}");
                shares.into_iter().map(|s| s.key).collect()
            })
            .collect()
    }

    #[test]
    fn replicated_objects_are_dealt_among_their_holders_by_size() {
        let all = held(&[("a", 10), ("b", 40), ("c", 30), ("d", 20)]);
        let dealt = keys(deal(&[all.clone(), all.clone()], CELL).unwrap());
        // b (40) to 0, c (30) to 1, d (20) to 1, a (10) to 0: 50 each.
        assert_eq!(dealt, [vec!["a".to_string(), "b".into()], vec!["c".into(), "d".into()]]);
        let dealt = keys(deal(&[all.clone(), all.clone(), all], CELL).unwrap());
        assert_eq!(dealt, [vec!["b".to_string()], vec!["c".into()], vec!["a".into(), "d".into()]]);
    }

    #[test]
    fn sharded_objects_stay_with_their_host_and_count_in_its_load() {
        // Host 0 holds a big shard of its own: the replicated objects go to host 1 first.
        let mut zero = held(&[("own", 100)]);
        zero.extend(held(&[("r1", 30), ("r2", 20)]));
        let one = held(&[("r1", 30), ("r2", 20)]);
        let dealt = keys(deal(&[zero, one, vec![]], CELL).unwrap());
        assert_eq!(dealt, [vec!["own".to_string()], vec!["r1".into(), "r2".into()], vec![]]);
        // Ties go to the lower rank.
        let same = held(&[("x", 5)]);
        assert_eq!(keys(deal(&[same.clone(), same], CELL).unwrap()), [vec!["x".to_string()], vec![]]);
    }

    #[test]
    fn an_object_of_several_cells_is_cut_among_its_holders_unless_compressed() {
        let share = |key: &str, cells: std::ops::Range<u64>| Share { key: key.into(), cells: Some(cells) };
        // 1,001 bytes: 11 cells, ranges [0, 3), [3, 7), [7, 11) over three holders.
        let big = held(&[("big", 1001)]);
        let dealt = deal(&[big.clone(), big.clone(), big.clone()], CELL).unwrap();
        assert_eq!(dealt, [vec![share("big", 0..3)], vec![share("big", 3..7)], vec![share("big", 7..11)]]);
        // Two cells over three holders: the one left without a cell reads nothing of it.
        let two = held(&[("two", 101)]);
        let dealt = deal(&[two.clone(), two.clone(), two], CELL).unwrap();
        assert_eq!(dealt, [vec![], vec![share("two", 0..1)], vec![share("two", 1..2)]]);
        // A partly replicated object is cut among its holders only; a compressed one is whole.
        let gz = vec![Held { key: "gz".into(), bytes: 5000, gzip: true }];
        let mut both = big.clone();
        both.extend(gz.clone());
        let dealt = deal(&[both.clone(), gz, both], CELL).unwrap();
        assert_eq!(
            dealt,
            [vec![share("big", 0..5)], vec![Share::whole("gz")], vec![share("big", 5..11)]],
            "gz goes to the holder with the least load"
        );
    }

    #[test]
    fn the_deal_is_the_same_whatever_order_hosts_list_objects_in() {
        let a = held(&[("p", 7), ("q", 9), ("r", 3), ("s", 700)]);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(deal(&[a.clone(), b.clone()], CELL).unwrap(), deal(&[a, b], CELL).unwrap());
    }

    #[test]
    fn a_key_of_two_sizes_is_refused() {
        let err = deal(&[held(&[("k", 1)]), held(&[("j", 3)]), held(&[("k", 2)])], CELL).unwrap_err();
        assert_eq!(err, Mismatch { key: "k".into(), first: (0, 1), second: (2, 2) });
    }

    #[test]
    fn held_lists_round_trip_and_garbage_is_an_error() {
        let mut list = held(&[("a/b.csv", 12), ("c", 0)]);
        list[1].gzip = true;
        assert_eq!(decode(&encode(&list)).unwrap(), list);
        assert!(decode(&encode(&list)[..5]).is_err());
        assert!(decode(&[0xff; 8]).is_err());
    }
}

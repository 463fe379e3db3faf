//! Value counts of a column: exact while there are few distinct values (the categorical
//! buckets and domains need them), and a HyperLogLog estimate of the distinct count beyond
//! (Deequ's profiler also estimates it, with HyperLogLog++). Memory per column is bounded
//! whatever the input: at most `TRACKED` values of at most `TRACKED_BYTES` bytes in all, plus
//! `2^HLL_BITS` one-byte registers.

use std::collections::HashMap;

/// Distinct values counted exactly, at most.
const TRACKED: usize = 1_000;
/// Bytes of distinct values kept, at most.
const TRACKED_BYTES: usize = 256 * 1024;
/// HyperLogLog precision: 4,096 registers, a standard error of about 1.6%.
const HLL_BITS: u32 = 12;

#[derive(Debug, Clone)]
pub struct ValueCounts {
    counts: HashMap<Box<str>, u64>,
    bytes: usize,
    /// A value was not kept: `counts` is no longer the whole column.
    overflowed: bool,
    registers: Vec<u8>,
}

impl Default for ValueCounts {
    fn default() -> Self {
        Self { counts: HashMap::new(), bytes: 0, overflowed: false, registers: vec![0; 1 << HLL_BITS] }
    }
}

impl ValueCounts {
    pub fn add(&mut self, value: &str) {
        let hash = hash(value.as_bytes());
        let index = (hash >> (64 - HLL_BITS)) as usize;
        let rank = ((hash << HLL_BITS) | (1 << (HLL_BITS - 1))).leading_zeros() as u8 + 1;
        self.registers[index] = self.registers[index].max(rank);
        if let Some(count) = self.counts.get_mut(value) {
            *count += 1;
        } else if !self.overflowed && self.counts.len() < TRACKED && self.bytes + value.len() <= TRACKED_BYTES {
            self.bytes += value.len();
            self.counts.insert(value.into(), 1);
        } else {
            self.overflowed = true;
        }
    }

    /// Exact when every distinct value was kept, else the HyperLogLog estimate.
    pub fn distinct(&self) -> f64 {
        if !self.overflowed {
            return self.counts.len() as f64;
        }
        let m = self.registers.len() as f64;
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        estimate.round().max(self.counts.len() as f64)
    }

    /// Every value with its count, most frequent first (ties by value), when all were kept
    /// and there are at most `limit`.
    pub fn exact(&self, limit: usize) -> Option<Vec<(&str, u64)>> {
        if self.overflowed || self.counts.len() > limit {
            return None;
        }
        let mut all: Vec<(&str, u64)> = self.counts.iter().map(|(v, &c)| (&**v, c)).collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        Some(all)
    }
}

/// FNV-1a, then SplitMix64's finalizer so that every bit depends on every input bit.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_estimated() {
        let mut few = ValueCounts::default();
        for v in ["b", "a", "b", "c", "b", "a"] {
            few.add(v);
        }
        assert_eq!(few.distinct(), 3.0);
        assert_eq!(few.exact(10).unwrap(), [("b", 3), ("a", 2), ("c", 1)]);
        assert!(few.exact(2).is_none());

        let mut many = ValueCounts::default();
        for i in 0..50_000 {
            many.add(&format!("value-{i}"));
            many.add(&format!("value-{i}"));
        }
        assert!(many.exact(usize::MAX).is_none());
        let estimate = many.distinct();
        assert!((estimate - 50_000.0).abs() < 50_000.0 * 0.05, "{estimate}");
    }
}

//! Statistics that merge: moments (count, mean, squared deviations; Chan's pairwise update)
//! and exact value counts for medians in bounded memory. Merged in a fixed order (blocks in
//! input order, objects by key) or exactly (integer counts), so every host computes the same
//! bits whatever the assignment of objects to hosts.
//!
//! The median is exact, as numpy's (`np.median`: the mean of the two middle values for an
//! even count). Each column counts its values by their order-preserving 64-bit key. Past a
//! budget of distinct keys, counts are coarsened to key prefixes (the low bits dropped), which
//! still locates the middle ranks in a prefix bucket; a further pass then counts only the
//! values inside that bucket, at full resolution. Each pass narrows the bucket by about the
//! budget's bits, so a few passes at most, and none for data with fewer distinct values than
//! the budget.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Count, mean and sum of squared deviations from the mean.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Chan et al.'s combination: `self` then `other`.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let delta = other.mean - self.mean;
        self.mean += delta * other.count as f64 / n;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n;
        self.count += other.count;
    }
}

/// `x`'s key: unsigned order is numeric order (`-0.0` counts as `0.0`).
#[inline]
pub fn key(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

pub fn value(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// A hasher for keys that are already well spread once mixed.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        super::split::mix(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)) ^ (self.0 >> 56);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type KeyMap = HashMap<u64, u64, BuildHasherDefault<KeyHasher>>;

/// Counts of one column's values inside a key interval, at a resolution of `2^shift` keys.
#[derive(Debug, Clone, Default)]
pub struct ValueCounts {
    pub shift: u32,
    pub counts: KeyMap,
}

impl ValueCounts {
    /// Add `n` values of key `key` (already known to lie in the interval).
    #[inline]
    pub fn add(&mut self, key: u64, n: u64, budget: usize) {
        *self.counts.entry(key.checked_shr(self.shift).unwrap_or(0)).or_insert(0) += n;
        if self.counts.len() > budget {
            self.coarsen(budget);
        }
    }

    /// Drop low bits until at most half the budget of buckets remain.
    pub fn coarsen(&mut self, budget: usize) {
        while self.counts.len() > budget / 2 && self.shift < 64 {
            self.shift += 1;
            let mut coarser = KeyMap::default();
            coarser.reserve(self.counts.len() / 2);
            for (&k, &n) in &self.counts {
                *coarser.entry(k >> 1).or_insert(0) += n;
            }
            self.counts = coarser;
        }
    }

    /// Merge another host's counts (any resolution).
    pub fn merge(&mut self, other: &ValueCounts, budget: usize) {
        let shift = self.shift.max(other.shift);
        self.rescale(shift);
        for (&k, &n) in &other.counts {
            *self.counts.entry(k.checked_shr(shift - other.shift).unwrap_or(0)).or_insert(0) += n;
        }
        if self.counts.len() > budget {
            self.coarsen(budget);
        }
    }

    fn rescale(&mut self, shift: u32) {
        if shift > self.shift {
            let by = shift - self.shift;
            let mut coarser = KeyMap::default();
            for (&k, &n) in &self.counts {
                *coarser.entry(k.checked_shr(by).unwrap_or(0)).or_insert(0) += n;
            }
            self.counts = coarser;
            self.shift = shift;
        }
    }

    /// Buckets in key order.
    pub fn sorted(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self.counts.iter().map(|(&k, &n)| (k, n)).collect();
        v.sort_unstable();
        v
    }
}

/// Where a median search stands for one column: the values below the interval, and the
/// interval of keys the two middle ranks lie in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedianSearch {
    /// Present values in all (the ranks sought are `(n - 1) / 2` and `n / 2`).
    pub total: u64,
    /// Values with keys below `low`.
    pub below: u64,
    pub low: u64,
    pub high: u64,
}

/// The outcome of one counting pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MedianStep {
    Found(f64),
    Narrowed(MedianSearch),
}

impl MedianSearch {
    pub fn new(total: u64) -> Self {
        Self { total, below: 0, low: 0, high: u64::MAX }
    }

    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        (self.low..=self.high).contains(&key)
    }

    /// Locate the middle ranks in `counts` (every value inside the interval, merged over
    /// every host): the exact median, or a narrower interval for the next pass.
    pub fn step(&self, counts: &ValueCounts) -> MedianStep {
        let buckets = counts.sorted();
        let ranks = [(self.total - 1) / 2, self.total / 2];
        let mut found = [(0u64, 0u64); 2];
        for (slot, &rank) in found.iter_mut().zip(&ranks) {
            // The bucket holding `rank` (0-based among all values).
            let mut seen = self.below;
            for &(bucket, n) in &buckets {
                if rank < seen + n {
                    *slot = (bucket, seen);
                    break;
                }
                seen += n;
            }
        }
        let ((lo_bucket, lo_below), (hi_bucket, _)) = (found[0], found[1]);
        if counts.shift == 0 {
            let (a, b) = (value(lo_bucket), value(hi_bucket));
            return MedianStep::Found(if ranks[0] == ranks[1] { a } else { (a + b) / 2.0 });
        }
        let start = lo_bucket.checked_shl(counts.shift).unwrap_or(0);
        let end = hi_bucket.checked_shl(counts.shift).map_or(u64::MAX, |s| s | ((1u64 << counts.shift) - 1));
        MedianStep::Narrowed(MedianSearch {
            total: self.total,
            below: lo_below,
            low: start.max(self.low),
            high: end.min(self.high),
        })
    }
}

/// Bytes for a gather: little-endian integers and floats, length-prefixed lists and text.
#[derive(Debug, Default)]
pub struct Encoder(pub Vec<u8>);

impl Encoder {
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.u64(v.to_bits())
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn moments(&mut self, m: &Moments) -> &mut Self {
        self.u64(m.count).f64(m.mean).f64(m.m2)
    }

    pub fn counts(&mut self, c: &ValueCounts) -> &mut Self {
        self.u64(u64::from(c.shift)).u64(c.counts.len() as u64);
        for (&k, &n) in &c.counts {
            self.u64(k).u64(n);
        }
        self
    }
}

/// Reads what [`Encoder`] wrote; every length is checked against the bytes left, so a
/// malformed message is an error, never a large allocation.
#[derive(Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("{} bytes left where {n} were due", self.rest.len()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn f64(&mut self) -> Result<f64, String> {
        self.u64().map(f64::from_bits)
    }

    /// A count of items each at least `item_bytes` long: checked against what is left.
    pub fn len(&mut self, item_bytes: usize) -> Result<usize, String> {
        let n = self.u64()?;
        if n.saturating_mul(item_bytes.max(1) as u64) > self.rest.len() as u64 {
            return Err(format!("{n} items announced, {} bytes left", self.rest.len()));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len(1)?;
        self.take(n)
    }

    pub fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "text that is not UTF-8".to_string())
    }

    pub fn moments(&mut self) -> Result<Moments, String> {
        Ok(Moments { count: self.u64()?, mean: self.f64()?, m2: self.f64()? })
    }

    pub fn counts(&mut self) -> Result<ValueCounts, String> {
        let shift = self.u64()?;
        if shift > 64 {
            return Err(format!("a shift of {shift} bits"));
        }
        let n = self.len(16)?;
        let mut counts = KeyMap::default();
        counts.reserve(n);
        for _ in 0..n {
            let (k, c) = (self.u64()?, self.u64()?);
            *counts.entry(k).or_insert(0) += c;
        }
        Ok(ValueCounts { shift: shift as u32, counts })
    }

    pub fn finish(&self) -> Result<(), String> {
        if self.rest.is_empty() { Ok(()) } else { Err(format!("{} bytes too many", self.rest.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's median, by sorting.
    fn sorted_median(values: &[f64]) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
    }

    /// The passes as the step runs them, with several "hosts" merging their counts.
    fn search(parts: &[Vec<f64>], budget: usize) -> (f64, usize) {
        let total = parts.iter().map(Vec::len).sum::<usize>() as u64;
        let mut search = MedianSearch::new(total);
        for pass in 1..20 {
            let mut merged = ValueCounts::default();
            for part in parts {
                let mut mine = ValueCounts::default();
                for &x in part {
                    if search.contains(key(x)) {
                        mine.add(key(x), 1, budget);
                    }
                }
                merged.merge(&mine, budget);
            }
            match search.step(&merged) {
                MedianStep::Found(m) => return (m, pass),
                MedianStep::Narrowed(next) => search = next,
            }
        }
        panic!("no median after 20 passes")
    }

    #[test]
    fn keys_keep_order() {
        let xs = [f64::NEG_INFINITY, -3.5, -1e-300, -0.0, 0.0, 1e-300, 2.0, 1e300];
        for w in xs.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{w:?}");
            assert_eq!(value(key(w[1])), w[1] + 0.0);
        }
    }

    #[test]
    fn medians_are_exact_within_budget_and_beyond() {
        let mut state = 5u64;
        let mut next = || {
            state = super::super::split::mix(state);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let wide: Vec<f64> = (0..20_001).map(|_| next() * 1e6 - 3e5).collect();
        let few: Vec<f64> = (0..10_000).map(|i| f64::from(i % 7)).collect();
        for values in [wide.clone(), few, vec![5.0], vec![1.0, 2.0], wide[..20_000].to_vec()] {
            let expected = sorted_median(&values);
            for budget in [1 << 16, 64] {
                // One host, and three hosts with uneven shares.
                let n = values.len();
                let shares = vec![values[..n / 5].to_vec(), Vec::new(), values[n / 5..].to_vec()];
                let (one, passes) = search(std::slice::from_ref(&values), budget);
                let (three, _) = search(&shares, budget);
                assert_eq!(one.to_bits(), expected.to_bits(), "budget {budget}, {n} values");
                assert_eq!(three.to_bits(), expected.to_bits());
                if budget == 1 << 16 {
                    assert_eq!(passes, 1, "within the budget: one pass");
                }
            }
        }
    }

    #[test]
    fn moments_merge_as_if_pushed_in_order() {
        let xs: Vec<f64> = (0..1000).map(|i| f64::from(i).sin() * 100.0 + 3000.0).collect();
        let mut whole = Moments::default();
        xs.iter().for_each(|&x| whole.push(x));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..300].iter().for_each(|&x| a.push(x));
        xs[300..].iter().for_each(|&x| b.push(x));
        a.merge(&b);
        assert_eq!(a.count, 1000);
        assert!((a.mean - whole.mean).abs() < 1e-9 && (a.m2 / whole.m2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn decoder_refuses_what_does_not_fit() {
        let mut e = Encoder::default();
        e.u64(1 << 40);
        assert!(Decoder::new(&e.0).bytes().is_err(), "a length beyond the message is refused");
        let mut c = ValueCounts::default();
        c.add(key(2.0), 3, 16);
        let mut e = Encoder::default();
        e.counts(&c);
        let back = Decoder::new(&e.0).counts().unwrap();
        assert_eq!(back.sorted(), c.sorted());
    }
}

//! The deterministic split: the labelled rows ordered by a seeded hash of their parsed values
//! and cut at exact sizes (`round(ratio x n)`, [`sizes`]) into train, validation and test,
//! the test part halved into `test_set_1` (with labels, for evaluation) and `test_set_2`
//! (without, for batch transform). The cuts are found exactly by counting passes over the
//! keys (a radix select, [`CutSearch`]), whose counts sum across hosts; so a row's set
//! depends on its values and the others', never on the number of hosts, which host reads
//! it, nor what its file is called, how it is headed, compressed or cut into files. Rows with
//! the same values are ordered by their object and position, so that a cut between them
//! still takes exactly its size.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}

impl Default for Ratios {
    fn default() -> Self {
        Self { train: 0.70, validation: 0.15, test: 0.15 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SplitError {
    #[error(
        "split ratios must be numbers in [0, 1] adding up to 1. Given: train {train}, validation {validation}, test {test}"
    )]
    BadRatios { train: f64, validation: f64, test: f64 },
    #[error(
        "the split leaves `{set}` empty: {rows} labelled rows at ratios train {train}, validation {validation}, test {test}; \
         give more rows or other ratios"
    )]
    EmptySet { set: &'static str, rows: u64, train: f64, validation: f64, test: f64 },
    #[error("two rows have the same split key")]
    SameKey,
    #[error("the split's counting pass found {counted} rows, fewer than the cut's rank {rank}")]
    Counts { rank: u64, counted: u64 },
}

impl Ratios {
    pub fn validate(&self) -> Result<(), SplitError> {
        let parts = [self.train, self.validation, self.test];
        let ok = parts.iter().all(|r| (0.0..=1.0).contains(r)) && (parts.iter().sum::<f64>() - 1.0).abs() < 1e-9;
        if ok {
            Ok(())
        } else {
            Err(SplitError::BadRatios { train: self.train, validation: self.validation, test: self.test })
        }
    }

    /// `EmptySet` for the first set (in output order) that `counts` leaves empty.
    pub fn check_counts(&self, counts: &[u64; 4]) -> Result<(), SplitError> {
        match counts.iter().position(|&c| c == 0) {
            None => Ok(()),
            Some(i) => Err(SplitError::EmptySet {
                set: Set::ALL[i].name(),
                rows: counts.iter().sum(),
                train: self.train,
                validation: self.validation,
                test: self.test,
            }),
        }
    }
}

/// The four output sets, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Set {
    Train = 0,
    Validation = 1,
    TestSet1 = 2,
    TestSet2 = 3,
}

impl Set {
    pub const ALL: [Set; 4] = [Set::Train, Set::Validation, Set::TestSet1, Set::TestSet2];

    pub fn name(self) -> &'static str {
        ["train", "validation", "test_set_1", "test_set_2"][self as usize]
    }

    /// `test_set_2` is for batch transform: no label.
    pub fn labelled(self) -> bool {
        self != Set::TestSet2
    }
}

/// SplitMix64's finalizer: a bijection that spreads every input bit over the output.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rows per set for `n` labelled rows: train `round(train x n)`, validation
/// `round(validation x n)` (at most what train leaves), test the rest; the test rows halved,
/// `test_set_1` the smaller half (`floor(test / 2)`), `test_set_2` the rest. `round` is
/// half away from zero, on `ratio x n` in f64. Auto MPG's 398 rows at 0.7/0.15/0.15:
/// 279, 60, 29, 30.
pub fn sizes(ratios: &Ratios, n: u64) -> [u64; 4] {
    let of = |ratio: f64| ((ratio * n as f64).round() as u64).min(n);
    let train = of(ratios.train);
    let validation = of(ratios.validation).min(n - train);
    let test = n - train - validation;
    [train, validation, test / 2, test - test / 2]
}

/// Where a set ends in the split order: rows whose key is below it are in it or an earlier set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Below(u128),
    All,
}

impl Cut {
    #[inline]
    fn holds(self, key: u128) -> bool {
        match self {
            Cut::Below(c) => key < c,
            Cut::All => true,
        }
    }
}

/// Assigns rows to sets by their keys (see [`Assigner::key`]): the rows in key order, cut at
/// the sets' sizes.
#[derive(Debug, Clone, Copy)]
pub struct Assigner {
    seed: u64,
    /// Ends of train, validation and test_set_1 (none until the split is found).
    cuts: [Cut; 3],
}

impl Assigner {
    /// The split of `seed`; its cuts are found by [`CutSearch`] over the keys, then set.
    pub fn new(ratios: Ratios, seed: u64) -> Result<Self, SplitError> {
        ratios.validate()?;
        Ok(Self { seed, cuts: [Cut::Below(0); 3] })
    }

    pub fn with_cuts(self, cuts: [Cut; 3]) -> Self {
        Self { cuts, ..self }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The hash of an object's key (FNV-1a over its bytes, then mixed with the seed).
    pub fn object(&self, key: &str) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        mix(h ^ mix(self.seed))
    }

    /// A row's key: the seeded hash of its parsed values (`identity`) first, so the split
    /// follows the values alone; then, only to order rows whose values are the same, a hash
    /// of its object and its position in it.
    #[inline]
    pub fn key(&self, identity: u64, object: u64, position: u64) -> u128 {
        (u128::from(identity) << 64) | u128::from(mix(object ^ mix(position.wrapping_add(self.seed))))
    }

    #[inline]
    pub fn set(&self, key: u128) -> Set {
        if self.cuts[0].holds(key) {
            Set::Train
        } else if self.cuts[1].holds(key) {
            Set::Validation
        } else if self.cuts[2].holds(key) {
            Set::TestSet1
        } else {
            Set::TestSet2
        }
    }
}

/// Bits of the key one counting pass resolves: a pass counts keys by their next 16 bits.
pub const DIGIT_BITS: u32 = 16;
pub const DIGITS: usize = 1 << DIGIT_BITS;

/// The cut after the `rank` smallest keys, found exactly by counting passes (a radix
/// select): each pass counts the keys under the known prefix by their next 16 bits, and the
/// bucket the rank falls in becomes the prefix, until the rank falls at a bucket's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutSearch {
    rank: u64,
    /// The known top `bits` bits.
    prefix: u128,
    bits: u32,
    /// Keys below the prefix's range.
    below: u64,
}

pub enum CutStep {
    Found(Cut),
    Narrowed(CutSearch),
}

impl CutSearch {
    /// The search for the cut after `rank` of `n` keys; found at once at either end.
    pub fn new(rank: u64, n: u64) -> Result<Self, Cut> {
        match rank {
            0 => Err(Cut::Below(0)),
            r if r >= n => Err(Cut::All),
            _ => Ok(Self { rank, prefix: 0, bits: 0, below: 0 }),
        }
    }

    /// The bucket of `key` in this search's next pass, if the key is under its prefix.
    #[inline]
    pub fn bucket(&self, key: u128) -> Option<usize> {
        let matches = self.bits == 0 || key >> (128 - self.bits) == self.prefix >> (128 - self.bits);
        matches.then(|| ((key >> (128 - self.bits - DIGIT_BITS)) as usize) & (DIGITS - 1))
    }

    /// One pass's counts (every host's, summed): the cut, or a longer prefix.
    pub fn step(&self, counts: &[u64]) -> Result<CutStep, SplitError> {
        let mut before = self.below;
        for (digit, &n) in counts.iter().enumerate() {
            if before + n > self.rank {
                let start = self.prefix | ((digit as u128) << (128 - self.bits - DIGIT_BITS));
                if before == self.rank {
                    return Ok(CutStep::Found(Cut::Below(start)));
                }
                if self.bits + DIGIT_BITS == 128 {
                    // Two rows with one key: the same values at the same place of one object.
                    return Err(SplitError::SameKey);
                }
                let bits = self.bits + DIGIT_BITS;
                return Ok(CutStep::Narrowed(Self { rank: self.rank, prefix: start, bits, below: before }));
            }
            before += n;
        }
        Err(SplitError::Counts { rank: self.rank, counted: before })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_rounded_ratios_and_the_test_set_halved() {
        assert_eq!(sizes(&Ratios::default(), 398), [279, 60, 29, 30]);
        assert_eq!(sizes(&Ratios::default(), 100), [70, 15, 7, 8]);
        let halves = Ratios { train: 0.5, validation: 0.5, test: 0.0 };
        assert_eq!(sizes(&halves, 3), [2, 1, 0, 0], "validation takes at most what train leaves");
        assert_eq!(sizes(&Ratios { train: 1.0, validation: 0.0, test: 0.0 }, 7), [7, 0, 0, 0]);
    }

    /// The cut after `rank` of `keys`, by the passes as the step runs them.
    fn cut(keys: &[u128], rank: u64) -> Cut {
        let mut search = match CutSearch::new(rank, keys.len() as u64) {
            Ok(s) => s,
            Err(cut) => return cut,
        };
        loop {
            let mut counts = vec![0u64; DIGITS];
            keys.iter().filter_map(|&k| search.bucket(k)).for_each(|b| counts[b] += 1);
            match search.step(&counts).unwrap() {
                CutStep::Found(cut) => return cut,
                CutStep::Narrowed(next) => search = next,
            }
        }
    }

    #[test]
    fn cuts_take_exactly_their_rank_even_among_equal_values() {
        let a = Assigner::new(Ratios::default(), 7).unwrap();
        // 1,000 rows, a quarter sharing one value: their keys differ only in the low half.
        let keys: Vec<u128> =
            (0..1000u64).map(|r| a.key(if r % 4 == 0 { 99 } else { mix(r) }, a.object("k"), r)).collect();
        for rank in [0, 1, 250, 699, 700, 999, 1000] {
            let c = cut(&keys, rank);
            assert_eq!(keys.iter().filter(|&&k| c.holds(k)).count() as u64, rank, "{rank}");
        }
        let [t, v, t1, _] = sizes(&Ratios::default(), 1000);
        let a = a.with_cuts([cut(&keys, t), cut(&keys, t + v), cut(&keys, t + v + t1)]);
        let mut counts = [0u64; 4];
        keys.iter().for_each(|&k| counts[a.set(k) as usize] += 1);
        assert_eq!(counts, [700, 150, 75, 75]);
    }

    #[test]
    fn empty_sets_and_bad_ratios_are_errors() {
        let err = Ratios::default().check_counts(&[2, 0, 1, 0]).unwrap_err();
        assert!(err.to_string().contains("leaves `validation` empty: 3 labelled rows"), "{err}");
        let bad = Ratios { train: 0.9, validation: 0.2, test: 0.1 };
        assert!(matches!(Assigner::new(bad, 0), Err(SplitError::BadRatios { .. })));
    }
}

//! The deterministic split: each labelled row goes to train, validation or test by a seeded
//! hash of its identity (the object's key and the row's index among the object's data rows),
//! the test part halved into `test_set_1` (with labels, for evaluation) and `test_set_2`
//! (without, for batch transform). A row's set depends on nothing else: not on the other
//! rows, the number of hosts, nor which host reads the object. The sets' sizes follow the
//! ratios in expectation (each row is an independent draw), not exactly.

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

/// Assigns rows to sets.
#[derive(Debug, Clone, Copy)]
pub struct Assigner {
    seed: u64,
    /// Upper bounds of train, validation and test_set_1 on the hash's 53-bit fraction.
    cuts: [u64; 3],
}

impl Assigner {
    pub fn new(ratios: Ratios, seed: u64) -> Result<Self, SplitError> {
        ratios.validate()?;
        let at = |fraction: f64| (fraction.clamp(0.0, 1.0) * (1u64 << 53) as f64) as u64;
        let (t, v) = (ratios.train, ratios.train + ratios.validation);
        Ok(Self { seed, cuts: [at(t), at(v), at(v + ratios.test / 2.0)] })
    }

    /// The hash of an object's key (FNV-1a over its bytes, then mixed with the seed).
    pub fn object(&self, key: &str) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        mix(h ^ mix(self.seed))
    }

    /// The set of data row `row` (0-based, header and blank lines not counted) of the
    /// object whose hash is `object`.
    #[inline]
    pub fn set(&self, object: u64, row: u64) -> Set {
        let fraction = mix(object ^ mix(row.wrapping_add(self.seed))) >> 11;
        if fraction < self.cuts[0] {
            Set::Train
        } else if fraction < self.cuts[1] {
            Set::Validation
        } else if fraction < self.cuts[2] {
            Set::TestSet1
        } else {
            Set::TestSet2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(a: &Assigner, object: &str, rows: u64) -> [u64; 4] {
        let h = a.object(object);
        let mut counts = [0u64; 4];
        for r in 0..rows {
            counts[a.set(h, r) as usize] += 1;
        }
        counts
    }

    #[test]
    fn sets_follow_the_ratios_and_the_seed() {
        let a = Assigner::new(Ratios::default(), 7).unwrap();
        let c = counts(&a, "part-1.csv", 100_000);
        let expected = [70_000.0, 15_000.0, 7_500.0, 7_500.0];
        for (got, want) in c.iter().zip(expected) {
            // Binomial: within 5 standard deviations.
            assert!((*got as f64 - want).abs() < 5.0 * (want * (1.0 - want / 1e5)).sqrt(), "{c:?}");
        }
        let b = Assigner::new(Ratios::default(), 8).unwrap();
        let (ha, hb) = (a.object("x"), b.object("x"));
        assert!((0..100).any(|r| a.set(ha, r) != b.set(hb, r)), "another seed, another split");
        assert!((0..100).any(|r| a.set(ha, r) != a.set(a.object("y"), r)), "another object, other draws");
    }

    #[test]
    fn empty_sets_and_bad_ratios_are_errors() {
        let err = Ratios::default().check_counts(&[2, 0, 1, 0]).unwrap_err();
        assert!(err.to_string().contains("leaves `validation` empty: 3 labelled rows"), "{err}");
        let bad = Ratios { train: 0.9, validation: 0.2, test: 0.1 };
        assert!(matches!(Assigner::new(bad, 0), Err(SplitError::BadRatios { .. })));
        // A ratio of 1 takes every row.
        let all = Assigner::new(Ratios { train: 1.0, validation: 0.0, test: 0.0 }, 3).unwrap();
        assert_eq!(counts(&all, "k", 1000), [1000, 0, 0, 0]);
    }
}

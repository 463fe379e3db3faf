//! The deterministic split: a seeded shuffle of the labelled rows, cut into train,
//! validation and test, the test part halved into `test_set_1` (with labels, for evaluation)
//! and `test_set_2` (without, for batch transform).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
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
    EmptySet { set: &'static str, rows: usize, train: f64, validation: f64, test: f64 },
    #[error("{rows} rows are more than this build can split (at most {max})", max = u32::MAX)]
    TooManyRows { rows: usize },
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
}

/// Row indices of each set, in input order: the shuffle decides membership only. Reading
/// the columns in order keeps writing fast, and a row is easy to find in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<u32>,
    pub validation: Vec<u32>,
    pub test_set_1: Vec<u32>,
    pub test_set_2: Vec<u32>,
}

impl Split {
    /// Shuffle `0..rows` with ChaCha8 seeded by `seed`, then cut. The same seed and row count
    /// always give the same split (the generator and shuffle are pinned by Cargo.lock).
    pub fn new(rows: usize, ratios: Ratios, seed: u64) -> Result<Self, SplitError> {
        ratios.validate()?;
        let count = u32::try_from(rows).map_err(|_| SplitError::TooManyRows { rows })?;
        let mut order: Vec<u32> = (0..count).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));

        let n_validation = (rows as f64 * ratios.validation).round() as usize;
        let n_test = ((rows as f64 * ratios.test).round() as usize).min(rows - n_validation);
        let n_train = rows - n_validation - n_test;
        let n_test_1 = n_test.div_ceil(2);

        let empty = |set| SplitError::EmptySet {
            set,
            rows,
            train: ratios.train,
            validation: ratios.validation,
            test: ratios.test,
        };
        let mut rest = order.as_slice();
        let mut take = |n: usize, set: &'static str| {
            if n == 0 {
                return Err(empty(set));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            let mut rows = head.to_vec();
            rows.sort_unstable();
            Ok(rows)
        };
        Ok(Self {
            train: take(n_train, "train")?,
            validation: take(n_validation, "validation")?,
            test_set_1: take(n_test_1, "test_set_1")?,
            test_set_2: take(n_test - n_test_1, "test_set_2")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_split_other_seed_other_shuffle() {
        let a = Split::new(398, Ratios::default(), 7).unwrap();
        assert_eq!(a, Split::new(398, Ratios::default(), 7).unwrap());
        assert_ne!(a.train, Split::new(398, Ratios::default(), 8).unwrap().train);
        assert_eq!((a.train.len(), a.validation.len(), a.test_set_1.len(), a.test_set_2.len()), (278, 60, 30, 30));
        let mut all: Vec<u32> = [a.train, a.validation, a.test_set_1, a.test_set_2].concat();
        all.sort_unstable();
        assert_eq!(all, (0..398).collect::<Vec<_>>());
    }

    #[test]
    fn empty_sets_and_bad_ratios_are_errors() {
        let err = Split::new(3, Ratios::default(), 0).unwrap_err();
        assert!(err.to_string().contains("leaves `validation` empty: 3 labelled rows"), "{err}");
        let bad = Ratios { train: 0.9, validation: 0.2, test: 0.1 };
        assert!(matches!(Split::new(100, bad, 0), Err(SplitError::BadRatios { .. })));
    }
}

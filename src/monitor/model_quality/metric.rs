//! One metric of `statistics.json` (`{"value": x, "standard_deviation": y}`) and the five
//! subsamples its standard deviation comes from.
//!
//! AWS: "Standard deviation for metrics are provided only when at least 200 samples are
//! available. Model Monitor computes standard deviation by randomly sampling 80% of the data 5
//! times, computing the metric, and taking the standard deviation for those results" (DG
//! model-monitor-model-quality-metrics). Below 200 rows it writes the string `"NaN"`.
//!
//! How AWS draws the samples (with or without replacement, the seed) and which deviation it
//! takes is not published, so its deviations cannot be reproduced; ours are defined so that
//! anyone can: row `i` (0-based, in reading order) is in subsample `s` when
//! `splitmix64(SEED ^ (8 i + s)) >> 11 < IN_SAMPLE_BELOW` (a Bernoulli draw of 80%, as Spark's
//! `sample(false, 0.8)` draws, but keyed by the row so that it streams and repeats), and the
//! deviation is the sample standard deviation (n - 1, Spark's `stddev`) of the five values.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Subsamples behind a standard deviation.
pub const SUBSAMPLES: usize = 5;
/// Rows from which a standard deviation is given.
pub const MIN_ROWS_FOR_DEVIATION: u64 = 200;
/// The subsamples' key.
pub const SEED: u64 = 0x5347_5354_4550_4d51;
/// 0.8 of 2^53: a row is in a subsample when its 53-bit draw is below this.
pub const IN_SAMPLE_BELOW: u64 = 7_205_759_403_792_793;

/// SplitMix64's output function (Steele, Lea and Flood 2014).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bit `s` set when row `row` is in subsample `s`.
pub fn subsample_bits(row: u64) -> u8 {
    let mut bits = 0;
    for s in 0..SUBSAMPLES as u64 {
        if splitmix64(SEED ^ row.wrapping_mul(8).wrapping_add(s)) >> 11 < IN_SAMPLE_BELOW {
            bits |= 1 << s;
        }
    }
    bits
}

/// A scalar metric: its value on all rows and, from 200 rows, its deviation over the subsamples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub value: f64,
    /// `None` is written `"NaN"`.
    pub standard_deviation: Option<f64>,
}

impl Metric {
    /// `value` on all `rows`, `samples` its values on the subsamples.
    pub fn new(rows: u64, value: f64, samples: [f64; SUBSAMPLES]) -> Self {
        let standard_deviation = (rows >= MIN_ROWS_FOR_DEVIATION).then(|| deviation(&samples));
        Self { value, standard_deviation }
    }
}

/// The sample standard deviation (n - 1).
pub fn deviation(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (squares / (n - 1.0)).sqrt()
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("value", &Number(self.value))?;
        map.serialize_entry("standard_deviation", &Number(self.standard_deviation.unwrap_or(f64::NAN)))?;
        map.end()
    }
}

/// A number as the AWS analyzer (Jackson) writes it: non-finite ones as the strings `"NaN"`,
/// `"Infinity"` and `"-Infinity"`.
#[derive(Debug, Clone, Copy)]
pub struct Number(pub f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            x if x.is_finite() => serializer.serialize_f64(x),
            x if x.is_nan() => serializer.serialize_str("NaN"),
            x if x > 0.0 => serializer.serialize_str("Infinity"),
            _ => serializer.serialize_str("-Infinity"),
        }
    }
}

/// `n / d`, 0 when `d` is 0 (Spark's and scikit-learn's convention for empty classes).
pub fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// F-beta from precision and recall, 0 when both are 0 (Spark's `fMeasure`).
pub fn f_beta(precision: f64, recall: f64, beta: f64) -> f64 {
    let b2 = beta * beta;
    if precision + recall == 0.0 { 0.0 } else { (1.0 + b2) * precision * recall / (b2 * precision + recall) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_deviation_below_200_rows_and_strings_for_non_finite_values() {
        let m = Metric::new(199, 0.5, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"value":0.5,"standard_deviation":"NaN"}"#);
        let m = Metric::new(200, f64::NEG_INFINITY, [1.0, 2.0, 3.0, 4.0, 5.0]);
        let expected = format!(r#"{{"value":"-Infinity","standard_deviation":{}}}"#, 2.5f64.sqrt());
        assert_eq!(serde_json::to_string(&m).unwrap(), expected);
    }

    #[test]
    fn subsamples_hold_about_80_percent_each_and_differ() {
        let rows = 100_000u64;
        let mut counts = [0u64; SUBSAMPLES];
        let mut all_same = 0;
        for row in 0..rows {
            let bits = subsample_bits(row);
            for (s, count) in counts.iter_mut().enumerate() {
                *count += u64::from((bits >> s) & 1);
            }
            all_same += u64::from(bits == 0 || bits == 0b11111);
        }
        for count in counts {
            assert!((79_500..80_500).contains(&count), "{counts:?}");
        }
        // Independent draws: all five agree with probability 0.8^5 + 0.2^5 = 0.328.
        assert!((32_000..33_600).contains(&all_same), "{all_same}");
        // The published definition, pinned (tests/python/model_quality_oracle.py repeats it).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }
}

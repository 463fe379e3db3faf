//! `regression_metrics`: mae, mse, rmse, r2, summed in one pass in reading order.
//!
//! With `e = ground_truth - prediction`: `mae = Σ|e| / n`, `mse = Σe² / n`, `rmse = √mse`,
//! `r2 = 1 - Σe² / Σ(y - ȳ)²` over the ground truth `y` (its squares summed by Welford's
//! update). These reproduce AWS's statistics of the SDK's fixture bit for bit.

use serde::Serialize;

use super::metric::{Metric, SUBSAMPLES, subsample_bits};

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: u64,
    absolute: f64,
    squares: f64,
    mean: f64,
    spread: f64,
}

impl Sums {
    fn add(&mut self, truth: f64, prediction: f64) {
        let e = truth - prediction;
        self.n += 1;
        self.absolute += e.abs();
        self.squares += e * e;
        let d = truth - self.mean;
        self.mean += d / self.n as f64;
        self.spread += d * (truth - self.mean);
    }

    /// mae, mse, rmse, r2.
    fn values(&self) -> [f64; 4] {
        let n = self.n as f64;
        let mse = self.squares / n;
        [self.absolute / n, mse, mse.sqrt(), 1.0 - self.squares / self.spread]
    }
}

/// Pairs of ground truth and prediction, summed as they come.
#[derive(Debug, Clone, Default)]
pub struct Regression {
    all: Sums,
    samples: [Sums; SUBSAMPLES],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    pub mae: Metric,
    pub mse: Metric,
    pub rmse: Metric,
    pub r2: Metric,
}

impl Regression {
    pub fn add(&mut self, truth: f64, prediction: f64) {
        let bits = subsample_bits(self.all.n);
        self.all.add(truth, prediction);
        for (s, sums) in self.samples.iter_mut().enumerate() {
            if (bits >> s) & 1 == 1 {
                sums.add(truth, prediction);
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.all.n
    }

    pub fn finish(&self) -> RegressionMetrics {
        let all = self.all.values();
        let samples = self.samples.map(|s| s.values());
        let metric = |i: usize| Metric::new(self.all.n, all[i], samples.map(|s| s[i]));
        RegressionMetrics { mae: metric(0), mse: metric(1), rmse: metric(2), r2: metric(3) }
    }
}

impl RegressionMetrics {
    /// Every scalar metric by its key, in the file's order.
    pub fn scalars(&self) -> Vec<(&'static str, Metric)> {
        vec![("mae", self.mae), ("mse", self.mse), ("rmse", self.rmse), ("r2", self.r2)]
    }
}

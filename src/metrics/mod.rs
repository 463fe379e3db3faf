//! Regression and classification metrics in Model Monitor's layout: each metric is a value
//! and a standard deviation. For the MSE that is the standard deviation of the residuals (the
//! seed pipeline's meaning); for the others, of the metric over seeded bootstrap resamples.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metric {
    pub value: f64,
    pub standard_deviation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    pub mse: Metric,
    pub rmse: Metric,
    pub mae: Metric,
    pub r2: Metric,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryMetrics {
    pub accuracy: Metric,
    /// Absent when the labels hold one class only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc: Option<Metric>,
    pub log_loss: Metric,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MulticlassMetrics {
    pub accuracy: Metric,
    /// Absent for `multi:softmax`, which predicts labels, not probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<Metric>,
}

/// Bootstrap resampling: `samples` resamples of the rows, drawn with ChaCha8 from `seed`.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    pub samples: usize,
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { samples: 1000, seed: 0 }
    }
}

impl Bootstrap {
    /// The sample standard deviation of `metric` over resamples (row indices, with repeats).
    /// Resamples where the metric is undefined are skipped.
    fn std(&self, n: usize, metric: impl Fn(&[usize]) -> Option<f64>) -> f64 {
        use rand::RngExt;
        if n == 0 || self.samples < 2 {
            return 0.0;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut idx = vec![0usize; n];
        let mut values = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            for i in idx.iter_mut() {
                *i = rng.random_range(0..n);
            }
            if let Some(v) = metric(&idx) {
                values.push(v);
            }
        }
        sample_std(&values)
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values.iter().copied());
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

/// MSE, RMSE, MAE and R² (scikit-learn's definitions; R² of a constant label is 1 when
/// predicted exactly, else 0).
pub fn regression(labels: &[f64], predictions: &[f64], bootstrap: Bootstrap) -> RegressionMetrics {
    let n = labels.len();
    let residual = |i: usize| labels[i] - predictions[i];
    let mse = |idx: &mut dyn Iterator<Item = usize>| mean(idx.map(|i| residual(i).powi(2)));
    let mae = |idx: &mut dyn Iterator<Item = usize>| mean(idx.map(|i| residual(i).abs()));
    let r2 = |idx: &[usize]| {
        let y_mean = mean(idx.iter().map(|&i| labels[i]));
        let ss_res: f64 = idx.iter().map(|&i| residual(i).powi(2)).sum();
        let ss_tot: f64 = idx.iter().map(|&i| (labels[i] - y_mean).powi(2)).sum();
        if ss_tot == 0.0 { if ss_res == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - ss_res / ss_tot }
    };
    let all: Vec<usize> = (0..n).collect();
    let mse_value = mse(&mut all.iter().copied());
    let residual_mean = mean((0..n).map(residual));
    let residual_std = mean((0..n).map(|i| (residual(i) - residual_mean).powi(2))).sqrt();
    RegressionMetrics {
        mse: Metric { value: mse_value, standard_deviation: residual_std },
        rmse: Metric {
            value: mse_value.sqrt(),
            standard_deviation: bootstrap.std(n, |idx| Some(mse(&mut idx.iter().copied()).sqrt())),
        },
        mae: Metric {
            value: mae(&mut all.iter().copied()),
            standard_deviation: bootstrap.std(n, |idx| Some(mae(&mut idx.iter().copied()))),
        },
        r2: Metric { value: r2(&all), standard_deviation: bootstrap.std(n, |idx| Some(r2(idx))) },
    }
}

const LOG_LOSS_EPS: f64 = 1e-15;

/// Binary metrics from labels in {0, 1} and probabilities of class 1.
pub fn binary(labels: &[f64], probabilities: &[f64], bootstrap: Bootstrap) -> BinaryMetrics {
    let n = labels.len();
    let accuracy =
        |idx: &[usize]| mean(idx.iter().map(|&i| f64::from(u8::from((probabilities[i] > 0.5) == (labels[i] == 1.0)))));
    let log_loss = |idx: &[usize]| {
        mean(idx.iter().map(|&i| {
            let p = probabilities[i].clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            if labels[i] == 1.0 { -p.ln() } else { -(1.0 - p).ln() }
        }))
    };
    let auc = |idx: &[usize]| auc(idx.iter().map(|&i| (probabilities[i], labels[i] == 1.0)));
    let all: Vec<usize> = (0..n).collect();
    BinaryMetrics {
        accuracy: Metric { value: accuracy(&all), standard_deviation: bootstrap.std(n, |i| Some(accuracy(i))) },
        auc: auc(&all).map(|value| Metric { value, standard_deviation: bootstrap.std(n, auc) }),
        log_loss: Metric { value: log_loss(&all), standard_deviation: bootstrap.std(n, |i| Some(log_loss(i))) },
    }
}

/// Multiclass metrics from labels in 0..k and either probabilities (`rows x k`) or labels.
pub fn multiclass(labels: &[f64], outputs: &[f64], classes: usize, bootstrap: Bootstrap) -> MulticlassMetrics {
    let n = labels.len();
    let probabilities = outputs.len() == n * classes && classes > 1;
    let predicted = |i: usize| {
        if probabilities {
            let row = &outputs[i * classes..(i + 1) * classes];
            row.iter().enumerate().fold(0, |best, (k, &p)| if p > row[best] { k } else { best }) as f64
        } else {
            outputs[i]
        }
    };
    let accuracy = |idx: &[usize]| mean(idx.iter().map(|&i| f64::from(u8::from(predicted(i) == labels[i]))));
    let log_loss = |idx: &[usize]| {
        mean(idx.iter().map(|&i| {
            let p = outputs[i * classes + labels[i] as usize];
            -p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln()
        }))
    };
    let all: Vec<usize> = (0..n).collect();
    MulticlassMetrics {
        accuracy: Metric { value: accuracy(&all), standard_deviation: bootstrap.std(n, |i| Some(accuracy(i))) },
        log_loss: probabilities
            .then(|| Metric { value: log_loss(&all), standard_deviation: bootstrap.std(n, |i| Some(log_loss(i))) }),
    }
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties given their average rank.
/// `None` when one class is absent.
pub fn auc(scored: impl Iterator<Item = (f64, bool)>) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scored.collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = pairs.iter().filter(|(_, p)| *p).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * pairs[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_values() {
        let m = regression(&[1.0, 2.0, 3.0, 4.0], &[1.5, 2.0, 2.0, 5.0], Bootstrap::default());
        assert_eq!(m.mse.value, (0.25 + 0.0 + 1.0 + 1.0) / 4.0);
        assert_eq!(m.mae.value, 2.5 / 4.0);
        assert!((m.r2.value - (1.0 - 2.25 / 5.0)).abs() < 1e-12);
        // residuals -0.5, 0, 1, -1: mean -0.125
        let r: [f64; 4] = [-0.5, 0.0, 1.0, -1.0];
        let std = (r.iter().map(|x| (x + 0.125).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((m.mse.standard_deviation - std).abs() < 1e-12);
        assert!(m.rmse.standard_deviation > 0.0);
        assert_eq!(m, regression(&[1.0, 2.0, 3.0, 4.0], &[1.5, 2.0, 2.0, 5.0], Bootstrap::default()), "seeded");
    }

    #[test]
    fn auc_with_ties_matches_sklearn() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let a = auc([(0.1, false), (0.4, false), (0.35, true), (0.8, true)].into_iter()).unwrap();
        assert!((a - 0.75).abs() < 1e-12);
        // ties: roc_auc_score([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == 0.875
        let a = auc([(0.5, false), (0.5, true), (0.2, false), (0.9, true)].into_iter()).unwrap();
        assert!((a - 0.875).abs() < 1e-12);
        assert!(auc([(0.5, true)].into_iter()).is_none());
    }
}

//! Element-wise metrics as XGBoost computes them (`src/metric/elementwise_metric.cu`): each
//! row's residue in f32, times its weight, summed in f64 over blocks of 2,048 rows, the block
//! sums added in order. Computed the same way on any number of cores, the values, and so
//! `best_score` and early stopping, are XGBoost's (single-threaded) bit for bit. Other
//! metrics are hessboost's.

use rayon::prelude::*;

const BLOCK: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elementwise {
    Rmse,
    Rmsle,
    Mae,
    Mape,
    LogLoss,
    /// `error`, `error@t`.
    Error(f32),
}

impl Elementwise {
    /// The metric XGBoost names `name`, where we compute it ourselves.
    pub fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            "rmse" => Self::Rmse,
            "rmsle" => Self::Rmsle,
            "mae" => Self::Mae,
            "mape" => Self::Mape,
            "logloss" => Self::LogLoss,
            "error" => Self::Error(0.5),
            _ => Self::Error(name.strip_prefix("error@")?.parse().ok()?),
        })
    }

    #[inline]
    fn row(self, y: f32, p: f32) -> f32 {
        match self {
            Self::Rmse => {
                let d = y - p;
                d * d
            }
            Self::Rmsle => {
                let d = y.ln_1p() - p.ln_1p();
                d * d
            }
            Self::Mae => (y - p).abs(),
            Self::Mape => ((y - p) / y).abs(),
            Self::LogLoss => {
                let xlogy = |x: f32, y: f32| if x - 0.0 == 0.0 { 0.0 } else { x * y.max(1e-16).ln() };
                xlogy(-y, p) + xlogy(-(1.0 - y), 1.0 - p)
            }
            Self::Error(t) => {
                if p > t {
                    1.0 - y
                } else {
                    y
                }
            }
        }
    }

    /// `GetFinal`.
    pub fn finish(self, esum: f64, wsum: f64) -> f64 {
        let mean = if wsum == 0.0 { esum } else { esum / wsum };
        match self {
            Self::Rmse | Self::Rmsle => mean.sqrt(),
            _ => mean,
        }
    }

    /// Row `i`'s weighted residue and weight (`preds` of a single-output model).
    #[inline]
    pub fn term(self, preds: &[f32], labels: &[f32], weights: Option<&[f32]>, i: usize) -> [f64; 2] {
        let wt = weights.map_or(1.0f32, |w| w[i]);
        [f64::from(self.row(labels[i], preds[i]) * wt), f64::from(wt)]
    }

    /// `(sum of weighted residues, sum of weights)` over the rows, in XGBoost's order.
    pub fn sums(self, preds: &[f32], labels: &[f32], weights: Option<&[f32]>) -> (f64, f64) {
        let blocks: Vec<(f64, f64)> = (0..labels.len().div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let (mut score, mut weight) = (0.0f64, 0.0f64);
                for i in b * BLOCK..((b + 1) * BLOCK).min(labels.len()) {
                    let wt = weights.map_or(1.0f32, |w| w[i]);
                    let residue = self.row(labels[i], preds[i]) * wt;
                    score += f64::from(residue);
                    weight += f64::from(wt);
                }
                (score, weight)
            })
            .collect();
        blocks.into_iter().fold((0.0, 0.0), |(s, w), (bs, bw)| (s + bs, w + bw))
    }

    pub fn eval(self, preds: &[f32], labels: &[f32], weights: Option<&[f32]>) -> f64 {
        let (s, w) = self.sums(preds, labels, weights);
        self.finish(s, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_xgboosts_formulas() {
        let (p, y) = ([0.5f32, 2.0, 3.0], [1.0f32, 2.0, 5.0]);
        assert_eq!(Elementwise::Rmse.eval(&p, &y, None), ((0.25f64 + 0.0 + 4.0) / 3.0).sqrt());
        assert_eq!(Elementwise::Mae.eval(&p, &y, Some(&[1.0, 1.0, 2.0])), (0.5 + 4.0) / 4.0);
        assert_eq!(Elementwise::by_name("error@0.7"), Some(Elementwise::Error(0.7)));
        assert_eq!(Elementwise::Error(0.5).eval(&[0.2, 0.9], &[1.0, 1.0], None), 0.5);
    }
}

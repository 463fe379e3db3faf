//! Gradients and metric transforms, bit for bit as XGBoost computes them. hessboost's
//! objectives serve, except where it evaluates `expf` with a fast vector approximation
//! (the logistic and softmax objectives): those are computed here with XGBoost's scalar
//! formulas (`src/objective/regression_loss.h`, `multiclass_obj.cu`, `common/math.h`), so
//! the gradients, and the trees, are XGBoost's.

use hessboost::data::MetaInfo;
use hessboost::objective::{GradPair, Loss};
use rayon::prelude::*;

/// Which formulas compute the gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Formula {
    /// `reg:logistic`, `binary:logistic`, `binary:logitraw` (its gradient is the logistic
    /// one; only its predictions stay margins).
    Logistic { scale_pos_weight: f32, transform: bool },
    /// `multi:softprob`, `multi:softmax`.
    Softmax { classes: usize },
    /// hessboost's own.
    Loss,
}

impl Formula {
    pub fn for_objective(name: &str, scale_pos_weight: f32, classes: usize) -> Self {
        match name {
            "reg:logistic" | "binary:logistic" => Self::Logistic { scale_pos_weight, transform: true },
            "binary:logitraw" => Self::Logistic { scale_pos_weight, transform: false },
            "multi:softprob" | "multi:softmax" => Self::Softmax { classes },
            _ => Self::Loss,
        }
    }
}

/// `common::Sigmoid(float)`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    const EPS: f32 = 1e-16;
    let x = (-x).min(88.7);
    1.0 / (x.exp() + 1.0 + EPS)
}

const CHUNK: usize = 1 << 14;

/// Gradients at `preds` (`rows x outputs`) into `out`.
pub fn gradient(
    formula: Formula,
    loss: &dyn Loss,
    preds: &[f32],
    meta: &MetaInfo<'_>,
    out: &mut [GradPair],
    iteration: usize,
) {
    let labels = meta.label_values();
    let weights = meta.weights;
    match formula {
        Formula::Loss => loss.gradient_info_at(preds, meta, out, iteration),
        Formula::Logistic { scale_pos_weight, .. } => {
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
                for (i, gp) in out.iter_mut().enumerate() {
                    let r = c * CHUNK + i;
                    let p = sigmoid(preds[r]);
                    let label = labels[r];
                    let mut w = weights.map_or(1.0, |w| w[r]);
                    if label == 1.0 {
                        w *= scale_pos_weight;
                    }
                    let hess = (p * (1.0 - p)).max(1e-16);
                    *gp = GradPair { grad: (p - label) * w, hess: hess * w };
                }
            });
        }
        Formula::Softmax { classes } => {
            out.par_chunks_mut(CHUNK * classes).enumerate().for_each(|(c, out)| {
                for (i, row) in out.chunks_mut(classes).enumerate() {
                    let r = c * CHUNK + i;
                    let point = &preds[r * classes..(r + 1) * classes];
                    // As XGBoost: the maximum starts from FLT_MIN, not -inf.
                    let wmax = point.iter().fold(f32::MIN_POSITIVE, |m, &v| v.max(m));
                    let wsum: f64 = point.iter().map(|&v| f64::from((v - wmax).exp())).sum();
                    let label = labels[r];
                    let wt = weights.map_or(1.0, |w| w[r]);
                    for (k, gp) in row.iter_mut().enumerate() {
                        let mut p = (point[k] - wmax).exp() / wsum as f32;
                        let h = (2.0 * p * (1.0 - p) * wt).max(1e-16);
                        if label == k as f32 {
                            p -= 1.0;
                        }
                        *gp = GradPair { grad: p * wt, hess: h };
                    }
                }
            });
        }
    }
}

/// Predictions as the metrics see them (`EvalTransform`), in place.
pub fn eval_transform(formula: Formula, loss: &dyn Loss, preds: &mut [f32]) {
    match formula {
        Formula::Logistic { transform: true, .. } => preds.par_iter_mut().for_each(|p| *p = sigmoid(*p)),
        Formula::Softmax { classes } => preds.par_chunks_mut(classes * 1024).for_each(|rows| {
            for point in rows.chunks_mut(classes) {
                softmax(point);
            }
        }),
        _ => loss.eval_transform(preds),
    }
}

/// Whether the metrics read the margins as they are (`EvalTransform` is the identity).
pub fn eval_is_identity(formula: Formula, objective: &str) -> bool {
    matches!(formula, Formula::Logistic { transform: false, .. })
        || matches!(formula, Formula::Loss)
            && matches!(objective, "reg:squarederror" | "reg:linear" | "reg:pseudohubererror" | "reg:squaredlogerror")
}

/// `common::Softmax`.
fn softmax(point: &mut [f32]) {
    let wmax = point[1..].iter().fold(point[0], |m, &v| v.max(m));
    let mut wsum = 0.0f64;
    for v in point.iter_mut() {
        *v = (*v - wmax).exp();
        wsum += f64::from(*v);
    }
    for v in point.iter_mut() {
        *v /= wsum as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_xgboosts() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-100.0), 1.0 / (88.7f32.exp() + 1.0));
    }
}

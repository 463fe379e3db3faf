//! Hyperparameter search for Tuning steps: SageMaker's Random, Grid and Bayesian strategies
//! over Continuous, Integer and Categorical ranges.
//!
//! Every candidate is a point of the unit cube, one coordinate per range; the range's scaling
//! maps the coordinate to a value. Bayesian search fits a Gaussian process (egobox-gp) to the
//! finished jobs and takes the candidate of highest expected improvement; jobs still running
//! count as their predicted mean ("constant liar"), so parallel jobs do not all pick one point.

use egobox_gp::GaussianProcess;
use egobox_gp::correlation_models::SquaredExponentialCorr;
use egobox_gp::mean_models::ConstantMean;
use linfa::prelude::*;
use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    Logarithmic,
    ReverseLogarithmic,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Continuous { name: String, min: f64, max: f64, scale: Scale },
    Integer { name: String, min: i64, max: i64, scale: Scale },
    Categorical { name: String, values: Vec<String> },
}

impl Range {
    pub fn name(&self) -> &str {
        match self {
            Self::Continuous { name, .. } | Self::Integer { name, .. } | Self::Categorical { name, .. } => name,
        }
    }

    /// The hyperparameter string for unit coordinate `u` in [0, 1].
    fn value(&self, u: f64) -> String {
        let u = u.clamp(0.0, 1.0);
        match self {
            Self::Continuous { min, max, scale, .. } => format_float(scaled(*min, *max, *scale, u)),
            Self::Integer { min, max, scale, .. } => {
                let v = scaled(*min as f64 - 0.5 + 1e-9, *max as f64 + 0.5 - 1e-9, *scale, u).round() as i64;
                v.clamp(*min, *max).to_string()
            }
            Self::Categorical { values, .. } => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
        }
    }
}

fn scaled(min: f64, max: f64, scale: Scale, u: f64) -> f64 {
    match scale {
        Scale::Linear => min + u * (max - min),
        Scale::Logarithmic => (min.ln() + u * (max.ln() - min.ln())).exp(),
        Scale::ReverseLogarithmic => 1.0 - ((1.0 - min).ln() + u * ((1.0 - max).ln() - (1.0 - min).ln())).exp(),
    }
}

/// Enough digits to round-trip, no more.
fn format_float(v: f64) -> String {
    let mut buffer = ryu::Buffer::new();
    buffer.format(v).to_string()
}

fn parse_scale(text: Option<&str>, min: f64, max: f64, name: &str) -> Result<Scale, String> {
    match text.unwrap_or("Auto") {
        "Linear" => Ok(Scale::Linear),
        "Logarithmic" if min > 0.0 => Ok(Scale::Logarithmic),
        "Logarithmic" => Err(format!("range `{name}`: Logarithmic scaling needs MinValue > 0")),
        "ReverseLogarithmic" if min >= 0.0 && max < 1.0 => Ok(Scale::ReverseLogarithmic),
        "ReverseLogarithmic" => {
            Err(format!("range `{name}`: ReverseLogarithmic scaling needs 0 <= MinValue and MaxValue < 1"))
        }
        // SageMaker does not document its Auto rule; a range over two or more orders of
        // magnitude of positive values is searched on a log scale, any other linearly.
        "Auto" if min > 0.0 && max / min >= 100.0 => Ok(Scale::Logarithmic),
        "Auto" => Ok(Scale::Linear),
        other => {
            Err(format!("range `{name}`: ScalingType `{other}` is not Auto, Linear, Logarithmic or ReverseLogarithmic"))
        }
    }
}

/// The ranges of `HyperParameterTuningJobConfig.ParameterRanges` (values already resolved).
pub fn parse_ranges(ranges: &Value) -> Result<Vec<Range>, String> {
    let mut out = Vec::new();
    let number = |r: &Value, key: &str, name: &str| -> Result<f64, String> {
        let v = r.get(key).ok_or_else(|| format!("range `{name}` needs {key}"))?;
        match v {
            Value::String(s) => s.trim().parse().map_err(|_| format!("range `{name}`: {key} `{s}` is not a number")),
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("range `{name}`: {key} is not a number")),
            _ => Err(format!("range `{name}`: {key} is not a number")),
        }
    };
    for (key, kind) in
        [("ContinuousParameterRanges", 0), ("IntegerParameterRanges", 1), ("CategoricalParameterRanges", 2)]
    {
        for r in ranges.get(key).and_then(Value::as_array).into_iter().flatten() {
            let name =
                r.get("Name").and_then(Value::as_str).ok_or_else(|| format!("a {key} entry needs a Name"))?.to_string();
            if kind == 2 {
                let values: Vec<String> = r
                    .get("Values")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().map(super::expr::to_text).collect())
                    .unwrap_or_default();
                if values.is_empty() {
                    return Err(format!("categorical range `{name}` has no Values"));
                }
                out.push(Range::Categorical { name, values });
                continue;
            }
            let (min, max) = (number(r, "MinValue", &name)?, number(r, "MaxValue", &name)?);
            if min.partial_cmp(&max).is_none_or(|o| o.is_gt()) {
                return Err(format!("range `{name}`: MinValue {min} is above MaxValue {max}"));
            }
            let scale = parse_scale(r.get("ScalingType").and_then(Value::as_str), min, max, &name)?;
            out.push(if kind == 0 {
                Range::Continuous { name, min, max, scale }
            } else {
                if min.fract() != 0.0 || max.fract() != 0.0 {
                    return Err(format!("integer range `{name}`: MinValue and MaxValue must be integers"));
                }
                Range::Integer { name, min: min as i64, max: max as i64, scale }
            });
        }
    }
    if out.is_empty() {
        return Err("ParameterRanges declares no range to tune".into());
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Random,
    Grid,
    Bayesian,
}

impl Strategy {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "Random" => Ok(Self::Random),
            "Grid" => Ok(Self::Grid),
            "Bayesian" => Ok(Self::Bayesian),
            "Hyperband" => Err("the Hyperband strategy stops jobs early from their intermediate metrics; the local runner does not run it (use Bayesian or Random)".into()),
            other => Err(format!("Strategy `{other}` is not Bayesian, Random, Grid or Hyperband")),
        }
    }
}

/// A point of the unit cube and the hyperparameter strings it stands for.
pub type Suggestion = (Vec<f64>, Vec<(String, String)>);

/// Proposes training jobs' hyperparameters, one at a time, and learns from their results.
pub struct Tuner {
    ranges: Vec<Range>,
    strategy: Strategy,
    rng: ChaCha8Rng,
    /// (point, objective to minimise) of finished jobs.
    observed: Vec<(Vec<f64>, f64)>,
    pending: Vec<Vec<f64>>,
    grid: Vec<Vec<f64>>,
}

impl Tuner {
    pub fn new(ranges: Vec<Range>, strategy: Strategy, seed: u64) -> Result<Self, String> {
        let grid = if strategy == Strategy::Grid { grid_points(&ranges)? } else { Vec::new() };
        Ok(Self {
            ranges,
            strategy,
            rng: ChaCha8Rng::seed_from_u64(seed),
            observed: Vec::new(),
            pending: Vec::new(),
            grid,
        })
    }

    /// How many jobs the search can use at most (the grid's size for Grid).
    pub fn capacity(&self) -> Option<usize> {
        (self.strategy == Strategy::Grid).then_some(self.grid.len())
    }

    /// The next point to try and its hyperparameters, or `None` when the grid is done.
    pub fn suggest(&mut self) -> Option<Suggestion> {
        let point = match self.strategy {
            Strategy::Grid => {
                if self.grid.is_empty() {
                    return None;
                }
                self.grid.remove(0)
            }
            Strategy::Random => self.random_point(),
            Strategy::Bayesian => self.bayesian_point(),
        };
        self.pending.push(point.clone());
        let values = self.ranges.iter().zip(&point).map(|(r, u)| (r.name().to_string(), r.value(*u))).collect();
        Some((point, values))
    }

    /// Record a job's result: `Some(objective)` to minimise, `None` if it failed.
    pub fn observe(&mut self, point: &[f64], objective: Option<f64>) {
        if let Some(at) = self.pending.iter().position(|p| p == point) {
            self.pending.remove(at);
        }
        if let Some(y) = objective.filter(|y| y.is_finite()) {
            self.observed.push((point.to_vec(), y));
        }
    }

    fn random_point(&mut self) -> Vec<f64> {
        (0..self.ranges.len()).map(|_| self.rng.random::<f64>()).collect()
    }

    fn bayesian_point(&mut self) -> Vec<f64> {
        let dims = self.ranges.len();
        // A few random points first: a surrogate needs data to stand on.
        if self.observed.len() < (dims + 1).max(3) {
            return self.random_point();
        }
        match self.expected_improvement_argmax() {
            Ok(point) => point,
            Err(reason) => {
                tracing::warn!("Bayesian search fell back to a random point: {reason}");
                self.random_point()
            }
        }
    }

    fn expected_improvement_argmax(&mut self) -> Result<Vec<f64>, String> {
        let dims = self.ranges.len();
        let ys: Vec<f64> = self.observed.iter().map(|(_, y)| *y).collect();
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        let std = (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / ys.len() as f64).sqrt().max(1e-12);
        let mut rows: Vec<(Vec<f64>, f64)> = self.observed.iter().map(|(x, y)| (x.clone(), (y - mean) / std)).collect();
        // Constant liar: running jobs are assumed to score the mean.
        rows.extend(self.pending.iter().map(|x| (x.clone(), 0.0)));
        let x = Array2::from_shape_vec((rows.len(), dims), rows.iter().flat_map(|(x, _)| x.clone()).collect())
            .map_err(|e| e.to_string())?;
        let y = Array1::from_iter(rows.iter().map(|(_, y)| *y));
        let gp = GaussianProcess::<f64, ConstantMean, SquaredExponentialCorr>::params(
            ConstantMean::default(),
            SquaredExponentialCorr::default(),
        )
        .fit(&Dataset::new(x, y))
        .map_err(|e| format!("the Gaussian process did not fit: {e}"))?;
        let best = rows.iter().map(|(_, y)| *y).fold(f64::INFINITY, f64::min);
        let best_point =
            self.observed.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|(x, _)| x.clone()).unwrap_or_default();
        const CANDIDATES: usize = 2048;
        let mut candidates = Vec::with_capacity(CANDIDATES * dims);
        for i in 0..CANDIDATES {
            for centre in &best_point {
                // Half global, half near the best point so far.
                let u = if i % 2 == 0 {
                    self.rng.random::<f64>()
                } else {
                    (centre + (self.rng.random::<f64>() - 0.5) * 0.2).clamp(0.0, 1.0)
                };
                candidates.push(u);
            }
        }
        let candidates = Array2::from_shape_vec((CANDIDATES, dims), candidates).map_err(|e| e.to_string())?;
        let mu = gp.predict(&candidates).map_err(|e| e.to_string())?;
        let var = gp.predict_var(&candidates).map_err(|e| e.to_string())?;
        let mut best_at = 0;
        let mut best_ei = f64::NEG_INFINITY;
        for i in 0..CANDIDATES {
            let ei = expected_improvement(best, mu[i], var[i].max(0.0).sqrt());
            if ei > best_ei {
                best_ei = ei;
                best_at = i;
            }
        }
        Ok(candidates.row(best_at).to_vec())
    }
}

/// Expected improvement below `best` of a normal(mu, sigma) outcome (minimisation).
pub fn expected_improvement(best: f64, mu: f64, sigma: f64) -> f64 {
    const XI: f64 = 0.01;
    let gain = best - mu - XI;
    if sigma < 1e-12 {
        return gain.max(0.0);
    }
    let z = gain / sigma;
    gain * normal_cdf(z) + sigma * normal_pdf(z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// Abramowitz and Stegun 7.1.26 (error below 1.5e-7), enough to rank candidates.
fn erf(x: f64) -> f64 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

fn grid_points(ranges: &[Range]) -> Result<Vec<Vec<f64>>, String> {
    let mut axes = Vec::new();
    for range in ranges {
        let count = match range {
            Range::Categorical { values, .. } => values.len(),
            Range::Integer { min, max, .. } => (max - min + 1) as usize,
            Range::Continuous { name, .. } => {
                return Err(format!("Grid search takes categorical and integer ranges only; `{name}` is continuous"));
            }
        };
        // The centre of each cell maps back to that value.
        let axis: Vec<f64> = match range {
            Range::Integer { min, max, .. } if min == max => vec![0.5],
            Range::Integer { .. } => (0..count).map(|i| i as f64 / (count - 1) as f64).collect(),
            _ => (0..count).map(|i| (i as f64 + 0.5) / count as f64).collect(),
        };
        axes.push(axis);
    }
    let mut points = vec![Vec::new()];
    for axis in axes {
        points = points.into_iter().flat_map(|p| axis.iter().map(move |u| [p.clone(), vec![*u]].concat())).collect();
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scales_map_the_unit_interval_onto_the_range() {
        assert!((scaled(0.01, 10.0, Scale::Logarithmic, 0.5) - 0.316_227_766).abs() < 1e-6);
        assert!((scaled(0.01, 10.0, Scale::Logarithmic, 0.0) - 0.01).abs() < 1e-12);
        assert!((scaled(0.9, 0.999, Scale::ReverseLogarithmic, 1.0) - 0.999).abs() < 1e-9);
        let r = Range::Integer { name: "d".into(), min: 1, max: 3, scale: Scale::Linear };
        assert_eq!((r.value(0.0), r.value(0.5), r.value(1.0)), ("1".into(), "2".into(), "3".into()));
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        let ranges = json!({"ContinuousParameterRanges": [{"Name": "alpha", "MinValue": "0.01", "MaxValue": "10", "ScalingType": "Logarithmic"}],
                            "CategoricalParameterRanges": [{"Name": "o", "Values": ["a", "b"]}]});
        assert_eq!(parse_ranges(&ranges).unwrap().len(), 2);
        let bad = json!({"ContinuousParameterRanges": [{"Name": "a", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}]});
        assert!(parse_ranges(&bad).unwrap_err().contains("MinValue > 0"));
        assert!(parse_ranges(&json!({})).is_err());
    }

    #[test]
    fn grid_covers_every_combination() {
        let ranges = vec![
            Range::Categorical { name: "o".into(), values: vec!["a".into(), "b".into()] },
            Range::Integer { name: "d".into(), min: 3, max: 5, scale: Scale::Linear },
        ];
        let mut tuner = Tuner::new(ranges, Strategy::Grid, 1).unwrap();
        assert_eq!(tuner.capacity(), Some(6));
        let mut seen = Vec::new();
        while let Some((_, values)) = tuner.suggest() {
            seen.push(format!("{}{}", values[0].1, values[1].1));
        }
        assert_eq!(seen, ["a3", "a4", "a5", "b3", "b4", "b5"]);
    }

    #[test]
    fn bayesian_search_finds_a_quadratic_minimum() {
        let ranges = vec![Range::Continuous { name: "x".into(), min: -5.0, max: 5.0, scale: Scale::Linear }];
        let mut tuner = Tuner::new(ranges, Strategy::Bayesian, 7).unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..15 {
            let (point, values) = tuner.suggest().unwrap();
            let x: f64 = values[0].1.parse().unwrap();
            let y = (x - 1.3).powi(2);
            best = best.min(y);
            tuner.observe(&point, Some(y));
        }
        assert!(best < 0.05, "best {best}");
    }
}

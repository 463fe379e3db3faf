//! The hist trainer across hosts (data-parallel): every host holds its own rows; what the
//! trees are grown from is summed over every host in fixed point, so the sums, and the model,
//! do not depend on how rows fall to hosts or on how many hosts there are.
//!
//! Per tree, each host's gradients are scaled by a power of two chosen from the largest
//! gradient on any host and rounded to integers; histograms, the root sum and metric sums are
//! integer sums (exact in any order), exchanged once per tree level, and turned back into
//! f64 the same way on every host. A world of one running this path gives the same model as
//! any number of hosts; it is not XGBoost's single-host arithmetic (which sums f64 in row
//! order), so a one-host job keeps that one.

use rayon::prelude::*;

use super::cuts::Cuts;
use super::evaluate::Stats;
use super::grow::HistogramSource;
use super::histogram::{self, IntSums};
use super::matrix::BinnedMatrix;
use crate::cluster::{ClusterError, Collective};
use hessboost::objective::GradPair;

/// Bits of an integer gradient: |q| <= 2^30, so sums of 2^33 rows fit in an i64.
const GRADIENT_BITS: i32 = 30;

/// A power of two that maps the largest magnitude `max` to at most 2^bits.
fn scale_for(max: f64, bits: i32) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    2f64.powi(bits - max.log2().ceil() as i32)
}

/// One host's gradients in fixed point, and the scales shared by every host.
pub struct QuantizedSums<'a> {
    pub matrix: &'a BinnedMatrix,
    pub cuts: &'a Cuts,
    /// `(g, h)` per row, times the scales, rounded.
    q: Vec<(i32, i32)>,
    scale: (f64, f64),
    pub cluster: &'a dyn Collective,
}

impl<'a> QuantizedSums<'a> {
    /// Quantize `gpair` with scales agreed by every host.
    pub fn new(
        matrix: &'a BinnedMatrix,
        cuts: &'a Cuts,
        gpair: &[GradPair],
        cluster: &'a dyn Collective,
    ) -> Result<Self, ClusterError> {
        let (mg, mh) = gpair
            .par_iter()
            .map(|p| (f64::from(p.grad.abs()), f64::from(p.hess.abs())))
            .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        let mut max = [mg, mh];
        cluster.allreduce_max(&mut max)?;
        let scale = (scale_for(max[0], GRADIENT_BITS), scale_for(max[1], GRADIENT_BITS));
        let q = gpair
            .par_iter()
            .map(|p| ((f64::from(p.grad) * scale.0).round() as i32, (f64::from(p.hess) * scale.1).round() as i32))
            .collect();
        Ok(Self { matrix, cuts, q, scale, cluster })
    }

    fn to_stats(&self, g: i64, h: i64) -> Stats {
        Stats { g: g as f64 / self.scale.0, h: h as f64 / self.scale.1 }
    }

    /// One node's integer histogram (`2 x bins`: g then h per bin), built by the
    /// single-host loops (cores split the features); integer sums, so the bits do not
    /// depend on how the work is split.
    fn local(&self, rows: &[u32]) -> Vec<i64> {
        let sums: Vec<IntSums> = histogram::build(self.matrix, &self.cuts.ptrs, &self.q, rows, self.cuts.total_bins());
        sums.iter().flat_map(|s| [s.g, s.h]).collect()
    }
}

impl HistogramSource for QuantizedSums<'_> {
    fn histograms(&self, nodes: &[&[u32]]) -> Result<Vec<Vec<Stats>>, ClusterError> {
        let bins = self.cuts.total_bins();
        let mut flat: Vec<i64> = nodes.par_iter().map(|rows| self.local(rows)).flatten().collect();
        tracing::trace!(nodes = nodes.len(), bytes = flat.len() * 8, "a level's histograms");
        self.cluster.allreduce_sum(&mut flat)?;
        Ok(flat.chunks(2 * bins).map(|h| h.chunks_exact(2).map(|c| self.to_stats(c[0], c[1])).collect()).collect())
    }

    fn root_sum(&self, _root: &[Stats]) -> Result<Stats, ClusterError> {
        let (g, h) = self
            .q
            .par_iter()
            .map(|&(g, h)| (i64::from(g), i64::from(h)))
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let mut sums = [g, h];
        self.cluster.allreduce_sum(&mut sums)?;
        Ok(self.to_stats(sums[0], sums[1]))
    }
}

/// Sums over every host's rows of two terms per row (`term(row)`), order-free: each term
/// is scaled by a power of two agreed from the largest term and the total row count, and
/// rounded to an integer. Two passes over the rows, no buffer.
pub fn global_sums(
    cluster: &dyn Collective,
    rows: usize,
    term: impl Fn(usize) -> [f64; 2] + Sync,
) -> Result<[f64; 2], ClusterError> {
    let local_max = (0..rows)
        .into_par_iter()
        .map(|r| term(r).map(f64::abs))
        .reduce(|| [0.0; 2], |a, b| [a[0].max(b[0]), a[1].max(b[1])]);
    let mut max = local_max.to_vec();
    let mut count = [rows as i64];
    cluster.allreduce_max(&mut max)?;
    cluster.allreduce_sum(&mut count)?;
    // |term| * scale * count < 2^62.
    let headroom = 62 - (count[0].max(1) as f64).log2().ceil() as i32;
    let scales = [scale_for(max[0], headroom), scale_for(max[1], headroom)];
    let local = (0..rows)
        .into_par_iter()
        .map(|r| {
            let t = term(r);
            [(t[0] * scales[0]).round() as i64, (t[1] * scales[1]).round() as i64]
        })
        .reduce(|| [0; 2], |a, b| [a[0] + b[0], a[1] + b[1]]);
    let mut sums = local.to_vec();
    cluster.allreduce_sum(&mut sums)?;
    Ok([sums[0] as f64 / scales[0], sums[1] as f64 / scales[1]])
}

/// The intercept from every host's rows: one Newton step from zero margins per output
/// (XGBoost's `FitStump`), the sums order-free, then through the objective's link and back
/// as XGBoost stores it.
pub fn intercept(
    loss: &dyn hessboost::objective::Loss,
    meta: &hessboost::data::MetaInfo<'_>,
    rows: usize,
    groups: usize,
    cluster: &dyn Collective,
) -> Result<Vec<f32>, ClusterError> {
    let zeros = vec![0.0f32; rows * groups];
    let mut gpair = vec![GradPair { grad: 0.0, hess: 0.0 }; rows * groups];
    if rows > 0 {
        loss.gradient_info(&zeros, meta, &mut gpair);
    }
    let mut margins = Vec::with_capacity(groups);
    for k in 0..groups {
        let [g, h] = global_sums(cluster, rows, |r| {
            let p = gpair[r * groups + k];
            [f64::from(p.grad), f64::from(p.hess)]
        })?;
        margins.push((-g / h.max(1e-6)) as f32);
    }
    if groups == 1 {
        loss.margins_to_probs(&mut margins);
        loss.probs_to_margins(&mut margins);
    }
    Ok(margins)
}

/// True on every host when any host was asked to stop.
pub fn any(cluster: &dyn Collective, local: bool) -> Result<bool, ClusterError> {
    let mut flag = [i64::from(local)];
    cluster.allreduce_sum(&mut flag)?;
    Ok(flag[0] > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Local;

    #[test]
    fn scales_keep_gradients_within_the_bits() {
        let s = scale_for(3.7, 30);
        assert!(3.7 * s <= 2f64.powi(30) && 3.7 * s > 2f64.powi(29));
        assert_eq!(scale_for(0.0, 30), 1.0);
    }

    #[test]
    fn global_sums_do_not_depend_on_the_order() {
        let a: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin() * 1e3).collect();
        let forward = global_sums(&Local, a.len(), |r| [a[r], 1.0]).unwrap();
        let backward = global_sums(&Local, a.len(), |r| [a[a.len() - 1 - r], 1.0]).unwrap();
        assert_eq!(forward[0].to_bits(), backward[0].to_bits());
        assert!((forward[0] - a.iter().sum::<f64>()).abs() < 1e-9);
        assert_eq!(forward[1], 1000.0);
    }
}

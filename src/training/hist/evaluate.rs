//! Split finding on histograms, with XGBoost's arithmetic (`src/tree/param.h`,
//! `split_evaluator.h`, `hist/evaluate_splits.h`): gradient sums in f64, weights and gains
//! rounded to f32 where XGBoost rounds them, forward and backward scans for missing values,
//! and XGBoost's tie-breaking, so that equal histograms give XGBoost's splits.

use super::cuts::Cuts;

/// XGBoost's `kRtEps`: a split must gain more than this.
pub const RT_EPS: f32 = 1e-6;

/// The tree parameters XGBoost keeps as `float` (`TrainParam`).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeParams {
    pub eta: f32,
    pub gamma: f32,
    /// 0 = unlimited.
    pub max_depth: u32,
    /// 0 = unlimited.
    pub max_leaves: u32,
    pub min_child_weight: f32,
    pub max_delta_step: f32,
    pub lambda: f32,
    pub alpha: f32,
    pub lossguide: bool,
    /// Per feature (compact index): -1, 0 or 1.
    pub monotone: Vec<i8>,
    pub colsample_bytree: f32,
    pub colsample_bylevel: f32,
    pub colsample_bynode: f32,
}

/// Gradient statistics of a set of rows (`GradStats`, f64).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub g: f64,
    pub h: f64,
}

impl Stats {
    #[inline(always)]
    pub fn add(&mut self, g: f64, h: f64) {
        self.g += g;
        self.h += h;
    }

    #[inline(always)]
    pub fn minus(a: Stats, b: Stats) -> Stats {
        Stats { g: a.g - b.g, h: a.h - b.h }
    }
}

fn threshold_l1(w: f64, alpha: f32) -> f64 {
    let alpha = f64::from(alpha);
    if w > alpha {
        w - alpha
    } else if w < -alpha {
        w + alpha
    } else {
        0.0
    }
}

impl TreeParams {
    /// `tree::CalcWeight<double>`.
    pub fn calc_weight(&self, s: Stats) -> f64 {
        if s.h < f64::from(self.min_child_weight) || s.h <= 0.0 {
            return 0.0;
        }
        let mut dw = -threshold_l1(s.g, self.alpha) / (s.h + f64::from(self.lambda));
        if self.max_delta_step != 0.0 && dw.abs() > f64::from(self.max_delta_step) {
            dw = f64::from(self.max_delta_step).copysign(dw);
        }
        dw
    }
}

/// A split candidate (`SplitEntry`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    pub loss_chg: f32,
    /// Feature in the low 31 bits, default-left in bit 31.
    pub sindex: u32,
    pub value: f32,
    /// Rows with a bin at or below this (feature-local) bin go left; -1 is the min value.
    pub bin: i32,
    pub left: Stats,
    pub right: Stats,
}

impl Default for Split {
    fn default() -> Self {
        Self { loss_chg: 0.0, sindex: 0, value: 0.0, bin: 0, left: Stats::default(), right: Stats::default() }
    }
}

impl Split {
    pub fn feature(&self) -> usize {
        (self.sindex & ((1 << 31) - 1)) as usize
    }

    pub fn default_left(&self) -> bool {
        self.sindex >> 31 != 0
    }

    /// `NeedReplace`: larger gain wins; on equal gain the lower feature index.
    // XGBoost's own `!(loss_chg > new)`, kept as written: with a NaN gain it replaces, as there.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn need_replace(&self, new_loss_chg: f32, feature: u32) -> bool {
        if new_loss_chg.is_infinite() {
            false
        } else if self.feature() as u32 <= feature {
            new_loss_chg > self.loss_chg
        } else {
            !(self.loss_chg > new_loss_chg)
        }
    }

    pub fn update(&mut self, e: &Split) -> bool {
        if self.need_replace(e.loss_chg, e.feature() as u32) {
            *self = *e;
            true
        } else {
            false
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn offer(
        &mut self,
        loss_chg: f32,
        feature: u32,
        value: f32,
        bin: i32,
        default_left: bool,
        left: Stats,
        right: Stats,
    ) {
        if self.need_replace(loss_chg, feature) {
            let sindex = if default_left { feature | (1 << 31) } else { feature };
            *self = Split { loss_chg, sindex, value, bin, left, right };
        }
    }
}

/// Per-node weight bounds from monotone constraints (`TreeEvaluator`).
#[derive(Debug, Clone)]
pub struct Evaluator {
    has_constraint: bool,
    lower: Vec<f32>,
    upper: Vec<f32>,
}

impl Evaluator {
    pub fn new(params: &TreeParams) -> Self {
        Self { has_constraint: params.monotone.iter().any(|&c| c != 0), lower: vec![-f32::MAX], upper: vec![f32::MAX] }
    }

    /// `SplitEvaluator::CalcWeight`: XGBoost's weight, clamped to the node's bounds.
    pub fn weight(&self, p: &TreeParams, nid: usize, s: Stats) -> f32 {
        let w = p.calc_weight(s) as f32;
        if !self.has_constraint {
            return w;
        }
        if w < self.lower[nid] {
            self.lower[nid]
        } else if w > self.upper[nid] {
            self.upper[nid]
        } else {
            w
        }
    }

    /// `SplitEvaluator::CalcGainGivenWeight`.
    fn gain_given_weight(&self, p: &TreeParams, s: Stats, w: f32) -> f32 {
        if s.h <= 0.0 {
            return 0.0;
        }
        if p.max_delta_step == 0.0 && !self.has_constraint {
            let t = threshold_l1(s.g, p.alpha);
            return (t * t) as f32 / (s.h + f64::from(p.lambda)) as f32;
        }
        let (g, h) = (s.g as f32, s.h as f32);
        -(2.0f32 * g * w + (h + p.lambda) * (w * w))
    }

    /// `SplitEvaluator::CalcGain`.
    pub fn gain(&self, p: &TreeParams, nid: usize, s: Stats) -> f32 {
        self.gain_given_weight(p, s, self.weight(p, nid, s))
    }

    /// `SplitEvaluator::CalcSplitGain`.
    fn split_gain(&self, p: &TreeParams, nid: usize, feature: usize, left: Stats, right: Stats) -> f32 {
        let wl = self.weight(p, nid, left);
        let wr = self.weight(p, nid, right);
        let gain = self.gain_given_weight(p, left, wl) + self.gain_given_weight(p, right, wr);
        match p.monotone.get(feature).copied().unwrap_or(0) {
            c if !self.has_constraint || c == 0 => gain,
            c if c > 0 => {
                if wl <= wr {
                    gain
                } else {
                    f32::NEG_INFINITY
                }
            }
            _ => {
                if wl >= wr {
                    gain
                } else {
                    f32::NEG_INFINITY
                }
            }
        }
    }

    /// `TreeEvaluator::AddSplit`: the children inherit the bounds, narrowed at the midpoint.
    pub fn add_split(
        &mut self,
        p: &TreeParams,
        nid: usize,
        (left, right): (usize, usize),
        feature: usize,
        (wl, wr): (f32, f32),
    ) {
        if !self.has_constraint {
            return;
        }
        let size = left.max(right) + 1;
        if self.lower.len() < size {
            self.lower.resize(size, -f32::MAX);
            self.upper.resize(size, f32::MAX);
        }
        let (lo, hi) = (self.lower[nid], self.upper[nid]);
        self.lower[left] = lo;
        self.upper[left] = hi;
        self.lower[right] = lo;
        self.upper[right] = hi;
        let mid = (wl + wr) / 2.0;
        match p.monotone.get(feature).copied().unwrap_or(0) {
            c if c < 0 => {
                self.lower[left] = mid;
                self.upper[right] = mid;
            }
            c if c > 0 => {
                self.upper[left] = mid;
                self.lower[right] = mid;
            }
            _ => {}
        }
    }
}

/// A node's gradient sum and the gain of leaving it unsplit.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeEntry {
    pub stats: Stats,
    pub root_gain: f32,
}

/// The best split of one node over `features`, from its histogram (`HistEvaluator`).
pub fn best_split(
    p: &TreeParams,
    ev: &Evaluator,
    cuts: &Cuts,
    nid: usize,
    node: &NodeEntry,
    hist: &[Stats],
    features: &[u32],
) -> Split {
    let mut best = Split::default();
    let valid = |l: &Stats, r: &Stats| l.h >= f64::from(p.min_child_weight) && r.h >= f64::from(p.min_child_weight);
    for &f in features {
        let fidx = f as usize;
        let range = cuts.feature_range(fidx);
        let values = &cuts.values;
        // Forward: missing values go right.
        let mut local = Split::default();
        let mut left = Stats::default();
        for i in range.clone() {
            left.add(hist[i].g, hist[i].h);
            let right = Stats::minus(node.stats, left);
            if valid(&left, &right) {
                let loss = ev.split_gain(p, nid, fidx, left, right) - node.root_gain;
                local.offer(loss, f, values[i], (i - range.start) as i32, false, left, right);
            }
        }
        best.update(&local);
        if left.g == node.stats.g && left.h == node.stats.h {
            continue;
        }
        // Backward: missing values go left.
        let mut local = Split::default();
        let mut upper = Stats::default();
        for i in range.clone().rev() {
            upper.add(hist[i].g, hist[i].h);
            let lower = Stats::minus(node.stats, upper);
            if valid(&upper, &lower) {
                let loss = ev.split_gain(p, nid, fidx, lower, upper) - node.root_gain;
                let value = if i == range.start { cuts.min_values[fidx] } else { values[i - 1] };
                local.offer(loss, f, value, (i - range.start) as i32 - 1, true, lower, upper);
            }
        }
        best.update(&local);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TreeParams {
        TreeParams {
            eta: 0.3,
            gamma: 0.0,
            max_depth: 6,
            max_leaves: 0,
            min_child_weight: 1.0,
            max_delta_step: 0.0,
            lambda: 1.0,
            alpha: 0.0,
            lossguide: false,
            monotone: Vec::new(),
            colsample_bytree: 1.0,
            colsample_bylevel: 1.0,
            colsample_bynode: 1.0,
        }
    }

    #[test]
    fn ties_go_to_the_lower_feature_and_the_first_bin() {
        let mut best = Split::default();
        best.offer(2.0, 3, 0.5, 0, false, Stats::default(), Stats::default());
        best.offer(2.0, 3, 0.7, 1, false, Stats::default(), Stats::default());
        assert_eq!(best.value, 0.5, "within a feature, the first of equal gains");
        let mut other = Split::default();
        other.offer(2.0, 1, 0.9, 0, true, Stats::default(), Stats::default());
        assert!(best.update(&other), "a lower feature wins a tie");
        assert!(best.default_left() && best.feature() == 1);
    }

    #[test]
    fn a_clear_split_is_found_with_missing_values_sent_the_better_way() {
        // One feature, 3 bins; the node also holds rows missing the feature.
        let mut cuts = Cuts::builder(1);
        cuts.ptrs = vec![0, 3];
        cuts.values = vec![1.0, 2.0, 3.0];
        cuts.min_values = vec![-1.0];
        let hist = [Stats { g: -10.0, h: 10.0 }, Stats { g: -9.0, h: 10.0 }, Stats { g: 10.0, h: 10.0 }];
        // Missing rows look like the last bin.
        let total = Stats { g: -9.0 + 10.0 - 10.0 + 10.0, h: 40.0 };
        let p = params();
        let ev = Evaluator::new(&p);
        let node = NodeEntry { stats: total, root_gain: ev.gain(&p, 0, total) };
        let best = best_split(&p, &ev, &cuts, 0, &node, &hist, &[0]);
        assert_eq!((best.bin, best.value, best.default_left()), (1, 2.0, false));
        assert!(best.loss_chg > 0.0);
    }
}

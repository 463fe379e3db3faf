//! Row and column sampling. XGBoost draws from its own generator, which is not reproduced:
//! the rules are XGBoost's (`ColumnSampler`: a tree set, a set per depth drawn from it, a set
//! per node drawn from that; `n = max(1, floor(colsample * size))`, sorted; uniform row
//! sampling zeroes the gradient of each row left out), the draws are ours. Row draws hash the
//! seed, the tree and the row, so they do not depend on threads or on how rows are split
//! across hosts.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use hessboost::objective::GradPair;

/// Feature sets for one tree.
pub struct ColumnSampler {
    rng: ChaCha8Rng,
    bylevel: f32,
    bynode: f32,
    tree_set: Vec<u32>,
    levels: Vec<Option<Vec<u32>>>,
}

fn sample(rng: &mut ChaCha8Rng, from: &[u32], fraction: f32) -> Vec<u32> {
    if fraction == 1.0 {
        return from.to_vec();
    }
    let n = ((fraction * from.len() as f32) as usize).max(1);
    let mut picked = from.to_vec();
    picked.shuffle(rng);
    picked.truncate(n);
    picked.sort_unstable();
    picked
}

impl ColumnSampler {
    /// A sampler for the tree numbered `tree` of a training seeded with `seed`.
    pub fn new(features: usize, seed: u64, tree: u64, bytree: f32, bylevel: f32, bynode: f32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ tree.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let all: Vec<u32> = (0..features as u32).collect();
        let tree_set = sample(&mut rng, &all, bytree);
        Self { rng, bylevel, bynode, tree_set, levels: Vec::new() }
    }

    /// `GetFeatureSet(depth)`: the features a node at `depth` may split on.
    pub fn features(&mut self, depth: u32) -> Vec<u32> {
        if self.bylevel == 1.0 && self.bynode == 1.0 {
            return self.tree_set.clone();
        }
        let d = depth as usize;
        if self.levels.len() <= d {
            self.levels.resize(d + 1, None);
        }
        if self.levels[d].is_none() {
            self.levels[d] = Some(sample(&mut self.rng, &self.tree_set, self.bylevel));
        }
        let level = self.levels[d].as_ref().expect("drawn above");
        if self.bynode == 1.0 {
            return level.clone();
        }
        let level = level.clone();
        sample(&mut self.rng, &level, self.bynode)
    }
}

/// SplitMix64: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform row sampling: each row is kept with probability `subsample`, drawn from
/// `(seed, tree, row id)`; a row left out gets a zero gradient.
pub fn subsample_rows(gpair: &mut [GradPair], row_ids: impl Fn(usize) -> u64, subsample: f32, seed: u64, tree: u64) {
    if subsample >= 1.0 {
        return;
    }
    let threshold = (f64::from(subsample) * (u64::MAX as f64)) as u64;
    let key = mix(seed ^ mix(tree));
    for (r, gp) in gpair.iter_mut().enumerate() {
        if mix(key ^ row_ids(r)) >= threshold {
            *gp = GradPair { grad: 0.0, hess: 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_sets_shrink_as_xgboost_sizes_them() {
        let mut s = ColumnSampler::new(10, 1, 0, 0.5, 0.5, 1.0);
        assert_eq!(s.tree_set.len(), 5);
        let level = s.features(0);
        assert_eq!(level.len(), 2);
        assert_eq!(s.features(0), level, "one set per depth");
        assert!(level.is_sorted() && level.iter().all(|f| s.tree_set.contains(f)));
        let mut one = ColumnSampler::new(3, 1, 0, 0.1, 1.0, 1.0);
        assert_eq!(one.features(0).len(), 1, "at least one feature");
    }

    #[test]
    fn row_sampling_keeps_about_the_fraction() {
        let mut g = vec![GradPair { grad: 1.0, hess: 1.0 }; 100_000];
        subsample_rows(&mut g, |r| r as u64, 0.3, 7, 0);
        let kept = g.iter().filter(|p| p.hess != 0.0).count();
        assert!((29_000..31_000).contains(&kept), "{kept}");
    }
}

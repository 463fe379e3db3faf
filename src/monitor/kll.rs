//! Deequ's KLL sketch (`QuantileNonSample` with `NonSampleCompactor`, Deequ 2.0.2), which
//! Model Monitor writes as `distribution.kll`: the same compactor levels item for item when
//! the values arrive in the same order on one partition.
//!
//! - Level `h` holds items of weight `2^h` and has room for `2 * (ceil(k * c^h / 2) + 1)`.
//! - An update appends to level 0; when the sketch holds more than the sum of the rooms, the
//!   lowest level at or over its room is compacted: its items but an odd last one are sorted and
//!   every other one moves up a level, starting at an offset that alternates 0, 1, 1, 0, 0, ...
//!   (flipped before every odd-numbered compaction).
//! - Buckets: `B = 10` equal-width buckets over `[min, max]`; bucket `i` counts
//!   `rank_exclusive(hi) - rank_exclusive(lo)`, the last `rank(hi) - rank_exclusive(lo)`.

use std::cmp::Ordering;

/// Deequ's `KLLSketch.DEFAULT_SKETCH_SIZE`.
pub const SKETCH_SIZE: u32 = 2048;
/// Deequ's `KLLSketch.DEFAULT_SHRINKING_FACTOR`.
pub const SHRINKING_FACTOR: f64 = 0.64;
/// Model Monitor's bucket count (fixed, per its documentation).
pub const BUCKETS: u32 = 10;
/// Weights are `2^level` in a `u64`; a sketch read from a file may not claim more levels.
pub const MAX_LEVELS: usize = 62;

#[derive(Debug, Clone, Default)]
struct Compactor {
    items: Vec<f64>,
    compactions: u32,
    offset: usize,
}

impl Compactor {
    /// Half the items (every other one of the sorted even part), leaving an odd last item.
    fn compact(&mut self) -> Vec<f64> {
        let items = self.items.len();
        let even = items - items % 2;
        if self.compactions % 2 == 1 {
            self.offset = 1 - self.offset;
        }
        let tail = (items % 2 == 1).then(|| self.items[items - 1]);
        let sorted = &mut self.items[..even];
        sorted.sort_unstable_by(f64::total_cmp);
        let output = sorted.iter().skip(self.offset).step_by(2).copied().collect();
        self.items.clear();
        self.items.extend(tail);
        self.compactions += 1;
        output
    }
}

/// A KLL sketch of finite `f64` values.
#[derive(Debug, Clone)]
pub struct Sketch {
    k: u32,
    c: f64,
    levels: Vec<Compactor>,
    /// Items held, and the sum of the levels' rooms.
    size: usize,
    room: usize,
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new()
    }
}

impl Sketch {
    /// An empty sketch with Deequ's parameters.
    pub fn new() -> Self {
        let mut sketch = Self { k: SKETCH_SIZE, c: SHRINKING_FACTOR, levels: Vec::new(), size: 0, room: 0 };
        sketch.expand();
        sketch
    }

    /// A sketch read back from `statistics.json` (`sketch.parameters` and `sketch.data`).
    pub fn from_levels(k: f64, c: f64, data: Vec<Vec<f64>>) -> Result<Self, String> {
        if !(k >= 1.0 && k <= f64::from(u32::MAX) && k.fract() == 0.0) {
            return Err(format!("`k` must be a positive whole number, not {k}"));
        }
        if !(c > 0.0 && c <= 1.0) {
            return Err(format!("`c` must be in (0, 1], not {c}"));
        }
        if data.len() > MAX_LEVELS {
            return Err(format!("{} compactor levels; at most {MAX_LEVELS} are possible", data.len()));
        }
        if data.iter().flatten().any(|x| !x.is_finite()) {
            return Err("a sketch item is not a finite number".into());
        }
        let levels: Vec<Compactor> = data.into_iter().map(|items| Compactor { items, ..Default::default() }).collect();
        let mut sketch = Self { k: k as u32, c, levels, size: 0, room: 0 };
        sketch.size = sketch.levels.iter().map(|l| l.items.len()).sum();
        sketch.room = (0..sketch.levels.len()).map(|h| sketch.capacity(h)).sum();
        Ok(sketch)
    }

    pub fn parameters(&self) -> (f64, f64) {
        (self.c, f64::from(self.k))
    }

    /// The items of each level, as `sketch.data`.
    pub fn levels(&self) -> Vec<Vec<f64>> {
        self.levels.iter().map(|l| l.items.clone()).collect()
    }

    fn capacity(&self, height: usize) -> usize {
        // Java's Math.pow and Rust's powf are both within an ulp; k * c^h / 2 is never within
        // an ulp of a whole number for h > 0 at Deequ's parameters.
        let half = f64::from(self.k) * self.c.powf(height as f64) / 2.0;
        2 * (half.ceil() as usize + 1)
    }

    fn expand(&mut self) {
        self.levels.push(Compactor::default());
        self.room += self.capacity(self.levels.len() - 1);
    }

    /// Add one finite value (`-0.0` counts as `0.0`, as Java's `<` compares them).
    pub fn update(&mut self, value: f64) {
        debug_assert!(value.is_finite());
        let value = if value == 0.0 { 0.0 } else { value };
        self.levels[0].items.push(value);
        self.size += 1;
        if self.size > self.room {
            self.condense();
        }
    }

    fn condense(&mut self) {
        for height in 0..self.levels.len() {
            if self.levels[height].items.len() >= self.capacity(height) {
                if height + 1 >= self.levels.len() {
                    self.expand();
                }
                let output = self.levels[height].compact();
                self.levels[height + 1].items.extend(output);
                self.size = self.levels.iter().map(|l| l.items.len()).sum();
                return;
            }
        }
    }

    /// Every item with its weight.
    fn weighted(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.levels.iter().enumerate().flat_map(|(h, l)| l.items.iter().map(move |&x| (x, 1u64 << h)))
    }

    /// The total weight: the number of values the sketch stands for.
    pub fn total_weight(&self) -> u64 {
        self.weighted().map(|(_, w)| w).sum()
    }

    /// Weight of the items `<= value` (Deequ's `getRank`).
    pub fn rank(&self, value: f64) -> u64 {
        self.weighted().filter(|&(x, _)| x <= value).map(|(_, w)| w).sum()
    }

    /// Weight of the items `< value` (Deequ's `getRankExclusive`).
    pub fn rank_exclusive(&self, value: f64) -> u64 {
        self.weighted().filter(|&(x, _)| x < value).map(|(_, w)| w).sum()
    }

    /// Model Monitor's ten buckets over `[min, max]`, bounds computed in Deequ's order.
    pub fn buckets(&self, min: f64, max: f64) -> Vec<Bucket> {
        let n = f64::from(BUCKETS);
        (0..BUCKETS)
            .map(|i| {
                let lower_bound = min + (max - min) * f64::from(i) / n;
                let upper_bound = min + (max - min) * f64::from(i + 1) / n;
                let below = if i == BUCKETS - 1 { self.rank(upper_bound) } else { self.rank_exclusive(upper_bound) };
                let count = below.saturating_sub(self.rank_exclusive(lower_bound)) as f64;
                Bucket { lower_bound, upper_bound, count }
            })
            .collect()
    }

    /// The items sorted, each distinct value once with its inclusive cumulative weight.
    fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut items: Vec<(f64, u64)> = self.weighted().collect();
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(items.len());
        let mut running = 0u64;
        for (x, w) in items {
            running += w;
            match out.last_mut() {
                Some(last) if last.0 == x => last.1 = running,
                _ => out.push((x, running)),
            }
        }
        out
    }
}

/// One `distribution.kll.buckets` entry.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub count: f64,
}

/// Deequ's `Distance.numericalDistance` before its small-sample correction: the largest gap
/// between the two sketches' cumulative distributions (inclusive rank over total weight) over
/// the union of their items, with the sizes `(n, m)`. `None` when either sketch is empty.
pub fn linf_simple(a: &Sketch, b: &Sketch) -> Option<(f64, f64, f64)> {
    let (ca, cb) = (a.cumulative(), b.cumulative());
    let n = ca.last()?.1 as f64;
    let m = cb.last()?.1 as f64;
    let (mut i, mut j) = (0, 0);
    let (mut rank_a, mut rank_b) = (0u64, 0u64);
    let mut distance = 0.0f64;
    while i < ca.len() || j < cb.len() {
        // The next key of the union, and both ranks at it.
        let key = match (ca.get(i), cb.get(j)) {
            (Some(x), Some(y)) => match x.0.total_cmp(&y.0) {
                Ordering::Greater => y.0,
                _ => x.0,
            },
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (None, None) => unreachable!("the loop condition"),
        };
        if ca.get(i).is_some_and(|x| x.0 == key) {
            rank_a = ca[i].1;
            i += 1;
        }
        if cb.get(j).is_some_and(|y| y.0 == key) {
            rank_b = cb[j].1;
            j += 1;
        }
        distance = distance.max((rank_a as f64 / n - rank_b as f64 / m).abs());
    }
    Some((distance, n, m))
}

/// Deequ's `selectMetrics`: Robust subtracts a two-sample Kolmogorov-Smirnov critical value
/// (`1.8 * sqrt((n + m) / (n m))`, alpha about 0.003), Simple keeps the distance.
pub fn corrected(linf_simple: f64, n: f64, m: f64, robust: bool) -> f64 {
    if robust { (linf_simple - 1.8 * ((n + m) / (n * m)).sqrt()).max(0.0) } else { linf_simple }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_inputs_stay_on_level_zero_in_order() {
        let mut s = Sketch::new();
        for x in [3.0, 1.0, 2.0, -0.0] {
            s.update(x);
        }
        assert_eq!(s.levels(), vec![vec![3.0, 1.0, 2.0, 0.0]]);
        assert_eq!(s.rank(2.0), 3);
        assert_eq!(s.rank_exclusive(2.0), 2);
    }

    /// The first compaction happens at the 2051st value (level 0 holds 2050), the second level
    /// is added then, and the total weight always equals the values seen.
    #[test]
    fn compaction_keeps_the_weight_and_alternates_offsets() {
        let mut s = Sketch::new();
        for i in 0..2050 {
            s.update(f64::from(i));
        }
        assert_eq!(s.levels().len(), 1);
        s.update(2050.0);
        let levels = s.levels();
        assert_eq!(levels.len(), 2);
        // Offset 0 first: the even values 0, 2, ..., 2048 move up; 2050 was the odd tail.
        assert_eq!(levels[1].len(), 1025);
        assert_eq!(levels[1][..3], [0.0, 2.0, 4.0]);
        assert_eq!(levels[0], vec![2050.0]);
        for i in 2051..100_000 {
            s.update(f64::from(i % 977));
        }
        assert_eq!(s.total_weight(), 100_000);
        let mut c = Compactor { items: vec![4.0, 3.0, 2.0, 1.0], ..Default::default() };
        let offsets: Vec<f64> = (0..5)
            .map(|_| {
                c.items = vec![4.0, 3.0, 2.0, 1.0];
                c.compact()[0]
            })
            .collect();
        assert_eq!(offsets, [1.0, 2.0, 2.0, 1.0, 1.0], "offsets 0, 1, 1, 0, 0");
    }

    #[test]
    fn buckets_follow_the_rule() {
        let mut s = Sketch::new();
        for x in [1.0, 1.0, 2.0, 3.0, 3.0, 3.0] {
            s.update(x);
        }
        let counts: Vec<f64> = s.buckets(1.0, 3.0).iter().map(|b| b.count).collect();
        assert_eq!(counts, [2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 3.0]);
    }

    #[test]
    fn distances() {
        let mut a = Sketch::new();
        let mut b = Sketch::new();
        for i in 0..100 {
            a.update(f64::from(i));
            b.update(f64::from(i) + 50.0);
        }
        let (d, n, m) = linf_simple(&a, &b).unwrap();
        assert!((d - 0.5).abs() < 1e-12, "{d}");
        assert_eq!((n, m), (100.0, 100.0));
        assert!((corrected(d, n, m, true) - (0.5 - 1.8 * 0.02f64.sqrt())).abs() < 1e-12);
        assert_eq!(linf_simple(&a, &a).unwrap().0, 0.0);
        assert!(linf_simple(&a, &Sketch::new()).is_none());
    }

    #[test]
    fn sketches_read_back_are_checked() {
        assert!(Sketch::from_levels(2048.0, 0.64, vec![vec![1.0]; 63]).is_err());
        assert!(Sketch::from_levels(2048.5, 0.64, vec![]).is_err());
        let s = Sketch::from_levels(2048.0, 0.64, vec![vec![1.0], vec![2.0]]).unwrap();
        assert_eq!(s.total_weight(), 3);
    }
}

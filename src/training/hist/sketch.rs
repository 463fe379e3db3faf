//! XGBoost's weighted quantile sketch (`WQuantileSketch` with the `WQSummary` prune), as its
//! CPU `hist` method builds it for each feature: a queue of values, flushed into a
//! binary-counter of pruned summaries. Every rank and weight operation is one `f32` operation
//! in XGBoost's order (`../shared/spec/xgboost-hist-cuts.md` §4 to §6), so the summaries, and
//! the cuts made from them, are XGBoost's bit for bit.

/// One summary entry: the value and its rank bounds. `rmin + wmin` and `rmax - wmin` are the
/// ranks just after and just before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub rmin: f32,
    pub rmax: f32,
    pub wmin: f32,
    pub value: f32,
}

impl Entry {
    fn rmin_next(&self) -> f32 {
        self.rmin + self.wmin
    }

    fn rmax_prev(&self) -> f32 {
        self.rmax - self.wmin
    }
}

/// `kFactor` in `quantile.h`: the sketch keeps eight entries per bin.
const FACTOR: f32 = 8.0;

/// `LimitSizeLevel`: the number of levels and the size of each level's summary for `maxn`
/// values at error `eps` (computed in f64, as XGBoost does).
pub fn limit_size_level(maxn: usize, eps: f64) -> (usize, usize) {
    let mut nlevel = 1usize;
    loop {
        let limit = maxn.min((nlevel as f64 / eps).ceil() as usize + 1);
        if (1usize << nlevel).saturating_mul(limit) >= maxn {
            return (nlevel, limit);
        }
        nlevel += 1;
    }
}

/// The sketch error XGBoost's `HostSketchContainer` gives a column of `col_size` entries.
pub fn column_eps(max_bin: usize, col_size: usize) -> f64 {
    let n_bins = max_bin.min(col_size).max(1);
    1.0 / f64::from(n_bins as f32 * FACTOR)
}

/// An unsigned key that orders as `f32::total_cmp` does.
#[inline]
fn order_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | (1 << 31) }
}

/// Sort `(value, weight)` pairs by value: a least-significant-digit radix sort on the
/// value's order key (a byte per pass, passes whose byte is constant skipped), faster than
/// comparisons for the sketch's queues of thousands of entries. `scratch` is reused.
fn sort_by_value(queue: &mut [(f32, f32)], scratch: &mut Vec<(f32, f32)>) {
    if queue.len() < 256 {
        queue.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(queue);
    let (mut from, mut to) = (queue, scratch.as_mut_slice());
    let mut in_queue = true;
    for shift in [0u32, 8, 16, 24] {
        let mut counts = [0usize; 256];
        for e in from.iter() {
            counts[((order_key(e.0) >> shift) & 0xff) as usize] += 1;
        }
        if counts.contains(&from.len()) {
            continue;
        }
        let mut offsets = [0usize; 256];
        let mut sum = 0;
        for (o, c) in offsets.iter_mut().zip(counts) {
            *o = sum;
            sum += c;
        }
        for e in from.iter() {
            let d = ((order_key(e.0) >> shift) & 0xff) as usize;
            to[offsets[d]] = *e;
            offsets[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
        in_queue = !in_queue;
    }
    if !in_queue {
        // The sorted pairs ended in the scratch buffer (`from`); `to` is the queue.
        to.copy_from_slice(from);
    }
}

/// `MakeSummary`: sort the queue by value, merge equal values by summing their weights.
fn make_summary(queue: &mut [(f32, f32)], scratch: &mut Vec<(f32, f32)>, out: &mut Vec<Entry>) {
    out.clear();
    sort_by_value(queue, scratch);
    let mut wsum = 0.0f32;
    let mut i = 0;
    while i < queue.len() {
        let (value, mut w) = queue[i];
        let mut j = i + 1;
        while j < queue.len() && queue[j].0 == value {
            w += queue[j].1;
            j += 1;
        }
        out.push(Entry { rmin: wsum, rmax: wsum + w, wmin: w, value });
        wsum += w;
        i = j;
    }
}

/// `WQSummary::SetPrune`: at most `maxsize` entries, keeping the first and the last.
pub fn prune(src: &[Entry], maxsize: usize) -> Vec<Entry> {
    if src.len() <= maxsize {
        return src.to_vec();
    }
    let last = src.len() - 1;
    let begin = src[0].rmax;
    let range = src[last].rmin - begin;
    let n = maxsize - 1;
    let mut out = Vec::with_capacity(maxsize);
    out.push(src[0]);
    let (mut i, mut lastidx) = (1usize, 0usize);
    for k in 1..n {
        let dx2 = 2.0f32 * ((k as f32 * range) / n as f32 + begin);
        while i < last && dx2 >= src[i + 1].rmax + src[i + 1].rmin {
            i += 1;
        }
        if i == last {
            break;
        }
        if dx2 < src[i].rmin_next() + src[i + 1].rmax_prev() {
            if i != lastidx {
                out.push(src[i]);
                lastidx = i;
            }
        } else if i + 1 != lastidx {
            out.push(src[i + 1]);
            lastidx = i + 1;
        }
    }
    if lastidx != last {
        out.push(src[last]);
    }
    out
}

/// `WQSummary::SetCombine` followed by `FixError`: merge two summaries by value.
pub fn combine(a: &[Entry], b: &[Entry]) -> Vec<Entry> {
    if a.is_empty() {
        return b.to_vec();
    }
    if b.is_empty() {
        return a.to_vec();
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    let (mut a_prev, mut b_prev) = (0.0f32, 0.0f32);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x.value == y.value {
            out.push(Entry { rmin: x.rmin + y.rmin, rmax: x.rmax + y.rmax, wmin: x.wmin + y.wmin, value: x.value });
            a_prev = x.rmin_next();
            b_prev = y.rmin_next();
            i += 1;
            j += 1;
        } else if x.value < y.value {
            out.push(Entry { rmin: x.rmin + b_prev, rmax: x.rmax + y.rmax_prev(), wmin: x.wmin, value: x.value });
            a_prev = x.rmin_next();
            i += 1;
        } else {
            out.push(Entry { rmin: y.rmin + a_prev, rmax: y.rmax + x.rmax_prev(), wmin: y.wmin, value: y.value });
            b_prev = y.rmin_next();
            j += 1;
        }
    }
    let (a_last, b_last) = (a[a.len() - 1].rmax, b[b.len() - 1].rmax);
    for x in &a[i..] {
        out.push(Entry { rmin: x.rmin + b_prev, rmax: x.rmax + b_last, wmin: x.wmin, value: x.value });
    }
    for y in &b[j..] {
        out.push(Entry { rmin: y.rmin + a_prev, rmax: y.rmax + a_last, wmin: y.wmin, value: y.value });
    }
    fix_error(&mut out);
    out
}

/// `FixError`: ranks made monotone after a merge.
fn fix_error(entries: &mut [Entry]) {
    let (mut prev_rmin, mut prev_rmax) = (0.0f32, 0.0f32);
    for e in entries {
        if e.rmin < prev_rmin {
            e.rmin = prev_rmin;
        } else {
            prev_rmin = e.rmin;
        }
        if e.rmax < prev_rmax {
            e.rmax = prev_rmax;
        }
        if e.rmax < e.rmin + e.wmin {
            e.rmax = e.rmin + e.wmin;
        }
        prev_rmax = e.rmax;
    }
}

/// One feature's streaming sketch. Values must be pushed in row order: XGBoost's result
/// depends on it once the queue has flushed.
#[derive(Debug, Clone)]
pub struct Sketch {
    limit: usize,
    queue: Vec<(f32, f32)>,
    /// `levels[l - 1]` is XGBoost's `level[l]`; empty until the first flush.
    levels: Vec<Vec<Entry>>,
    flushed: bool,
    scratch: Vec<Entry>,
    sort_scratch: Vec<(f32, f32)>,
}

impl Sketch {
    /// The sketch XGBoost makes for a column with `col_size` present entries.
    pub fn for_column(col_size: usize, max_bin: usize) -> Self {
        let (_, limit) = limit_size_level(col_size, column_eps(max_bin, col_size));
        Self {
            limit,
            queue: Vec::new(),
            levels: Vec::new(),
            flushed: false,
            scratch: Vec::new(),
            sort_scratch: Vec::new(),
        }
    }

    /// The size each level's summary is pruned to.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn capacity(&self) -> usize {
        2 * self.limit
    }

    /// `WQuantileSketch::Push`: zero weights are skipped; runs of equal values share a slot.
    #[inline]
    pub fn push(&mut self, x: f32, w: f32) {
        if w == 0.0 {
            return;
        }
        if let Some(last) = self.queue.last_mut() {
            if last.0 == x {
                last.1 += w;
                return;
            }
            if self.queue.len() == self.capacity() {
                self.flush();
            }
        }
        self.queue.push((x, w));
    }

    fn flush(&mut self) {
        let mut temp = Vec::new();
        make_summary(&mut self.queue, &mut self.sort_scratch, &mut temp);
        self.queue.clear();
        self.push_temp(temp);
    }

    /// `PushTemp`: a binary-counter merge of pruned summaries.
    fn push_temp(&mut self, mut temp: Vec<Entry>) {
        self.flushed = true;
        let mut l = 0;
        loop {
            if self.levels.len() <= l {
                self.levels.push(Vec::new());
            }
            if self.levels[l].is_empty() {
                self.levels[l] = prune(&temp, self.limit);
                return;
            }
            temp = combine(&prune(&temp, self.limit), &self.levels[l]);
            if temp.len() > self.limit {
                self.levels[l].clear();
                l += 1;
            } else {
                self.levels[l] = temp;
                return;
            }
        }
    }

    /// `GetSummary`: the queue and every level merged and pruned to the level size.
    pub fn summary(mut self) -> Vec<Entry> {
        let mut queue = std::mem::take(&mut self.queue);
        make_summary(&mut queue, &mut self.sort_scratch, &mut self.scratch);
        let mut s = prune(&self.scratch, self.limit);
        if !self.flushed {
            return s;
        }
        for level in &self.levels {
            if level.is_empty() {
                continue;
            }
            s = if s.is_empty() { level.clone() } else { prune(&combine(&s, level), self.limit) };
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_sizes_are_xgboosts() {
        // The spec's table (max_bin -> n: nlevel/limit_size).
        for (max_bin, n, expected) in [
            (256, 1_000, (1, 1000)),
            (256, 10_000, (2, 4097)),
            (256, 100_000, (4, 8193)),
            (256, 300_000, (5, 10241)),
            (256, 1_000_000, (7, 14337)),
            (256, 10_000_000, (10, 20481)),
            (16, 1_000, (2, 257)),
            (16, 100_000, (7, 897)),
            (16, 300_000, (9, 1153)),
            (16, 1_000_000, (10, 1281)),
            (64, 1_000_000, (8, 4097)),
            (1024, 1_000_000, (5, 40961)),
        ] {
            assert_eq!(limit_size_level(n, column_eps(max_bin, n)), expected, "max_bin {max_bin}, n {n}");
        }
    }

    #[test]
    fn the_radix_sort_orders_as_total_cmp() {
        let mut state = 7u64;
        let mut queue: Vec<(f32, f32)> = (0..5000)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let v = f32::from_bits((state >> 32) as u32);
                (if v.is_nan() { i as f32 } else { v }, i as f32)
            })
            .collect();
        queue.extend([(-0.0, 1.0), (0.0, 2.0), (f32::INFINITY, 3.0), (f32::NEG_INFINITY, 4.0)]);
        let mut expected = queue.clone();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut scratch = Vec::new();
        sort_by_value(&mut queue, &mut scratch);
        let keys = |q: &[(f32, f32)]| q.iter().map(|e| e.0.to_bits()).collect::<Vec<_>>();
        assert_eq!(keys(&queue), keys(&expected));
    }

    #[test]
    fn few_distinct_values_are_kept_exactly() {
        let mut s = Sketch::for_column(10_000, 256);
        for i in 0..10_000 {
            s.push((i % 5) as f32, 1.0);
        }
        let summary = s.summary();
        let values: Vec<f32> = summary.iter().map(|e| e.value).collect();
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(summary[4].rmax, 10_000.0);
    }
}

//! A linear axis: a data range widened to round ticks, mapped onto pixels.

use std::fmt::Write;

use super::short;

#[derive(Debug, Clone, Copy)]
pub struct Axis {
    pub min: f64,
    pub max: f64,
    pub step: f64,
    /// Pixel positions of `min` and `max`.
    pub from: f64,
    pub to: f64,
}

impl Axis {
    /// The range `[lo, hi]` rounded out to about `ticks` round steps (1, 2 or 5 times a
    /// power of ten), drawn from pixel `from` to `to`.
    pub fn new(lo: f64, hi: f64, ticks: usize, from: f64, to: f64) -> Self {
        let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
        if hi - lo < 1e-12 {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            lo -= pad;
            hi += pad;
        }
        let raw = (hi - lo) / ticks.max(1) as f64;
        let power = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power);
        Self { min: (lo / step).floor() * step, max: (hi / step).ceil() * step, step, from, to }
    }

    /// The pixel position of `v`.
    pub fn at(&self, v: f64) -> f64 {
        self.from + (v - self.min) / (self.max - self.min) * (self.to - self.from)
    }

    pub fn ticks(&self) -> Vec<f64> {
        let count = ((self.max - self.min) / self.step).round() as usize;
        (0..=count).map(|i| self.min + i as f64 * self.step).collect()
    }
}

/// Grid lines, tick labels and axis titles for a plot area bounded by `x` and `y` (rows of
/// bars have no y ticks).
pub fn grid(out: &mut String, x: &Axis, y: &Axis, x_title: &str, y_title: &str, y_ticks: bool) {
    let (left, right, top, bottom) = (x.from, x.to, y.to, y.from);
    for t in x.ticks() {
        let px = x.at(t);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{top:.1}" x2="{px:.1}" y2="{bottom:.1}" stroke="#e5e5e5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 14.0,
            short(t)
        );
    }
    for t in if y_ticks { y.ticks() } else { Vec::new() } {
        let py = y.at(t);
        let _ = write!(
            out,
            r##"<line x1="{left:.1}" y1="{py:.1}" x2="{right:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 4.0,
            py + 4.0,
            short(t)
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(12,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        right - left,
        bottom - top,
        (left + right) / 2.0,
        bottom + 30.0,
        super::escape(x_title),
        (top + bottom) / 2.0,
        super::escape(y_title)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_out_to_steps() {
        let axis = Axis::new(9.3, 44.6, 5, 0.0, 100.0);
        assert_eq!((axis.min, axis.max, axis.step), (0.0, 50.0, 10.0));
        assert_eq!(axis.ticks().len(), 6);
        assert_eq!(axis.at(25.0), 50.0);
        let flat = Axis::new(3.0, 3.0, 5, 0.0, 10.0);
        assert!(flat.min < 3.0 && flat.max > 3.0);
        let reversed = Axis::new(0.0, 1.0, 4, 200.0, 20.0);
        assert_eq!(reversed.at(0.0), 200.0);
    }
}

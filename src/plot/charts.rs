//! The chart kinds. Each returns one `<svg class="chart">` element.

use std::fmt::Write;

use super::axis::{Axis, grid};
use super::{escape, frame, short};

/// Width and height of the scatter and the histogram.
pub const WIDTH: u32 = 480;
pub const HEIGHT: u32 = 340;
/// Points drawn at most in a scatter (every k-th row beyond it; the title says so).
const MAX_POINTS: usize = 5_000;

const BLUE: &str = "#2b6cb0";

/// Points `(x, y)`, with the line y = x when `diagonal` (predicted against actual).
pub fn scatter(title: &str, x_title: &str, y_title: &str, points: &[(f64, f64)], diagonal: bool) -> String {
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, y)| (lo.min(x.min(*y)), hi.max(x.max(*y))));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let x = Axis::new(lo, hi, 6, 56.0, f64::from(WIDTH) - 16.0);
    let y = Axis::new(lo, hi, 6, f64::from(HEIGHT) - 44.0, 28.0);
    let mut body = String::new();
    grid(&mut body, &x, &y, x_title, y_title, true);
    if diagonal {
        let (a, b) = (x.min.max(y.min), x.max.min(y.max));
        let _ = write!(
            body,
            r##"<line class="diagonal" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c53030" stroke-dasharray="4 3"/>"##,
            x.at(a),
            y.at(a),
            x.at(b),
            y.at(b)
        );
    }
    let every = finite.len().div_ceil(MAX_POINTS).max(1);
    for (px, py) in finite.iter().step_by(every) {
        let _ = write!(
            body,
            r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3" fill="{BLUE}" fill-opacity="0.6"/>"#,
            x.at(*px),
            y.at(*py)
        );
    }
    let shown = if every > 1 { format!("{title} (every {every}th of {} points)", finite.len()) } else { title.into() };
    frame(WIDTH, HEIGHT, &shown, &body)
}

/// The distribution of `values` in `bins` equal bins, with the mean marked.
pub fn histogram(title: &str, x_title: &str, values: &[f64], bins: usize) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let x = Axis::new(lo, hi, 6, 56.0, f64::from(WIDTH) - 16.0);
    let bins = bins.max(1);
    let width = (x.max - x.min) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in &finite {
        counts[(((v - x.min) / width) as usize).min(bins - 1)] += 1;
    }
    let y = Axis::new(0.0, counts.iter().copied().max().unwrap_or(1).max(1) as f64, 5, f64::from(HEIGHT) - 44.0, 28.0);
    let mut body = String::new();
    grid(&mut body, &x, &y, x_title, "rows", true);
    for (i, count) in counts.iter().enumerate() {
        let (left, right) = (x.at(x.min + i as f64 * width), x.at(x.min + (i + 1) as f64 * width));
        let top = y.at(*count as f64);
        let _ = write!(
            body,
            r##"<rect class="bin" x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{BLUE}" stroke="#fff"><title>{} to {}: {count}</title></rect>"##,
            (right - left).max(0.0),
            y.at(0.0) - top,
            short(x.min + i as f64 * width),
            short(x.min + (i + 1) as f64 * width)
        );
    }
    if !finite.is_empty() {
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        let _ = write!(
            body,
            r##"<line class="mean" x1="{m:.1}" y1="{:.1}" x2="{m:.1}" y2="{:.1}" stroke="#c53030" stroke-dasharray="4 3"><title>mean {}</title></line>"##,
            y.to,
            y.from,
            short(mean),
            m = x.at(mean)
        );
    }
    frame(WIDTH, HEIGHT, title, &body)
}

/// One horizontal bar: a label, its value and an optional mark (a threshold).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub mark: Option<f64>,
}

/// Horizontal bars, one per row, red where the value passes its mark.
pub fn bars(title: &str, value_title: &str, rows: &[Bar]) -> String {
    let row_height = 22.0;
    let height = (70.0 + row_height * rows.len() as f64) as u32;
    let width = 2 * WIDTH;
    let hi = rows.iter().flat_map(|r| [r.value, r.mark.unwrap_or(0.0)]).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let x = Axis::new(0.0, hi, 6, 180.0, f64::from(width) - 24.0);
    let top = 28.0;
    let y = Axis { min: 0.0, max: 1.0, step: 1.0, from: top + row_height * rows.len() as f64, to: top };
    let mut body = String::new();
    grid(&mut body, &x, &y, value_title, "", false);
    for (i, row) in rows.iter().enumerate() {
        let y0 = top + row_height * i as f64;
        let over = row.mark.is_some_and(|m| row.value > m);
        let fill = if over { "#c53030" } else { BLUE };
        let _ = write!(
            body,
            r#"<text x="174" y="{:.1}" text-anchor="end">{}</text><rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}: {}</title></rect>"#,
            y0 + 15.0,
            escape(&row.label),
            x.at(0.0),
            y0 + 4.0,
            (x.at(row.value.max(0.0)) - x.at(0.0)).max(0.0),
            row_height - 8.0,
            escape(&row.label),
            short(row.value)
        );
        if let Some(mark) = row.mark {
            let _ = write!(
                body,
                r##"<line class="mark" x1="{m:.1}" y1="{:.1}" x2="{m:.1}" y2="{:.1}" stroke="#222" stroke-width="2"><title>threshold {}</title></line>"##,
                y0 + 1.0,
                y0 + row_height - 1.0,
                short(mark),
                m = x.at(mark)
            );
        }
    }
    frame(width, height, title, &body)
}

/// One bar of a timeline: seconds from the start, and a CSS colour.
#[derive(Debug, Clone)]
pub struct Span {
    pub label: String,
    pub start: f64,
    pub end: f64,
    pub colour: &'static str,
    pub note: String,
}

/// A timeline of spans, one row each, on a shared time axis in seconds.
pub fn timeline(title: &str, spans: &[Span]) -> String {
    let row_height = 22.0;
    let height = (70.0 + row_height * spans.len() as f64) as u32;
    let width = 2 * WIDTH;
    let hi = spans.iter().map(|s| s.end).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let x = Axis::new(0.0, hi, 8, 180.0, f64::from(width) - 24.0);
    let top = 28.0;
    let y = Axis { min: 0.0, max: 1.0, step: 1.0, from: top + row_height * spans.len() as f64, to: top };
    let mut body = String::new();
    grid(&mut body, &x, &y, "seconds from the start of the execution", "", false);
    for (i, span) in spans.iter().enumerate() {
        let y0 = top + row_height * i as f64;
        let _ = write!(
            body,
            r#"<text x="174" y="{:.1}" text-anchor="end">{}</text><rect class="span" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} s to {} s{}</title></rect>"#,
            y0 + 15.0,
            escape(&span.label),
            x.at(span.start),
            y0 + 4.0,
            (x.at(span.end) - x.at(span.start)).max(1.5),
            row_height - 8.0,
            span.colour,
            escape(&span.label),
            short(span.start),
            short(span.end),
            escape(&span.note)
        );
    }
    frame(width, height, title, &body)
}

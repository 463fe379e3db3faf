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
    let rows: Vec<Row<'_>> = rows
        .iter()
        .map(|bar| Row {
            label: &bar.label,
            from: 0.0,
            to: bar.value.max(0.0),
            fill: if bar.mark.is_some_and(|m| bar.value > m) { "#c53030" } else { BLUE },
            class: "bar",
            tip: short(bar.value),
            mark: bar.mark,
        })
        .collect();
    row_chart(title, value_title, 6, &rows)
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
    let rows: Vec<Row<'_>> = spans
        .iter()
        .map(|span| Row {
            label: &span.label,
            from: span.start,
            to: span.end,
            fill: span.colour,
            class: "span",
            tip: format!("{} s to {} s{}", short(span.start), short(span.end), span.note),
            mark: None,
        })
        .collect();
    row_chart(title, "seconds from the start of the execution", 8, &rows)
}

/// One row of a row chart: a labelled rectangle from `from` to `to` on the value axis, and an
/// optional mark across it.
struct Row<'a> {
    label: &'a str,
    from: f64,
    to: f64,
    fill: &'a str,
    class: &'a str,
    tip: String,
    mark: Option<f64>,
}

/// Rows down, a value axis across (from 0), labels on the left.
fn row_chart(title: &str, x_title: &str, ticks: usize, rows: &[Row<'_>]) -> String {
    const ROW: f64 = 22.0;
    const TOP: f64 = 28.0;
    let (width, height) = (2 * WIDTH, (70.0 + ROW * rows.len() as f64) as u32);
    let hi = rows.iter().flat_map(|r| [r.to, r.mark.unwrap_or(0.0)]).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let x = Axis::new(0.0, hi, ticks, 180.0, f64::from(width) - 24.0);
    let y = Axis { min: 0.0, max: 1.0, step: 1.0, from: TOP + ROW * rows.len() as f64, to: TOP };
    let mut body = String::new();
    grid(&mut body, &x, &y, x_title, "", false);
    for (i, row) in rows.iter().enumerate() {
        let y0 = TOP + ROW * i as f64;
        let label = escape(row.label);
        let _ = write!(
            body,
            r#"<text x="174" y="{:.1}" text-anchor="end">{label}</text><rect class="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{label}: {}</title></rect>"#,
            y0 + 15.0,
            row.class,
            x.at(row.from),
            y0 + 4.0,
            (x.at(row.to) - x.at(row.from)).max(1.0),
            ROW - 8.0,
            row.fill,
            escape(&row.tip)
        );
        if let Some(mark) = row.mark {
            let _ = write!(
                body,
                r##"<line class="mark" x1="{m:.1}" y1="{:.1}" x2="{m:.1}" y2="{:.1}" stroke="#222" stroke-width="2"><title>threshold {}</title></line>"##,
                y0 + 1.0,
                y0 + ROW - 1.0,
                short(mark),
                m = x.at(mark)
            );
        }
    }
    frame(width, height, title, &body)
}

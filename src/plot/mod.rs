//! Small SVG charts, written as text: a scatter of predicted against actual values, a
//! histogram, horizontal bars with a threshold mark, and a timeline. Used by the evaluate
//! step (`evaluation.svg`) and the run report (`crate::pipeline::html`), inline in the page.
//!
//! Our own writer rather than a plotting crate: four chart kinds of a few dozen lines each, no
//! fonts to measure (text is laid out by the browser), every string escaped in one place
//! (`escape`), byte-for-byte stable output, nothing added to the build. See the README's
//! dependency section.

mod axis;
mod charts;

pub use charts::{Bar, HEIGHT, Span, WIDTH, bars, histogram, scatter, timeline};

use std::fmt::Write;

/// `text` made safe inside SVG and HTML, as element text or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as short text for a label: at most four significant digits, no trailing zeros.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - magnitude).clamp(0, 7) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

/// An `<svg>` element of `width` x `height` holding `body`, with a title (also its
/// accessible name) and the class the report's tests look for.
pub(crate) fn frame(width: u32, height: u32, title: &str, body: &str) -> String {
    let mut out = String::new();
    let title = escape(title);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{title}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        out,
        r##"<title>{title}</title><rect width="{width}" height="{height}" fill="#fff"/><text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{title}</text>"##,
        width / 2
    );
    out.push_str(body);
    out.push_str("</svg>");
    out
}

/// Two charts side by side in one standalone SVG document (the evaluate step's file).
pub fn side_by_side(left: &str, left_width: u32, right: &str, height: u32) -> String {
    let right_width = 2 * left_width;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{right_width}" height="{height}" viewBox="0 0 {right_width} {height}"><g>{left}</g><g transform="translate({left_width},0)">{right}</g></svg>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
        let chart =
            bars("drift <b>", "distance", &[Bar { label: "<script>x</script>".into(), value: 0.5, mark: Some(0.1) }]);
        assert!(!chart.contains("<script>") && !chart.contains("<b>"), "{chart}");
        assert!(chart.contains("&lt;script&gt;x&lt;/script&gt;"));
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short(16.0), "16");
        assert_eq!(short(0.123456), "0.1235");
        assert_eq!(short(1234.5678), "1235");
        assert_eq!(short(-2.5), "-2.5");
        assert_eq!(short(1e-7), "1.00e-7");
        assert_eq!(short(0.00099992), "0.0009999");
        assert_eq!(short(f64::NAN), "-");
    }
}

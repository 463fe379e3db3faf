//! Class labels as the confusion matrix names them.
//!
//! A label is text (a CSV field, a JSON value's text). Numbers are one label however they are
//! written: XGBoost's `multi:softmax` answers `2.0` where the ground truth says `2`, so a label
//! that parses as a finite number is written as an integer when it is one (`2.0`, `2`, `+2`,
//! `2e0` are `"2"`) and as its shortest decimal otherwise (`0.50` is `"0.5"`). Other text is kept
//! as given, trimmed of spaces.

use std::borrow::Cow;
use std::cmp::Ordering;

/// Integers up to 2^53 are exact in f64.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

pub fn canonical(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    match number(trimmed) {
        Some(x) if x.fract() == 0.0 && x.abs() <= EXACT_INTEGER => Cow::Owned(format!("{}", x as i64)),
        Some(x) => Cow::Owned(format!("{x}")),
        None => Cow::Borrowed(trimmed),
    }
}

/// A finite number in the usual decimal forms (not `inf`, `nan` or hexadecimal).
fn number(text: &str) -> Option<f64> {
    let looks_numeric = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if !looks_numeric {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The order labels are listed in: numerically when both are numbers, numbers before text,
/// text by its bytes. The last label in this order is the "best constant" one (see `binary`).
pub fn order(a: &str, b: &str) -> Ordering {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_one_label_however_written() {
        for (given, label) in
            [("2.0", "2"), (" 2 ", "2"), ("+2", "2"), ("2e0", "2"), ("-0", "0"), ("0.50", "0.5"), ("cat", "cat")]
        {
            assert_eq!(canonical(given), label, "{given}");
        }
        assert_eq!(canonical("inf"), "inf");
        assert_eq!(canonical("1e400"), "1e400");
        let mut labels = vec!["10", "b", "2", "a", "-1"];
        labels.sort_by(|a, b| order(a, b));
        assert_eq!(labels, ["-1", "2", "10", "a", "b"]);
    }
}

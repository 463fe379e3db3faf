//! The number parser of XGBoost's text loader (dmlc-core's `ParseFloat<float>`,
//! `include/dmlc/strtonum.h`), which SageMaker's built-in XGBoost reads `text/csv` and
//! `text/libsvm` channels with. It is not correctly rounded: the integer part and up to 19
//! fraction digits are converted separately and added in f32, and an exponent scales by a
//! product of f32 powers of ten. About 7% of float64 texts land one ulp away from the
//! correctly rounded f32, and a model trained on those values differs measurably, so training
//! reads text exactly as XGBoost does.

const MAX_FRACTION_DIGITS: u32 = 19;
const MAX_EXPONENT: u32 = 38;
const MAX_SIGNIFICAND_FOR_MAX_EXPONENT: f32 = 3.402_823_4;
const MAX_SIGNIFICAND_FOR_NEG_MAX_EXPONENT: f32 = 1.175_494_4;

/// Parse a number at the start of `text` as dmlc-core does; returns the value and the number
/// of bytes consumed (0 when nothing numeric was found, which XGBoost treats as missing).
pub fn parse_prefix(text: &[u8]) -> (f32, usize) {
    let mut p = 0;
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    while matches!(at(p), b' ' | b'\t' | b'\r' | b'\n' | 0x0c) {
        p += 1;
    }
    let start = p;
    let mut positive = true;
    match at(p) {
        b'-' => {
            positive = false;
            p += 1;
        }
        b'+' => p += 1,
        _ => {}
    }
    let signed = |v: f32| if positive { v } else { -v };
    if let Some(special) = special(text, p, positive) {
        return special;
    }

    let digits_start = p;
    let mut integer: u64 = 0;
    while at(p).is_ascii_digit() {
        integer = integer.wrapping_mul(10).wrapping_add(u64::from(at(p) - b'0'));
        p += 1;
    }
    let mut value = integer as f32;
    let mut any_digit = p > digits_start;
    if at(p) == b'.' {
        p += 1;
        let (mut fraction, mut pow10, mut count) = (0u64, 1u64, 0u32);
        while at(p).is_ascii_digit() {
            if count < MAX_FRACTION_DIGITS {
                fraction = fraction.wrapping_mul(10).wrapping_add(u64::from(at(p) - b'0'));
                pow10 = pow10.wrapping_mul(10);
            }
            p += 1;
            count += 1;
            any_digit = true;
        }
        value += (fraction as f64 / pow10 as f64) as f32;
    }
    if !any_digit {
        // A lone sign or dot: dmlc-core returns 0 having consumed it; XGBoost keeps the 0.
        // Callers that need a whole field to be a number reject this case.
        return (signed(value), if p > start { p } else { 0 });
    }
    if matches!(at(p), b'e' | b'E') {
        (value, p) = scale_by_exponent(text, p + 1, value);
    }
    if matches!(at(p), b'f' | b'F') {
        p += 1;
    }
    (signed(value), p)
}

/// `inf`, `infinity`, `nan` or `nan(...)` at `p`, case-insensitive: the value (an infinity
/// signed, a NaN not) and the end, or end 0 for a `nan(` that does not close (not a number).
#[inline]
fn special(text: &[u8], p: usize, positive: bool) -> Option<(f32, usize)> {
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    let word = |p: usize, w: &[u8]| w.iter().enumerate().take_while(|(i, c)| at(p + i) | 32 == **c).count();
    let inf = word(p, b"infinity");
    if inf == 3 || inf == 8 {
        return Some((if positive { f32::INFINITY } else { f32::NEG_INFINITY }, p + inf));
    }
    if word(p, b"nan") != 3 {
        return None;
    }
    let mut q = p + 3;
    if at(q) == b'(' {
        let mut r = q + 1;
        while at(r).is_ascii_alphanumeric() || at(r) == b'_' {
            r += 1;
        }
        // XGBoost aborts on `nan(` without `)`; here it is simply not a number.
        if at(r) != b')' {
            return Some((f32::NAN, 0));
        }
        q = r + 1;
    }
    Some((f32::NAN, q))
}

/// The exponent's digits from `p` (after the `e`) applied to `value` as dmlc-core does: a
/// product of f32 powers of ten, the exponent capped at 38. Returns the value and the end.
#[inline]
fn scale_by_exponent(text: &[u8], mut p: usize, mut value: f32) -> (f32, usize) {
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    let mut fraction = false;
    match at(p) {
        b'-' => {
            fraction = true;
            p += 1;
        }
        b'+' => p += 1,
        _ => {}
    }
    let mut exponent: u32 = 0;
    while at(p).is_ascii_digit() {
        exponent = exponent.wrapping_mul(10).wrapping_add(u32::from(at(p) - b'0'));
        p += 1;
    }
    if exponent > MAX_EXPONENT {
        exponent = MAX_EXPONENT;
    }
    if exponent == MAX_EXPONENT
        && ((!fraction && value > MAX_SIGNIFICAND_FOR_MAX_EXPONENT)
            || (fraction && value < MAX_SIGNIFICAND_FOR_NEG_MAX_EXPONENT))
    {
        value = if fraction { MAX_SIGNIFICAND_FOR_NEG_MAX_EXPONENT } else { MAX_SIGNIFICAND_FOR_MAX_EXPONENT };
    }
    let mut scale = 1.0f32;
    while exponent >= 8 {
        scale *= 1e8f32;
        exponent -= 8;
    }
    while exponent > 0 {
        scale *= 10.0f32;
        exponent -= 1;
    }
    (if fraction { value / scale } else { value * scale }, p)
}

/// A whole field as a number, XGBoost's way: surrounding blanks allowed, an empty field is
/// missing (NaN). `None` when the field holds anything else.
#[inline]
pub fn parse_field(field: &[u8]) -> Option<f32> {
    if let Some(v) = parse_plain(field) {
        return Some(v);
    }
    let trimmed = field.trim_ascii();
    if trimmed.is_empty() {
        return Some(f32::NAN);
    }
    let (value, consumed) = parse_prefix(trimmed);
    let numeric = trimmed.iter().any(u8::is_ascii_digit) || is_word(trimmed);
    (consumed == trimmed.len() && numeric).then_some(value)
}

/// A plain number (`[-+]digits[.digits]`, at least one digit) at the start of `text`: its
/// value and length, or length 0 when `text` does not start with one. Same arithmetic as
/// [`parse_prefix`].
#[inline]
pub fn parse_plain_prefix(text: &[u8]) -> (f32, usize) {
    let n = text.len();
    let mut i = 0;
    let negative = match text.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let digits = i;
    let mut integer: u64 = 0;
    while i < n {
        let d = text[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        integer = integer.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let mut any = i > digits;
    let mut value = integer as f32;
    if i < n && text[i] == b'.' {
        i += 1;
        let (mut fraction, mut pow10, mut count) = (0u64, 1u64, 0u32);
        while i < n {
            let d = text[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if count < MAX_FRACTION_DIGITS {
                fraction = fraction.wrapping_mul(10).wrapping_add(u64::from(d));
                pow10 = pow10.wrapping_mul(10);
            }
            count += 1;
            i += 1;
        }
        any |= count > 0;
        value += (fraction as f64 / pow10 as f64) as f32;
    }
    if !any || (i < n && matches!(text[i], b'e' | b'E' | b'f' | b'F')) {
        return (0.0, 0);
    }
    (if negative { -value } else { value }, i)
}

/// The common case on one pass: `[-+]digits[.digits][e[-+]digits]` filling the field, with
/// the same arithmetic as [`parse_prefix`]. `None` sends anything else to the full parser.
#[inline]
fn parse_plain(field: &[u8]) -> Option<f32> {
    let n = field.len();
    let mut i = 0;
    let negative = match field.first()? {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let digits = i;
    let mut integer: u64 = 0;
    while i < n {
        let d = field[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        integer = integer.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let mut any = i > digits;
    let mut value = integer as f32;
    if i < n && field[i] == b'.' {
        i += 1;
        let (mut fraction, mut pow10, mut count) = (0u64, 1u64, 0u32);
        while i < n {
            let d = field[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if count < MAX_FRACTION_DIGITS {
                fraction = fraction.wrapping_mul(10).wrapping_add(u64::from(d));
                pow10 = pow10.wrapping_mul(10);
            }
            count += 1;
            i += 1;
        }
        any |= count > 0;
        value += (fraction as f64 / pow10 as f64) as f32;
    }
    if !any || (i < n && !matches!(field[i], b'e' | b'E')) {
        return None;
    }
    if i < n {
        // An exponent: the full parser has the range rules.
        return None;
    }
    Some(if negative { -value } else { value })
}

fn is_word(text: &[u8]) -> bool {
    let t = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    t.eq_ignore_ascii_case(b"inf")
        || t.eq_ignore_ascii_case(b"infinity")
        || t.len() >= 3 && t[..3].eq_ignore_ascii_case(b"nan")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> f32 {
        parse_field(s.as_bytes()).unwrap()
    }

    #[test]
    fn plain_numbers() {
        assert_eq!(parse("1.5"), 1.5);
        assert_eq!(parse(" -2 "), -2.0);
        assert_eq!(parse("3e2"), 300.0);
        assert_eq!(parse("2.5E-1"), 0.25);
        assert_eq!(parse("+7."), 7.0);
        assert!(parse("").is_nan());
        assert!(parse("nan").is_nan());
        assert!(parse("NaN").is_nan());
        assert_eq!(parse("-inf"), f32::NEG_INFINITY);
        assert_eq!(parse_field(b"x"), None);
        assert_eq!(parse_field(b"1.5x"), None);
        assert_eq!(parse_field(b"-"), None);
        assert_eq!(parse_field(b"."), None);
    }

    /// Not correctly rounded: the integer and the fraction are rounded separately.
    #[test]
    fn rounds_as_dmlc_core_does() {
        // 0.1 + 16777216 in f32 is 16777216: the fraction is lost, where a correct parse
        // of "16777217.1" gives 16777218.
        assert_eq!(parse("16777217.1"), 16777216.0);
        assert_eq!("16777217.1".parse::<f32>().unwrap(), 16777218.0);
        // The spec's example form: f32(int) + f32(f64(frac) / f64(10^n)).
        let text = "0.30000001192092896";
        let expected = ((30000001192092896u64 as f64) / 1e17) as f32;
        assert_eq!(parse(text), expected);
    }
}

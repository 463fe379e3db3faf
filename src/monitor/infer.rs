//! Deequ's type inference (`StatefulDataType`, `DataTypeHistogram.determineType`), which Model
//! Monitor's analyzer runs on every value read as text.
//!
//! Per value, in this order (Java regexes, `\d` is ASCII):
//! - Fractional `^(-|\+)? ?\d+((\.\d+)|((?:\.\d+)?[Ee][-+]?\d+))$`
//! - Integral `^(-|\+)? ?\d+$`
//! - Boolean `^(true|false)$`
//! - otherwise String; null (an empty CSV field, a JSON null) counts apart.
//!
//! Per column: all null is Unknown; any String, or Booleans beside numbers, is String; Booleans
//! alone are Deequ's Boolean, which Model Monitor's schema has no name for: written as String
//! here; any Fractional is Fractional; else Integral.

use serde::{Deserialize, Serialize};

/// A column's type as `statistics.json` and `constraints.json` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    Integral,
    Fractional,
    String,
    Unknown,
}

impl DataType {
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integral | Self::Fractional)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Integral => "Integral",
            Self::Fractional => "Fractional",
            Self::String => "String",
            Self::Unknown => "Unknown",
        }
    }
}

/// The class of one non-null value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueClass {
    Fractional,
    Integral,
    Boolean,
    String,
}

/// Counts of each class in a column, nulls apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeCounts {
    pub null: u64,
    pub fractional: u64,
    pub integral: u64,
    pub boolean: u64,
    pub string: u64,
}

impl TypeCounts {
    pub fn add(&mut self, class: Option<ValueClass>) {
        let slot = match class {
            None => &mut self.null,
            Some(ValueClass::Fractional) => &mut self.fractional,
            Some(ValueClass::Integral) => &mut self.integral,
            Some(ValueClass::Boolean) => &mut self.boolean,
            Some(ValueClass::String) => &mut self.string,
        };
        *slot += 1;
    }

    pub fn present(&self) -> u64 {
        self.fractional + self.integral + self.boolean + self.string
    }

    /// `DataTypeHistogram.determineType`.
    pub fn column_type(&self) -> DataType {
        let numbers = self.fractional + self.integral;
        if self.present() == 0 {
            DataType::Unknown
        } else if self.string > 0 || self.boolean > 0 {
            // Booleans with numbers are Deequ's String; Booleans alone its Boolean.
            DataType::String
        } else if self.fractional > 0 {
            DataType::Fractional
        } else {
            debug_assert!(numbers > 0);
            DataType::Integral
        }
    }

    /// Share of the present values whose own class is exactly `ty` (Deequ's
    /// `dataTypeConstraint` with `ignoreUnknown`): an Integral `7` does not count toward
    /// Fractional. `None` when no value is present.
    pub fn share_of(&self, ty: DataType) -> Option<f64> {
        let present = self.present();
        if present == 0 {
            return None;
        }
        let matching = match ty {
            DataType::Integral => self.integral,
            DataType::Fractional => self.fractional,
            DataType::String => self.string,
            DataType::Unknown => return None,
        };
        Some(matching as f64 / present as f64)
    }
}

/// Classify one non-null text value.
pub fn classify(text: &str) -> ValueClass {
    let bytes = text.as_bytes();
    if let Some(class) = classify_number(bytes) {
        return class;
    }
    if bytes == b"true" || bytes == b"false" { ValueClass::Boolean } else { ValueClass::String }
}

/// Fractional or Integral by Deequ's regexes, else `None`.
fn classify_number(bytes: &[u8]) -> Option<ValueClass> {
    let mut i = 0;
    if matches!(bytes.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    if bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int_digits = digits(i);
    if int_digits == 0 {
        return None;
    }
    i += int_digits;
    if i == bytes.len() {
        return Some(ValueClass::Integral);
    }
    if bytes[i] == b'.' {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
        if i == bytes.len() {
            return Some(ValueClass::Fractional);
        }
    }
    if matches!(bytes[i], b'e' | b'E') {
        i += 1;
        if matches!(bytes.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let n = digits(i);
        if n > 0 && i + n == bytes.len() {
            return Some(ValueClass::Fractional);
        }
    }
    None
}

/// The number a Fractional or Integral text holds (Spark's cast to double; the optional space
/// after the sign is dropped). `None` when it is not finite (`1e999`).
pub fn number(text: &str) -> Option<f64> {
    let parsed = match text.as_bytes() {
        [sign @ (b'-' | b'+'), b' ', rest @ ..] => {
            let rest = std::str::from_utf8(rest).ok()?;
            let value: f64 = rest.parse().ok()?;
            if *sign == b'-' { -value } else { value }
        }
        _ => text.parse().ok()?,
    };
    parsed.is_finite().then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deequ's regexes themselves (with `\d` as ASCII digits, as in Java) are the oracle.
    #[test]
    fn classes_match_deequs_regexes() {
        let fractional = regex::Regex::new(r"^(-|\+)? ?[0-9]+((\.[0-9]+)|((?:\.[0-9]+)?[Ee][-+]?[0-9]+))$").unwrap();
        let integral = regex::Regex::new(r"^(-|\+)? ?[0-9]+$").unwrap();
        let boolean = regex::Regex::new(r"^(true|false)$").unwrap();
        let samples = [
            "0", "7", "-7", "+7", "- 7", " 7", "7 ", "1.5", "-1.5", "1.", ".5", "1e5", "1E-5", "1.5e+10", "1.e5", "1e",
            "1e+", "e5", "3504.", "NaN", "Infinity", "-", "+", "", "true", "false", "True", "1,5", "0x10", "12a",
            "1.5.2", "--1", "+ 1.25E3", "٣", "1_000", "00012", "1e5.5",
        ];
        for s in samples {
            let expected = if fractional.is_match(s) {
                ValueClass::Fractional
            } else if integral.is_match(s) {
                ValueClass::Integral
            } else if boolean.is_match(s) {
                ValueClass::Boolean
            } else {
                ValueClass::String
            };
            assert_eq!(classify(s), expected, "{s:?}");
        }
    }

    #[test]
    fn column_types_follow_determine_type() {
        let counts = |f, i, b, s| TypeCounts { null: 3, fractional: f, integral: i, boolean: b, string: s };
        assert_eq!(TypeCounts { null: 5, ..Default::default() }.column_type(), DataType::Unknown);
        assert_eq!(counts(1, 9, 0, 0).column_type(), DataType::Fractional);
        assert_eq!(counts(0, 9, 0, 0).column_type(), DataType::Integral);
        assert_eq!(counts(1, 9, 0, 1).column_type(), DataType::String);
        assert_eq!(counts(0, 1, 1, 0).column_type(), DataType::String);
        assert_eq!(counts(1, 3, 0, 0).share_of(DataType::Fractional), Some(0.25));
        assert_eq!(number("- 2.5"), Some(-2.5));
        assert_eq!(number("1e999"), None);
    }
}

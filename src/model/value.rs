//! The document model shared by XGBoost's JSON and UBJSON encodings, with a reader for each
//! and writers.
//!
//! Hand-written rather than serde_json because XGBoost's JSON is not standard JSON (it
//! writes the tokens `NaN`, `Infinity` and `-Infinity`), and its f32 numbers must be parsed
//! straight to f32 (going through f64 can round twice); UBJSON has no well-kept crate. Both
//! readers bound nesting depth and never allocate more than the input could hold, so that
//! any byte sequence gives an error, never a panic or an exhausted memory.

use std::fmt;

/// A parsed document. Typed UBJSON arrays stay typed; JSON numbers keep their f32 reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// A number with a fraction or exponent, or a non-finite token: its f64 and exact f32.
    Float(f64, f32),
    Str(String),
    Array(Vec<Value>),
    F32Array(Vec<f32>),
    I32Array(Vec<i32>),
    I64Array(Vec<i64>),
    U8Array(Vec<u8>),
    Object(Vec<(String, Value)>),
}

/// Where and why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

const MAX_DEPTH: usize = 64;

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bool(b) => Some(i64::from(*b)),
            Self::Float(f, _) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f32(&self) -> Option<f32> {
        match self {
            Self::Float(_, f) => Some(*f),
            // i64 -> f32 rounds to nearest, as a C++ cast does.
            Self::Int(i) => Some(*i as f32),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Float(..) => "a number",
            Self::Str(_) => "a string",
            Self::Array(_) | Self::F32Array(_) | Self::I32Array(_) | Self::I64Array(_) | Self::U8Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }

    pub fn array_len(&self) -> Option<usize> {
        Some(match self {
            Self::Array(v) => v.len(),
            Self::F32Array(v) => v.len(),
            Self::I32Array(v) => v.len(),
            Self::I64Array(v) => v.len(),
            Self::U8Array(v) => v.len(),
            _ => return None,
        })
    }

    /// Elements as f32 (typed f32 arrays, or arrays of numbers).
    pub fn to_f32s(&self) -> Option<Vec<f32>> {
        match self {
            Self::F32Array(v) => Some(v.clone()),
            Self::Array(v) => v.iter().map(Self::as_f32).collect(),
            Self::I32Array(v) => Some(v.iter().map(|&x| x as f32).collect()),
            Self::U8Array(v) => Some(v.iter().map(|&x| f32::from(x)).collect()),
            _ => None,
        }
    }

    /// Elements as i64 (any integer array, or an array of integers or booleans).
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        match self {
            Self::I32Array(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            Self::I64Array(v) => Some(v.clone()),
            Self::U8Array(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            Self::Array(v) => v.iter().map(Self::as_i64).collect(),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------------------------------
// JSON
// ------------------------------------------------------------------------------------------

/// Parse XGBoost's JSON (standard JSON plus `NaN`, `Infinity`, `-Infinity`).
pub fn parse_json(bytes: &[u8]) -> Result<Value, ParseError> {
    let mut p = JsonParser { b: bytes, i: 0 };
    let value = p.value(0)?;
    p.skip_ws();
    if p.i != bytes.len() {
        return Err(p.err("trailing bytes after the document"));
    }
    Ok(value)
}

struct JsonParser<'a> {
    b: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError { offset: self.i, message: message.into() }
    }

    fn skip_ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, literal: &[u8]) -> bool {
        if self.b[self.i..].starts_with(literal) {
            self.i += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.skip_ws();
        let Some(&c) = self.b.get(self.i) else {
            return Err(self.err("unexpected end of input"));
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.skip_ws();
                if self.eat(b"}") {
                    return Ok(Value::Object(fields));
                }
                loop {
                    self.skip_ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a string key"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(b":") {
                        return Err(self.err("expected `:`"));
                    }
                    let value = self.value(depth + 1)?;
                    fields.push((key, value));
                    self.skip_ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"}") {
                        return Ok(Value::Object(fields));
                    }
                    return Err(self.err("expected `,` or `}`"));
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b"]") {
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"]") {
                        return Ok(Value::Array(items));
                    }
                    return Err(self.err("expected `,` or `]`"));
                }
            }
            b'"' => Ok(Value::Str(self.string()?)),
            b't' if self.eat(b"true") => Ok(Value::Bool(true)),
            b'f' if self.eat(b"false") => Ok(Value::Bool(false)),
            b'n' if self.eat(b"null") => Ok(Value::Null),
            b'N' if self.eat(b"NaN") => Ok(Value::Float(f64::NAN, f32::NAN)),
            b'I' if self.eat(b"Infinity") => Ok(Value::Float(f64::INFINITY, f32::INFINITY)),
            b'-' if self.eat(b"-Infinity") => Ok(Value::Float(f64::NEG_INFINITY, f32::NEG_INFINITY)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err(format!("unexpected byte 0x{c:02x}"))),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        let mut is_float = false;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => is_float = true,
                _ => break,
            }
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).expect("ASCII");
        if !is_float && let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        match (text.parse::<f64>(), text.parse::<f32>()) {
            (Ok(d), Ok(f)) => Ok(Value::Float(d, f)),
            _ => Err(ParseError { offset: start, message: format!("`{text}` is not a number") }),
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("a string is not closed"));
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("a string is not closed"));
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) && self.eat(b"\\u") {
                                let low = self.hex4()?;
                                code = 0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        _ => return Err(self.err("unknown escape in a string")),
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("a string is not UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self.b.get(self.i..self.i + 4).ok_or_else(|| self.err("a \\u escape is cut short"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err("bad \\u escape"))?;
        let code = u32::from_str_radix(text, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(code)
    }
}

// ------------------------------------------------------------------------------------------
// UBJSON (big-endian; typed arrays `[$t#L n` have no closing `]`)
// ------------------------------------------------------------------------------------------

/// Parse XGBoost's UBJSON.
pub fn parse_ubjson(bytes: &[u8]) -> Result<Value, ParseError> {
    let mut p = UbjParser { b: bytes, i: 0 };
    let marker = p.byte()?;
    let value = p.value(marker, 0)?;
    if p.i != bytes.len() {
        return Err(p.err("trailing bytes after the document"));
    }
    Ok(value)
}

struct UbjParser<'a> {
    b: &'a [u8],
    i: usize,
}

impl UbjParser<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError { offset: self.i, message: message.into() }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], ParseError> {
        let end = self.i.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err("cut short"))?;
        let slice = &self.b[self.i..end];
        self.i = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    fn int(&mut self, marker: u8) -> Result<i64, ParseError> {
        Ok(match marker {
            b'i' => i64::from(self.byte()? as i8),
            b'U' => i64::from(self.byte()?),
            b'I' => i64::from(i16::from_be_bytes(self.take(2)?.try_into().unwrap())),
            b'l' => i64::from(i32::from_be_bytes(self.take(4)?.try_into().unwrap())),
            b'L' => i64::from_be_bytes(self.take(8)?.try_into().unwrap()),
            _ => return Err(self.err(format!("expected an integer marker, found 0x{marker:02x}"))),
        })
    }

    /// A count or length, checked against what is left so that nothing huge is allocated.
    fn length(&mut self, element_size: usize) -> Result<usize, ParseError> {
        let marker = self.byte()?;
        let n = self.int(marker)?;
        let left = self.b.len() - self.i;
        usize::try_from(n)
            .ok()
            .filter(|&n| n.saturating_mul(element_size.max(1)) <= left)
            .ok_or_else(|| self.err(format!("length {n} is negative or longer than the {left} bytes left")))
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let n = self.length(1)?;
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes).map_err(|_| self.err("a string is not UTF-8"))
    }

    fn value(&mut self, marker: u8, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Int(self.int(marker)?),
            b'd' => {
                let f = f32::from_be_bytes(self.take(4)?.try_into().unwrap());
                Value::Float(f64::from(f), f)
            }
            b'D' => {
                let d = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                Value::Float(d, d as f32)
            }
            b'S' | b'H' => Value::Str(self.string()?),
            b'C' => Value::Str(char::from(self.byte()?).to_string()),
            b'{' => {
                let mut fields = Vec::new();
                loop {
                    match self.b.get(self.i) {
                        None => return Err(self.err("an object is not closed")),
                        Some(b'}') => {
                            self.i += 1;
                            break;
                        }
                        Some(_) => {
                            let key = self.string()?;
                            let marker = self.byte()?;
                            let value = self.value(marker, depth + 1)?;
                            fields.push((key, value));
                        }
                    }
                }
                Value::Object(fields)
            }
            b'[' => self.array(depth)?,
            _ => return Err(self.err(format!("unknown marker 0x{marker:02x}"))),
        })
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.b.get(self.i) {
            Some(b'$') => {
                self.i += 1;
                let element = self.byte()?;
                if self.byte()? != b'#' {
                    return Err(self.err("a typed array needs a count (`#`)"));
                }
                let size = match element {
                    b'd' | b'l' => 4,
                    b'L' | b'D' => 8,
                    b'U' | b'i' => 1,
                    b'I' => 2,
                    _ => return Err(self.err(format!("unsupported typed-array element 0x{element:02x}"))),
                };
                let n = self.length(size)?;
                let raw = self.take(n * size)?;
                Ok(match element {
                    b'd' => Value::F32Array(
                        raw.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().unwrap())).collect(),
                    ),
                    b'D' => Value::F32Array(
                        raw.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().unwrap()) as f32).collect(),
                    ),
                    b'l' => Value::I32Array(
                        raw.chunks_exact(4).map(|c| i32::from_be_bytes(c.try_into().unwrap())).collect(),
                    ),
                    b'L' => Value::I64Array(
                        raw.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().unwrap())).collect(),
                    ),
                    b'I' => Value::I32Array(
                        raw.chunks_exact(2).map(|c| i32::from(i16::from_be_bytes(c.try_into().unwrap()))).collect(),
                    ),
                    b'i' => Value::I32Array(raw.iter().map(|&b| i32::from(b as i8)).collect()),
                    _ => Value::U8Array(raw.to_vec()),
                })
            }
            Some(b'#') => {
                self.i += 1;
                let n = self.length(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let marker = self.byte()?;
                    items.push(self.value(marker, depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            _ => {
                let mut items = Vec::new();
                loop {
                    let marker = self.byte()?;
                    if marker == b']' {
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value(marker, depth + 1)?);
                }
            }
        }
    }
}

/// Encode as UBJSON the way XGBoost writes it: keys with an `L` length, strings `S` + `L`,
/// integers in the smallest type, typed arrays without a closing `]`.
pub fn write_ubjson(value: &Value, out: &mut Vec<u8>) {
    fn len(out: &mut Vec<u8>, n: usize) {
        out.push(b'L');
        out.extend_from_slice(&(n as i64).to_be_bytes());
    }
    fn typed(out: &mut Vec<u8>, element: u8, n: usize) {
        out.extend_from_slice(&[b'[', b'$', element, b'#']);
        len(out, n);
    }
    match value {
        Value::Null => out.push(b'Z'),
        Value::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
        Value::Int(i) => {
            let i = *i;
            if let Ok(v) = i8::try_from(i) {
                out.extend_from_slice(&[b'i', v as u8]);
            } else if let Ok(v) = u8::try_from(i) {
                out.extend_from_slice(&[b'U', v]);
            } else if let Ok(v) = i16::try_from(i) {
                out.push(b'I');
                out.extend_from_slice(&v.to_be_bytes());
            } else if let Ok(v) = i32::try_from(i) {
                out.push(b'l');
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.push(b'L');
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
        Value::Float(_, f) => {
            out.push(b'd');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => {
            out.push(b'S');
            len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.extend_from_slice(b"[#");
            len(out, items.len());
            for item in items {
                write_ubjson(item, out);
            }
        }
        Value::F32Array(v) => {
            typed(out, b'd', v.len());
            v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes()));
        }
        Value::I32Array(v) => {
            typed(out, b'l', v.len());
            v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes()));
        }
        Value::I64Array(v) => {
            typed(out, b'L', v.len());
            v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes()));
        }
        Value::U8Array(v) => {
            typed(out, b'U', v.len());
            out.extend_from_slice(v);
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (key, value) in fields {
                len(out, key.len());
                out.extend_from_slice(key.as_bytes());
                write_ubjson(value, out);
            }
            out.push(b'}');
        }
    }
}

/// Encode as XGBoost's JSON: f32 as the shortest text that reads back to the same f32.
pub fn write_json(value: &Value, out: &mut String) {
    use std::fmt::Write as _;
    fn float(out: &mut String, f: f32) {
        if f.is_nan() {
            out.push_str("NaN");
        } else if f.is_infinite() {
            out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        } else {
            out.push_str(ryu::Buffer::new().format_finite(f));
        }
    }
    fn items<T>(out: &mut String, v: &[T], mut each: impl FnMut(&mut String, &T)) {
        out.push('[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            each(out, x);
        }
        out.push(']');
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(_, f) => float(out, *f),
        Value::Str(s) => json_string(out, s),
        Value::Array(v) => items(out, v, |o, x| write_json(x, o)),
        Value::F32Array(v) => items(out, v, |o, x| float(o, *x)),
        Value::I32Array(v) => items(out, v, |o, x| {
            let _ = write!(o, "{x}");
        }),
        Value::I64Array(v) => items(out, v, |o, x| {
            let _ = write!(o, "{x}");
        }),
        Value::U8Array(v) => items(out, v, |o, x| {
            let _ = write!(o, "{x}");
        }),
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, key);
                out.push(':');
                write_json(value, out);
            }
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_xgboost_tokens_and_exact_f32() {
        let v = parse_json(br#"{"a":[NaN,Infinity,-Infinity,5.4936256E0,-1,true],"s":"x\u00e9\"y"}"#).unwrap();
        let a = v.get("a").unwrap().to_f32s();
        assert!(a.is_none(), "true is not a number");
        let Value::Array(items) = v.get("a").unwrap() else { panic!() };
        assert!(items[0].as_f32().unwrap().is_nan());
        assert_eq!(items[1].as_f32(), Some(f32::INFINITY));
        assert_eq!(items[2].as_f32(), Some(f32::NEG_INFINITY));
        assert_eq!(items[3].as_f32(), Some(5.4936256f32));
        assert_eq!(items[4], Value::Int(-1));
        assert_eq!(v.get("s").unwrap().as_str(), Some("xé\"y"));
    }

    #[test]
    fn ubjson_round_trips() {
        let doc = Value::Object(vec![
            ("f".into(), Value::F32Array(vec![1.5, -0.25, f32::NAN])),
            ("i".into(), Value::I32Array(vec![-1, 2147483647])),
            ("u".into(), Value::U8Array(vec![0, 1])),
            ("n".into(), Value::Array(vec![Value::Int(300), Value::Int(-5), Value::Str("x".into())])),
            ("o".into(), Value::Object(vec![])),
        ]);
        let mut bytes = Vec::new();
        write_ubjson(&doc, &mut bytes);
        assert!(bytes.starts_with(b"{L\0\0\0\0\0\0\0\x01f[$d#L"));
        let back = parse_ubjson(&bytes).unwrap();
        let Value::F32Array(f) = back.get("f").unwrap() else { panic!() };
        assert!(f[2].is_nan());
        assert_eq!(back.get("n"), doc.get("n"));
        assert_eq!(back.get("i"), doc.get("i"));

        let mut json = String::new();
        write_json(&doc, &mut json);
        let again = parse_json(json.as_bytes()).unwrap();
        assert_eq!(again.get("n"), doc.get("n"));
        assert!(json.contains("[1.5,-0.25,NaN]"), "{json}");
    }

    #[test]
    fn hostile_inputs_are_errors() {
        assert!(parse_json(&[b'['; 10_000]).is_err());
        assert!(parse_ubjson(b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff").is_err());
        assert!(parse_ubjson(b"{L\x00\x00\x00\x00\x00\x00\x00\x05ab").is_err());
        assert!(parse_json(b"{\"a\":1} x").is_err());
        assert!(parse_json(b"\"\\ud800").is_err());
    }
}

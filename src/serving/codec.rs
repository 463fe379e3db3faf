//! Request bodies to feature rows, and predictions to response bodies, per content type, as
//! SageMaker's built-in XGBoost server does.

use super::error::ServeError;
use super::recordio;

/// Request content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Csv,
    Libsvm,
    Json,
    JsonLines,
    RecordIo,
}

impl Input {
    /// Lowercased, parameters ignored; a missing Content-Type is libsvm, as the built-in.
    pub fn parse(content_type: Option<&str>) -> Result<Self, ServeError> {
        let Some(text) = content_type else { return Ok(Self::Libsvm) };
        Ok(match media_type(text).as_str() {
            "text/csv" | "csv" => Self::Csv,
            "text/libsvm" | "text/x-libsvm" | "libsvm" => Self::Libsvm,
            "application/json" => Self::Json,
            "application/jsonlines" | "application/x-jsonlines" | "application/json-lines" => Self::JsonLines,
            "application/x-recordio-protobuf" | "recordio-protobuf" => Self::RecordIo,
            _ => return Err(ServeError::UnsupportedMediaType(text.to_string())),
        })
    }
}

/// Response content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Csv,
    Json,
    JsonLines,
    RecordIo,
}

impl Output {
    pub fn parse(accept: &str) -> Option<Self> {
        Some(match media_type(accept).as_str() {
            "text/csv" | "csv" => Self::Csv,
            "application/json" => Self::Json,
            "application/jsonlines" | "application/x-jsonlines" => Self::JsonLines,
            "application/x-recordio-protobuf" => Self::RecordIo,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Json => "application/json",
            Self::JsonLines => "application/jsonlines",
            Self::RecordIo => "application/x-recordio-protobuf",
        }
    }

    /// The response type for an `Accept` header: the first supported entry of a list; `*/*`
    /// or none means `default` (from `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`, else CSV).
    pub fn negotiate(accept: Option<&str>, default: Self) -> Result<Self, ServeError> {
        let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else { return Ok(default) };
        for entry in accept.split(',') {
            let entry = media_type(entry);
            if entry == "*/*" {
                return Ok(default);
            }
            if let Some(output) = Self::parse(&entry) {
                return Ok(output);
            }
        }
        Err(ServeError::NotAcceptable(accept.to_string()))
    }
}

fn media_type(text: &str) -> String {
    text.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn bad(message: String) -> ServeError {
    ServeError::BadPayload(message)
}

impl Input {
    /// Sparse inputs are decoded onto the model's projection (the features its splits read).
    pub fn is_sparse(self) -> bool {
        matches!(self, Self::Libsvm | Self::RecordIo)
    }
}

/// A block of decoded rows (row-major, NaN for missing) handed on when full.
type OnBlock<'f> = dyn FnMut(&[f32], usize) -> Result<(), ServeError> + 'f;

/// Rows decoded a block at a time: whatever the payload's rows and the model's width, at most
/// `max_rows` rows (about `block_values` values, and at least one row) are held at once.
struct Rows<'f> {
    values: Vec<f32>,
    /// Rows in `values`.
    held: usize,
    max_rows: usize,
    /// Rows decoded so far, handed on or held.
    count: usize,
    on_block: &'f mut OnBlock<'f>,
}

impl Rows<'_> {
    /// A row of `values.len() - start` values has been pushed: hand the block on when full.
    fn end_row(&mut self) -> Result<(), ServeError> {
        self.held += 1;
        self.count += 1;
        if self.held == self.max_rows { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), ServeError> {
        if self.held > 0 {
            (self.on_block)(&self.values, self.held)?;
            self.values.clear();
            self.held = 0;
        }
        Ok(())
    }
}

/// Decode a request body into rows for a model of `num_feature` features, handing them to
/// `on_block` a block of at most `block_values` values (and at least one row) at a time; the
/// rows decoded. Dense formats must give exactly `num_feature` values per row (rows are
/// `num_feature` wide); sparse ones (libsvm, RecordIO) indices below it, and their rows hold
/// only the `used` features. Nothing is allocated from a size the model or the payload
/// declares: only from what the payload holds, a block at a time.
pub fn decode<'f>(
    input: Input,
    body: &[u8],
    num_feature: usize,
    used: &[u32],
    block_values: usize,
    on_block: &'f mut OnBlock<'f>,
) -> Result<usize, ServeError> {
    // A model that declares no features still reads rows of one value, as the server
    // predicts them: a row of no values would make a block of rows with no values at all.
    let num_feature = num_feature.max(1);
    let columns = Columns { num_feature, used };
    let width = if input.is_sparse() { columns.width() } else { num_feature.max(1) };
    let max_rows = (block_values / width).max(1);
    let mut rows = Rows { values: Vec::new(), held: 0, max_rows, count: 0, on_block };
    match input {
        Input::Csv => decode_csv(body, num_feature, &mut rows)?,
        Input::Libsvm => decode_libsvm(body, columns, &mut rows)?,
        Input::Json => decode_json(body, num_feature, &mut rows)?,
        Input::JsonLines => decode_json_lines(body, num_feature, &mut rows)?,
        Input::RecordIo => decode_recordio(body, columns, &mut rows)?,
    }
    rows.flush()?;
    Ok(rows.count)
}

/// Where a sparse row's features go: feature `used[k]` in column `k`; others are read by no
/// split and dropped (after checking they are below `num_feature`).
#[derive(Clone, Copy)]
struct Columns<'a> {
    num_feature: usize,
    used: &'a [u32],
}

impl Columns<'_> {
    fn width(&self) -> usize {
        self.used.len().max(1)
    }

    fn column(&self, index: usize) -> Option<usize> {
        u32::try_from(index).ok().and_then(|i| self.used.binary_search(&i).ok())
    }
}

fn text(body: &[u8]) -> Result<&str, ServeError> {
    std::str::from_utf8(body).map_err(|e| bad(format!("the payload is not UTF-8 text (byte {})", e.valid_up_to())))
}

fn wrong_width(width: usize, row: usize, num_feature: usize) -> ServeError {
    let given = if width > num_feature { format!("more than {num_feature}") } else { width.to_string() };
    bad(format!("row {row} has {given} values; the model takes {num_feature} features"))
}

fn decode_csv(body: &[u8], num_feature: usize, rows: &mut Rows<'_>) -> Result<(), ServeError> {
    let text = text(body)?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    // The built-in sniffs the delimiter; anything but these falls back to a comma.
    let delimiter = [',', '\t', ';', '|', ' '].into_iter().find(|d| first.contains(*d)).unwrap_or(',');
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut width = 0;
        for (c, field) in line.split(delimiter).enumerate() {
            if c == num_feature {
                return Err(wrong_width(c + 1, i + 1, num_feature));
            }
            let field = field.trim();
            let value = if field.is_empty() {
                f32::NAN
            } else {
                field.parse::<f32>().map_err(|_| {
                    let hint = if rows.count == 0 { " (a header row is not allowed)" } else { "" };
                    bad(format!("row {}, column {}: `{}` is not a number{hint}", i + 1, c + 1, clip(field)))
                })?
            };
            rows.values.push(value);
            width += 1;
        }
        if width != num_feature {
            return Err(wrong_width(width, i + 1, num_feature));
        }
        rows.end_row()?;
    }
    Ok(())
}

fn decode_libsvm(body: &[u8], columns: Columns<'_>, rows: &mut Rows<'_>) -> Result<(), ServeError> {
    let text = text(body)?;
    let num_feature = columns.num_feature;
    for (i, line) in text.lines().enumerate() {
        let mut tokens = line.split_ascii_whitespace().peekable();
        if tokens.peek().is_none() {
            continue;
        }
        // The first token is the label (`label[:weight]`, ignored), as XGBoost's parser reads it.
        tokens.next();
        let start = rows.values.len();
        rows.values.resize(start + columns.width(), f32::NAN);
        for token in tokens {
            if token.starts_with("qid:") {
                continue;
            }
            let (index, value) = token
                .split_once(':')
                .and_then(|(i, v)| Some((i.parse::<usize>().ok()?, v.parse::<f32>().ok()?)))
                .ok_or_else(|| bad(format!("row {}: `{}` is not `index:value`", i + 1, clip(token))))?;
            if index >= num_feature {
                return Err(bad(format!(
                    "row {}: feature index {index} is beyond the model's {num_feature} features",
                    i + 1
                )));
            }
            if let Some(c) = columns.column(index) {
                rows.values[start + c] = value;
            }
        }
        rows.end_row()?;
    }
    Ok(())
}

/// JSON payloads are read straight into rows (serde visitors, no document tree): a payload
/// costs its rows' values, not a tree of boxed values many times its size. serde_json's
/// recursion limit (128) bounds nesting in what is skipped.
mod json {
    use std::cell::RefCell;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::{Rows, ServeError, bad, clip, wrong_width};

    /// `DeserializeSeed` for a visitor of any JSON value.
    macro_rules! seed_any {
        ($seed:ty) => {
            impl<'de> DeserializeSeed<'de> for $seed {
                type Value = ();
                fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                    d.deserialize_any(self)
                }
            }
        };
    }

    /// The scalar `visit_*` methods of a visitor that refuses scalars with `self.$refuse()`.
    macro_rules! refuse_scalars {
        ($refuse:ident) => {
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                Err(self.$refuse())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
                Err(self.$refuse())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
                Err(self.$refuse())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
                Err(self.$refuse())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
                Err(self.$refuse())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
                Err(self.$refuse())
            }
        };
    }

    /// What the visitors share: the rows, the model's width, and the first error in our words
    /// (serde's error only stops the parse).
    pub(super) struct State<'r, 'f> {
        pub rows: &'r mut Rows<'f>,
        pub num_feature: usize,
        pub error: Option<ServeError>,
        /// The row being read (1-based), for messages.
        pub row: usize,
    }

    pub(super) type Shared<'s, 'r, 'f> = &'s RefCell<State<'r, 'f>>;

    fn fail<E: de::Error>(state: Shared<'_, '_, '_>, error: ServeError) -> E {
        let mut s = state.borrow_mut();
        if s.error.is_none() {
            s.error = Some(error);
        }
        E::custom("refused")
    }

    /// `{"instances": [...]}` (or `"features"`), or a list: of rows, or of numbers (one row).
    pub(super) struct Document<'s, 'r, 'f>(pub Shared<'s, 'r, 'f>);

    seed_any!(Document<'_, '_, '_>);

    impl<'de> Visitor<'de> for Document<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of rows or {\"instances\": [...]}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut found = false;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if matches!(key.as_ref(), "instances" | "features") {
                    if found {
                        return Err(fail(self.0, bad("a JSON object payload needs one `instances` list".into())));
                    }
                    found = true;
                    map.next_value_seed(List(self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if !found {
                return Err(fail(self.0, bad("a JSON object payload needs an `instances` list".into())));
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            List(self.0).visit_seq(seq)
        }
        refuse_scalars!(refuse);
    }

    impl Document<'_, '_, '_> {
        fn refuse<E: de::Error>(&self) -> E {
            fail(self.0, bad("the JSON payload must be a list of rows or {\"instances\": [...]}".into()))
        }
    }

    /// A list of rows, or a flat list of numbers (one row).
    struct List<'s, 'r, 'f>(Shared<'s, 'r, 'f>);

    impl<'de> DeserializeSeed<'de> for List<'_, '_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for List<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            // The first element says which: a number or null makes the list one flat row.
            let mut flat = None;
            let mut width = 0;
            loop {
                let more = match flat {
                    None | Some(false) => {
                        let row = self.0.borrow().rows.count + 1;
                        self.0.borrow_mut().row = row;
                        seq.next_element_seed(Element { state: self.0, flat: &mut flat, width: &mut width })?
                    }
                    Some(true) => seq
                        .next_element_seed(Number { state: self.0, column: width + 1 })
                        .map(|v| v.map(|()| width += 1))?,
                };
                if more.is_none() {
                    break;
                }
            }
            if flat == Some(true) {
                end_row(self.0, width)?;
            }
            Ok(())
        }
    }

    /// The end of a row of `width` values: checked against the model, then counted.
    fn end_row<E: de::Error>(state: Shared<'_, '_, '_>, width: usize) -> Result<(), E> {
        let mut s = state.borrow_mut();
        let (row, num_feature) = (s.row.max(1), s.num_feature);
        let result = if width == num_feature { s.rows.end_row() } else { Err(wrong_width(width, row, num_feature)) };
        drop(s);
        result.map_err(|e| fail(state, e))
    }

    /// One element of the top list: a row (a list, or `{"features": [...]}`), or the first
    /// number of a flat row.
    struct Element<'s, 'r, 'f, 'x> {
        state: Shared<'s, 'r, 'f>,
        flat: &'x mut Option<bool>,
        width: &'x mut usize,
    }

    seed_any!(Element<'_, '_, '_, '_>);

    impl Element<'_, '_, '_, '_> {
        fn number<E: de::Error>(self, v: f32) -> Result<(), E> {
            if *self.flat == Some(false) {
                let row = self.state.borrow().row;
                return Err(fail(self.state, bad(format!("row {row}: expected a list of numbers"))));
            }
            *self.flat = Some(true);
            *self.width += 1;
            push(self.state, v)
        }
    }

    impl<'de> Visitor<'de> for Element<'_, '_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row")
        }
        // After a number the list is one flat row, whose elements are read as numbers: a row
        // here is always the list's first element or follows another row.
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            *self.flat = Some(false);
            Row(self.state).visit_seq(seq)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
            *self.flat = Some(false);
            Row(self.state).visit_map(map)
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            self.number(f32::NAN)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
            self.number(v as f32)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            self.number(v as f64 as f32)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            self.number(v as f64 as f32)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Err(self.not_a_row())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Err(self.not_a_row())
        }
    }

    impl Element<'_, '_, '_, '_> {
        fn not_a_row<E: de::Error>(&self) -> E {
            let row = self.state.borrow().row;
            fail(self.state, bad(format!("row {row}: expected a list of numbers")))
        }
    }

    fn push<E: de::Error>(state: Shared<'_, '_, '_>, v: f32) -> Result<(), E> {
        state.borrow_mut().rows.values.push(v);
        Ok(())
    }

    /// One row: a list of numbers (`null` = missing), or `{"features": [...]}`.
    pub(super) struct Row<'s, 'r, 'f>(pub Shared<'s, 'r, 'f>);

    seed_any!(Row<'_, '_, '_>);

    impl<'de> Visitor<'de> for Row<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let num_feature = self.0.borrow().num_feature;
            let mut width = 0;
            // Values past the model's width are read (for the count in the message), not kept.
            while seq.next_element_seed(Number { state: self.0, column: width + 1 })?.is_some() {
                width += 1;
                if width > num_feature {
                    self.0.borrow_mut().rows.values.pop();
                }
            }
            end_row(self.0, width)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut found = false;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "features" && !found {
                    found = true;
                    map.next_value_seed(RowList(self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if !found {
                let row = self.0.borrow().row;
                return Err(fail(self.0, bad(format!("row {row}: an object row needs a `features` list"))));
            }
            Ok(())
        }
        refuse_scalars!(not_a_row);
    }

    impl Row<'_, '_, '_> {
        fn not_a_row<E: de::Error>(&self) -> E {
            let row = self.0.borrow().row;
            fail(self.0, bad(format!("row {row}: expected a list of numbers")))
        }
    }

    /// The `features` list of an object row.
    struct RowList<'s, 'r, 'f>(Shared<'s, 'r, 'f>);

    seed_any!(RowList<'_, '_, '_>);

    impl<'de> Visitor<'de> for RowList<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of numbers")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            Row(self.0).visit_seq(seq)
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(self.refuse())
        }
        refuse_scalars!(refuse);
    }

    impl RowList<'_, '_, '_> {
        fn refuse<E: de::Error>(&self) -> E {
            let row = self.0.borrow().row;
            fail(self.0, bad(format!("row {row}: an object row needs a `features` list")))
        }
    }

    /// One feature value: a number, or `null` for missing.
    struct Number<'s, 'r, 'f> {
        state: Shared<'s, 'r, 'f>,
        column: usize,
    }

    seed_any!(Number<'_, '_, '_>);

    impl Number<'_, '_, '_> {
        fn not_a_number<E: de::Error>(&self, what: &str) -> E {
            let row = self.state.borrow().row;
            fail(self.state, bad(format!("row {row}, column {}: {} is not a number", self.column, clip(what))))
        }
    }

    impl<'de> Visitor<'de> for Number<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            push(self.state, f32::NAN)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
            push(self.state, v as f32)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            push(self.state, v as f64 as f32)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            push(self.state, v as f64 as f32)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
            Err(self.not_a_number(&v.to_string()))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            Err(self.not_a_number(&format!("{v:?}")))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(self.not_a_number("a list"))
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(self.not_a_number("an object"))
        }
    }

    /// Parse `text` with `seed`: our error when a visitor refused, else serde_json's.
    pub(super) fn parse<'s, 'r, 'f, S>(
        text: &[u8],
        state: Shared<'s, 'r, 'f>,
        seed: S,
        what: &str,
    ) -> Result<(), ServeError>
    where
        S: for<'de> DeserializeSeed<'de, Value = ()>,
    {
        let mut de = serde_json::Deserializer::from_slice(text);
        let result = seed.deserialize(&mut de).and_then(|()| de.end());
        if let Some(error) = state.borrow_mut().error.take() {
            return Err(error);
        }
        result.map_err(|e| bad(format!("{what} is not valid: {e}")))
    }
}

fn decode_json(body: &[u8], num_feature: usize, rows: &mut Rows<'_>) -> Result<(), ServeError> {
    let state = std::cell::RefCell::new(json::State { rows, num_feature, error: None, row: 0 });
    json::parse(body, &state, json::Document(&state), "the JSON payload")
}

fn decode_json_lines(body: &[u8], num_feature: usize, rows: &mut Rows<'_>) -> Result<(), ServeError> {
    let state = std::cell::RefCell::new(json::State { rows, num_feature, error: None, row: 0 });
    for (i, line) in text(body)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        state.borrow_mut().row = i + 1;
        json::parse(line.as_bytes(), &state, json::Row(&state), &format!("row {}: the JSON", i + 1))?;
    }
    Ok(())
}

fn decode_recordio(body: &[u8], columns: Columns<'_>, rows: &mut Rows<'_>) -> Result<(), ServeError> {
    let num_feature = columns.num_feature;
    // One record at a time (continuations joined), never a copy of the whole body.
    let mut frames = recordio::FrameReader::new(body, body.len());
    let mut frame = Vec::new();
    let mut row = 0;
    while frames.next_into(&mut frame).map_err(|e| bad(format!("RecordIO: {e}")))? {
        row += 1;
        let tensor = recordio::record_features(&frame).map_err(|e| bad(format!("record {row}: {e}")))?;
        let start = rows.values.len();
        rows.values.resize(start + columns.width(), f32::NAN);
        if tensor.keys.is_empty() {
            if tensor.values.len() != num_feature {
                return Err(wrong_width(tensor.values.len(), row, num_feature));
            }
            for (k, &f) in columns.used.iter().enumerate() {
                rows.values[start + k] = tensor.values[f as usize];
            }
        } else {
            if tensor.keys.len() != tensor.values.len() {
                return Err(bad(format!(
                    "record {row}: {} keys for {} values",
                    tensor.keys.len(),
                    tensor.values.len()
                )));
            }
            for (&k, &v) in tensor.keys.iter().zip(&tensor.values) {
                let k = usize::try_from(k).ok().filter(|&k| k < num_feature).ok_or_else(|| {
                    bad(format!("record {row}: feature index {k} is beyond the model's {num_feature} features"))
                })?;
                if let Some(c) = columns.column(k) {
                    rows.values[start + c] = v;
                }
            }
        }
        rows.end_row()?;
    }
    Ok(())
}

/// Long fields are cut in messages.
fn clip(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text.to_string()
    }
}

/// One value of a prediction row, typed as the built-in server prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A default-output score: numpy float32 text in CSV.
    Score(f32),
    /// Several default scores of one row (multi-output): comma-separated in CSV.
    Scores(Vec<f32>),
    /// A selected float: a Python float (an f32 widened, or `1.0 - p` computed in f64 as the
    /// built-in computes it) in CSV and JSON, float32 in RecordIO.
    Float(f64),
    Floats(Vec<f64>),
    Int(i64),
    Ints(Vec<i64>),
    /// A key the objective cannot answer: `nan` in CSV, `null` in JSON.
    Missing,
}

/// Encode prediction rows of `(key, field)` pairs, one row at a time; CSV and JSON lines end
/// in a newline. Stops with `Err(limit)` once the body passes `limit` bytes.
pub fn encode<'k>(
    output: Output,
    rows: impl IntoIterator<Item = Vec<(&'k str, Field)>>,
    limit: usize,
) -> Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    if output == Output::Json {
        out.extend_from_slice(b"{\"predictions\":[");
    }
    for (i, row) in rows.into_iter().enumerate() {
        match output {
            Output::Csv => {
                for (k, (_, field)) in row.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    csv_field(field, &mut out);
                }
                out.push(b'\n');
            }
            Output::Json => {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, &json_object(&row)).expect("JSON encodes");
            }
            Output::JsonLines => {
                serde_json::to_writer(&mut out, &json_object(&row)).expect("JSON encodes");
                out.push(b'\n');
            }
            Output::RecordIo => {
                let entries: Vec<(&str, Vec<f32>)> = row.iter().map(|(k, f)| (*k, as_f32s(f))).collect();
                recordio::write_frame(&recordio::label_record(&entries), &mut out);
            }
        }
        if out.len() > limit {
            return Err(limit);
        }
    }
    if output == Output::Json {
        out.extend_from_slice(b"]}");
    }
    Ok(out)
}

fn as_f32s(field: &Field) -> Vec<f32> {
    match field {
        Field::Score(v) => vec![*v],
        Field::Scores(v) => v.clone(),
        Field::Float(v) => vec![*v as f32],
        Field::Floats(v) => v.iter().map(|&v| v as f32).collect(),
        Field::Int(i) => vec![*i as f32],
        Field::Ints(v) => v.iter().map(|&i| i as f32).collect(),
        Field::Missing => vec![f32::NAN],
    }
}

fn csv_field(field: &Field, out: &mut Vec<u8>) {
    let list = |items: Vec<String>, out: &mut Vec<u8>| {
        out.extend_from_slice(format!("\"[{}]\"", items.join(", ")).as_bytes());
    };
    match field {
        Field::Score(v) => out.extend_from_slice(python_float(f64::from(*v), ryu::Buffer::new().format(*v)).as_bytes()),
        Field::Scores(values) => {
            for (k, v) in values.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(python_float(f64::from(*v), ryu::Buffer::new().format(*v)).as_bytes());
            }
        }
        Field::Float(v) => out.extend_from_slice(python_float(*v, ryu::Buffer::new().format(*v)).as_bytes()),
        Field::Floats(values) => {
            list(values.iter().map(|v| python_float(*v, ryu::Buffer::new().format(*v))).collect(), out)
        }
        Field::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Field::Ints(values) => list(values.iter().map(i64::to_string).collect(), out),
        Field::Missing => out.extend_from_slice(b"nan"),
    }
}

/// Python's `repr(float)` (and numpy's `str(float32)`, which follows the same rules) of `v`,
/// given `shortest`, ryu's shortest text for it (of the f32 for a float32): the same digits,
/// positional from 1e-4 up to 1e16, else scientific with a signed exponent of two digits at
/// least (`1e-05`, `1.5e+16`); `nan`, `inf`, `-inf`.
fn python_float(v: f64, shortest: &str) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let (sign, text) = shortest.strip_prefix('-').map_or(("", shortest), |t| ("-", t));
    let (mantissa, exponent) = text.split_once(['e', 'E']).map_or((text, 0), |(m, e)| (m, e.parse::<i32>().unwrap()));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, and the power of ten of the first: v = d.ddd x 10^point.
    let all = format!("{whole}{fraction}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0');
    if digits.is_empty() {
        return format!("{sign}0.0");
    }
    let point = whole.len() as i32 - 1 - leading as i32 + exponent;
    if (-4..16).contains(&point) {
        let text = if point < 0 {
            format!("0.{}{digits}", "0".repeat((-point - 1) as usize))
        } else if digits.len() as i32 <= point + 1 {
            format!("{digits}{}.0", "0".repeat((point + 1) as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at((point + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{text}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exp_sign = if point < 0 { '-' } else { '+' };
        format!("{sign}{first}{rest}e{exp_sign}{:02}", point.abs())
    }
}

/// JSON numbers as Python's `json` writes a float (a float32 widened); NaN as null.
fn json_float(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn json_object(row: &[(&str, Field)]) -> serde_json::Value {
    let floats = |vs: &mut dyn Iterator<Item = f64>| serde_json::Value::Array(vs.map(json_float).collect());
    let map: serde_json::Map<String, serde_json::Value> = row
        .iter()
        .map(|(k, f)| {
            let v = match f {
                Field::Score(v) => json_float(f64::from(*v)),
                Field::Float(v) => json_float(*v),
                Field::Scores(vs) => floats(&mut vs.iter().map(|&v| f64::from(v))),
                Field::Floats(vs) => floats(&mut vs.iter().copied()),
                Field::Int(i) => serde_json::Value::from(*i),
                Field::Ints(vs) => serde_json::Value::from(vs.clone()),
                Field::Missing => serde_json::Value::Null,
            };
            ((*k).to_string(), v)
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_accept() {
        assert_eq!(Output::negotiate(None, Output::Csv).unwrap(), Output::Csv);
        assert_eq!(Output::negotiate(Some("*/*"), Output::Json).unwrap(), Output::Json);
        assert_eq!(Output::negotiate(Some("text/html, application/json; q=0.9"), Output::Csv).unwrap(), Output::Json);
        assert!(matches!(Output::negotiate(Some("text/html"), Output::Csv), Err(ServeError::NotAcceptable(_))));
        assert_eq!(Input::parse(None).unwrap(), Input::Libsvm);
        assert_eq!(Input::parse(Some("text/csv; charset=utf-8")).unwrap(), Input::Csv);
        assert!(matches!(Input::parse(Some("image/png")), Err(ServeError::UnsupportedMediaType(_))));
    }

    /// Every feature of a 3-feature model.
    const ALL: [u32; 3] = [0, 1, 2];

    struct Decoded {
        values: Vec<f32>,
        count: usize,
        /// Rows of each block handed on.
        blocks: Vec<usize>,
    }

    fn decode_in_blocks(
        input: Input,
        body: &[u8],
        num_feature: usize,
        used: &[u32],
        block_values: usize,
    ) -> Result<Decoded, ServeError> {
        let (mut values, mut blocks) = (Vec::new(), Vec::new());
        let mut on_block = |block: &[f32], rows: usize| {
            values.extend_from_slice(block);
            blocks.push(rows);
            Ok(())
        };
        let count = super::decode(input, body, num_feature, used, block_values, &mut on_block)?;
        Ok(Decoded { values, count, blocks })
    }

    fn decode(input: Input, body: &[u8], num_feature: usize, used: &[u32]) -> Result<Decoded, ServeError> {
        decode_in_blocks(input, body, num_feature, used, 1 << 20)
    }

    #[test]
    fn decodes_every_format() {
        let csv = decode(Input::Csv, b"1,2,\n4,5,6\n", 3, &ALL).unwrap();
        assert_eq!(csv.count, 2);
        assert!(csv.values[2].is_nan());
        let svm = decode(Input::Libsvm, b"0 1:2.5\n1 2:1\n", 3, &ALL).unwrap();
        assert_eq!((svm.count, svm.values[1], svm.values[5]), (2, 2.5, 1.0));
        assert!(svm.values[0].is_nan());
        // Sparse rows keep only the features the model reads: here 2 (column 0).
        let projected = decode(Input::Libsvm, b"0 1:2.5\n1 2:1 0:3\n", 3, &[2]).unwrap();
        assert_eq!(projected.values.len(), 2);
        assert!(projected.values[0].is_nan() && projected.values[1] == 1.0);
        let json = decode(Input::Json, br#"{"instances": [[1, null, 3], {"features": [4, 5, 6]}]}"#, 3, &ALL).unwrap();
        assert_eq!(json.count, 2);
        assert_eq!(bits(&json.values), bits(&[1.0, f32::NAN, 3.0, 4.0, 5.0, 6.0]));
        let bare = decode(Input::Json, b"[1, 2, 3]", 3, &ALL).unwrap();
        assert_eq!((bare.count, bare.values), (1, vec![1.0, 2.0, 3.0]));
        let flat = decode(Input::Json, br#"{"other": [[[0]]], "instances": [null, 2, 3e0]}"#, 3, &ALL).unwrap();
        assert_eq!(bits(&flat.values), bits(&[f32::NAN, 2.0, 3.0]));
        let lines = decode(Input::JsonLines, b"{\"features\": [1, 2, 3]}\n[4, 5, 6]\n", 3, &ALL).unwrap();
        assert_eq!((lines.count, lines.values), (2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let empty = decode(Input::Json, br#"{"instances": []}"#, 3, &ALL).unwrap();
        assert_eq!((empty.count, empty.blocks.len()), (0, 0));
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// However many rows a payload has and however wide the model, at most a block of rows
    /// is held: 10 values here, so 3 rows of 3 (or 5 sparse rows of 2), at least one row.
    #[test]
    fn rows_are_handed_on_a_block_at_a_time() {
        let csv: String = (0..10).map(|i| format!("{i},1,2\n")).collect();
        let decoded = decode_in_blocks(Input::Csv, csv.as_bytes(), 3, &ALL, 10).unwrap();
        assert_eq!((decoded.count, decoded.blocks), (10, vec![3, 3, 3, 1]));
        assert_eq!(decoded.values.len(), 30);
        let svm: String = (0..12).map(|i| format!("0 {}:1\n", i % 3)).collect();
        let decoded = decode_in_blocks(Input::Libsvm, svm.as_bytes(), 3, &[0, 2], 10).unwrap();
        assert_eq!(decoded.blocks, vec![5, 5, 2]);
        let json = format!("[{}]", ["[1, 2, 3]"; 7].join(","));
        let decoded = decode_in_blocks(Input::Json, json.as_bytes(), 3, &ALL, 10).unwrap();
        assert_eq!(decoded.blocks, vec![3, 3, 1]);
        // A model wider than a block: one row at a time.
        let decoded = decode_in_blocks(Input::Libsvm, b"0 1:1\n0\n", 3, &ALL, 2).unwrap();
        assert_eq!(decoded.blocks, vec![1, 1]);
    }

    /// A model that declares no features reads rows of one value, as the server predicts
    /// them (found by the `request_decode` fuzz target: rows of no values made blocks of none).
    #[test]
    fn a_model_of_no_features_reads_rows_of_one() {
        let one = decode(Input::Json, b"[[1], [2]]", 0, &[]).unwrap();
        assert_eq!((one.count, one.values), (2, vec![1.0, 2.0]));
        let e = decode(Input::JsonLines, b"[]\n", 0, &[]).err().unwrap().to_string();
        assert_eq!(e, "row 1 has 0 values; the model takes 1 features");
        let e = decode(Input::Json, b"[[]]", 0, &[]).err().unwrap().to_string();
        assert_eq!(e, "row 1 has 0 values; the model takes 1 features");
    }

    #[test]
    fn bad_rows_are_named() {
        let err = |input, body: &[u8]| decode(input, body, 3, &ALL).err().unwrap().to_string();
        let e = err(Input::Csv, b"a,b,c\n1,2,3\n");
        assert!(e.contains("row 1, column 1: `a` is not a number (a header row is not allowed)"), "{e}");
        let e = err(Input::Csv, b"1,2,3\n1,2\n");
        assert!(e.contains("row 2 has 2 values; the model takes 3"), "{e}");
        let e = err(Input::Csv, b"1,2,3,4\n");
        assert!(e.contains("row 1 has more than 3 values"), "{e}");
        let e = err(Input::Libsvm, b"1 7:1\n");
        assert!(e.contains("feature index 7"), "{e}");
        let e = err(Input::Json, b"{\"instances\": [[1, 2");
        assert!(e.contains("the JSON payload is not valid"), "{e}");
        let e = err(Input::Json, b"[[1, 2, 3], [1, 2]]");
        assert_eq!(e, "row 2 has 2 values; the model takes 3 features");
        let e = err(Input::Json, b"[[1, 2, 3, 4, 5]]");
        assert_eq!(e, "row 1 has more than 3 values; the model takes 3 features");
        let e = err(Input::Json, br#"[[1, 2, 3], [1, "x", 3]]"#);
        assert_eq!(e, r#"row 2, column 2: "x" is not a number"#);
        let e = err(Input::Json, br#"[1, [2], 3]"#);
        assert_eq!(e, "row 1, column 2: a list is not a number");
        let e = err(Input::Json, br#"[[1, 2, 3], 4]"#);
        assert_eq!(e, "row 2: expected a list of numbers");
        let e = err(Input::Json, br#"{"rows": [[1, 2, 3]]}"#);
        assert_eq!(e, "a JSON object payload needs an `instances` list");
        let e = err(Input::Json, br#"[{"values": [1, 2, 3]}]"#);
        assert_eq!(e, "row 1: an object row needs a `features` list");
        let e = err(Input::Json, b"\"text\"");
        assert!(e.starts_with("the JSON payload must be a list of rows"), "{e}");
        let e = err(Input::JsonLines, b"[1, 2, 3]\n{\"features\": [1, true, 3]}\n");
        assert_eq!(e, "row 2, column 2: true is not a number");
        let e = err(Input::JsonLines, b"[1, 2, 3]\n[1, 2, 3\n");
        assert!(e.starts_with("row 2: the JSON is not valid"), "{e}");
    }

    /// Deep nesting costs neither stack nor memory: serde_json skips an unknown key's value
    /// without recursion, and a row's values must be numbers, so a nested list stops it.
    #[test]
    fn deep_json_is_skipped_or_refused() {
        let deep = |inner: &str| format!("{}{inner}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        let body = format!("{{\"x\": {}, \"instances\": [[1, 2, 3]]}}", deep(""));
        assert_eq!(decode(Input::Json, body.as_bytes(), 3, &ALL).unwrap().count, 1);
        let e = decode(Input::Json, deep("1").as_bytes(), 3, &ALL).err().unwrap().to_string();
        assert_eq!(e, "row 1, column 1: a list is not a number");
    }

    /// Python's `repr`, by hand: `[repr(x) for x in (...)]`.
    #[test]
    fn floats_print_as_python_prints_them() {
        let cases: [(f64, &str); 12] = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (-3.25e-7, "-3.25e-07"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0, "0.0"),
            (f64::from(0.1f32), "0.10000000149011612"),
        ];
        for (v, want) in cases {
            assert_eq!(python_float(v, ryu::Buffer::new().format(v)), want, "{v:e}");
        }
        // numpy's str(np.float32(...)): the float32's shortest digits.
        assert_eq!(python_float(f64::from(1e-5f32), ryu::Buffer::new().format(1e-5f32)), "1e-05");
        assert_eq!(python_float(f64::from(0.1f32), ryu::Buffer::new().format(0.1f32)), "0.1");
        assert_eq!(python_float(f64::NAN, "NaN"), "nan");
    }

    #[test]
    fn encodes_like_the_built_in() {
        let rows = vec![vec![("score", Field::Score(0.5))], vec![("score", Field::Scores(vec![0.25, 0.75]))]];
        assert_eq!(encode(Output::Csv, rows.clone(), 100).unwrap(), b"0.5\n0.25,0.75\n");
        assert_eq!(encode(Output::Json, rows[..1].to_vec(), 100).unwrap(), br#"{"predictions":[{"score":0.5}]}"#);
        assert_eq!(
            encode(Output::Json, rows.clone(), 100).unwrap(),
            br#"{"predictions":[{"score":0.5},{"score":[0.25,0.75]}]}"#
        );
        assert_eq!(encode(Output::Csv, rows.clone(), 8), Err(8), "the limit stops the encoding");
        let keyed = vec![vec![
            ("predicted_label", Field::Int(1)),
            ("probabilities", Field::Floats(vec![0.25, f64::from(0.1f32)])),
            ("x", Field::Missing),
        ]];
        assert_eq!(encode(Output::Csv, keyed.clone(), 100).unwrap(), b"1,\"[0.25, 0.10000000149011612]\",nan\n");
        assert_eq!(
            encode(Output::JsonLines, keyed, 100).unwrap(),
            b"{\"predicted_label\":1,\"probabilities\":[0.25,0.10000000149011612],\"x\":null}\n"
        );
    }
}

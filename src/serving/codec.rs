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

/// Dense rows, `num_feature` wide, NaN for missing.
pub struct Rows {
    pub values: Vec<f32>,
    pub count: usize,
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

/// Decode a request body into rows for a model of `num_feature` features. Dense formats must
/// give exactly `num_feature` values per row (rows are `num_feature` wide); sparse ones
/// (libsvm, RecordIO) indices below it, and their rows hold only the `used` features.
pub fn decode(input: Input, body: &[u8], num_feature: usize, used: &[u32]) -> Result<Rows, ServeError> {
    let mut rows = Rows { values: Vec::new(), count: 0 };
    let columns = Columns { num_feature, used };
    match input {
        Input::Csv => decode_csv(body, num_feature, &mut rows)?,
        Input::Libsvm => decode_libsvm(body, columns, &mut rows)?,
        Input::Json => decode_json(body, num_feature, &mut rows)?,
        Input::JsonLines => decode_json_lines(body, num_feature, &mut rows)?,
        Input::RecordIo => decode_recordio(body, columns, &mut rows)?,
    }
    Ok(rows)
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

fn push_dense(
    rows: &mut Rows,
    values: impl IntoIterator<Item = f32>,
    row: usize,
    num_feature: usize,
) -> Result<(), ServeError> {
    let before = rows.values.len();
    rows.values.extend(values.into_iter().take(num_feature + 1));
    let width = rows.values.len() - before;
    if width != num_feature {
        rows.values.truncate(before);
        return Err(wrong_width(width, row, num_feature));
    }
    rows.count += 1;
    Ok(())
}

fn wrong_width(width: usize, row: usize, num_feature: usize) -> ServeError {
    let given = if width > num_feature { format!("more than {num_feature}") } else { width.to_string() };
    bad(format!("row {row} has {given} values; the model takes {num_feature} features"))
}

fn decode_csv(body: &[u8], num_feature: usize, rows: &mut Rows) -> Result<(), ServeError> {
    let text = text(body)?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    // The built-in sniffs the delimiter; anything but these falls back to a comma.
    let delimiter = [',', '\t', ';', '|', ' '].into_iter().find(|d| first.contains(*d)).unwrap_or(',');
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        // Values go straight into the matrix; a bad row is taken back out.
        let start = rows.values.len();
        let mut width = 0;
        for (c, field) in line.split(delimiter).enumerate() {
            if c == num_feature {
                rows.values.truncate(start);
                return Err(bad(format!(
                    "row {} has more than {num_feature} values; the model takes {num_feature} features",
                    i + 1
                )));
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
            rows.values.truncate(start);
            return Err(bad(format!("row {} has {width} values; the model takes {num_feature} features", i + 1)));
        }
        rows.count += 1;
    }
    Ok(())
}

fn decode_libsvm(body: &[u8], columns: Columns<'_>, rows: &mut Rows) -> Result<(), ServeError> {
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
        rows.count += 1;
    }
    Ok(())
}

/// A JSON value as a feature: numbers, `null` for missing.
fn json_number(v: &serde_json::Value, row: usize, col: usize) -> Result<f32, ServeError> {
    match v {
        serde_json::Value::Null => Ok(f32::NAN),
        serde_json::Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
        other => Err(bad(format!("row {row}, column {col}: {} is not a number", clip(&other.to_string())))),
    }
}

fn json_row(v: &serde_json::Value, row: usize, num_feature: usize, rows: &mut Rows) -> Result<(), ServeError> {
    let values = match v {
        serde_json::Value::Array(values) => values,
        serde_json::Value::Object(map) => match map.get("features") {
            Some(serde_json::Value::Array(values)) => values,
            _ => return Err(bad(format!("row {row}: an object row needs a `features` list"))),
        },
        _ => return Err(bad(format!("row {row}: expected a list of numbers"))),
    };
    if values.len() != num_feature {
        return Err(bad(format!("row {row} has {} values; the model takes {num_feature} features", values.len())));
    }
    let parsed = values.iter().enumerate().map(|(c, v)| json_number(v, row, c + 1)).collect::<Result<Vec<_>, _>>()?;
    push_dense(rows, parsed, row, num_feature)
}

fn decode_json(body: &[u8], num_feature: usize, rows: &mut Rows) -> Result<(), ServeError> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the JSON payload is not valid: {e}")))?;
    let list = match &doc {
        serde_json::Value::Object(map) => match map.get("instances").or_else(|| map.get("features")) {
            Some(serde_json::Value::Array(list)) => list.clone(),
            _ => return Err(bad("a JSON object payload needs an `instances` list".into())),
        },
        serde_json::Value::Array(list) => list.clone(),
        _ => return Err(bad("the JSON payload must be a list of rows or {\"instances\": [...]}".into())),
    };
    // A flat list of numbers is one row.
    if list.first().is_some_and(|v| v.is_number() || v.is_null()) {
        return json_row(&serde_json::Value::Array(list), 1, num_feature, rows);
    }
    for (i, row) in list.iter().enumerate() {
        json_row(row, i + 1, num_feature, rows)?;
    }
    Ok(())
}

fn decode_json_lines(body: &[u8], num_feature: usize, rows: &mut Rows) -> Result<(), ServeError> {
    for (i, line) in text(body)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("row {}: not valid JSON: {e}", i + 1)))?;
        json_row(&v, i + 1, num_feature, rows)?;
    }
    Ok(())
}

fn decode_recordio(body: &[u8], columns: Columns<'_>, rows: &mut Rows) -> Result<(), ServeError> {
    let num_feature = columns.num_feature;
    let frames = recordio::frames(body).map_err(|e| bad(format!("RecordIO: {e}")))?;
    for (i, frame) in frames.iter().enumerate() {
        let row = i + 1;
        let tensor = recordio::record_features(frame).map_err(|e| bad(format!("record {row}: {e}")))?;
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
        rows.count += 1;
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
    /// A selected float: a Python float (the f32 widened) in every encoding.
    Float(f32),
    Floats(Vec<f32>),
    Int(i64),
    Ints(Vec<i64>),
    /// A key the objective cannot answer: `nan` in CSV, `null` in JSON.
    Missing,
}

/// Encode prediction rows of `(key, field)` pairs; CSV and JSON lines end in a newline.
pub fn encode(output: Output, rows: &[Vec<(&str, Field)>]) -> Vec<u8> {
    let mut out = Vec::new();
    match output {
        Output::Csv => {
            for row in rows {
                for (i, (_, field)) in row.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    csv_field(field, &mut out);
                }
                out.push(b'\n');
            }
        }
        Output::Json => {
            let predictions: Vec<serde_json::Value> = rows.iter().map(|row| json_object(row)).collect();
            out = serde_json::to_vec(&serde_json::json!({ "predictions": predictions })).expect("JSON encodes");
        }
        Output::JsonLines => {
            for row in rows {
                out.extend(serde_json::to_vec(&json_object(row)).expect("JSON encodes"));
                out.push(b'\n');
            }
        }
        Output::RecordIo => {
            for row in rows {
                let entries: Vec<(&str, Vec<f32>)> = row.iter().map(|(k, f)| (*k, as_f32s(f))).collect();
                recordio::write_frame(&recordio::label_record(&entries), &mut out);
            }
        }
    }
    out
}

fn as_f32s(field: &Field) -> Vec<f32> {
    match field {
        Field::Score(v) | Field::Float(v) => vec![*v],
        Field::Scores(v) | Field::Floats(v) => v.clone(),
        Field::Int(i) => vec![*i as f32],
        Field::Ints(v) => v.iter().map(|&i| i as f32).collect(),
        Field::Missing => vec![f32::NAN],
    }
}

fn csv_field(field: &Field, out: &mut Vec<u8>) {
    let mut buffer = ryu::Buffer::new();
    let list = |items: Vec<String>, out: &mut Vec<u8>| {
        out.extend_from_slice(format!("\"[{}]\"", items.join(", ")).as_bytes());
    };
    match field {
        Field::Score(v) => out.extend_from_slice(f32_text(&mut buffer, *v).as_bytes()),
        Field::Scores(values) => {
            for (k, v) in values.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(f32_text(&mut buffer, *v).as_bytes());
            }
        }
        Field::Float(v) => out.extend_from_slice(python_float(*v).as_bytes()),
        Field::Floats(values) => list(values.iter().map(|v| python_float(*v)).collect(), out),
        Field::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Field::Ints(values) => list(values.iter().map(i64::to_string).collect(), out),
        Field::Missing => out.extend_from_slice(b"nan"),
    }
}

/// numpy's `str(float32)`: the shortest text that reads back to the same f32.
fn f32_text(buffer: &mut ryu::Buffer, v: f32) -> &str {
    if v.is_nan() {
        "nan"
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }
    } else {
        buffer.format_finite(v)
    }
}

/// Python's `repr(float(v))` for an f32 widened to f64.
fn python_float(v: f32) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        ryu::Buffer::new().format_finite(f64::from(v)).to_string()
    }
}

/// JSON numbers as Python's `json` writes a float32 widened to float; NaN as null.
fn json_float(v: f32) -> serde_json::Value {
    serde_json::Number::from_f64(f64::from(v)).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn json_object(row: &[(&str, Field)]) -> serde_json::Value {
    let floats = |vs: &[f32]| serde_json::Value::Array(vs.iter().map(|v| json_float(*v)).collect());
    let map: serde_json::Map<String, serde_json::Value> = row
        .iter()
        .map(|(k, f)| {
            let v = match f {
                Field::Score(v) | Field::Float(v) => json_float(*v),
                Field::Scores(vs) | Field::Floats(vs) => floats(vs),
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
        let bare = decode(Input::Json, b"[1, 2, 3]", 3, &ALL).unwrap();
        assert_eq!(bare.count, 1);
        let lines = decode(Input::JsonLines, b"{\"features\": [1, 2, 3]}\n[4, 5, 6]\n", 3, &ALL).unwrap();
        assert_eq!(lines.count, 2);
    }

    #[test]
    fn bad_rows_are_named() {
        let err = decode(Input::Csv, b"a,b,c\n1,2,3\n", 3, &ALL).err().unwrap().to_string();
        assert!(err.contains("row 1, column 1: `a` is not a number (a header row is not allowed)"), "{err}");
        let err = decode(Input::Csv, b"1,2,3\n1,2\n", 3, &ALL).err().unwrap().to_string();
        assert!(err.contains("row 2 has 2 values; the model takes 3"), "{err}");
        let err = decode(Input::Libsvm, b"1 7:1\n", 3, &ALL).err().unwrap().to_string();
        assert!(err.contains("feature index 7"), "{err}");
        let err = decode(Input::Json, b"{\"instances\": [[1, 2", 3, &ALL).err().unwrap().to_string();
        assert!(err.contains("not valid"), "{err}");
    }

    #[test]
    fn encodes_like_the_built_in() {
        let rows = vec![vec![("score", Field::Score(0.5))], vec![("score", Field::Scores(vec![0.25, 0.75]))]];
        assert_eq!(encode(Output::Csv, &rows), b"0.5\n0.25,0.75\n");
        assert_eq!(encode(Output::Json, &rows[..1]), br#"{"predictions":[{"score":0.5}]}"#);
        let keyed = vec![vec![
            ("predicted_label", Field::Int(1)),
            ("probabilities", Field::Floats(vec![0.25, 0.1])),
            ("x", Field::Missing),
        ]];
        assert_eq!(encode(Output::Csv, &keyed), b"1,\"[0.25, 0.10000000149011612]\",nan\n");
        assert_eq!(
            encode(Output::JsonLines, &keyed),
            b"{\"predicted_label\":1,\"probabilities\":[0.25,0.10000000149011612],\"x\":null}\n"
        );
    }
}

//! The (ground truth, prediction, probability) of every row under `dataset_source`, in one
//! streaming pass, for each `dataset_format` of the settings; every problem names its file and
//! line. Files are listed as the data-quality reader lists them (sorted, hidden ones skipped).

use std::borrow::Cow;
use std::path::Path;

use serde_json::Value;

use super::super::Error;
use super::super::dataset::{CsvFields, Lines, data_files};
use super::settings::{Attributes, Capture, Format, Job};

/// One row's texts, as the attributes address them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair<'a> {
    pub truth: Cow<'a, str>,
    pub prediction: Option<Cow<'a, str>>,
    pub probability: Option<Cow<'a, str>>,
}

/// What was read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    pub files: usize,
    pub rows: u64,
    /// Merged records whose inference time is outside [start_time, end_time).
    pub outside_window: u64,
}

type Sink<'s> = dyn FnMut(Pair<'_>) -> Result<(), String> + 's;

/// Every row, handed to `sink`; a problem `sink` reports is placed at its file and line.
pub fn read(job: &Job, sink: &mut Sink<'_>) -> Result<Read, Error> {
    let files = data_files(&job.source)?;
    let mut read = Read { files: files.len(), ..Read::default() };
    let mut header: Option<Vec<String>> = None;
    for file in &files {
        match job.format {
            Format::Csv { header: has_header } => {
                read_csv(file, has_header, &job.attributes, &mut header, sink, &mut read)?;
            }
            Format::Json { lines } => read_json(file, lines, &job.attributes, sink, &mut read)?,
            Format::Merged { capture } => read_merged(file, capture, job, sink, &mut read)?,
        }
    }
    Ok(read)
}

/// Where each attribute is in a CSV row.
struct Columns {
    truth: usize,
    prediction: Option<usize>,
    probability: Option<usize>,
}

fn csv_columns(attributes: &Attributes, names: Option<&[String]>) -> Result<Columns, String> {
    let find = |attribute: &'static str, value: &str| -> Result<usize, String> {
        let position = match names {
            Some(names) => names.iter().position(|n| n == value),
            None => value.strip_prefix("_c").unwrap_or(value).parse::<usize>().ok(),
        };
        position.ok_or_else(|| match names {
            Some(names) => format!("`{attribute}` `{value}` is not a column of the header ({})", names.join(", ")),
            None => format!("`{attribute}` `{value}` is not a column of a CSV without header: give `_cN` or `N`"),
        })
    };
    let truth = attributes.ground_truth.as_deref().unwrap_or_default();
    Ok(Columns {
        truth: find("ground_truth_attribute", truth)?,
        prediction: attributes.inference.as_deref().map(|v| find("inference_attribute", v)).transpose()?,
        probability: attributes.probability.as_deref().map(|v| find("probability_attribute", v)).transpose()?,
    })
}

fn read_csv(
    file: &Path,
    has_header: bool,
    attributes: &Attributes,
    header: &mut Option<Vec<String>>,
    sink: &mut Sink<'_>,
    read: &mut Read,
) -> Result<(), Error> {
    let mut lines = Lines::open(file)?;
    let mut fields = CsvFields::default();
    let mut columns: Option<Columns> = None;
    let mut first = true;
    while let Some(line) = lines.next()? {
        let split = fields.split(line);
        split.map_err(|problem| lines.malformed(problem.into()))?;
        if std::mem::take(&mut first) && has_header {
            let names: Vec<String> = (0..fields.len()).map(|i| fields.get(i).into_owned()).collect();
            if header.as_ref().is_some_and(|h| *h != names) {
                return Err(lines.malformed("the header differs from the first file's".into()));
            }
            columns = Some(csv_columns(attributes, Some(&names)).map_err(|p| lines.malformed(p))?);
            *header = Some(names);
            continue;
        }
        if columns.is_none() {
            columns = Some(csv_columns(attributes, header.as_deref()).map_err(|p| lines.malformed(p))?);
        }
        let c = columns.as_ref().expect("resolved above");
        let needed = [Some(c.truth), c.prediction, c.probability].into_iter().flatten().max().unwrap_or(0);
        if needed >= fields.len() {
            let problem = format!("the row has {} fields; the attributes need column {needed}", fields.len());
            return Err(lines.malformed(problem));
        }
        let pair = Pair {
            truth: fields.get(c.truth),
            prediction: c.prediction.map(|i| fields.get(i)),
            probability: c.probability.map(|i| fields.get(i)),
        };
        sink(pair).map_err(|p| lines.malformed(p))?;
        read.rows += 1;
    }
    Ok(())
}

fn read_json(
    file: &Path,
    lines: bool,
    attributes: &Attributes,
    sink: &mut Sink<'_>,
    read: &mut Read,
) -> Result<(), Error> {
    let mut add = |value: &Value| -> Result<(), String> {
        let truth = attributes.ground_truth.as_deref().unwrap_or_default();
        let pair = Pair {
            truth: Cow::Owned(lookup_text(value, truth, "ground_truth_attribute")?),
            prediction: attributes
                .inference
                .as_deref()
                .map(|p| lookup_text(value, p, "inference_attribute"))
                .transpose()?
                .map(Cow::Owned),
            probability: attributes
                .probability
                .as_deref()
                .map(|p| lookup_text(value, p, "probability_attribute"))
                .transpose()?
                .map(Cow::Owned),
        };
        sink(pair)?;
        read.rows += 1;
        Ok(())
    };
    if lines {
        let mut reader = Lines::open(file)?;
        while let Some(line) = reader.next()? {
            let value: Value = serde_json::from_slice(line).map_err(|e| reader.malformed(format!("not JSON: {e}")))?;
            add(&value).map_err(|p| reader.malformed(p))?;
        }
        return Ok(());
    }
    let handle = std::fs::File::open(file).map_err(|source| Error::Read { path: file.to_path_buf(), source })?;
    let malformed = |line: u64, problem: String| Error::Malformed { file: file.to_path_buf(), line, problem };
    let value: Value = serde_json::from_reader(std::io::BufReader::new(handle))
        .map_err(|e| malformed(e.line() as u64, format!("not JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for (i, item) in items.iter().enumerate() {
        add(item).map_err(|p| malformed(0, format!("item {i}: {p}")))?;
    }
    Ok(())
}

/// A merge job's records: the captured payload and `groundTruthData`, each CSV or JSON.
fn read_merged(file: &Path, capture: Capture, job: &Job, sink: &mut Sink<'_>, read: &mut Read) -> Result<(), Error> {
    let mut lines = Lines::open(file)?;
    while let Some(line) = lines.next()? {
        let record: Value = serde_json::from_slice(line).map_err(|e| lines.malformed(format!("not JSON: {e}")))?;
        if !in_window(&record, job.start_time.as_deref(), job.end_time.as_deref()) {
            read.outside_window += 1;
            continue;
        }
        let added = merged_pairs(&record, capture, &job.attributes, sink).map_err(|p| lines.malformed(p))?;
        read.rows += added;
    }
    Ok(())
}

/// Whether `eventMetadata.inferenceTime` is in [start, end) (times compared to the second).
fn in_window(record: &Value, start: Option<&str>, end: Option<&str>) -> bool {
    let Some(time) = record.pointer("/eventMetadata/inferenceTime").and_then(Value::as_str) else { return true };
    let second = |t: &str| t.get(..19).map(str::to_string).unwrap_or_else(|| t.to_string());
    let t = second(time);
    start.is_none_or(|s| t >= second(s)) && end.is_none_or(|e| t < second(e))
}

/// A captured or ground-truth payload: `(data, encoding)` split into records.
enum Payload {
    Csv(Vec<Vec<String>>),
    Json(Value),
}

fn payload(record: &Value, pointer: &str, what: &str) -> Result<Payload, String> {
    let part =
        record.pointer(pointer).ok_or_else(|| format!("the record has no `{}`", &pointer[1..].replace('/', ".")))?;
    let data = part.get("data").and_then(Value::as_str).ok_or_else(|| format!("{what} has no `data` string"))?;
    match part.get("encoding").and_then(Value::as_str).unwrap_or("CSV") {
        "CSV" => {
            let mut fields = CsvFields::default();
            let mut rows = Vec::new();
            for line in data.lines().filter(|l| !l.trim().is_empty()) {
                fields.split(line.as_bytes()).map_err(|p| format!("{what}'s CSV data: {p}"))?;
                rows.push((0..fields.len()).map(|i| fields.get(i).into_owned()).collect());
            }
            Ok(Payload::Csv(rows))
        }
        "JSON" => serde_json::from_str(data).map(Payload::Json).map_err(|e| format!("{what}'s JSON data: {e}")),
        "BASE64" => Err(format!(
            "{what} is BASE64-encoded: its content type was not listed in the endpoint's \
             DataCaptureConfig.CaptureContentTypeHeader (CsvContentTypes or JsonContentTypes), so it cannot be read"
        )),
        other => Err(format!("{what} has encoding `{other}`; expected CSV, JSON or BASE64")),
    }
}

fn merged_pairs(record: &Value, capture: Capture, a: &Attributes, sink: &mut Sink<'_>) -> Result<u64, String> {
    let captured =
        payload(record, &format!("/captureData/{}", capture.key()), &format!("captureData.{}", capture.key()))?;
    let truth = payload(record, "/groundTruthData", "groundTruthData")?;
    let count = match (&captured, &truth) {
        (Payload::Csv(c), Payload::Csv(t)) if c.len() != t.len() => {
            return Err(format!(
                "captureData.{} has {} CSV records but groundTruthData {}",
                capture.key(),
                c.len(),
                t.len()
            ));
        }
        (Payload::Csv(c), _) => c.len(),
        (_, Payload::Csv(t)) => t.len(),
        _ => 1,
    };
    for i in 0..count {
        let truth_text = index(&truth, i, a.ground_truth.as_deref(), "ground_truth_attribute")?;
        let prediction =
            a.inference.as_deref().map(|p| index(&captured, i, Some(p), "inference_attribute")).transpose()?;
        let probability =
            a.probability.as_deref().map(|p| index(&captured, i, Some(p), "probability_attribute")).transpose()?;
        sink(Pair {
            truth: truth_text.into(),
            prediction: prediction.map(Into::into),
            probability: probability.map(Into::into),
        })?;
    }
    Ok(count as u64)
}

/// Record `i`'s value at `attribute`: a 0-based column of CSV, a path into JSON; the whole
/// (first column of a) payload when there is no attribute.
fn index(payload: &Payload, i: usize, attribute: Option<&str>, name: &str) -> Result<String, String> {
    match payload {
        Payload::Csv(rows) => {
            let row = &rows[i];
            let column = match attribute {
                None => 0,
                Some(a) => a
                    .strip_prefix("_c")
                    .unwrap_or(a)
                    .parse::<usize>()
                    .map_err(|_| format!("`{name}` `{a}` must be a 0-based column index into CSV data"))?,
            };
            row.get(column)
                .cloned()
                .ok_or_else(|| format!("`{name}` is column {column} but the CSV data has {} column(s)", row.len()))
        }
        Payload::Json(value) => match attribute {
            None => {
                text(value).ok_or_else(|| "the JSON data is not a single value: set `ground_truth_attribute`".into())
            }
            Some(a) => lookup_text(value, a, name),
        },
    }
}

/// The text of the value at a path: `a.b`, `$.a.b`, `a[0].b`, or `0` into an array.
fn lookup_text(value: &Value, path: &str, name: &str) -> Result<String, String> {
    let found = lookup(value, path).ok_or_else(|| format!("`{name}` `{path}` is not in the record"))?;
    text(found).ok_or_else(|| format!("`{name}` `{path}` is not a number, string or boolean: {found}"))
}

fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let path = path.strip_prefix('$').map(|p| p.strip_prefix('.').unwrap_or(p)).unwrap_or(path);
    if let Some(found) = value.get(path) {
        return Some(found);
    }
    let mut current = value;
    for segment in path.split('.') {
        let (key, indices) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = match current {
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                _ => current.get(key)?,
            };
        }
        for index in indices.split('[').skip(1) {
            current = current.get(index.strip_suffix(']')?.trim().parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) if items.len() == 1 => text(&items[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

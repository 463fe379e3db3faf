//! Reading the data set under `dataset_source` into column profiles, in one streaming pass.
//!
//! Every regular file below the directory, in sorted order, gzip detected from its bytes;
//! files and directories whose name starts with `.` or `_` are skipped (as Spark skips
//! `_SUCCESS` and hidden files). Lines are at most `MAX_LINE` bytes.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::Error;
use super::infer::ValueClass;
use super::settings::DatasetFormat;
use super::stats::{Cell, ColumnProfile};
use crate::data::{DataError, files};

/// The longest line read (a CSV row or a JSON line).
pub const MAX_LINE: usize = 16 << 20;

/// A profiled data set.
#[derive(Debug)]
pub struct Dataset {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
    pub files: Vec<PathBuf>,
    /// Columns are named by position (`_c0`, ...): CSV without a header.
    pub positional: bool,
}

/// Builds the columns, each with the baseline domain of its name if there is one.
struct Columns<'a> {
    profiles: Vec<ColumnProfile>,
    index: HashMap<String, usize>,
    domains: &'a HashMap<String, HashSet<Box<str>>>,
}

impl<'a> Columns<'a> {
    fn new(domains: &'a HashMap<String, HashSet<Box<str>>>) -> Self {
        Self { profiles: Vec::new(), index: HashMap::new(), domains }
    }

    /// The column named `name`, added with `missing` nulls for the rows read before it.
    fn get_or_add(&mut self, name: &str, missing: u64) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let mut profile = ColumnProfile::new(name.into()).with_domain(self.domains.get(name).cloned());
        profile.types.null += missing;
        self.profiles.push(profile);
        self.index.insert(name.into(), self.profiles.len() - 1);
        self.profiles.len() - 1
    }
}

/// Profile every file under `source`.
pub fn profile(
    source: &Path,
    format: DatasetFormat,
    skip_columns: usize,
    domains: &HashMap<String, HashSet<Box<str>>>,
) -> Result<Dataset, Error> {
    let files = data_files(source)?;
    let mut columns = Columns::new(domains);
    let mut rows = 0u64;
    for file in &files {
        match format {
            DatasetFormat::Csv { header } => read_csv(file, header, skip_columns, &mut columns, &mut rows)?,
            DatasetFormat::Json { lines } => read_json(file, lines, &mut columns, &mut rows)?,
            DatasetFormat::Parquet => read_parquet(file, &mut columns, &mut rows)?,
        }
    }
    if rows == 0 {
        return Err(Error::NoData {
            path: source.to_path_buf(),
            detail: format!(": {} file(s) but no data rows", files.len()),
        });
    }
    let positional = matches!(format, DatasetFormat::Csv { header: false });
    Ok(Dataset { rows, columns: columns.profiles, files, positional })
}

pub(super) fn data_files(source: &Path) -> Result<Vec<PathBuf>, Error> {
    let no_data = |detail: &str| Error::NoData { path: source.to_path_buf(), detail: detail.into() };
    let listed = files::list_files(source).map_err(|e| match e {
        DataError::Missing { .. } => no_data(": it does not exist"),
        DataError::NoFiles { .. } => no_data(": the directory holds no files"),
        DataError::Io { path, source } => Error::Read { path, source },
        other => Error::Setting(other.to_string()),
    })?;
    let visible: Vec<PathBuf> = listed
        .into_iter()
        .filter(|file| {
            let relative = file.strip_prefix(source).unwrap_or(file);
            !relative.components().any(|c| c.as_os_str().to_string_lossy().starts_with(['.', '_']))
        })
        .collect();
    if visible.is_empty() {
        return Err(no_data(": only hidden files (names starting with `.` or `_`)"));
    }
    Ok(visible)
}

/// Reads lines of at most `MAX_LINE` bytes, counting them.
pub(super) struct Lines {
    file: PathBuf,
    reader: Box<dyn BufRead + Send>,
    buffer: Vec<u8>,
    pub(super) number: u64,
}

impl Lines {
    pub(super) fn open(file: &Path) -> Result<Self, Error> {
        let opened = files::open(file).map_err(|e| match e {
            DataError::Io { path, source } => Error::Read { path, source },
            other => Error::Setting(other.to_string()),
        })?;
        Ok(Self { file: file.to_path_buf(), reader: opened.reader, buffer: Vec::new(), number: 0 })
    }

    /// The next non-blank line without its terminator, or `None` at the end.
    pub(super) fn next(&mut self) -> Result<Option<&[u8]>, Error> {
        loop {
            self.buffer.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| Error::Read { path: self.file.clone(), source })?;
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
            if self.buffer.len() > MAX_LINE {
                return Err(self.malformed(format!("the line is longer than {} MiB", MAX_LINE >> 20)));
            }
            let line = trim_end(&self.buffer);
            if !line.iter().all(u8::is_ascii_whitespace) {
                let len = line.len();
                return Ok(Some(&self.buffer[..len]));
            }
        }
    }

    pub(super) fn malformed(&self, problem: String) -> Error {
        Error::Malformed { file: self.file.clone(), line: self.number, problem }
    }
}

fn trim_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The fields of one CSV line (commas, `"` quoting), in buffers reused from line to line.
pub(super) struct CsvFields {
    /// Built once: `Reader::new` builds its state machine (`Reader::default` is not usable).
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    count: usize,
}

impl Default for CsvFields {
    fn default() -> Self {
        Self { reader: csv_core::Reader::new(), out: Vec::new(), ends: Vec::new(), count: 0 }
    }
}

impl CsvFields {
    pub(super) fn split(&mut self, line: &[u8]) -> Result<(), &'static str> {
        let reader = &mut self.reader;
        reader.reset();
        // Unquoted output is never longer than the line, and a line has at most len + 1 fields.
        self.out.resize(line.len(), 0);
        self.ends.resize(line.len() + 1, 0);
        let (result, _, written, count) = reader.read_record(line, &mut self.out, &mut self.ends);
        if !matches!(result, csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::Record) {
            return Err("the line could not be split");
        }
        let (result, _, more_written, more) =
            reader.read_record(&[], &mut self.out[written..], &mut self.ends[count..]);
        if !matches!(result, csv_core::ReadRecordResult::Record) {
            return Err("a quote is not closed");
        }
        self.out.truncate(written + more_written);
        self.count = count + more;
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Field `i` as text (invalid UTF-8 replaced, as Spark decodes it).
    pub(super) fn get(&self, i: usize) -> std::borrow::Cow<'_, str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let end = self.ends[i].min(self.out.len());
        String::from_utf8_lossy(&self.out[start.min(end)..end])
    }
}

/// CSV rows; the first `skip` fields of every line (the header's too) are dropped.
fn read_csv(file: &Path, header: bool, skip: usize, columns: &mut Columns<'_>, rows: &mut u64) -> Result<(), Error> {
    let mut lines = Lines::open(file)?;
    let mut fields = CsvFields::default();
    let mut first = true;
    while let Some(line) = lines.next()? {
        let split = fields.split(line);
        split.map_err(|problem| lines.malformed(problem.into()))?;
        let kept = skip.min(fields.len())..fields.len();
        if std::mem::take(&mut first) && header {
            let names: Vec<String> = kept.map(|i| fields.get(i).into_owned()).collect();
            if columns.profiles.is_empty() {
                for name in &names {
                    if columns.index.contains_key(name.as_str()) {
                        return Err(lines.malformed(format!("the header names column `{name}` twice")));
                    }
                    columns.get_or_add(name, 0);
                }
            } else if columns.profiles.iter().map(|c| c.name.as_str()).ne(names.iter().map(String::as_str)) {
                return Err(lines.malformed("the header differs from the first file's".into()));
            }
            continue;
        }
        if columns.profiles.is_empty() {
            for i in 0..kept.len() {
                columns.get_or_add(&format!("_c{i}"), 0);
            }
        }
        if kept.len() != columns.profiles.len() {
            return Err(lines.malformed(format!(
                "expected {} fields, found {}",
                columns.profiles.len() + skip,
                fields.len()
            )));
        }
        for (profile, i) in columns.profiles.iter_mut().zip(kept) {
            let field = fields.get(i);
            profile.add(if field.is_empty() { Cell::Null } else { Cell::Text(&field) });
        }
        *rows += 1;
    }
    Ok(())
}

fn read_json(file: &Path, lines: bool, columns: &mut Columns<'_>, rows: &mut u64) -> Result<(), Error> {
    if lines {
        let mut reader = Lines::open(file)?;
        while let Some(line) = reader.next()? {
            let parsed = serde_json::from_slice::<serde_json::Value>(line);
            let value = parsed.map_err(|e| reader.malformed(format!("not JSON: {e}")))?;
            let serde_json::Value::Object(object) = value else {
                return Err(reader.malformed("not a JSON object".into()));
            };
            add_object(&object, columns, rows);
        }
        return Ok(());
    }
    let handle = std::fs::File::open(file).map_err(|source| Error::Read { path: file.to_path_buf(), source })?;
    let value: serde_json::Value = serde_json::from_reader(std::io::BufReader::new(handle)).map_err(|e| {
        Error::Malformed { file: file.to_path_buf(), line: e.line() as u64, problem: format!("not JSON: {e}") }
    })?;
    let objects = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => {
            return Err(Error::Malformed {
                file: file.to_path_buf(),
                line: 0,
                problem: "not a JSON object or array".into(),
            });
        }
    };
    for (i, item) in objects.into_iter().enumerate() {
        let serde_json::Value::Object(object) = item else {
            return Err(Error::Malformed {
                file: file.to_path_buf(),
                line: 0,
                problem: format!("item {i} is not a JSON object"),
            });
        };
        add_object(&object, columns, rows);
    }
    Ok(())
}

/// One JSON record: keys are columns (a new key is a new column, missing in earlier rows).
fn add_object(object: &serde_json::Map<String, serde_json::Value>, columns: &mut Columns<'_>, rows: &mut u64) {
    use serde_json::Value;
    let mut seen = vec![false; columns.profiles.len()];
    for (key, value) in object {
        let i = columns.get_or_add(key, *rows);
        seen.resize(columns.profiles.len(), false);
        seen[i] = true;
        let text;
        let cell = match value {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Boolean(*b),
            Value::Number(n) => {
                text = n.to_string();
                let class = if n.is_f64() { ValueClass::Fractional } else { ValueClass::Integral };
                match n.as_f64().filter(|x| x.is_finite()) {
                    Some(value) => Cell::Number { value, class, text: &text },
                    None => Cell::Text(&text),
                }
            }
            Value::String(s) => Cell::Text(s),
            nested => {
                text = nested.to_string();
                Cell::Text(&text)
            }
        };
        columns.profiles[i].add(cell);
    }
    for (profile, _) in columns.profiles.iter_mut().zip(&seen).filter(|(_, seen)| !**seen) {
        profile.add(Cell::Null);
    }
    *rows += 1;
}

fn read_parquet(file: &Path, columns: &mut Columns<'_>, rows: &mut u64) -> Result<(), Error> {
    use crate::data::parquet_file::{OpenError, Rows};
    use parquet::record::Field;

    let malformed = |line: u64, problem: String| Error::Malformed { file: file.to_path_buf(), line, problem };
    let iter = Rows::open(file).map_err(|e| match e {
        OpenError::Io(source) => Error::Read { path: file.to_path_buf(), source },
        OpenError::Unreadable(problem) => malformed(0, problem),
    })?;
    for (r, row) in iter.enumerate() {
        let row = row.map_err(|e| malformed(r as u64 + 1, format!("the row cannot be read: {e}")))?;
        let mut seen = vec![false; columns.profiles.len()];
        for (name, field) in row.get_column_iter() {
            let i = columns.get_or_add(name, *rows);
            seen.resize(columns.profiles.len(), false);
            seen[i] = true;
            let integral = |v: i128| (v as f64, ValueClass::Integral, v.to_string());
            let number = match field {
                Field::Byte(v) => Some(integral(i128::from(*v))),
                Field::Short(v) => Some(integral(i128::from(*v))),
                Field::Int(v) => Some(integral(i128::from(*v))),
                Field::Long(v) => Some(integral(i128::from(*v))),
                Field::UByte(v) => Some(integral(i128::from(*v))),
                Field::UShort(v) => Some(integral(i128::from(*v))),
                Field::UInt(v) => Some(integral(i128::from(*v))),
                Field::ULong(v) => Some(integral(i128::from(*v))),
                Field::Float(v) => Some((f64::from(*v), ValueClass::Fractional, v.to_string())),
                Field::Double(v) => Some((*v, ValueClass::Fractional, v.to_string())),
                _ => None,
            };
            let profile = &mut columns.profiles[i];
            match (field, number) {
                (Field::Null, _) => profile.add(Cell::Null),
                // NaN is no number to sketch: counted missing.
                (_, Some((value, _, _))) if !value.is_finite() => profile.add(Cell::Null),
                (_, Some((value, class, text))) => profile.add(Cell::Number { value, class, text: &text }),
                (Field::Bool(b), None) => profile.add(Cell::Boolean(*b)),
                (Field::Str(s), None) => profile.add(Cell::Text(s)),
                (other, None) => profile.add(Cell::Text(&other.to_string())),
            }
        }
        for (profile, _) in columns.profiles.iter_mut().zip(&seen).filter(|(_, seen)| !**seen) {
            profile.add(Cell::Null);
        }
        *rows += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: DatasetFormat, files: &[(&str, &str)]) -> Result<Dataset, Error> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        profile(dir.path(), format, 0, &HashMap::new())
    }

    #[test]
    fn csv_with_and_without_header() {
        let d = run(
            DatasetFormat::Csv { header: true },
            &[("a.csv", "x,s\n1,\"a, b\"\n\n2,\n"), ("b.csv", "x,s\n3,c\n"), ("_SUCCESS", "")],
        )
        .unwrap();
        assert_eq!(d.rows, 3);
        assert_eq!(d.files.len(), 2);
        assert_eq!(d.columns[1].name, "s");
        assert_eq!(d.columns[1].types.null, 1);
        assert_eq!(d.columns[1].categories().unwrap(), [("a, b", 1), ("c", 1)]);

        let d = run(DatasetFormat::Csv { header: false }, &[("a.csv", "1,2\n3,4\n")]).unwrap();
        assert!(d.positional);
        assert_eq!(d.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["_c0", "_c1"]);

        let err = run(DatasetFormat::Csv { header: false }, &[("a.csv", "1,2\n3\n")]).unwrap_err().to_string();
        assert!(err.contains("a.csv, line 2: expected 2 fields, found 1"), "{err}");
        let err = run(DatasetFormat::Csv { header: true }, &[("a.csv", "x\n")]).unwrap_err().to_string();
        assert!(err.contains("no data rows"), "{err}");
        let err = run(DatasetFormat::Csv { header: true }, &[(".hidden", "x\n1\n")]).unwrap_err().to_string();
        assert!(err.contains("only hidden files"), "{err}");
    }

    #[test]
    fn json_lines_add_columns_as_keys_appear() {
        let d = run(
            DatasetFormat::Json { lines: true },
            &[("a.jsonl", "{\"a\": 1}\n{\"a\": 2.5, \"b\": \"x\"}\n{\"b\": null}\n")],
        )
        .unwrap();
        assert_eq!(d.rows, 3);
        let b = &d.columns[1];
        assert_eq!((b.types.null, b.types.string), (2, 1));
        assert_eq!((d.columns[0].types.integral, d.columns[0].types.fractional, d.columns[0].types.null), (1, 1, 1));
        let d = run(DatasetFormat::Json { lines: false }, &[("a.json", "[{\"a\": true}, {\"a\": false}]")]).unwrap();
        assert_eq!(d.columns[0].types.boolean, 2);
        let err = run(DatasetFormat::Json { lines: true }, &[("a.jsonl", "[1]\n")]).unwrap_err().to_string();
        assert!(err.contains("a.jsonl, line 1: not a JSON object"), "{err}");
    }
}

//! Records with their line numbers, from delimited text (CSV, TSV, `;`, `|`, with `"`
//! quoting split by `csv-core`) or from whitespace-separated layouts where a double-quoted
//! field may hold spaces (UCI's). The layout is detected from the first non-blank line,
//! never configured. One record per line: a quoted field cannot span lines (SageMaker's
//! batch transform and XGBoost's CSV reader do not allow that either).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::{DataError, Position};

/// The fields of one line: spans of one buffer, which holds the line itself when its fields
/// need no unquoting (one copy per line, not one per field), else `csv_core`'s output.
#[derive(Debug, Clone, Default)]
pub struct Record {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// `csv_core`'s field ends; grown only, so splitting does not zero-fill it again.
    ends: Vec<usize>,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &(start, end) = self.spans.get(i)?;
        Some(&self.bytes[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| &self[i])
    }

    /// Hold `line`, with no fields yet: fields are spans of it.
    fn hold(&mut self, line: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(line);
        self.spans.clear();
    }
}

impl std::ops::Index<usize> for Record {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        self.get(i).expect("field index within the record")
    }
}

/// The layout of a text table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// Delimited by one byte, with `"` quoting.
    Delimited(char),
    /// Runs of spaces or tabs; a field may be double-quoted to hold spaces.
    Whitespace,
}

/// Delimiters tried, in order, before the whitespace layout.
const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];

impl Dialect {
    /// The dialect in which `line` splits into exactly `expected` fields.
    pub fn detect(line: &[u8], expected: usize) -> Result<Self, String> {
        let mut record = Record::new();
        let mut tried = Vec::new();
        for delimiter in DELIMITERS {
            let mut splitter = Splitter::new(Self::Delimited(delimiter as char));
            let count = match splitter.split(line, &mut record) {
                Ok(()) => record.len(),
                Err(_) => 0,
            };
            if count == expected {
                return Ok(Self::Delimited(delimiter as char));
            }
            tried.push(format!("{count} {}-separated", describe_delimiter(delimiter)));
        }
        match Splitter::new(Self::Whitespace).split(line, &mut record) {
            Ok(()) if record.len() == expected => return Ok(Self::Whitespace),
            Ok(()) => tried.push(format!("{} whitespace-separated", record.len())),
            Err(e) => tried.push(format!("no whitespace layout ({e})")),
        }
        Err(format!(
            "cannot tell the layout: expected {expected} fields (the schema's columns), found {}",
            tried.join(", ")
        ))
    }
}

fn describe_delimiter(d: u8) -> &'static str {
    match d {
        b',' => "comma",
        b'\t' => "tab",
        b';' => "semicolon",
        _ => "pipe",
    }
}

/// Splits one line (without its terminator) into a [`Record`].
pub enum Splitter {
    Delimited(Box<csv_core::Reader>, u8),
    Whitespace,
}

impl Splitter {
    pub fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Delimited(d) => {
                Self::Delimited(Box::new(csv_core::ReaderBuilder::new().delimiter(d as u8).build()), d as u8)
            }
            Dialect::Whitespace => Self::Whitespace,
        }
    }

    pub fn split(&mut self, line: &[u8], record: &mut Record) -> Result<(), &'static str> {
        let line = trim_line_end(line);
        match self {
            Self::Delimited(_, delimiter) if split_simple(line, *delimiter, record) => Ok(()),
            Self::Delimited(reader, _) => split_csv_core(reader, line, record),
            Self::Whitespace => {
                record.hold(line);
                let mut i = 0;
                let n = line.len();
                while i < n {
                    match line[i] {
                        b' ' | b'\t' => i += 1,
                        b'"' => {
                            let start = i + 1;
                            let len = line[start..].iter().position(|&b| b == b'"').ok_or("a quote is not closed")?;
                            record.spans.push((start, start + len));
                            i = start + len + 1;
                        }
                        _ => {
                            let start = i;
                            while i < n && !matches!(line[i], b' ' | b'\t') {
                                i += 1;
                            }
                            record.spans.push((start, i));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Any delimited line, quoting and all, by `csv_core`.
fn split_csv_core(reader: &mut csv_core::Reader, line: &[u8], record: &mut Record) -> Result<(), &'static str> {
    // Unquoted output is never longer than the input, and a line has at most
    // len + 1 fields: these sizes cannot overflow.
    record.spans.clear();
    if record.bytes.len() < line.len() {
        record.bytes.resize(line.len(), 0);
    }
    if record.ends.len() < line.len() + 1 {
        record.ends.resize(line.len() + 1, 0);
    }
    reader.reset();
    let (result, consumed, written, fields) = reader.read_record(line, &mut record.bytes, &mut record.ends);
    debug_assert_eq!(consumed, line.len());
    if !matches!(result, csv_core::ReadRecordResult::InputEmpty) {
        return Err("the line could not be split");
    }
    // Empty input ends the record; counts are per call, field ends are cumulative.
    let (result, _, _, more_fields) = reader.read_record(&[], &mut record.bytes[written..], &mut record.ends[fields..]);
    match result {
        csv_core::ReadRecordResult::Record => {
            let ends = &record.ends[..fields + more_fields];
            record.spans.extend(ends.iter().enumerate().map(|(i, &end)| (if i == 0 { 0 } else { ends[i - 1] }, end)));
            Ok(())
        }
        _ => Err("the line could not be split"),
    }
}

/// The common case without `csv_core`'s state machine: fields that are either free of
/// quotes or wholly quoted without inner quotes (`"a, b"`). Anything else (an escaped `""`,
/// a quote inside a field, text after a closing quote) returns false for `csv_core` to
/// split: the fields are the same either way.
fn split_simple(line: &[u8], delimiter: u8, record: &mut Record) -> bool {
    record.hold(line);
    let n = line.len();
    let mut start = 0;
    loop {
        let end;
        if line.get(start) == Some(&b'"') {
            let Some(close) = memchr::memchr(b'"', &line[start + 1..]) else { return false };
            end = start + 1 + close;
            record.spans.push((start + 1, end));
            // The closing quote must end the field.
            match line.get(end + 1) {
                None => return true,
                Some(&b) if b == delimiter => start = end + 2,
                Some(_) => return false,
            }
        } else {
            // Fields are short: a byte loop beats a vectorised search here.
            let mut i = start;
            while i < n && line[i] != delimiter {
                if line[i] == b'"' {
                    return false;
                }
                i += 1;
            }
            end = i;
            record.spans.push((start, end));
            if end == n {
                return true;
            }
            start = end + 1;
        }
    }
}

pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Reads the records of one file, each with its 1-based line number.
pub struct RecordReader {
    file: PathBuf,
    dialect: Dialect,
    splitter: Splitter,
    source: Box<dyn BufRead + Send>,
    line: Vec<u8>,
    line_no: u64,
    /// The first non-blank line, already read to detect the dialect.
    pending: bool,
}

impl RecordReader {
    /// Detect the dialect from the first non-blank line of `source`. `Ok(None)` when the
    /// file holds no non-blank line.
    pub fn detect(
        file: &Path,
        mut source: Box<dyn BufRead + Send>,
        expected_fields: usize,
    ) -> Result<Option<Self>, DataError> {
        let mut line = Vec::with_capacity(256);
        let mut line_no = 0u64;
        loop {
            line.clear();
            if source.read_until(b'\n', &mut line).map_err(|e| DataError::io(file, e))? == 0 {
                return Ok(None);
            }
            line_no += 1;
            if !is_blank(&line) {
                break;
            }
        }
        let dialect = Dialect::detect(trim_line_end(&line), expected_fields).map_err(|problem| {
            DataError::Malformed { at: Position { file: file.to_path_buf(), line: line_no, column: None }, problem }
        })?;
        Ok(Some(Self {
            file: file.to_path_buf(),
            dialect,
            splitter: Splitter::new(dialect),
            source,
            line,
            line_no,
            pending: true,
        }))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Read the next non-blank line into `record`; its line number, or `None` at the end.
    pub fn read(&mut self, record: &mut Record) -> Result<Option<u64>, DataError> {
        if !std::mem::take(&mut self.pending) {
            loop {
                self.line.clear();
                let n = self.source.read_until(b'\n', &mut self.line).map_err(|e| DataError::io(&self.file, e))?;
                if n == 0 {
                    return Ok(None);
                }
                self.line_no += 1;
                if !is_blank(&self.line) {
                    break;
                }
            }
        }
        self.splitter.split(&self.line, record).map_err(|problem| DataError::Malformed {
            at: Position { file: self.file.clone(), line: self.line_no, column: None },
            problem: problem.to_string(),
        })?;
        Ok(Some(self.line_no))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UCI: &[u8] = b"18.0   8   307.0      130.0      3504.      12.0   70  1\t\"chevrolet chevelle malibu\"\n";

    #[test]
    fn detects_uci_and_csv_layouts() {
        assert_eq!(Dialect::detect(UCI, 9), Ok(Dialect::Whitespace));
        let csv = b"mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name\n";
        assert_eq!(Dialect::detect(csv, 9), Ok(Dialect::Delimited(',')));
        assert_eq!(Dialect::detect(b"1;2;\"a;b\"\n", 3), Ok(Dialect::Delimited(';')));
        let err = Dialect::detect(b"1,2,3\n", 9).unwrap_err();
        assert!(err.contains("expected 9 fields") && err.contains("3 comma-separated"), "{err}");
    }

    #[test]
    fn reads_records_with_line_numbers() {
        let text = format!("\n{}\n  \n{}", String::from_utf8_lossy(UCI), String::from_utf8_lossy(UCI));
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text.into_bytes()));
        let mut rr = RecordReader::detect(Path::new("x"), reader, 9).unwrap().unwrap();
        let mut rec = Record::new();
        assert_eq!(rr.read(&mut rec).unwrap(), Some(2));
        assert_eq!(&rec[8], b"chevrolet chevelle malibu");
        assert_eq!(&rec[4], b"3504.");
        assert_eq!(rr.read(&mut rec).unwrap(), Some(5));
        assert_eq!(rr.read(&mut rec).unwrap(), None);
    }

    /// The fast path and csv_core split alike, whichever takes a line.
    #[test]
    fn simple_lines_split_as_csv_core_splits_them() {
        let lines: [&[u8]; 10] = [
            b"1,2,3",
            b"1,\"a, b\",3",
            b"\"x\",,",
            b"a\"b,c",
            b"\"a\"\"b\",c",
            b"\"a\"b,c",
            b" \"a\",b",
            b"\"open,b",
            b",",
            b"\"\"",
        ];
        for line in lines {
            let mut fast = Record::new();
            let took = split_simple(line, b',', &mut fast);
            let mut reference = Record::new();
            let result = split_csv_core(&mut csv_core::ReaderBuilder::new().build(), line, &mut reference);
            if took {
                assert_eq!(result, Ok(()));
                let (a, b): (Vec<&[u8]>, Vec<&[u8]>) = (fast.iter().collect(), reference.iter().collect());
                assert_eq!(a, b, "{}", String::from_utf8_lossy(line));
            }
        }
    }

    #[test]
    fn reads_quoted_csv() {
        let text = "a,b\n1,\"x, y\"\n\n2,z\n";
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        let mut rr = RecordReader::detect(Path::new("x"), reader, 2).unwrap().unwrap();
        let mut rec = Record::new();
        assert_eq!(rr.read(&mut rec).unwrap(), Some(1));
        assert_eq!(rr.read(&mut rec).unwrap(), Some(2));
        assert_eq!(&rec[1], b"x, y");
        assert_eq!(rr.read(&mut rec).unwrap(), Some(4));
        assert_eq!(rr.read(&mut rec).unwrap(), None);
    }

    #[test]
    fn unclosed_quote_is_reported_with_its_line() {
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(b"1 2 \"a b\"\n1 2 \"open\n".to_vec()));
        let mut rr = RecordReader::detect(Path::new("f"), reader, 3).unwrap().unwrap();
        let mut rec = Record::new();
        rr.read(&mut rec).unwrap();
        let err = rr.read(&mut rec).unwrap_err().to_string();
        assert!(err.contains("f, line 2") && err.contains("quote"), "{err}");
    }
}

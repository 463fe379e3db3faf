//! Raw rows read through a schema, streamed: an object's text is cut into cells on a fixed
//! grid of bytes (`cells`: a line belongs to the cell it starts in), each cell's rows are
//! parsed on a core of its own, and the cells' results are consumed in input order. Nothing
//! holds more than a batch of cells, whatever the input's size. A host may read a range of
//! an object's cells only, when several share it. Each row knows its index among the
//! object's data rows (header and blank lines not counted): with the object's key, that is
//! its identity.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::cells::{self, Cell, CellReader};
use super::schema::{Role, Schema, normalize};
use crate::data::blocks::lines;
use crate::data::files;
use crate::data::records::{Dialect, Record, Splitter, is_blank, trim_line_end};
use crate::data::{DataError, Position};

/// One input object: the local file, its key (path relative to the input, as the S3 key is
/// relative to the input's prefix) and the name reports give it (the key, or its S3 URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub file: PathBuf,
    pub key: String,
    pub name: String,
    /// Bytes per cell of the grid the text is read on ([`cells`](super::cells)).
    pub cell_bytes: u64,
    /// Only these cells of the object, when several hosts read it; `None`: all of it.
    pub range: Option<Range>,
}

/// The cells of an object one host reads, and where they stand in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub cells: std::ops::Range<u64>,
    /// The number (from 1) of the first line starting in the range, and the data rows before
    /// it: counted by the hosts reading the ranges before (known only for the first until then).
    pub line: u64,
    pub row: u64,
}

/// What was read from one input object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFile {
    /// The object's key relative to the input, or its S3 URI.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub gzip: bool,
    pub dialect: Dialect,
    pub header: bool,
    pub rows: u64,
    pub dropped_without_label: u64,
}

/// The schema's columns by role, resolved once.
#[derive(Debug, Clone)]
pub struct Columns {
    pub names: Vec<String>,
    pub label: usize,
    /// Schema column index of each numeric and each categorical column, in schema order.
    pub numeric: Vec<usize>,
    pub categorical: Vec<usize>,
    missing_markers: Vec<Vec<u8>>,
}

impl Columns {
    pub fn new(schema: &Schema) -> Self {
        let roles = schema.roles();
        let of = |role: Role| roles.iter().enumerate().filter(|(_, r)| **r == role).map(|(i, _)| i).collect::<Vec<_>>();
        Self {
            names: schema.columns.clone(),
            label: of(Role::Label)[0],
            numeric: of(Role::Numeric),
            categorical: of(Role::Categorical),
            missing_markers: schema.missing_markers.iter().map(|m| m.as_bytes().to_vec()).collect(),
        }
    }

    pub fn is_missing(&self, field: &[u8]) -> bool {
        field.is_empty() || self.missing_markers.iter().any(|m| m == field)
    }

    fn markers(&self) -> String {
        let mut shown: Vec<String> =
            self.missing_markers.iter().map(|m| format!("`{}`", String::from_utf8_lossy(m))).collect();
        shown.push("an empty field".into());
        shown.join(", ")
    }
}

/// One parsed row, lent to a chunk's work.
pub struct Row<'a> {
    /// Index among the object's data rows, from 0.
    pub index: u64,
    /// `None`: the row has no label and is dropped.
    pub label: Option<f64>,
    /// Numeric columns in schema order, NaN when missing (not parsed for a dropped row).
    pub numeric: &'a [f64],
    record: &'a Record,
    positions: &'a [usize],
    columns: &'a Columns,
}

impl Row<'_> {
    /// A seeded hash of the row's parsed values (label, numeric and categorical columns in
    /// schema order; a missing value as such): its identity in the split, the same whatever
    /// file, header, quoting, compression or dialect it came in.
    pub fn identity(&self, seed: u64) -> u64 {
        use crate::features::split::mix;
        let number = |x: f64| if x.is_nan() { u64::MAX } else { (x + 0.0).to_bits() };
        let mut h = mix(seed ^ 0x7370_6c69_745f_6964);
        h = mix(h ^ number(self.label.unwrap_or(f64::NAN)));
        for &x in self.numeric {
            h = mix(h ^ number(x));
        }
        for c in 0..self.columns.categorical.len() {
            let field = self.categorical(c);
            let mut f = 0xcbf2_9ce4_8422_2325u64 ^ field.map_or(u64::MAX, |b| b.len() as u64);
            for &b in field.unwrap_or_default() {
                f = (f ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            h = mix(h ^ f);
        }
        h
    }

    /// Categorical column `c`'s field, `None` when missing.
    pub fn categorical(&self, c: usize) -> Option<&[u8]> {
        let field = self.record[self.positions[self.columns.categorical[c]]].trim_ascii();
        (!self.columns.is_missing(field)).then_some(field)
    }
}

/// A cell of an object's text and where its rows stand in the object.
pub struct Rows<'a> {
    file: &'a Path,
    cell: &'a Cell,
    first_row: u64,
    /// The header's line among the cell's lines: not a data row.
    header: Option<usize>,
    dialect: Dialect,
    positions: &'a [usize],
    columns: &'a Columns,
}

impl Rows<'_> {
    /// Bytes of text in the cell.
    pub fn bytes(&self) -> usize {
        self.cell.bytes.len()
    }

    /// The cell's index in the object's grid.
    pub fn cell(&self) -> u64 {
        self.cell.index
    }

    /// Parse every row and hand it to `f`, in order; the first bad field is an error naming
    /// file, line and column.
    pub fn for_each(&self, mut f: impl FnMut(&Row<'_>)) -> Result<(), DataError> {
        let columns = self.columns;
        let mut splitter = Splitter::new(self.dialect);
        let mut record = Record::new();
        let mut numeric = vec![f64::NAN; columns.numeric.len()];
        let mut index = self.first_row;
        for (i, line) in lines(&self.cell.bytes).enumerate() {
            if is_blank(line) || Some(i) == self.header {
                continue;
            }
            let line_no = self.cell.first_line + i as u64;
            let at = |column: Option<usize>| Position {
                file: self.file.to_path_buf(),
                line: line_no,
                column: column.map(|c| columns.names[c].clone()),
            };
            splitter
                .split(line, &mut record)
                .map_err(|problem| DataError::Malformed { at: at(None), problem: problem.to_string() })?;
            if record.len() != columns.names.len() {
                return Err(DataError::Malformed {
                    at: at(None),
                    problem: format!("expected {} fields, found {}", columns.names.len(), record.len()),
                });
            }
            let field = |c: usize| record[self.positions[c]].trim_ascii();
            let malformed = |c: usize, problem: String| DataError::Malformed { at: at(Some(c)), problem };
            let label_field = field(columns.label);
            let label = if columns.is_missing(label_field) {
                None
            } else {
                let label = parse_number(label_field).map_err(|p| malformed(columns.label, p))?;
                if !label.is_finite() {
                    return Err(malformed(columns.label, format!("a label must be a finite number, not `{label}`")));
                }
                // A dropped row's features are not read (nor checked), as before streaming.
                for (slot, &c) in numeric.iter_mut().zip(&columns.numeric) {
                    let text = field(c);
                    *slot = if columns.is_missing(text) {
                        f64::NAN
                    } else {
                        let value = parse_number(text)
                            .map_err(|p| malformed(c, format!("{p}; missing markers: {}", columns.markers())))?;
                        if !value.is_finite() {
                            return Err(malformed(c, format!("`{value}` is not finite; use a missing marker")));
                        }
                        value
                    };
                }
                Some(label)
            };
            f(&Row { index, label, numeric: &numeric, record: &record, positions: self.positions, columns });
            index += 1;
        }
        Ok(())
    }
}

/// How an object's text is laid out, from its first non-blank line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub gzip: bool,
    pub dialect: Dialect,
    pub header: bool,
    /// Data rows.
    pub rows: u64,
    /// The stored bytes' digest, when asked for.
    pub digest: Option<files::Digested>,
}

/// Cells per batch; a batch is parsed while the one before is consumed. Capped so that
/// memory stays bounded on many cores: two batches of 4 MiB cells and what they become
/// (about 10 MiB a cell) stay under 200 MiB.
fn batch_size() -> usize {
    (2 * crate::parallel::cores()).clamp(2, 8)
}

/// How an object's text is laid out, from its first non-blank line.
struct Head {
    dialect: Dialect,
    /// Where each schema column sits in a record.
    positions: Vec<usize>,
    /// The header line's first byte, when the first non-blank line is a header.
    header_at: Option<u64>,
}

/// Read up to the first non-blank line (every host reading an object reads it): the
/// layout, and the bytes read.
fn read_head(columns: &Columns, file: &Path, source: &mut dyn BufRead) -> Result<(Head, Vec<u8>), DataError> {
    let mut read = Vec::new();
    let mut line_no = 0u64;
    let start = loop {
        let start = read.len();
        if source.read_until(b'\n', &mut read).map_err(|e| DataError::io(file, e))? == 0 {
            return Err(DataError::Empty { path: file.to_path_buf() });
        }
        line_no += 1;
        if !is_blank(&read[start..]) {
            break start;
        }
    };
    let first = &read[start..];
    let at = |line| Position { file: file.to_path_buf(), line, column: None };
    let dialect = Dialect::detect(trim_line_end(first), columns.names.len())
        .map_err(|problem| DataError::Malformed { at: at(line_no), problem })?;
    let mut record = Record::new();
    Splitter::new(dialect)
        .split(first, &mut record)
        .map_err(|problem| DataError::Malformed { at: at(line_no), problem: problem.to_string() })?;
    let head = match header_positions(&columns.names, columns.label, &record) {
        Some(found) => Head {
            dialect,
            positions: found.map_err(|problem| DataError::Malformed { at: at(line_no), problem })?,
            header_at: Some(start as u64),
        },
        None => Head { dialect, positions: (0..columns.names.len()).collect(), header_at: None },
    };
    Ok((head, read))
}

/// An object opened on its grid: its layout and the reader of its cells (all, or its range's).
struct OpenedCells {
    head: Head,
    gzip: bool,
    cells: CellReader<Box<dyn BufRead + Send>>,
    digest: Option<files::RunningDigest>,
}

fn open_cells(columns: &Columns, object: &Object, digest: bool) -> Result<OpenedCells, DataError> {
    let file = object.file.as_path();
    let (opened, running) = if digest && object.range.is_none() {
        let (opened, running) = files::open_hashed(file)?;
        (opened, Some(running))
    } else {
        (files::open(file)?, None)
    };
    let gzip = opened.gzip;
    let mut source = opened.reader;
    let (head, read) = read_head(columns, file, &mut source)?;
    let range = match &object.range {
        Some(range) if range.cells.start > 0 => range,
        // From the start: on from the head.
        whole => {
            let end = whole.as_ref().map_or(u64::MAX, |r| r.cells.end.saturating_mul(object.cell_bytes));
            let cells = CellReader::new(source, object.cell_bytes, 0, read, 1, end);
            return Ok(OpenedCells { head, gzip, cells, digest: running });
        }
    };
    if gzip {
        // The deal never cuts a compressed object: its text has no offsets to seek to.
        let problem = std::io::Error::other("a compressed object cannot be read from the middle");
        return Err(DataError::io(file, problem));
    }
    // The range's first line: the first starting at or after its first byte.
    let start = range.cells.start.saturating_mul(object.cell_bytes);
    let mut plain = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    std::io::Seek::seek(&mut plain, std::io::SeekFrom::Start(start - 1)).map_err(|e| DataError::io(file, e))?;
    let mut reader: Box<dyn BufRead + Send> = Box::new(std::io::BufReader::with_capacity(1 << 20, plain));
    let end = range.cells.end.saturating_mul(object.cell_bytes);
    let at = cells::skip_line(&mut reader).map_err(|e| DataError::io(file, e))?.map_or(u64::MAX, |n| start - 1 + n);
    let cells = CellReader::new(reader, object.cell_bytes, at, Vec::new(), range.line, end);
    Ok(OpenedCells { head, gzip, cells, digest: None })
}

/// The index of the header line among a cell's lines, if it is in the cell.
fn header_in(cell: &Cell, header_at: Option<u64>) -> Option<usize> {
    let at = header_at?.checked_sub(cell.offset)?;
    let before = cell.bytes.get(..usize::try_from(at).ok()?)?;
    Some(memchr::memchr_iter(b'\n', before).count())
}

/// Data rows in a cell: its non-blank lines but the header.
fn data_rows(cell: &Cell, header: Option<usize>) -> u64 {
    lines(&cell.bytes).enumerate().filter(|&(i, l)| !is_blank(l) && Some(i) != header).count() as u64
}

/// What the ranges of an object before another's must tell it: their lines and data rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub lines: u64,
    pub rows: u64,
}

/// Count the lines and data rows of `object`'s range (its line and row numbers unknown yet),
/// without parsing them.
pub fn count_range(columns: &Columns, object: &Object) -> Result<Counted, DataError> {
    let mut opened = open_cells(columns, object, false)?;
    let mut counted = Counted::default();
    let mut buffer = Vec::new();
    while let Some(cell) = opened.cells.next_cell(&object.file, buffer)? {
        counted.lines += memchr::memchr_iter(b'\n', &cell.bytes).count() as u64;
        counted.rows += data_rows(&cell, header_in(&cell, opened.head.header_at));
        buffer = cell.bytes;
    }
    Ok(counted)
}

/// Read `object` (or its range) through the schema: `work` runs on every core, a cell each,
/// and each cell's result reaches `consume` in input order.
pub fn read_object<T: Send>(
    columns: &Columns,
    object: &Object,
    digest: bool,
    work: impl Fn(&Rows<'_>) -> Result<T, DataError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), DataError> + Send,
) -> Result<Opened, DataError> {
    let file = object.file.as_path();
    let OpenedCells { head, gzip, mut cells, digest: running } = open_cells(columns, object, digest)?;
    let first_row = object.range.as_ref().map_or(0, |r| r.row);
    let pool = Pool::default();
    let mut rows = 0u64;
    // Cells, their header line and the index of their first row: counting needs them in order.
    let mut read_batch = || -> Result<Vec<(Cell, Option<usize>, u64)>, DataError> {
        let mut batch = Vec::with_capacity(batch_size());
        while batch.len() < batch_size() {
            let Some(cell) = cells.next_cell(file, pool.take())? else { break };
            let header = header_in(&cell, head.header_at);
            let records = data_rows(&cell, header);
            batch.push((cell, header, first_row + rows));
            rows += records;
        }
        Ok(batch)
    };
    let mut pending = read_batch()?;
    let mut ready: Vec<T> = Vec::new();
    let (dialect, positions) = (head.dialect, &head.positions);
    while !(pending.is_empty() && ready.is_empty()) {
        // A batch is parsed on every core while the one before is consumed and the next read.
        let previous = std::mem::take(&mut ready);
        let (done, (consumed, next)) = rayon::join(
            || -> Result<Vec<T>, DataError> {
                std::mem::take(&mut pending)
                    .into_par_iter()
                    .map(|(cell, header, first_row)| {
                        let rows = Rows { file, cell: &cell, first_row, header, dialect, positions, columns };
                        let result = work(&rows);
                        pool.give_back(cell.bytes);
                        result
                    })
                    .collect()
            },
            || {
                let consumed = previous.into_iter().try_for_each(&mut consume);
                let next = if consumed.is_ok() { read_batch() } else { Ok(Vec::new()) };
                (consumed, next)
            },
        );
        consumed?;
        ready = done?;
        pending = next?;
    }
    // A range may hold no row; the object as a whole must (checked over every range).
    if rows == 0 && object.range.is_none() {
        return Err(DataError::Empty { path: file.to_path_buf() });
    }
    let header = head.header_at.is_some();
    Ok(Opened { gzip, dialect, header, rows, digest: running.map(|d| d.finish()) })
}

/// Buffers handed back after parsing, for the next cells.
#[derive(Default)]
struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    fn take(&self) -> Vec<u8> {
        self.0.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default()
    }

    fn give_back(&self, buffer: Vec<u8>) {
        if let Ok(mut p) = self.0.lock() {
            p.push(buffer);
        }
    }
}

pub fn parse_number(field: &[u8]) -> Result<f64, String> {
    if let Some(value) = plain_decimal(field) {
        return Ok(value);
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("`{}` is not a number", String::from_utf8_lossy(field)))
}

/// Powers of ten that f64 holds exactly.
const EXACT_POWERS: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// `[+-]digits[.digits]` with at most 15 digits, without the general parser: the digits
/// make an integer below 2^53 and the divisor a power of ten f64 holds exactly, so one
/// correctly rounded division gives the correctly rounded value, the bits `str::parse`
/// gives (Clinger's fast path). Anything else is `None`.
#[inline]
fn plain_decimal(field: &[u8]) -> Option<f64> {
    let (negative, digits) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    let (mut mantissa, mut count, mut fraction, mut dot) = (0u64, 0usize, 0usize, false);
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
                fraction += usize::from(dot);
                if count > 15 {
                    return None;
                }
            }
            b'.' if !dot => dot = true,
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let value = mantissa as f64 / EXACT_POWERS[fraction];
    Some(if negative { -value } else { value })
}

/// If the record is a header row (every field names a schema column), where each schema
/// column sits in it. `Some(Err)` for a header that does not match the schema.
fn header_positions(names: &[String], label: usize, record: &Record) -> Option<Result<Vec<usize>, String>> {
    let fields: Vec<String> = record.iter().map(|f| normalize(&String::from_utf8_lossy(f))).collect();
    let known = |f: &String| names.iter().any(|c| normalize(c) == *f);
    // A data row that happens to contain a column name (a categorical value) is not a header:
    // it must be names throughout, or at least the label's name.
    let looks_like_header = fields.iter().any(|f| *f == normalize(&names[label]))
        || fields.iter().all(|f| parse_number(f.as_bytes()).is_err() && known(f));
    if !looks_like_header {
        return None;
    }
    let result = names
        .iter()
        .map(|column| {
            fields.iter().position(|f| *f == normalize(column)).ok_or_else(|| {
                format!("the header row has no column `{column}` named in the schema; header: {}", fields.join(", "))
            })
        })
        .collect();
    Some(result)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn write(dir: &Path, name: &str, text: &str) -> Object {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Object { file: path, key: name.into(), name: name.into(), cell_bytes: cells::CELL_BYTES, range: None }
    }

    /// Every labelled row as (index, label, numeric values, categorical fields).
    #[allow(clippy::type_complexity)]
    pub fn read_all(
        schema: &Schema,
        object: &Object,
    ) -> Result<(Vec<(u64, f64, Vec<f64>, Vec<Option<String>>)>, Opened), DataError> {
        let columns = Columns::new(schema);
        let mut all = Vec::new();
        let opened = read_object(
            &columns,
            object,
            false,
            |rows| {
                let mut out = Vec::new();
                rows.for_each(|row| {
                    if let Some(label) = row.label {
                        let cats = (0..columns.categorical.len())
                            .map(|c| row.categorical(c).map(|f| String::from_utf8_lossy(f).into_owned()))
                            .collect();
                        out.push((row.index, label, row.numeric.to_vec(), cats));
                    }
                })?;
                Ok(out)
            },
            |out| {
                all.extend(out);
                Ok(())
            },
        )?;
        Ok((all, opened))
    }

    #[test]
    fn reads_uci_and_headered_csv_alike() {
        let dir = tempfile::tempdir().unwrap();
        let uci = write(
            dir.path(),
            "a.data",
            "18.0   8   307.0      130.0      3504.      12.0   70  1\t\"chevrolet chevelle malibu\"\n\
             ?   4   97.0      ?      2130.      14.5   70  3\t\"datsun pl510\"\n\n\
             15   8   350      ?      3693      11.5   70  3\t\"buick\"\n",
        );
        // Columns reordered by the header: matched by name.
        let csv = write(
            dir.path(),
            "b.csv",
            "car name,mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin\n\
             \"ford, torino\",17.0,8,302.0,?,3449,10.5,70,2\n",
        );
        let schema = Schema::auto_mpg();
        let (rows, opened) = read_all(&schema, &uci).unwrap();
        assert_eq!(opened, Opened { gzip: false, dialect: Dialect::Whitespace, header: false, rows: 3, digest: None });
        // The unlabelled row counts as row 1: indices do not depend on labels.
        assert_eq!(rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [(0, 18.0), (2, 15.0)]);
        assert_eq!(rows[0].2[3], 3504.0);
        assert!(rows[1].2[2].is_nan());
        let (rows, opened) = read_all(&schema, &csv).unwrap();
        assert!(opened.header);
        assert_eq!((rows[0].0, rows[0].1, rows[0].3[0].as_deref()), (0, 17.0, Some("2")));
    }

    #[test]
    fn bad_fields_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::auto_mpg();
        let err = |name: &str, text: &str| read_all(&schema, &write(dir.path(), name, text)).unwrap_err().to_string();
        let e = err("x.csv", "18,8,307,130,3504,12,70,1,a\n18,8,307,abc,3504,12,70,1,b\n");
        assert!(e.contains("x.csv, line 2, column `horsepower`: `abc` is not a number"), "{e}");
        let e = err("y.csv", "18,8,307,130,3504,12,70,1,a\n18,8,307,130,3504,12,70,1\n");
        assert!(e.contains("y.csv, line 2: expected 9 fields, found 8"), "{e}");
        let e = err("z.csv", "inf,8,307,130,3504,12,70,1,a\n");
        assert!(e.contains("z.csv, line 1, column `mpg`: a label must be a finite number"), "{e}");
        // The seed's bug: a header with one name too few is caught, not misread.
        let e = err(
            "h.csv",
            "cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name\n18,8,307,130,3504,12,70,1,a\n",
        );
        assert!(e.contains("h.csv, line 1: cannot tell the layout: expected 9 fields"), "{e}");
        let e = err(
            "m.csv",
            "mpg,cylinders,displacement,horsepower,weight,acceleration,year,origin,car name\n18,8,307,130,3504,12,70,1,a\n",
        );
        assert!(e.contains("no column `model year`"), "{e}");
        let e = err("e.csv", "\n\n");
        assert!(e.contains("e.csv` is empty"), "{e}");
    }

    #[test]
    fn plain_decimals_parse_as_str_parse_does() {
        let cases = ["0", "-0", "+7", "3504.", ".5", "-12.25", "0.1", "307.0", "123456789012345", "9.99999999999999"];
        for text in cases {
            let fast = plain_decimal(text.as_bytes()).unwrap();
            assert_eq!(fast.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
        }
        for text in ["1e5", "1234567890123456", ".", "-", "1.2.3", "inf", "nan", "0x10", ""] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text}");
        }
        // Every one-decimal value the benchmark writes, and more.
        let mut state = 1u64;
        for _ in 0..200_000 {
            state = crate::features::split::mix(state);
            let text = format!("{}.{}", state % 100_000, (state >> 20) % 1_000_000);
            assert_eq!(
                plain_decimal(text.as_bytes()).unwrap().to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn rows_keep_their_index_across_chunks() {
        // Several chunks (4 MiB each): indices run on from chunk to chunk, lines too.
        let dir = tempfile::tempdir().unwrap();
        let row = "18,8,307,130,3504,12,70,1,\"a car with a long name to fill the chunks quickly\"\n";
        let n = 3 * (4 << 20) / row.len() + 17;
        let mut text = row.repeat(n);
        text.push_str("18,8,307,x,3504,12,70,1,b\n");
        let object = write(dir.path(), "big.csv", &text);
        let e = read_all(&Schema::auto_mpg(), &object).unwrap_err().to_string();
        assert!(e.contains(&format!("big.csv, line {}, column `horsepower`", n + 1)), "{e}");
        let object = write(dir.path(), "big.csv", &row.repeat(n));
        let (rows, opened) = read_all(&Schema::auto_mpg(), &object).unwrap();
        assert_eq!(opened.rows, n as u64);
        assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i as u64));
    }

    /// The rows of `object` read as `parts` ranges of its cells, each told where it starts by
    /// the counts of the ranges before (as the hosts tell each other).
    fn read_by_ranges(schema: &Schema, object: &Object, parts: u64) -> Result<String, DataError> {
        let columns = Columns::new(schema);
        let size = std::fs::metadata(&object.file).unwrap().len();
        let n = cells::count(size, object.cell_bytes);
        let (mut line, mut row, mut rows) = (1, 0, Vec::new());
        for i in 0..parts {
            let range = Range { cells: i * n / parts..(i + 1) * n / parts, line, row };
            let part = Object { range: Some(range), ..object.clone() };
            let counted = count_range(&columns, &part)?;
            rows.extend(read_all(schema, &part)?.0);
            (line, row) = (line + counted.lines, row + counted.rows);
        }
        Ok(format!("{rows:?}"))
    }

    #[test]
    fn ranges_of_cells_read_every_row_once_as_the_whole_object() {
        let dir = tempfile::tempdir().unwrap();
        let header = "mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name";
        let rows: Vec<String> = (0..40)
            .map(|i| format!("{}.5,8,307,{},3504.25,12,70,1,\"car {}\"", 10 + i, 100 + i, "x".repeat(i % 9)))
            .collect();
        let texts = [
            format!("{header}\n{}\n", rows.join("\n")),
            format!("\n\n{header}\r\n{}\r\n", rows.join("\r\n\r\n")),
            rows.join("\n"),
            // The header's line starts past the first cells.
            format!("{}{header}\n{}\n", "\n".repeat(40), rows.join("\n")),
        ];
        let schema = Schema::auto_mpg();
        for (t, text) in texts.iter().enumerate() {
            for cell in [7, 16, 64, 1 << 20] {
                let object = Object { cell_bytes: cell, ..write(dir.path(), "t.csv", text) };
                let (all, opened) = read_all(&schema, &object).unwrap();
                assert_eq!(opened.rows, 40, "text {t}");
                let whole = format!("{all:?}");
                for parts in [1, 2, 3, 5, 200] {
                    assert_eq!(
                        read_by_ranges(&schema, &object, parts).unwrap(),
                        whole,
                        "text {t}, cells of {cell}, {parts} parts"
                    );
                }
            }
            // A bad field is named by its line in the object, whichever range reads it.
            let bad = text.replacen(",137,3504.25,", ",fast,3504.25,", 1);
            let object = Object { cell_bytes: 16, ..write(dir.path(), "t.csv", &bad) };
            let whole = read_all(&schema, &object).unwrap_err().to_string();
            assert!(whole.contains("column `horsepower`: `fast` is not a number"), "{whole}");
            for parts in [2, 3, 7] {
                assert_eq!(read_by_ranges(&schema, &object, parts).unwrap_err().to_string(), whole, "text {t}");
            }
        }
    }
}

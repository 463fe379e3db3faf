//! Raw rows read through a schema, streamed: an object's text is cut into chunks at line
//! ends, each chunk's rows are parsed on a core of its own, and the chunks' results are
//! consumed in input order. Nothing holds more than a batch of chunks, whatever the input's
//! size. Each row knows its index among the object's data rows (header and blank lines not
//! counted): with the object's key, that is its identity.

use std::io::BufRead;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::schema::{Role, Schema, normalize};
use crate::data::blocks::{Chunk, ChunkReader, Pool, lines};
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

/// A chunk of an object's text and where its rows stand in the object.
pub struct Rows<'a> {
    chunk: &'a Chunk,
    first_row: u64,
    dialect: Dialect,
    positions: &'a [usize],
    columns: &'a Columns,
}

impl Rows<'_> {
    /// Bytes of text in the chunk.
    pub fn bytes(&self) -> usize {
        self.chunk.bytes.len()
    }

    /// Parse every row and hand it to `f`, in order; the first bad field is an error naming
    /// file, line and column.
    pub fn for_each(&self, mut f: impl FnMut(&Row<'_>)) -> Result<(), DataError> {
        let columns = self.columns;
        let mut splitter = Splitter::new(self.dialect);
        let mut record = Record::new();
        let mut numeric = vec![f64::NAN; columns.numeric.len()];
        let mut index = self.first_row;
        for (i, line) in lines(&self.chunk.bytes).enumerate() {
            if is_blank(line) {
                continue;
            }
            let line_no = self.chunk.first_line + i as u64;
            let at = |column: Option<usize>| Position {
                file: (*self.chunk.file).clone(),
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

/// Chunks per batch; a batch is parsed while the one before is consumed. Capped so that
/// memory stays bounded on many cores: two batches of 4 MiB chunks and what they become
/// (about 10 MiB a chunk) stay under 200 MiB.
fn batch_size() -> usize {
    (2 * crate::parallel::cores()).clamp(2, 8)
}

/// Read `object` through the schema: `work` runs on every core, a chunk each, and each
/// chunk's result reaches `consume` in input order.
pub fn read_object<T: Send>(
    columns: &Columns,
    object: &Object,
    digest: bool,
    work: impl Fn(&Rows<'_>) -> Result<T, DataError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), DataError> + Send,
) -> Result<Opened, DataError> {
    let file = object.file.as_path();
    let (opened, digested) = if digest {
        let (opened, digested) = files::open_hashed(file)?;
        (opened, Some(digested))
    } else {
        (files::open(file)?, None)
    };
    let gzip = opened.gzip;
    let mut source = opened.reader;
    // The first non-blank line: the dialect, and a header or the first data row.
    let mut first = Vec::new();
    let mut line_no = 0u64;
    loop {
        first.clear();
        if source.read_until(b'\n', &mut first).map_err(|e| DataError::io(file, e))? == 0 {
            return Err(DataError::Empty { path: file.to_path_buf() });
        }
        line_no += 1;
        if !is_blank(&first) {
            break;
        }
    }
    let at = |line| Position { file: file.to_path_buf(), line, column: None };
    let dialect = Dialect::detect(trim_line_end(&first), columns.names.len())
        .map_err(|problem| DataError::Malformed { at: at(line_no), problem })?;
    let mut record = Record::new();
    Splitter::new(dialect)
        .split(&first, &mut record)
        .map_err(|problem| DataError::Malformed { at: at(line_no), problem: problem.to_string() })?;
    let (positions, header, carry, next_line) = match header_positions(&columns.names, columns.label, &record) {
        Some(found) => {
            (found.map_err(|problem| DataError::Malformed { at: at(line_no), problem })?, true, Vec::new(), line_no + 1)
        }
        None => ((0..columns.names.len()).collect(), false, first, line_no),
    };

    let pool = Pool::default();
    let mut chunks = ChunkReader::resume(file, source, next_line, carry, &pool);
    let mut rows = 0u64;
    // Chunks and the index of their first row: counting needs the chunks in order.
    let mut read_batch = || -> Result<Vec<(Chunk, u64)>, DataError> {
        let mut batch = Vec::with_capacity(batch_size());
        while batch.len() < batch_size() {
            let Some(chunk) = chunks.next_chunk()? else { break };
            let records = lines(&chunk.bytes).filter(|l| !is_blank(l)).count() as u64;
            batch.push((chunk, rows));
            rows += records;
        }
        Ok(batch)
    };
    let mut pending = read_batch()?;
    let mut ready: Vec<T> = Vec::new();
    while !(pending.is_empty() && ready.is_empty()) {
        // A batch is parsed on every core while the one before is consumed and the next read.
        let previous = std::mem::take(&mut ready);
        let (done, (consumed, next)) = rayon::join(
            || -> Result<Vec<T>, DataError> {
                std::mem::take(&mut pending)
                    .into_par_iter()
                    .map(|(chunk, first_row)| {
                        let result = work(&Rows { chunk: &chunk, first_row, dialect, positions: &positions, columns });
                        pool.give_back(chunk.bytes);
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
    if rows == 0 {
        return Err(DataError::Empty { path: file.to_path_buf() });
    }
    Ok(Opened { gzip, dialect, header, rows, digest: digested.map(|d| d.finish()) })
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
    use std::path::Path;

    use super::*;

    pub fn write(dir: &Path, name: &str, text: &str) -> Object {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Object { file: path, key: name.into(), name: name.into() }
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
}

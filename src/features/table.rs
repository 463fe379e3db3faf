//! Raw rows read through a schema into columns: labels, numeric values (NaN = missing) and
//! categorical codes, with what was read from each file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::schema::{Role, Schema, normalize};
use crate::data::files::{self, Digested};
use crate::data::records::{Dialect, Record, RecordReader};
use crate::data::{DataError, Position};

/// Code of a missing categorical value.
pub const MISSING_CODE: u32 = u32::MAX;

/// One categorical column: a code per row and the distinct values in order of first sight.
#[derive(Debug, Default)]
pub struct CategoricalColumn {
    pub codes: Vec<u32>,
    pub values: Vec<String>,
    index: HashMap<Vec<u8>, u32>,
}

impl CategoricalColumn {
    fn push(&mut self, field: &[u8]) {
        let code = match self.index.get(field) {
            Some(&code) => code,
            None => {
                let code = self.values.len() as u32;
                self.values.push(String::from_utf8_lossy(field).into_owned());
                self.index.insert(field.to_vec(), code);
                code
            }
        };
        self.codes.push(code);
    }
}

/// What was read from one input file.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFile {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub gzip: bool,
    pub dialect: Dialect,
    pub header: bool,
    pub rows: u64,
    pub dropped_without_label: u64,
}

/// All labelled rows of the input, by column.
#[derive(Debug, Default)]
pub struct Table {
    pub labels: Vec<f64>,
    /// One vector per numeric column, in schema `columns` order.
    pub numeric: Vec<Vec<f64>>,
    /// One per categorical column, in schema `columns` order.
    pub categorical: Vec<CategoricalColumn>,
    pub sources: Vec<SourceFile>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn dropped_without_label(&self) -> u64 {
        self.sources.iter().map(|s| s.dropped_without_label).sum()
    }

    /// Read every file (already listed and sorted) through the schema.
    pub fn read(schema: &Schema, files: &[PathBuf]) -> Result<Self, DataError> {
        let roles = schema.roles();
        let mut table = Table {
            numeric: vec![Vec::new(); roles.iter().filter(|r| **r == Role::Numeric).count()],
            categorical: (0..roles.iter().filter(|r| **r == Role::Categorical).count())
                .map(|_| CategoricalColumn::default())
                .collect(),
            ..Default::default()
        };
        for file in files {
            let (source, digest) = std::thread::scope(|scope| {
                let digest = scope.spawn(|| files::digest(file));
                let source = table.read_file(schema, &roles, file);
                (source, digest.join().expect("the hashing thread does not panic"))
            });
            let Digested { sha256, bytes } = digest?;
            table.sources.push(SourceFile { sha256, bytes, ..source? });
        }
        Ok(table)
    }

    fn read_file(&mut self, schema: &Schema, roles: &[Role], file: &Path) -> Result<SourceFile, DataError> {
        let mut opened = files::open(file)?;
        let gzip = opened.gzip;
        if !gzip {
            self.reserve_for(file, &mut opened.reader)?;
        }
        let Some(mut reader) = RecordReader::detect(file, opened.reader, schema.columns.len())? else {
            return Err(DataError::Empty { path: file.to_path_buf() });
        };
        let mut record = Record::new();
        let mut source = SourceFile {
            path: file.to_path_buf(),
            sha256: String::new(),
            bytes: 0,
            gzip,
            dialect: reader.dialect(),
            header: false,
            rows: 0,
            dropped_without_label: 0,
        };
        // positions[i]: where schema column i sits in this file's records.
        let mut positions: Vec<usize> = (0..schema.columns.len()).collect();
        let mut first = true;
        while let Some(line) = reader.read(&mut record)? {
            let at =
                |column: Option<&str>| Position { file: file.to_path_buf(), line, column: column.map(str::to_string) };
            if record.len() != schema.columns.len() {
                return Err(DataError::Malformed {
                    at: at(None),
                    problem: format!("expected {} fields, found {}", schema.columns.len(), record.len()),
                });
            }
            if std::mem::take(&mut first)
                && let Some(header) = header_positions(schema, &record)
            {
                positions = header.map_err(|problem| DataError::Malformed { at: at(None), problem })?;
                source.header = true;
                continue;
            }
            source.rows += 1;
            self.push_row(schema, roles, &positions, &record, &at)
                .map(|labelled| source.dropped_without_label += u64::from(!labelled))?;
        }
        if source.rows == 0 {
            return Err(DataError::Empty { path: file.to_path_buf() });
        }
        Ok(source)
    }

    /// Reserve the columns for the rows a plain file probably holds (its size over the mean
    /// line length of its first buffer), so that they do not grow by doubling: the allocator
    /// would copy gigabytes and hold both copies at the peak.
    fn reserve_for(&mut self, file: &Path, reader: &mut Box<dyn std::io::BufRead + Send>) -> Result<(), DataError> {
        let size = std::fs::metadata(file).map_err(|e| DataError::io(file, e))?.len();
        let head = reader.fill_buf().map_err(|e| DataError::io(file, e))?;
        let lines = head.iter().filter(|&&b| b == b'\n').count().max(1);
        let estimate = (size as f64 / (head.len() as f64 / lines as f64) * 1.02) as usize + 1024;
        self.labels.reserve(estimate);
        self.numeric.iter_mut().for_each(|c| c.reserve(estimate));
        self.categorical.iter_mut().for_each(|c| c.codes.reserve(estimate));
        Ok(())
    }

    /// Append one row; `Ok(false)` when it has no label and is dropped. An error aborts the
    /// whole read, so a half-appended row is never used.
    fn push_row(
        &mut self,
        schema: &Schema,
        roles: &[Role],
        positions: &[usize],
        record: &Record,
        at: &dyn Fn(Option<&str>) -> Position,
    ) -> Result<bool, DataError> {
        let malformed = |i: usize, problem: String| DataError::Malformed { at: at(Some(&schema.columns[i])), problem };
        // The label first: a row without one is dropped before any column grows.
        let label_index = roles.iter().position(|r| *r == Role::Label).expect("a validated schema has a label");
        let label_field = record[positions[label_index]].trim_ascii();
        if schema.is_missing(label_field) {
            return Ok(false);
        }
        let label = parse_number(label_field).map_err(|p| malformed(label_index, p))?;
        if !label.is_finite() {
            return Err(malformed(label_index, format!("a label must be a finite number, not `{label}`")));
        }
        let (mut n, mut c) = (0, 0);
        for (i, role) in roles.iter().enumerate() {
            let field = record[positions[i]].trim_ascii();
            match role {
                Role::Numeric => {
                    let value = if schema.is_missing(field) {
                        f64::NAN
                    } else {
                        let value = parse_number(field)
                            .map_err(|p| malformed(i, format!("{p}; missing markers: {}", markers(schema))))?;
                        if !value.is_finite() {
                            return Err(malformed(i, format!("`{value}` is not finite; use a missing marker")));
                        }
                        value
                    };
                    self.numeric[n].push(value);
                    n += 1;
                }
                Role::Categorical => {
                    let column = &mut self.categorical[c];
                    if schema.is_missing(field) {
                        column.codes.push(MISSING_CODE);
                    } else {
                        column.push(field);
                    }
                    c += 1;
                }
                Role::Label | Role::Ignored => {}
            }
        }
        self.labels.push(label);
        Ok(true)
    }
}

fn markers(schema: &Schema) -> String {
    let mut shown: Vec<String> = schema.missing_markers.iter().map(|m| format!("`{m}`")).collect();
    shown.push("an empty field".into());
    shown.join(", ")
}

fn parse_number(field: &[u8]) -> Result<f64, String> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("`{}` is not a number", String::from_utf8_lossy(field)))
}

/// If the record is a header row (every field names a schema column), where each schema
/// column sits in it. `Some(Err)` for a header that does not match the schema.
fn header_positions(schema: &Schema, record: &Record) -> Option<Result<Vec<usize>, String>> {
    let fields: Vec<String> = record.iter().map(|f| normalize(&String::from_utf8_lossy(f))).collect();
    let known = |f: &String| schema.columns.iter().any(|c| normalize(c) == *f);
    // A data row that happens to contain a column name (a categorical value) is not a header:
    // it must be names throughout, or at least the label's name.
    let looks_like_header = fields.iter().any(|f| *f == normalize(&schema.label))
        || fields.iter().all(|f| parse_number(f.as_bytes()).is_err() && known(f));
    if !looks_like_header {
        return None;
    }
    let result = schema
        .columns
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
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_uci_and_headered_csv_alike() {
        let dir = tempfile::tempdir().unwrap();
        let uci = write(
            dir.path(),
            "a.data",
            "18.0   8   307.0      130.0      3504.      12.0   70  1\t\"chevrolet chevelle malibu\"\n\
             ?   4   97.0      ?      2130.      14.5   70  3\t\"datsun pl510\"\n",
        );
        // Columns reordered by the header: matched by name.
        let csv = write(
            dir.path(),
            "b.csv",
            "car name,mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin\n\
             \"ford, torino\",17.0,8,302.0,?,3449,10.5,70,2\n",
        );
        let table = Table::read(&Schema::auto_mpg(), &[uci, csv]).unwrap();
        assert_eq!(table.labels, [18.0, 17.0]);
        assert_eq!(table.dropped_without_label(), 1);
        assert_eq!(table.numeric[3], [3504.0, 3449.0]);
        assert!(table.numeric[2][1].is_nan());
        assert_eq!(table.categorical[0].values, ["1", "2"]);
        assert!(table.sources[1].header && !table.sources[0].header);
        assert_eq!(table.sources[0].dialect, Dialect::Whitespace);
    }

    #[test]
    fn bad_fields_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::auto_mpg();
        let f = write(dir.path(), "x.csv", "18,8,307,130,3504,12,70,1,a\n18,8,307,abc,3504,12,70,1,b\n");
        let err = Table::read(&schema, &[f]).unwrap_err().to_string();
        assert!(err.contains("x.csv, line 2, column `horsepower`: `abc` is not a number"), "{err}");

        let f = write(dir.path(), "y.csv", "18,8,307,130,3504,12,70,1,a\n18,8,307,130,3504,12,70,1\n");
        let err = Table::read(&schema, &[f]).unwrap_err().to_string();
        assert!(err.contains("y.csv, line 2: expected 9 fields, found 8"), "{err}");

        let f = write(dir.path(), "z.csv", "inf,8,307,130,3504,12,70,1,a\n");
        let err = Table::read(&schema, &[f]).unwrap_err().to_string();
        assert!(err.contains("z.csv, line 1, column `mpg`: a label must be a finite number"), "{err}");

        // The seed's bug: a header with one name too few is caught, not misread.
        let f = write(
            dir.path(),
            "h.csv",
            "cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name\n18,8,307,130,3504,12,70,1,a\n",
        );
        let err = Table::read(&schema, &[f]).unwrap_err().to_string();
        assert!(err.contains("h.csv, line 1: cannot tell the layout: expected 9 fields"), "{err}");
    }

    #[test]
    fn header_missing_a_schema_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "h.csv",
            "mpg,cylinders,displacement,horsepower,weight,acceleration,year,origin,car name\n18,8,307,130,3504,12,70,1,a\n",
        );
        let err = Table::read(&Schema::auto_mpg(), &[f]).unwrap_err().to_string();
        assert!(err.contains("no column `model year`"), "{err}");
    }
}

//! Label-first numeric data, as SageMaker's XGBoost reads it: CSV (no header, label in the
//! first column, an empty field is missing) or libsvm (`label[:weight] index:value ...`, an
//! absent index is missing, indices used as given). A file or every file below a directory.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::memory::{Channel, Source};
use super::rows::{ContentType, Layout, MAX_FEATURE_INDEX};
use super::{DataError, Position, blocks, files};

/// Labels and features: a dense matrix (`rows x cols`, NaN = missing) for CSV and Parquet,
/// the entries of each row for libsvm (a feature index can be 2^31 - 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labelled {
    pub labels: Vec<f32>,
    /// libsvm `label:weight`, or the second CSV column when asked.
    pub weights: Option<Vec<f32>>,
    /// Dense rows; empty when `sparse` holds the rows.
    pub features: Vec<f32>,
    /// libsvm rows: row `r` is `entries[offsets[r]..offsets[r + 1]]`.
    pub sparse: Option<SparseRows>,
    /// Dense width, or the largest libsvm index + 1.
    pub cols: usize,
    pub files: Vec<PathBuf>,
    /// What the rows were read as (given, or sniffed from the first line).
    pub content_type: ContentType,
}

impl Labelled {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The features as rows `width` wide (at least `cols`): narrower rows, as sparse libsvm
    /// data gives, are padded with missing values. Dense: `rows x width` floats.
    pub fn widened(&self, width: usize) -> std::borrow::Cow<'_, [f32]> {
        if let Some(sparse) = &self.sparse {
            return std::borrow::Cow::Owned(sparse.project(self.rows(), width, |i| (i < width).then_some(i)));
        }
        if width == self.cols {
            return std::borrow::Cow::Borrowed(&self.features);
        }
        let mut wide = vec![f32::NAN; self.rows() * width];
        for (r, row) in self.features.chunks(self.cols.max(1)).enumerate() {
            wide[r * width..r * width + row.len()].copy_from_slice(row);
        }
        std::borrow::Cow::Owned(wide)
    }
}

/// libsvm rows by their entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseRows {
    pub offsets: Vec<usize>,
    pub entries: Vec<(u32, f32)>,
}

impl SparseRows {
    /// Dense rows `width` wide holding each entry at `column(index)` (dropped when `None`).
    pub fn project(&self, rows: usize, width: usize, column: impl Fn(usize) -> Option<usize>) -> Vec<f32> {
        let mut out = vec![f32::NAN; rows * width];
        for r in 0..rows {
            for &(i, v) in &self.entries[self.offsets[r]..self.offsets[r + 1]] {
                if let Some(c) = column(i as usize) {
                    out[r * width + c] = v;
                }
            }
        }
        out
    }
}

/// Read label-first rows. With `csv_weights`, a CSV's second column is the row weight.
pub fn read(path: &Path, content_type: Option<ContentType>, csv_weights: bool) -> Result<Labelled, DataError> {
    read_limited(path, content_type, csv_weights, usize::MAX)
}

/// As [`read`], refusing (`DataError::TooLarge`) a dense matrix of more than `max_values`
/// floats before it is made: sparse rows with a large feature index would need rows x index.
pub fn read_limited(
    path: &Path,
    content_type: Option<ContentType>,
    csv_weights: bool,
    max_values: usize,
) -> Result<Labelled, DataError> {
    if let Some(binary @ (ContentType::Parquet | ContentType::RecordIo)) = content_type {
        return read_binary(path.into(), binary, max_values);
    }
    let files = files::data_files(path)?;
    let mut out = Labelled::default();
    let mut sparse: Vec<Vec<(usize, f32)>> = Vec::new();
    let mut kind = content_type;
    for file in &files {
        let mut reader = files::open(file)?.reader;
        let mut line = String::new();
        let mut line_no = 0u64;
        // Sniffed once per file, from its first line, as the built-in does.
        let mut delimiter = None;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => DataError::Malformed {
                    at: Position { file: file.clone(), line: line_no + 1, column: None },
                    problem: "the line is not UTF-8 text".into(),
                },
                _ => DataError::io(file, e),
            })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let text = line.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let at = |column: Option<String>| Position { file: file.clone(), line: line_no, column };
            match *kind.get_or_insert_with(|| ContentType::sniff(text)) {
                ContentType::Csv => {
                    let d = *delimiter.get_or_insert_with(|| sniff_delimiter(text));
                    csv_row(text, d, csv_weights, &mut out, &at)?;
                    if out.features.len() > max_values {
                        return Err(DataError::TooLarge { rows: out.labels.len(), cols: out.cols });
                    }
                }
                ContentType::Parquet | ContentType::RecordIo => unreachable!("binary formats are read above"),
                ContentType::Libsvm => sparse.push(libsvm_row(text, &mut out, &at)?),
            }
        }
    }
    if out.labels.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    if kind == Some(ContentType::Libsvm) {
        out.cols = sparse.iter().flat_map(|r| r.iter().map(|(i, _)| i + 1)).max().unwrap_or(0).max(1);
        if out.labels.len().saturating_mul(out.cols) > max_values {
            return Err(DataError::TooLarge { rows: out.labels.len(), cols: out.cols });
        }
        let mut rows = SparseRows { offsets: vec![0], entries: Vec::new() };
        for row in sparse {
            rows.entries.extend(row.into_iter().map(|(i, v)| (i as u32, v)));
            rows.offsets.push(rows.entries.len());
        }
        out.sparse = Some(rows);
    }
    out.files = files;
    out.content_type = kind.unwrap_or_default();
    Ok(out)
}

/// A channel to train on: its files (as [`read_limited`]) or its rows in memory.
pub fn read_channel(
    channel: &Channel,
    content_type: ContentType,
    csv_weights: bool,
    max_values: usize,
) -> Result<Labelled, DataError> {
    match channel {
        Channel::Files(path) => read_limited(path, Some(content_type), csv_weights, max_values),
        Channel::Rows(rows) => read_binary(Source::Rows(rows), content_type, max_values),
    }
}

/// Parquet and RecordIO-protobuf, through the block readers the trainer uses (and rows in
/// memory, which those readers parsed).
fn read_binary(source: Source<'_>, content_type: ContentType, max_values: usize) -> Result<Labelled, DataError> {
    let mut out = Labelled { content_type, ..Default::default() };
    let mut sparse = SparseRows { offsets: vec![0], entries: Vec::new() };
    let layout = Layout { content_type, csv_weights: false };
    let summary = blocks::for_each_block(source, layout, Ok, |block| {
        // Weights: rows in memory carry their channel's (libsvm `label:weight`, CSV's second
        // column).
        if !block.weights.is_empty() || out.weights.is_some() {
            let rows_before = out.labels.len();
            let weights = out.weights.get_or_insert_with(|| vec![1.0; rows_before]);
            if block.weights.is_empty() {
                weights.extend(std::iter::repeat_n(1.0, block.rows()));
            } else {
                weights.extend_from_slice(&block.weights);
            }
        }
        out.labels.extend_from_slice(&block.labels);
        if block.sparse {
            for r in 0..block.rows() {
                sparse.entries.extend(block.entries(r));
                sparse.offsets.push(sparse.entries.len());
            }
        } else {
            out.features.extend_from_slice(&block.values);
            if out.features.len() > max_values {
                return Err(DataError::TooLarge { rows: out.labels.len(), cols: block.width });
            }
        }
        Ok(())
    })?;
    out.cols = summary.width.max(1);
    if summary.sparse {
        if out.labels.len().saturating_mul(out.cols) > max_values {
            return Err(DataError::TooLarge { rows: out.labels.len(), cols: out.cols });
        }
        out.sparse = Some(sparse);
    }
    out.files = summary.files;
    Ok(out)
}

fn parse_value(field: &str) -> Option<f32> {
    let field = field.trim();
    if field.is_empty() { Some(f32::NAN) } else { field.parse::<f32>().ok() }
}

/// The first of `,` tab `;` `|` in the line, else a comma.
fn sniff_delimiter(line: &str) -> char {
    [',', '\t', ';', '|'].into_iter().find(|d| line.contains(*d)).unwrap_or(',')
}

fn csv_row(
    text: &str,
    delimiter: char,
    csv_weights: bool,
    out: &mut Labelled,
    at: &dyn Fn(Option<String>) -> Position,
) -> Result<(), DataError> {
    let mut fields = text.split(delimiter);
    let label_text = fields.next().unwrap_or("");
    let label = parse_value(label_text).filter(|l| l.is_finite()).ok_or_else(|| DataError::Malformed {
        at: at(Some("1 (label)".into())),
        problem: format!("the label `{}` is not a finite number", label_text.trim()),
    })?;
    if csv_weights {
        let w = fields.next().unwrap_or("");
        let weight = parse_value(w).filter(|w| w.is_finite() && *w >= 0.0).ok_or_else(|| DataError::Malformed {
            at: at(Some("2 (weight)".into())),
            problem: format!("the weight `{}` is not a non-negative number", w.trim()),
        })?;
        out.weights.get_or_insert_with(Vec::new).push(weight);
    }
    let first = usize::from(csv_weights) + 2;
    let before = out.features.len();
    for (i, field) in fields.enumerate() {
        let value = parse_value(field).ok_or_else(|| DataError::Malformed {
            at: at(Some((first + i).to_string())),
            problem: format!("`{}` is not a number (an empty field is a missing value)", field.trim()),
        })?;
        out.features.push(value);
    }
    let width = out.features.len() - before;
    if out.labels.is_empty() {
        out.cols = width;
    } else if width != out.cols {
        return Err(DataError::Malformed {
            at: at(None),
            problem: format!("{width} feature columns; the rows before have {}", out.cols),
        });
    }
    if width == 0 {
        return Err(DataError::Malformed { at: at(None), problem: "a row has a label but no features".into() });
    }
    out.labels.push(label);
    Ok(())
}

fn libsvm_row(
    text: &str,
    out: &mut Labelled,
    at: &dyn Fn(Option<String>) -> Position,
) -> Result<Vec<(usize, f32)>, DataError> {
    let mut tokens = text.split_ascii_whitespace();
    let head = tokens.next().unwrap_or("");
    let (label_text, weight_text) = head.split_once(':').map_or((head, None), |(l, w)| (l, Some(w)));
    let label = label_text.parse::<f32>().ok().filter(|l| l.is_finite()).ok_or_else(|| DataError::Malformed {
        at: at(Some("label".into())),
        problem: format!("the label `{label_text}` is not a finite number"),
    })?;
    if let Some(w) = weight_text {
        let weight =
            w.parse::<f32>().ok().filter(|w| w.is_finite() && *w >= 0.0).ok_or_else(|| DataError::Malformed {
                at: at(Some("weight".into())),
                problem: format!("the weight `{w}` is not a non-negative number"),
            })?;
        let rows_before = out.labels.len();
        out.weights.get_or_insert_with(|| vec![1.0; rows_before]).push(weight);
    } else if let Some(w) = &mut out.weights {
        w.push(1.0);
    }
    let mut row = Vec::new();
    for token in tokens {
        if token.starts_with("qid:") {
            continue;
        }
        let parsed = token.split_once(':').and_then(|(i, v)| Some((i.parse::<usize>().ok()?, v.parse::<f32>().ok()?)));
        let (index, value) = parsed
            .filter(|(i, _)| *i <= MAX_FEATURE_INDEX as usize)
            .ok_or_else(|| DataError::Malformed { at: at(None), problem: format!("`{token}` is not `index:value`") })?;
        row.push((index, value));
    }
    out.labels.push(label);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_and_libsvm() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "1.5,2,,3\n\n0,1,2,3\n").unwrap();
        let d = read(&csv, None, false).unwrap();
        assert_eq!(d.labels, [1.5, 0.0]);
        assert_eq!(d.cols, 3);
        assert!(d.features[1].is_nan());

        let svm = dir.path().join("b.svm");
        std::fs::write(&svm, "1 0:1.5 2:3\n0:2 1:4\n").unwrap();
        let d = read(&svm, None, false).unwrap();
        assert_eq!(d.cols, 3);
        assert_eq!(d.weights, Some(vec![1.0, 2.0]));
        let dense = d.widened(3);
        assert!(dense[1].is_nan() && dense[4] == 4.0);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "1,2,3\n1,2\n").unwrap();
        let err = read(&csv, None, false).unwrap_err().to_string();
        assert!(err.contains("a.csv, line 2: 1 feature columns; the rows before have 2"), "{err}");
        std::fs::write(&csv, "1,2,3\n1,x,3\n").unwrap();
        let err = read(&csv, None, false).unwrap_err().to_string();
        assert!(err.contains("line 2, column `2`: `x` is not a number"), "{err}");
        std::fs::write(dir.path().join(".hidden"), "1,2\n").unwrap();
        let err = read(dir.path(), None, false).unwrap_err().to_string();
        assert!(err.contains("hidden files are not allowed"), "{err}");
    }
}

//! The binary formats in blocks of rows: Parquet (read by row groups) and SageMaker's
//! RecordIO-protobuf (read record by record from a file or a Pipe mode FIFO). One core reads;
//! the blocks are then worked on every core as text blocks are.

use std::path::Path;
use std::sync::Arc;

use super::rows::{ContentType, MAX_FEATURE_INDEX, RowBlock};
use super::{DataError, Position, files, parquet_file, recordio};

/// Rows per block.
const BLOCK_ROWS: usize = 1 << 16;
/// The largest RecordIO record: far above any real row (a million float64 features is 8 MB),
/// and the bound on what an untrusted length field can make us allocate.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// A file's blocks, read one after the other.
pub(super) type Blocks = Box<dyn Iterator<Item = Result<RowBlock, DataError>>>;

/// The blocks of `file` when `content_type` is a binary format; `None` for text.
pub(super) fn of(file: &Path, content_type: ContentType) -> Result<Option<Blocks>, DataError> {
    Ok(match content_type {
        ContentType::Parquet => Some(Box::new(parquet_blocks(file)?)),
        ContentType::RecordIo => Some(Box::new(recordio_blocks(file)?)),
        ContentType::Csv | ContentType::Libsvm => None,
    })
}

/// A RecordIO-protobuf file's records, as the built-in reads them: the `values` feature
/// tensor (dense, or sparse with `keys`; float32, float64 or int32 values) and the label map's
/// `values` tensor. A file is sparse when its first record is: a sparse file's dense records
/// become entries (NaN = missing), a dense file's sparse record is an error.
fn recordio_blocks(file: &Path) -> Result<impl Iterator<Item = Result<RowBlock, DataError>> + use<>, DataError> {
    let path = Arc::new(file.to_path_buf());
    let mut frames = recordio::FrameReader::new(files::open(file)?.reader, MAX_RECORD_BYTES);
    let mut payload = Vec::new();
    let mut record_no = 0u64;
    let mut sparse: Option<bool> = None;
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut block = RowBlock { file: Arc::clone(&path), ..Default::default() };
        // Records have no lines: the message names the record.
        let fail = |problem: String| {
            Some(Err(DataError::Malformed { at: Position { file: (*path).clone(), line: 0, column: None }, problem }))
        };
        while block.rows() < BLOCK_ROWS {
            match frames.next_into(&mut payload) {
                Ok(true) => {}
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(problem) => {
                    done = true;
                    return fail(format!("record {}: {problem}", record_no + 1));
                }
            }
            record_no += 1;
            if let Err(problem) = push_record(&payload, &mut block, &mut sparse) {
                done = true;
                return fail(format!("record {record_no}: {problem}"));
            }
            block.lines.push(record_no);
        }
        if block.rows() == 0 {
            return None;
        }
        Some(Ok(block))
    }))
}

fn push_record(payload: &[u8], block: &mut RowBlock, sparse: &mut Option<bool>) -> Result<(), String> {
    let features = recordio::record_features(payload)?;
    let label = recordio::record_label(payload)?.ok_or("no label: the record's `label` map has no tensor")?;
    let &[label] = label.values.as_slice() else {
        return Err(format!("the label tensor holds {} values; one is expected", label.values.len()));
    };
    if !label.is_finite() {
        return Err("the label must be a finite number".into());
    }
    if let Some(bad) = features.values.iter().find(|v| v.is_infinite()) {
        return Err(format!("feature value {bad} is infinite; XGBoost refuses infinite features"));
    }
    let is_sparse = *sparse.get_or_insert(!features.keys.is_empty());
    if block.rows() == 0 {
        block.sparse = is_sparse;
        if is_sparse {
            block.offsets.push(0);
        } else {
            block.width = features.values.len();
        }
    }
    if is_sparse {
        push_sparse(&features, block)?;
        block.offsets.push(block.indices.len() as u32);
    } else {
        if !features.keys.is_empty() {
            return Err("sparse (it has keys) in a file whose first record is dense".into());
        }
        if features.values.len() != block.width {
            return Err(format!("{} features; the records before have {}", features.values.len(), block.width));
        }
        block.values.extend_from_slice(&features.values);
    }
    block.labels.push(label);
    Ok(())
}

/// A record's entries in index order; a dense record's values are entries `0..n`.
fn push_sparse(features: &recordio::Tensor, block: &mut RowBlock) -> Result<(), String> {
    let start = block.indices.len();
    if features.keys.is_empty() {
        for (i, &v) in features.values.iter().enumerate() {
            if !v.is_nan() {
                block.indices.push(u32::try_from(i).map_err(|_| "too many features")?);
                block.values.push(v);
            }
        }
    } else {
        if features.keys.len() != features.values.len() {
            return Err(format!("{} keys for {} values", features.keys.len(), features.values.len()));
        }
        let width = features.shape.first().copied();
        for (&key, &v) in features.keys.iter().zip(&features.values) {
            if key > u64::from(MAX_FEATURE_INDEX) || width.is_some_and(|w| key >= w) {
                return Err(format!("key {key} is beyond the shape or XGBoost's largest feature index"));
            }
            block.indices.push(key as u32);
            block.values.push(v);
        }
    }
    // Writers emit keys in order: only an unordered record pays for the sort.
    if block.indices[start..].windows(2).all(|w| w[0] < w[1]) {
        return Ok(());
    }
    let mut order: Vec<usize> = (start..block.indices.len()).collect();
    order.sort_by_key(|&i| block.indices[i]);
    if order.windows(2).any(|w| block.indices[w[0]] == block.indices[w[1]]) {
        return Err("a key is given twice".into());
    }
    let (indices, values): (Vec<u32>, Vec<f32>) = order.iter().map(|&i| (block.indices[i], block.values[i])).unzip();
    block.indices[start..].copy_from_slice(&indices);
    block.values[start..].copy_from_slice(&values);
    Ok(())
}

/// A Parquet file's rows in blocks: label first, numbers of any width, null = missing.
fn parquet_blocks(file: &Path) -> Result<impl Iterator<Item = Result<RowBlock, DataError>> + use<>, DataError> {
    let path = Arc::new(file.to_path_buf());
    let malformed = {
        let path = Arc::clone(&path);
        move |row: u64, column: Option<String>, problem: String| DataError::Malformed {
            at: Position { file: (*path).clone(), line: row, column },
            problem,
        }
    };
    let rows = parquet_file::Rows::open(file).map_err(|e| match e {
        parquet_file::OpenError::Io(source) => DataError::io(file, source),
        parquet_file::OpenError::Unreadable(problem) => malformed(0, None, problem),
    })?;
    let columns = rows.columns();
    if columns < 2 {
        return Err(malformed(0, None, format!("{columns} columns; a label and at least one feature are needed")));
    }
    let mut next_row = 0u64;
    let mut rows = rows.peekable();
    Ok(std::iter::from_fn(move || {
        rows.peek()?;
        let mut block = RowBlock { file: Arc::clone(&path), width: columns - 1, ..Default::default() };
        for row in rows.by_ref().take(BLOCK_ROWS) {
            next_row += 1;
            let row = match row {
                Ok(row) => row,
                Err(e) => return Some(Err(malformed(next_row, None, format!("cannot be read: {e}")))),
            };
            block.lines.push(next_row);
            for (c, (name, field)) in row.get_column_iter().enumerate() {
                let value = match parquet_number(field) {
                    Some(v) => v,
                    None => {
                        return Some(Err(malformed(next_row, Some(name.clone()), format!("{field} is not a number"))));
                    }
                };
                if c == 0 {
                    if !value.is_finite() {
                        return Some(Err(malformed(
                            next_row,
                            Some(name.clone()),
                            "the label (first column) must be a finite number".into(),
                        )));
                    }
                    block.labels.push(value);
                } else if value.is_infinite() {
                    return Some(Err(malformed(
                        next_row,
                        Some(name.clone()),
                        "infinite; XGBoost refuses infinite features".into(),
                    )));
                } else {
                    block.values.push(value);
                }
            }
        }
        Some(Ok(block))
    }))
}

fn parquet_number(field: &parquet::record::Field) -> Option<f32> {
    use parquet::record::Field;
    Some(match field {
        Field::Null => f32::NAN,
        Field::Bool(b) => f32::from(u8::from(*b)),
        Field::Byte(v) => f32::from(*v),
        Field::Short(v) => f32::from(*v),
        Field::Int(v) => *v as f32,
        Field::Long(v) => *v as f32,
        Field::UByte(v) => f32::from(*v),
        Field::UShort(v) => f32::from(*v),
        Field::UInt(v) => *v as f32,
        Field::ULong(v) => *v as f32,
        Field::Float(v) => *v,
        Field::Double(v) => *v as f32,
        _ => return None,
    })
}

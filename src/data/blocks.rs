//! Label-first training data streamed in blocks of rows, parsed on every core and handed on
//! in input order, so that no pass over a channel holds more than a few blocks in memory.
//! Numbers are read with XGBoost's own text parser (`dmlc`), as the built-in algorithm reads
//! `text/csv` and `text/libsvm`; Parquet values are exact.
//!
//! CSV rows are dense (`width` values, NaN = missing); libsvm rows are sparse
//! (`index:value` entries, sorted by index).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::memory::{RowSet, Source};
use super::rows::{ContentType, Layout, MAX_FEATURE_INDEX, RowBlock};
use super::{DataError, Position, binary_blocks, dmlc, files};

/// Bytes of text per parsed block.
const CHUNK_BYTES: usize = 4 << 20;

/// Every block of `path` (a file or a directory), in order. `work` runs on every core, each
/// block's result then reaches `consume` in input order. A dense channel's width is checked
/// across blocks and files.
pub fn for_each_block<'a, T: Send>(
    source: impl Into<Source<'a>>,
    layout: Layout,
    work: impl Fn(RowBlock) -> Result<T, DataError> + Sync,
    consume: impl FnMut(T) -> Result<(), DataError> + Send,
) -> Result<BlockSummary, DataError> {
    match source.into() {
        Source::Files(path) => for_each_file_block(path, layout, work, consume),
        Source::Rows(rows) => for_each_row_block(rows, work, consume),
    }
}

/// Rows in memory, as their channel's blocks were: the summary keeps the store's width (a
/// slice has its matrix's columns).
fn for_each_row_block<T: Send>(
    rows: &RowSet,
    work: impl Fn(RowBlock) -> Result<T, DataError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), DataError> + Send,
) -> Result<BlockSummary, DataError> {
    let mut summary = BlockSummary::default();
    let mut blocks = rows.blocks().peekable();
    while blocks.peek().is_some() {
        let batch: Vec<RowBlock> = blocks.by_ref().take(crate::parallel::cores()).collect();
        for block in &batch {
            summary.note(block)?;
        }
        for item in batch.into_par_iter().map(&work).collect::<Result<Vec<T>, DataError>>()? {
            consume(item)?;
        }
    }
    if summary.rows == 0 {
        return Err(DataError::Empty { path: Source::Rows(rows).shown() });
    }
    summary.width = summary.width.max(rows.width());
    summary.bytes = rows.bytes();
    summary.files = rows.files();
    Ok(summary)
}

fn for_each_file_block<T: Send>(
    path: &Path,
    layout: Layout,
    work: impl Fn(RowBlock) -> Result<T, DataError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), DataError> + Send,
) -> Result<BlockSummary, DataError> {
    let files = files::data_files(path)?;
    let mut summary = BlockSummary::default();
    let batch = 2 * crate::parallel::cores();
    let pool = Pool::default();
    let check_and_work = |block: RowBlock, summary: &mut BlockSummary| -> Result<RowBlock, DataError> {
        summary.note(&block)?;
        Ok(block)
    };
    for file in &files {
        if let Some(blocks) = binary_blocks::of(file, layout.content_type)? {
            for block in blocks {
                let block = check_and_work(block?, &mut summary)?;
                consume(work(block)?)?;
            }
            continue;
        }
        // A pipeline: the next batch of chunks is parsed (and worked) on every core while
        // the previous batch's results are consumed in order.
        let mut chunks = ChunkReader::open(file, &pool)?;
        let mut ready: Vec<T> = Vec::new();
        loop {
            let mut pending = Vec::with_capacity(batch);
            while pending.len() < batch {
                match chunks.next_chunk()? {
                    Some(chunk) => pending.push(chunk),
                    None => break,
                }
            }
            if pending.is_empty() && ready.is_empty() {
                break;
            }
            let previous = std::mem::take(&mut ready);
            let (parsed, consumed) = rayon::join(
                || -> Vec<Result<RowBlock, DataError>> {
                    pending.into_par_iter().map(|c| parse_chunk(c, layout, &pool)).collect()
                },
                || -> Result<(), DataError> {
                    for item in previous {
                        consume(item)?;
                    }
                    Ok(())
                },
            );
            consumed?;
            let mut blocks = Vec::with_capacity(parsed.len());
            for block in parsed {
                blocks.push(check_and_work(block?, &mut summary)?);
            }
            ready = blocks.into_par_iter().map(&work).collect::<Result<Vec<T>, DataError>>()?;
        }
    }
    if summary.rows == 0 {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    summary.bytes = files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).sum();
    summary.files = files;
    Ok(summary)
}

/// The first block of an uncompressed text channel, to size a pass before it runs.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Rows in the first block, and the bytes they took.
    pub rows: usize,
    pub bytes: u64,
    /// Bytes of every file of the channel.
    pub total_bytes: u64,
    /// Per column, the first block's present (non-missing) values.
    pub present: Vec<u64>,
}

impl Probe {
    /// The channel's rows, extrapolated from the first block.
    pub fn estimated_rows(&self) -> f64 {
        self.rows as f64 * self.total_bytes as f64 / self.bytes.max(1) as f64
    }
}

/// Probe a dense text channel (`None` for libsvm, Parquet, gzip, rows in memory, or an empty
/// first block).
pub fn probe<'a>(source: impl Into<Source<'a>>, layout: Layout) -> Result<Option<Probe>, DataError> {
    let Source::Files(path) = source.into() else { return Ok(None) };
    if layout.content_type != ContentType::Csv {
        return Ok(None);
    }
    let files = files::data_files(path)?;
    let mut total_bytes = 0u64;
    for file in &files {
        if files::open(file)?.gzip {
            return Ok(None);
        }
        total_bytes += std::fs::metadata(file).map_err(|e| DataError::io(file, e))?.len();
    }
    let Some(first) = files.first() else { return Ok(None) };
    let pool = Pool::default();
    let Some(chunk) = ChunkReader::open(first, &pool)?.next_chunk()? else { return Ok(None) };
    let bytes = chunk.bytes.len() as u64;
    let block = parse_chunk(chunk, layout, &pool)?;
    if block.rows() == 0 {
        return Ok(None);
    }
    let mut present = vec![0u64; block.width];
    for row in block.values.chunks(block.width.max(1)) {
        for (n, v) in present.iter_mut().zip(row) {
            *n += u64::from(!v.is_nan());
        }
    }
    Ok(Some(Probe { rows: block.rows(), bytes, total_bytes, present }))
}

/// What a pass saw: rows, width, whether rows carried weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockSummary {
    pub rows: usize,
    /// Dense width, or the largest feature index + 1 of sparse rows.
    pub width: usize,
    pub sparse: bool,
    pub weighted: bool,
    pub files: Vec<PathBuf>,
    /// Bytes of the files as stored (compressed when gzip).
    pub bytes: u64,
}

impl BlockSummary {
    fn note(&mut self, block: &RowBlock) -> Result<(), DataError> {
        if block.rows() == 0 {
            return Ok(());
        }
        if self.rows > 0 && block.sparse != self.sparse {
            let (now, before) = if block.sparse { ("sparse", "dense") } else { ("dense", "sparse") };
            return Err(DataError::Malformed {
                at: block.at(0, None),
                problem: format!("{now} rows; the rows before are {before}"),
            });
        }
        if !block.sparse {
            if self.rows > 0 && block.width != self.width {
                return Err(DataError::Malformed {
                    at: block.at(0, None),
                    problem: format!("{} feature columns; the rows before have {}", block.width, self.width),
                });
            }
            self.width = block.width;
        } else {
            let widest = block.indices.iter().max().map_or(0, |&i| i as usize + 1);
            self.width = self.width.max(widest);
        }
        self.sparse = block.sparse;
        self.weighted |= !block.weights.is_empty();
        self.rows += block.rows();
        Ok(())
    }
}

/// A file's text cut at line ends into chunks of about `CHUNK_BYTES`.
pub(crate) struct ChunkReader<'p> {
    pool: &'p Pool,
    file: Arc<PathBuf>,
    reader: Box<dyn std::io::BufRead + Send>,
    carry: Vec<u8>,
    next_line: u64,
    delimiter: Option<u8>,
    done: bool,
}

pub(crate) struct Chunk {
    pub(crate) file: Arc<PathBuf>,
    /// Line number of the chunk's first line.
    pub(crate) first_line: u64,
    pub(crate) bytes: Vec<u8>,
    delimiter: u8,
}

impl<'p> ChunkReader<'p> {
    fn open(path: &Path, pool: &'p Pool) -> Result<Self, DataError> {
        let reader = files::open(path)?.reader;
        Ok(Self::resume(path, reader, 1, Vec::new(), pool))
    }

    /// Chunks of `reader`, already read up to line `next_line`; `carry` is text read ahead
    /// (whole lines), which the first chunk starts with.
    pub(crate) fn resume(
        path: &Path,
        reader: Box<dyn std::io::BufRead + Send>,
        next_line: u64,
        carry: Vec<u8>,
        pool: &'p Pool,
    ) -> Self {
        Self { pool, file: Arc::new(path.to_path_buf()), reader, carry, next_line, delimiter: None, done: false }
    }

    pub(crate) fn next_chunk(&mut self) -> Result<Option<Chunk>, DataError> {
        if self.done {
            return Ok(None);
        }
        // A recycled buffer keeps its length: only growth is zero-filled.
        let mut bytes = self.pool.lock().map(|mut p| p.pop()).ok().flatten().unwrap_or_default();
        let start = self.carry.len();
        let want = start + CHUNK_BYTES;
        if bytes.len() < want {
            bytes.resize(want, 0);
        } else {
            bytes.truncate(want);
        }
        bytes[..start].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut filled = start;
        while filled < bytes.len() {
            match self.reader.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DataError::io(&*self.file, e)),
            }
        }
        bytes.truncate(filled);
        if filled < want {
            self.done = true;
        } else if let Some(end) = memchr::memrchr(b'\n', &bytes) {
            self.carry.extend_from_slice(&bytes[end + 1..]);
            bytes.truncate(end + 1);
        }
        // A line longer than a chunk is carried whole into the next read.
        if !self.done && !bytes.ends_with(b"\n") {
            self.carry = bytes;
            return self.next_chunk();
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        let delimiter = *self.delimiter.get_or_insert_with(|| sniff_delimiter(&bytes));
        Ok(Some(Chunk { file: Arc::clone(&self.file), first_line, bytes, delimiter }))
    }
}

/// Chunk buffers handed back after parsing, for the next reads.
#[derive(Default)]
pub(crate) struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    pub(crate) fn give_back(&self, buffer: Vec<u8>) {
        if let Ok(mut p) = self.0.lock() {
            p.push(buffer);
        }
    }

    fn lock(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Vec<Vec<u8>>>> {
        self.0.lock()
    }
}

/// The first of `,` tab `;` `|` on the first non-blank line, else a comma.
fn sniff_delimiter(text: &[u8]) -> u8 {
    let line = text.split(|&b| b == b'\n').find(|l| !l.trim_ascii().is_empty()).unwrap_or(&[]);
    [b',', b'\t', b';', b'|'].into_iter().find(|d| line.contains(d)).unwrap_or(b',')
}

fn parse_chunk(chunk: Chunk, layout: Layout, pool: &Pool) -> Result<RowBlock, DataError> {
    let parsed = parse_text(&chunk, layout);
    pool.give_back(chunk.bytes);
    parsed
}

fn parse_text(chunk: &Chunk, layout: Layout) -> Result<RowBlock, DataError> {
    let sparse = match layout.content_type {
        ContentType::Libsvm => true,
        ContentType::Csv => false,
        ContentType::Parquet | ContentType::RecordIo => unreachable!("binary formats are read by binary_blocks"),
    };
    let mut block = RowBlock { file: Arc::clone(&chunk.file), sparse, ..Default::default() };
    if sparse {
        block.offsets.push(0);
    }
    // Sized from the text: a value takes at least two bytes (a digit and a separator).
    let lines_hint = memchr::memchr_iter(b'\n', &chunk.bytes).count() + 1;
    block.lines.reserve(lines_hint);
    block.labels.reserve(lines_hint);
    block.values.reserve(chunk.bytes.len() / 2);
    let mut width = None;
    for (i, raw) in lines(&chunk.bytes).enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.trim_ascii().is_empty() {
            continue;
        }
        let line_no = chunk.first_line + i as u64;
        let at = |column: Option<String>| Position { file: (*chunk.file).clone(), line: line_no, column };
        block.lines.push(line_no);
        if sparse {
            libsvm_row(line, &mut block, &at)?;
            continue;
        }
        let w = csv_row(line, chunk.delimiter, layout.csv_weights, &mut block, &at)?;
        match width {
            None => width = Some(w),
            Some(expected) if expected != w => {
                return Err(DataError::Malformed {
                    at: at(None),
                    problem: format!("{w} feature columns; the rows before have {expected}"),
                });
            }
            Some(_) => {}
        }
    }
    block.width = width.unwrap_or(0);
    Ok(block)
}

fn label(text: &[u8], column: &str, at: &dyn Fn(Option<String>) -> Position) -> Result<f32, DataError> {
    dmlc::parse_field(text).filter(|v| v.is_finite()).ok_or_else(|| DataError::Malformed {
        at: at(Some(column.into())),
        problem: format!("the label `{}` is not a finite number", String::from_utf8_lossy(text.trim_ascii())),
    })
}

fn weight(text: &[u8], column: &str, at: &dyn Fn(Option<String>) -> Position) -> Result<f32, DataError> {
    dmlc::parse_field(text).filter(|w| w.is_finite() && *w >= 0.0).ok_or_else(|| DataError::Malformed {
        at: at(Some(column.into())),
        problem: format!("the weight `{}` is not a non-negative number", String::from_utf8_lossy(text.trim_ascii())),
    })
}

/// A feature's value; `column` names it in a message (built only on error).
#[inline]
fn feature_value(text: &[u8], column: usize, at: &dyn Fn(Option<String>) -> Position) -> Result<f32, DataError> {
    match dmlc::parse_field(text) {
        Some(v) if v.is_finite() || v.is_nan() => Ok(v),
        Some(_) => Err(DataError::Malformed {
            at: at(Some(column.to_string())),
            problem: format!(
                "`{}` is infinite; XGBoost refuses infinite features",
                String::from_utf8_lossy(text.trim_ascii())
            ),
        }),
        None => Err(DataError::Malformed {
            at: at(Some(column.to_string())),
            problem: format!(
                "`{}` is not a number (an empty field is a missing value)",
                String::from_utf8_lossy(text.trim_ascii())
            ),
        }),
    }
}

/// The lines of a chunk (split at `\n`, found with memchr); a chunk ending in `\n` ends with
/// an empty line.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let text = rest?;
        match memchr::memchr(b'\n', text) {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// The fields of a delimited line (found with memchr).
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    delimiter: u8,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let text = self.rest?;
        match memchr::memchr(self.delimiter, text) {
            Some(i) => {
                self.rest = Some(&text[i + 1..]);
                Some(&text[..i])
            }
            None => {
                self.rest = None;
                Some(text)
            }
        }
    }
}

/// One CSV row: label, optional weight, then features. Returns the row's feature count.
fn csv_row(
    line: &[u8],
    delimiter: u8,
    csv_weights: bool,
    block: &mut RowBlock,
    at: &dyn Fn(Option<String>) -> Position,
) -> Result<usize, DataError> {
    let mut fields = Fields { rest: Some(line), delimiter };
    block.labels.push(label(fields.next().unwrap_or(&[]), "1 (label)", at)?);
    if csv_weights {
        block.weights.push(weight(fields.next().unwrap_or(&[]), "2 (weight)", at)?);
    }
    let first = usize::from(csv_weights) + 2;
    let before = block.values.len();
    // Plain numbers are parsed while scanning for the delimiter; anything else is cut out
    // and handed to the full parser.
    let Some(mut rest) = fields.rest else {
        return Err(DataError::Malformed { at: at(None), problem: "a row has a label but no features".into() });
    };
    let mut column = first;
    loop {
        let (value, used) = dmlc::parse_plain_prefix(rest);
        let (field, next) = match rest.get(used) {
            Some(&d) if d == delimiter && used > 0 => (None, Some(&rest[used + 1..])),
            None if used > 0 => (None, None),
            _ => match memchr::memchr(delimiter, rest) {
                Some(i) => (Some(&rest[..i]), Some(&rest[i + 1..])),
                None => (Some(rest), None),
            },
        };
        let v = match field {
            None => value,
            Some(text) => feature_value(text, column, at)?,
        };
        block.values.push(v);
        column += 1;
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let width = block.values.len() - before;
    if width == 0 {
        return Err(DataError::Malformed { at: at(None), problem: "a row has a label but no features".into() });
    }
    Ok(width)
}

/// One libsvm row: `label[:weight] [qid:n] index:value ...`.
fn libsvm_row(line: &[u8], block: &mut RowBlock, at: &dyn Fn(Option<String>) -> Position) -> Result<(), DataError> {
    let mut tokens = line.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty());
    let head = tokens.next().unwrap_or(&[]);
    let (label_text, weight_text) = match head.iter().position(|&b| b == b':') {
        Some(i) => (&head[..i], Some(&head[i + 1..])),
        None => (head, None),
    };
    block.labels.push(label(label_text, "label", at)?);
    match weight_text {
        Some(w) => {
            let rows_before = block.labels.len() - 1;
            if block.weights.len() < rows_before {
                block.weights.resize(rows_before, 1.0);
            }
            block.weights.push(weight(w, "weight", at)?);
        }
        None if !block.weights.is_empty() => block.weights.push(1.0),
        None => {}
    }
    let start = block.indices.len();
    for token in tokens {
        if token.starts_with(b"qid:") {
            continue;
        }
        let not_pair = || DataError::Malformed {
            at: at(None),
            problem: format!("`{}` is not `index:value`", String::from_utf8_lossy(token)),
        };
        let colon = token.iter().position(|&b| b == b':').ok_or_else(not_pair)?;
        let index: u32 = std::str::from_utf8(&token[..colon])
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|&i| i <= u64::from(MAX_FEATURE_INDEX))
            .map(|i| i as u32)
            .ok_or_else(|| DataError::Malformed {
                at: at(None),
                problem: format!(
                    "`{}`: the feature index must be an integer in [0, {MAX_FEATURE_INDEX}]",
                    String::from_utf8_lossy(token)
                ),
            })?;
        let value = feature_value(&token[colon + 1..], index as usize, at)?;
        if value.is_nan() {
            continue;
        }
        block.indices.push(index);
        block.values.push(value);
    }
    // Sorted by index; a repeated index is an error (XGBoost would keep both entries).
    let row = start..block.indices.len();
    if !block.indices[row.clone()].is_sorted() {
        let mut pairs: Vec<(u32, f32)> = row.clone().map(|i| (block.indices[i], block.values[i])).collect();
        pairs.sort_by_key(|p| p.0);
        for (k, (i, v)) in pairs.into_iter().enumerate() {
            block.indices[start + k] = i;
            block.values[start + k] = v;
        }
    }
    if let Some(w) = block.indices[row].windows(2).find(|w| w[0] == w[1]) {
        return Err(DataError::Malformed {
            at: at(Some(w[0].to_string())),
            problem: "the feature index appears twice in the row".into(),
        });
    }
    block.offsets.push(block.indices.len() as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(text: &str, content_type: ContentType) -> Result<Vec<RowBlock>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.txt");
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        for_each_block(&path, Layout { content_type, csv_weights: false }, Ok, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn csv_rows_are_dense_and_libsvm_rows_sparse() {
        let b = &blocks("1.5,2,,3\n\n0,1,2,3\n", ContentType::Csv).unwrap()[0];
        assert_eq!((b.labels.clone(), b.width, b.lines.clone()), (vec![1.5, 0.0], 3, vec![1, 3]));
        assert!(b.values[1].is_nan());
        let b = &blocks("1 3:1.5 0:2\n0:2 1:4\n", ContentType::Libsvm).unwrap()[0];
        assert_eq!(b.indices, [0, 3, 1]);
        assert_eq!(b.values, [2.0, 1.5, 4.0]);
        assert_eq!(b.offsets, [0, 2, 3]);
        assert_eq!(b.weights, [1.0, 2.0]);
    }

    #[test]
    fn huge_indices_cost_nothing() {
        let b = &blocks("1 1073741823:1\n0 2147483646:2\n", ContentType::Libsvm).unwrap()[0];
        assert_eq!(b.indices, [1073741823, 2147483646]);
        let err = blocks("1 2147483647:1\n", ContentType::Libsvm).unwrap_err().to_string();
        assert!(
            err.contains("line 1: `2147483647:1`: the feature index must be an integer in [0, 2147483646]"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = blocks("1,2,3\n1,2\n", ContentType::Csv).unwrap_err().to_string();
        assert!(err.contains("data.txt, line 2: 1 feature columns; the rows before have 2"), "{err}");
        let err = blocks("1,2,3\n1,x,3\n", ContentType::Csv).unwrap_err().to_string();
        assert!(err.contains("line 2, column `2`: `x` is not a number"), "{err}");
        let err = blocks("1,inf\n", ContentType::Csv).unwrap_err().to_string();
        assert!(err.contains("column `2`: `inf` is infinite"), "{err}");
        let err = blocks("1 3:1 3:2\n", ContentType::Libsvm).unwrap_err().to_string();
        assert!(err.contains("column `3`: the feature index appears twice"), "{err}");
    }
}

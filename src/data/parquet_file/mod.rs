//! Parquet files read defensively: the parquet crate (60) trusts a file in places, so a
//! corrupt file could hang it, or make it panic where its API documents a panic on bad input.
//! Every reader of untrusted Parquet (training channels, the monitor's datasets) goes through
//! [`Rows`], which turns each of those into an error naming the problem.

mod thrift;

use std::cell::Cell;
use std::os::unix::fs::FileExt;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Row;
use parquet::record::reader::RowIter;

/// Why a Parquet file cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    Io(std::io::Error),
    /// Not a readable Parquet file: the problem, in words.
    Unreadable(String),
}

/// A Parquet file's rows, each decoded with panics contained: a row the decoder panics on is
/// an error (and the last item), not the end of the process.
pub struct Rows {
    columns: usize,
    rows: RowIter<'static>,
    done: bool,
}

impl Rows {
    pub fn open(file: &Path) -> Result<Self, OpenError> {
        let handle = std::fs::File::open(file).map_err(OpenError::Io)?;
        let unreadable = |problem: String| OpenError::Unreadable(format!("not a readable Parquet file: {problem}"));
        if let Some(problem) = amplified_footer(&handle).map_err(OpenError::Io)? {
            return Err(unreadable(problem));
        }
        let pages = handle.try_clone().map_err(OpenError::Io)?;
        let reader = contained(|| SerializedFileReader::new(StrictFile(handle)))
            .map_err(|panic| unreadable(decoder_failed(&panic)))?
            .map_err(|e| unreadable(e.to_string()))?;
        if let Some(problem) = footer_problem(reader.metadata()) {
            return Err(unreadable(problem));
        }
        if let Some(problem) = page_header_problem(&pages, reader.metadata()).map_err(OpenError::Io)? {
            return Err(unreadable(problem));
        }
        let columns = reader.metadata().file_metadata().schema_descr().num_columns();
        // What `SerializedFileReader<File>::into_iter` does, for the strict reader.
        let rows = RowIter::from_file_into(Box::new(reader));
        Ok(Self { columns, rows, done: false })
    }

    /// Leaf columns in the schema.
    pub fn columns(&self) -> usize {
        self.columns
    }
}

impl Iterator for Rows {
    /// A row, or why it cannot be read.
    type Item = Result<Row, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match contained(|| self.rows.next()) {
            Ok(row) => row.map(|r| r.map_err(|e| e.to_string())),
            Err(panic) => {
                // The decoder's state is unknown after a panic: nothing more is read.
                self.done = true;
                Some(Err(decoder_failed(&panic)))
            }
        }
    }
}

fn decoder_failed(panic: &str) -> String {
    format!("the Parquet decoder failed on corrupt data ({panic})")
}

/// The footer's metadata, when its Thrift would cost parquet far more steps than its bytes
/// (see `thrift`): the problem. A file too short or not ending in `PAR1` is left to parquet.
fn amplified_footer(file: &std::fs::File) -> std::io::Result<Option<String>> {
    let len = file.metadata()?.len();
    let Some(tail_at) = len.checked_sub(8) else { return Ok(None) };
    let mut tail = [0u8; 8];
    file.read_exact_at(&mut tail, tail_at)?;
    let metadata_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if &tail[4..] != b"PAR1" || metadata_len > tail_at {
        return Ok(None);
    }
    // No larger than the file: what parquet reads into memory itself.
    let mut metadata = vec![0u8; metadata_len as usize];
    file.read_exact_at(&mut metadata, tail_at - metadata_len)?;
    let walk = thrift::walk_struct(&metadata, -1);
    Ok(walk
        .is_amplified()
        .then(|| format!("the footer's metadata declares {} values in {} bytes (corrupt)", walk.steps, walk.bytes)))
}

/// The largest page header walked: far above a real one (statistics are truncated by
/// writers), and what the walk reads at most.
const MAX_PAGE_HEADER: u64 = 16 << 20;

/// Each column chunk's page headers, in the order parquet reads them (page after page from
/// the chunk's start, each header followed by its `compressed_page_size` bytes): the first
/// whose Thrift would cost parquet far more steps than its bytes, or make it allocate a size
/// the file does not hold. A header parquet would refuse ends that chunk's walk; parquet then
/// reports it.
fn page_header_problem(
    file: &std::fs::File,
    metadata: &parquet::file::metadata::ParquetMetaData,
) -> std::io::Result<Option<String>> {
    let len = file.metadata()?.len();
    let mut window = Vec::new();
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            // Not negative: `footer_problem` has checked.
            let (mut at, mut remaining) = column.byte_range();
            while remaining > 0 && at < len {
                let walk = walk_page_header(file, at, len, &mut window)?;
                let problem = if walk.is_amplified() {
                    Some(format!("declares {} values in {} bytes", walk.steps, walk.bytes))
                } else if walk.end == thrift::End::Truncated && walk.bytes as u64 >= MAX_PAGE_HEADER {
                    Some(format!("is over {} MiB", MAX_PAGE_HEADER >> 20))
                } else {
                    walk.overrun.map(|size| format!("declares a value of {size} bytes or elements past the file's end"))
                };
                if let Some(problem) = problem {
                    let column = column.column_path();
                    return Ok(Some(format!(
                        "row group {g}, column `{column}`: the page header at byte {at} {problem}"
                    )));
                }
                let page = walk.field.and_then(|size| u64::try_from(size).ok());
                let (header, Some(page)) = (walk.bytes as u64, page) else { break };
                if walk.end != thrift::End::Complete || header + page > remaining {
                    break;
                }
                at += header + page;
                remaining -= header + page;
            }
        }
    }
    Ok(None)
}

/// The page header at `at`: read in a growing window until the walk completes, the file
/// ends or `MAX_PAGE_HEADER` is read.
fn walk_page_header(file: &std::fs::File, at: u64, len: u64, window: &mut Vec<u8>) -> std::io::Result<thrift::Walk> {
    /// `PageHeader.compressed_page_size`.
    const COMPRESSED_PAGE_SIZE: i16 = 3;
    let mut size = 1024;
    loop {
        let take = size.min(len - at).min(MAX_PAGE_HEADER);
        window.resize(take as usize, 0);
        file.read_exact_at(window, at)?;
        let walk = thrift::walk_struct(window, COMPRESSED_PAGE_SIZE);
        if walk.end != thrift::End::Truncated || take < size {
            return Ok(walk);
        }
        size *= 2;
    }
}

thread_local! {
    /// Whether this thread is inside [`contained`].
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// Run `work`, a call into the parquet crate, turning a panic into its message. parquet 60
/// documents panics on bad input (`BitReader::get_vlq_int` asserts a VLQ integer's length,
/// found by the `train_parquet` fuzz target); untrusted bytes must give an error instead. The
/// release profile unwinds, so the panic is caught here.
fn contained<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CONTAINING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    CONTAINING.with(|c| c.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string())
    })
}

/// Whether the current thread is decoding Parquet with panics contained: a panic hook that
/// aborts (libFuzzer's) lets such a panic unwind to the containment instead.
pub fn decoding() -> bool {
    CONTAINING.with(Cell::get)
}

/// A Parquet file whose readers fail at its end instead of reading nothing. parquet 60's
/// Thrift decoder skips an unknown field of n elements by n reads and takes a read of nothing
/// as success, so a corrupt page header naming 2^31 elements spins for hours at the end of
/// the file (found by the `train_parquet` fuzz target). A valid file is never read past its
/// end: its footer follows the pages.
struct StrictFile(std::fs::File);

impl parquet::file::reader::Length for StrictFile {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl parquet::file::reader::ChunkReader for StrictFile {
    type T = StrictRead<<std::fs::File as parquet::file::reader::ChunkReader>::T>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(StrictRead(self.0.get_read(start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// See [`StrictFile`]: the end of the file is an error.
struct StrictRead<R>(R);

impl<R: std::io::Read> std::io::Read for StrictRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 if !buf.is_empty() => {
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the Parquet file ends inside a page"))
            }
            n => Ok(n),
        }
    }
}

/// What the parquet crate would panic on rather than refuse: it asserts that each column
/// chunk's start (dictionary page, else first data page) and compressed size are not negative
/// (`ColumnChunkMetaData::byte_range`, parquet 60), and a corrupt footer can say they are
/// (found by the `train_parquet` fuzz target). Checked before any row is read.
fn footer_problem(metadata: &parquet::file::metadata::ParquetMetaData) -> Option<String> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
            if start < 0 || column.data_page_offset() < 0 || column.compressed_size() < 0 {
                return Some(format!(
                    "row group {g}, column `{}`: a negative offset ({start}) or size ({}) in the footer",
                    column.column_path(),
                    column.compressed_size()
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(finding: &str) -> String {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/train_parquet").join(finding);
        match Rows::open(&file) {
            Err(OpenError::Unreadable(problem)) => problem,
            Err(OpenError::Io(e)) => panic!("{e}"),
            Ok(rows) => rows.filter_map(Result::err).next().expect("an error"),
        }
    }

    /// The fuzz findings are refused in words, not by a panic or seconds of work.
    #[test]
    fn corrupt_files_are_refused_by_name() {
        // The first then made parquet panic; the second spin on lists of booleans.
        let e = first_error("shift-overflow-in-bit-reader.parquet");
        assert!(e.contains("the page header at byte 11131 declares a value of 2154844208 bytes"), "{e}");
        let e = first_error("slow-page-header.parquet");
        assert!(e.contains("the page header at byte 2426 declares 245973111 values in 15843 bytes"), "{e}");
    }

    /// A panic in the decoder is its message, and the thread goes on.
    #[test]
    fn panics_are_contained() {
        assert!(!decoding());
        let caught = contained(|| {
            assert!(decoding());
            panic!("Num of bytes exceed MAX_VLQ_BYTE_LEN (10)")
        });
        assert_eq!(
            caught.map_err(|m| decoder_failed(&m)).unwrap_err(),
            "the Parquet decoder failed on corrupt data (Num of bytes exceed MAX_VLQ_BYTE_LEN (10))"
        );
        assert!(!decoding());
        assert_eq!(contained(|| 7), Ok(7));
    }
}

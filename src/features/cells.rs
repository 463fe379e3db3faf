//! The grid an object's text is read on: cells of a fixed number of bytes from its start,
//! each holding the lines whose first byte lies in it (a line crossing a cut belongs to the
//! cell it starts in, and is read whole there, once). Cells are the unit of parsing and of
//! folding statistics, on one host or many: a host reading the whole object and hosts each
//! reading a range of its cells cut its lines alike, so floating-point sums fold in the same
//! order however many hosts read it.

use std::io::{BufRead, Read};
use std::path::Path;

use crate::data::DataError;

/// Bytes of text per cell (`SAGESTEP_PREPROCESS_CELL_BYTES` in tests: small files of many
/// cells).
pub const CELL_BYTES: u64 = 4 << 20;

/// One cell's lines.
pub struct Cell {
    pub index: u64,
    /// Offset in the text of its first byte.
    pub offset: u64,
    /// Line number (from 1) of its first line.
    pub first_line: u64,
    /// Whole lines, each with its `\n` (the object's last may have none).
    pub bytes: Vec<u8>,
}

/// Cells in order from a reader standing at a line start, up to (not including) the lines
/// starting at `end`.
pub struct CellReader<R> {
    reader: R,
    cell_bytes: u64,
    /// Offset in the text of the next line start to read from; `carry` holds text from there.
    at: u64,
    carry: Vec<u8>,
    end: u64,
    next_line: u64,
    done: bool,
}

impl<R: BufRead> CellReader<R> {
    /// `reader` yields the text from offset `at` (a line start) on, after `carry` (text already
    /// read from `at`); `line` is the number of the line starting at `at`.
    pub fn new(reader: R, cell_bytes: u64, at: u64, carry: Vec<u8>, line: u64, end: u64) -> Self {
        let cell_bytes = cell_bytes.max(1);
        Self { reader, cell_bytes, at, carry, end, next_line: line, done: false }
    }

    /// The next cell holding a line (cells inside one long line hold none and are passed),
    /// in `buffer` (its contents dropped; a recycled one saves fresh pages).
    pub fn next_cell(&mut self, file: &Path, mut buffer: Vec<u8>) -> Result<Option<Cell>, DataError> {
        if self.done || self.at >= self.end {
            return Ok(None);
        }
        let index = self.at / self.cell_bytes;
        let cell_end = index.saturating_add(1).saturating_mul(self.cell_bytes);
        let want = usize::try_from(cell_end - self.at).unwrap_or(usize::MAX);
        let mut bytes = std::mem::take(&mut buffer);
        bytes.clear();
        bytes.append(&mut self.carry);
        let io = |e| DataError::io(file, e);
        // The cell's bytes, then on to the end of the line holding its last byte.
        if bytes.len() < want {
            let short = (want - bytes.len()) as u64;
            (&mut self.reader).take(short).read_to_end(&mut bytes).map_err(io)?;
        }
        if bytes.len() < want {
            self.done = true;
        } else if let Some(i) = memchr::memchr(b'\n', &bytes[want - 1..]) {
            // Text carried in from before may run past the cell.
            let cut = want + i;
            self.carry.extend_from_slice(&bytes[cut..]);
            bytes.truncate(cut);
        } else {
            self.done = !read_line_end(&mut self.reader, &mut bytes).map_err(io)?;
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let (offset, first_line) = (self.at, self.next_line);
        self.next_line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        self.at += bytes.len() as u64;
        Ok(Some(Cell { index, offset, first_line, bytes }))
    }
}

/// Append up to and including the next `\n`; `false` at the end of the text without one.
fn read_line_end(reader: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<bool> {
    Ok(through_line_end(reader, Some(out))?.is_some())
}

/// Pass the rest of a line without keeping it: the bytes passed, up to and including the
/// `\n`; `None` at the end of the text without one.
pub fn skip_line(reader: &mut impl BufRead) -> std::io::Result<Option<u64>> {
    through_line_end(reader, None)
}

/// Read through the next `\n` (kept in `out`, if given): the bytes read, `None` at the end
/// of the text without one.
fn through_line_end(reader: &mut impl BufRead, mut out: Option<&mut Vec<u8>>) -> std::io::Result<Option<u64>> {
    let mut passed = 0u64;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(None);
        }
        let (n, found) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if let Some(out) = out.as_mut() {
            out.extend_from_slice(&available[..n]);
        }
        reader.consume(n);
        passed += n as u64;
        if found {
            return Ok(Some(passed));
        }
    }
}

/// Cells of `bytes` bytes over a text of `size` bytes (at least one).
pub fn count(size: u64, cell_bytes: u64) -> u64 {
    size.div_ceil(cell_bytes.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell of `text` read from `start` (a cell boundary) to `end`, as a reader of a
    /// range does: the line crossing `start` passed.
    fn cells(text: &[u8], cell: u64, start: u64, end: u64) -> Vec<(u64, u64, String)> {
        let mut reader = std::io::BufReader::with_capacity(3, &text[start.saturating_sub(1) as usize..]);
        let at = if start == 0 { Some(0) } else { skip_line(&mut reader).unwrap().map(|n| start - 1 + n) };
        let Some(at) = at else { return Vec::new() };
        let line = 1 + text[..at as usize].iter().filter(|&&b| b == b'\n').count() as u64;
        let mut cells = CellReader::new(reader, cell, at, Vec::new(), line, end);
        let mut out = Vec::new();
        while let Some(c) = cells.next_cell(Path::new("t"), Vec::new()).unwrap() {
            out.push((c.index, c.first_line, String::from_utf8(c.bytes).unwrap()));
        }
        out
    }

    #[test]
    fn lines_belong_to_the_cell_they_start_in() {
        // Cells of 4 bytes: "ab\n" [0,3), "cdefghij\n" [3,12) crosses two cuts, "k\n" [12,14),
        // "lm" [14,16) has no final newline.
        let text = b"ab\ncdefghij\nk\nlm";
        let whole = cells(text, 4, 0, u64::MAX);
        assert_eq!(
            whole,
            [(0, 1, "ab\ncdefghij\n".to_string()), (3, 3, "k\nlm".to_string())],
            "cell 0 holds the lines starting in [0, 4); cells 1 and 2 start inside a line"
        );
        // Read by ranges of cells, the lines are the same, each read once.
        for cut in [4, 8, 12] {
            let mut parts = cells(text, 4, 0, cut);
            parts.extend(cells(text, 4, cut, u64::MAX));
            assert_eq!(parts, whole, "cut at {cut}");
        }
        let three: Vec<_> = [(0, 4), (4, 12), (12, 16)].iter().flat_map(|&(s, e)| cells(text, 4, s, e)).collect();
        assert_eq!(three, whole);
    }

    #[test]
    fn a_cut_at_a_line_start_and_crlf_lines() {
        let text = b"a,b\r\nc,d\r\ne,f\r\n";
        // Cells of 5 bytes: every line starts at a cut.
        let whole = cells(text, 5, 0, u64::MAX);
        assert_eq!(whole.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(whole[1], (1, 2, "c,d\r\n".to_string()));
        let mut parts = cells(text, 5, 0, 5);
        parts.extend(cells(text, 5, 5, u64::MAX));
        assert_eq!(parts, whole);
        // A range inside one line holds nothing.
        assert_eq!(cells(b"0123456789\n", 2, 4, 8), []);
        assert_eq!(count(0, 4), 1);
        assert_eq!(count(9, 4), 3);
    }
}

//! A walk over Thrift compact-protocol bytes that costs what parquet 60's decoder would spend
//! on them, without spending it. parquet 60 skips an unknown list or set of booleans by one
//! step per element and reads no byte for any of them (the compact protocol gives each a
//! byte), so a few bytes declaring 2^31 of them cost seconds, and a header of many such lists
//! as long as anyone likes (found by the `train_parquet` fuzz target). The walk reads every
//! value by its type on the wire, as parquet's skip does, and counts those steps instead of
//! taking them.

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The struct ended (its stop byte).
    Complete,
    /// The bytes ran out first.
    Truncated,
    /// Bytes parquet refuses too (an unknown type, nesting past its limit).
    Invalid,
}

/// A walk over one struct: where it ended, the bytes read, and the steps parquet's decoder
/// would take over them (about one per value when the bytes are honest).
#[derive(Debug)]
pub struct Walk {
    pub end: End,
    pub bytes: usize,
    pub steps: u64,
    /// The top-level i32 field of the id asked for, when the walk read it.
    pub field: Option<i64>,
    /// A length or element count larger than the bytes left, which parquet's page header
    /// reader would allocate before reading (it knows no end to its input).
    pub overrun: Option<u64>,
}

impl Walk {
    /// Whether the steps are out of proportion to the bytes: honest bytes take one step a
    /// value, and every value but a boolean field takes a byte.
    pub fn is_amplified(&self) -> bool {
        self.steps > 4 * self.bytes as u64 + 256
    }
}

/// Walk the struct at the start of `bytes`, noting its top-level i32 field `field_id`.
pub fn walk_struct(bytes: &[u8], field_id: i16) -> Walk {
    let mut cursor = Cursor { bytes, at: 0, steps: 0, field_id, field: None, overrun: None };
    let end = match cursor.fields(DEPTH, true) {
        Ok(()) => End::Complete,
        Err(end) => end,
    };
    Walk { end, bytes: cursor.at, steps: cursor.steps, field: cursor.field, overrun: cursor.overrun }
}

/// Deeper than parquet nests (its skip allows 64 below a known field).
const DEPTH: u32 = 128;

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const I32: u8 = 5;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    steps: u64,
    field_id: i16,
    field: Option<i64>,
    overrun: Option<u64>,
}

impl Cursor<'_> {
    /// Notes a declared size beyond the bytes left.
    fn declared(&mut self, size: u64) {
        if size > (self.bytes.len() - self.at) as u64 {
            self.overrun = Some(self.overrun.unwrap_or(0).max(size));
        }
    }

    fn byte(&mut self) -> Result<u8, End> {
        let byte = *self.bytes.get(self.at).ok_or(End::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    /// An unsigned varint as parquet reads it: any number of bytes, high bits dropped.
    fn varint(&mut self) -> Result<u64, End> {
        let (mut value, mut shift) = (0u64, 0u32);
        loop {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f).wrapping_shl(shift);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift = shift.saturating_add(7);
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), End> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            self.at = self.bytes.len();
            return Err(End::Truncated);
        }
        self.at += n as usize;
        Ok(())
    }

    /// A struct's fields up to its stop byte.
    fn fields(&mut self, depth: u32, top: bool) -> Result<(), End> {
        let mut id: i16 = 0;
        loop {
            let header = self.byte()?;
            let kind = header & 0x0f;
            if kind == 0 {
                return Ok(());
            }
            let delta = header >> 4;
            id = if delta != 0 {
                id.checked_add(i16::from(delta)).ok_or(End::Invalid)?
            } else {
                let zigzag = self.varint()?;
                ((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64)) as i16
            };
            if top && id == self.field_id && kind == I32 {
                let zigzag = self.varint()?;
                self.steps += 1;
                self.field = Some((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64));
                continue;
            }
            self.value(kind, depth)?;
        }
    }

    fn value(&mut self, kind: u8, depth: u32) -> Result<(), End> {
        if depth == 0 {
            return Err(End::Invalid);
        }
        self.steps += 1;
        match kind {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let len = self.varint()?;
                self.declared(len);
                self.skip(len)
            }
            9 | 10 => self.list(depth),
            11 => self.map(depth),
            12 => self.fields(depth - 1, false),
            13 => self.skip(16),
            _ => Err(End::Invalid),
        }
    }

    fn list(&mut self, depth: u32) -> Result<(), End> {
        let header = self.byte()?;
        if header == 0 {
            return Ok(());
        }
        let element = header & 0x0f;
        let size = match header >> 4 {
            15 => i32::try_from(self.varint()?).map_err(|_| End::Invalid)?,
            short => i32::from(short),
        };
        if !(1..=13).contains(&element) {
            return Err(End::Invalid);
        }
        if matches!(element, BOOL_TRUE | BOOL_FALSE) {
            // parquet steps over each without reading it: counted, not walked.
            self.steps += size.max(0) as u64;
            return Ok(());
        }
        // Every other element reads at least a byte: this loop ends with the bytes.
        self.declared(size.max(0) as u64);
        for _ in 0..size {
            self.value(element, depth - 1)?;
        }
        Ok(())
    }

    fn map(&mut self, depth: u32) -> Result<(), End> {
        let size = i32::try_from(self.varint()?).map_err(|_| End::Invalid)?;
        if size <= 0 {
            return Ok(());
        }
        self.declared(size as u64);
        let kinds = self.byte()?;
        let (key, value) = (kinds >> 4, kinds & 0x0f);
        if !(1..=13).contains(&key) || !(1..=13).contains(&value) {
            return Err(End::Invalid);
        }
        if [key, value].iter().all(|k| matches!(*k, BOOL_TRUE | BOOL_FALSE)) {
            self.steps += size as u64;
            return Ok(());
        }
        for _ in 0..size {
            self.value(key, depth - 1)?;
            self.value(value, depth - 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_structs_take_a_step_a_value() {
        // {1: i32 7, 2: list<i32> [1, 2, 3], 3: bool true, 4: binary "ab", 5: struct {1: i64 1}}
        let bytes = [0x15, 14, 0x19, 0x35, 2, 4, 6, 0x11, 0x18, 2, b'a', b'b', 0x1c, 0x16, 2, 0, 0];
        let walk = walk_struct(&bytes, 1);
        assert_eq!((walk.end, walk.bytes, walk.field), (End::Complete, bytes.len(), Some(7)));
        assert!(!walk.is_amplified(), "{walk:?}");
    }

    #[test]
    fn a_long_list_of_booleans_is_amplified() {
        // {1: list<bool> of 2^31 - 1 elements, and no byte for any}
        let bytes = [0x19, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0];
        let walk = walk_struct(&bytes, 3);
        assert_eq!(walk.end, End::Complete);
        assert!(walk.is_amplified(), "{walk:?}");
        // A map of booleans to booleans, the same.
        let bytes = [0x1b, 0xff, 0xff, 0xff, 0xff, 0x07, 0x11, 0];
        assert!(walk_struct(&bytes, 3).is_amplified());
        // Lists of other types read a byte an element: the bytes run out.
        let bytes = [0x19, 0xf5, 0xff, 0xff, 0xff, 0xff, 0x07, 0];
        let walk = walk_struct(&bytes, 3);
        assert_eq!((walk.end, walk.overrun), (End::Truncated, Some(i32::MAX as u64)));
        assert!(!walk.is_amplified());
        // So do strings.
        let walk = walk_struct(&[0x18, 0x80, 0x80, 0x80, 0x80, 0x10], 3);
        assert_eq!((walk.end, walk.overrun), (End::Truncated, Some(1 << 32)));
    }

    #[test]
    fn nesting_and_unknown_types_end_the_walk() {
        let deep: Vec<u8> = std::iter::once(0x1c).chain(std::iter::repeat_n(0x1c, 200)).collect();
        assert_eq!(walk_struct(&deep, 1).end, End::Invalid);
        assert_eq!(walk_struct(&[0x1e], 1).end, End::Invalid);
        assert_eq!(walk_struct(&[0x15], 1).end, End::Truncated);
    }
}

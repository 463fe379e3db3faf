//! SageMaker's `application/x-recordio-protobuf`: RecordIO framing (magic `0xCED7230A`, a u32
//! length whose top 3 bits flag continuation, the payload padded to 4 bytes) around
//! `aialgs.data.Record` messages. Only the fields a feature vector and a label need are
//! decoded; the six messages are small enough that a hand decoder beats code generation.
//!
//! ```text
//! Record      { repeated MapEntry features = 1; repeated MapEntry label = 2; ... }
//! MapEntry    { string key = 1; Value value = 2; }
//! Value       { oneof { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
//!                       Int32Tensor int32_tensor = 7; Bytes bytes = 9; } }
//! *Tensor     { repeated values = 1 [packed]; repeated uint64 keys = 2 [packed];
//!               repeated uint64 shape = 3 [packed]; }
//! ```

pub const MAGIC: u32 = 0xCED7_230A;

/// One record's feature vector: dense values, or sparse `keys` with a `shape`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tensor {
    pub values: Vec<f32>,
    pub keys: Vec<u64>,
    pub shape: Vec<u64>,
}

/// Split a RecordIO stream into record payloads (continuations joined).
pub fn frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    let mut partial: Option<Vec<u8>> = None;
    while i < bytes.len() {
        let header = bytes.get(i..i + 8).ok_or_else(|| format!("record header cut short at byte {i}"))?;
        let magic = u32::from_le_bytes(header[..4].try_into().unwrap());
        if magic != MAGIC {
            return Err(format!("bad RecordIO magic 0x{magic:08x} at byte {i}"));
        }
        let word = u32::from_le_bytes(header[4..].try_into().unwrap());
        let (flag, len) = (word >> 29, (word & ((1 << 29) - 1)) as usize);
        let start = i + 8;
        let data = bytes.get(start..start + len).ok_or_else(|| format!("record at byte {i} is cut short"))?;
        i = start + len.div_ceil(4) * 4;
        match flag {
            0 => out.push(data.to_vec()),
            1 => partial = Some(data.to_vec()),
            2 => partial.as_mut().ok_or("a continuation without a start")?.extend_from_slice(data),
            3 => {
                let mut whole = partial.take().ok_or("a continuation without a start")?;
                whole.extend_from_slice(data);
                out.push(whole);
            }
            _ => return Err(format!("bad RecordIO flag {flag} at byte {i}")),
        }
    }
    Ok(out)
}

/// Append one framed record.
pub fn write_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (4 - payload.len() % 4) % 4, 0);
}

/// One protobuf field: number, wire type, payload bytes (length-delimited and fixed-width
/// types) and the value of a varint.
type WireField<'a> = (u64, u8, &'a [u8], u64);

struct Wire<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i).ok_or("a varint is cut short")?;
            self.i += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint is too long".into())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.i.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("a field is cut short")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    /// The next `(field, wire type, payload)`; payload is the bytes for length-delimited
    /// fields and the raw value bytes otherwise.
    fn field(&mut self) -> Result<Option<WireField<'a>>, String> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let (field, kind) = (tag >> 3, (tag & 7) as u8);
        Ok(Some(match kind {
            0 => {
                let v = self.varint()?;
                (field, kind, &[][..], v)
            }
            1 => (field, kind, self.bytes(8)?, 0),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "a length is too large")?;
                (field, kind, self.bytes(n)?, 0)
            }
            5 => (field, kind, self.bytes(4)?, 0),
            _ => return Err(format!("unsupported protobuf wire type {kind}")),
        }))
    }
}

fn packed_varints(payload: &[u8], kind: u8, single: u64, out: &mut Vec<u64>) -> Result<(), String> {
    if kind == 0 {
        out.push(single);
        return Ok(());
    }
    let mut w = Wire { b: payload, i: 0 };
    while w.i < payload.len() {
        out.push(w.varint()?);
    }
    Ok(())
}

fn tensor(payload: &[u8], element: u64) -> Result<Tensor, String> {
    let mut t = Tensor::default();
    let mut w = Wire { b: payload, i: 0 };
    while let Some((field, kind, data, single)) = w.field()? {
        match field {
            1 => match element {
                2 => t.values.extend(data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()))),
                3 => t.values.extend(data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)),
                _ => {
                    let mut ints = Vec::new();
                    packed_varints(data, kind, single, &mut ints)?;
                    t.values.extend(ints.into_iter().map(|v| v as u32 as i32 as f32));
                }
            },
            2 => packed_varints(data, kind, single, &mut t.keys)?,
            3 => packed_varints(data, kind, single, &mut t.shape)?,
            _ => {}
        }
    }
    Ok(t)
}

/// The feature tensor of one `Record` (the `values` entry, or the only one).
pub fn record_features(payload: &[u8]) -> Result<Tensor, String> {
    map_tensor(payload, 1)?.ok_or_else(|| "the record has no feature tensor".to_string())
}

/// The label tensor of one `Record` (the `label` map's `values` entry, or the only one), if any.
pub fn record_label(payload: &[u8]) -> Result<Option<Tensor>, String> {
    map_tensor(payload, 2)
}

/// Every `(key, tensor)` entry of a `Record`'s label map, in the record's order (a response
/// written with selectable outputs has one per key).
pub fn record_labels(payload: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    map_entries(payload, 2)
}

/// The tensor of a `Record` map (field 1 features, 2 label): its `values` entry, or the only one.
fn map_tensor(payload: &[u8], map_field: u64) -> Result<Option<Tensor>, String> {
    let mut found = None;
    for (key, value) in map_entries(payload, map_field)? {
        if found.is_none() || key == "values" {
            found = Some(value);
        }
    }
    Ok(found)
}

/// The entries with a tensor of a `Record` map (field 1 features, 2 label).
fn map_entries(payload: &[u8], map_field: u64) -> Result<Vec<(String, Tensor)>, String> {
    let mut w = Wire { b: payload, i: 0 };
    let mut entries = Vec::new();
    while let Some((field, kind, entry, _)) = w.field()? {
        if field != map_field || kind != 2 {
            continue;
        }
        let mut e = Wire { b: entry, i: 0 };
        let (mut key, mut value) = (String::new(), None);
        while let Some((f, _, data, _)) = e.field()? {
            match f {
                1 => key = String::from_utf8_lossy(data).into_owned(),
                2 => {
                    let mut v = Wire { b: data, i: 0 };
                    while let Some((which, _, t, _)) = v.field()? {
                        if matches!(which, 2 | 3 | 7) {
                            value = Some(tensor(t, which)?);
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(value) = value {
            entries.push((key, value));
        }
    }
    Ok(entries)
}

/// Records read one at a time from a stream (a file or a Pipe mode FIFO), so a channel is never
/// whole in memory. A record (continuations joined) larger than `max_record` bytes is an error
/// before it is read: the length fields are untrusted.
pub struct FrameReader<R> {
    reader: R,
    max_record: usize,
    /// Offset of the next header, for messages.
    offset: u64,
}

impl<R: std::io::Read> FrameReader<R> {
    pub fn new(reader: R, max_record: usize) -> Self {
        Self { reader, max_record, offset: 0 }
    }

    /// The next record's payload into `out` (cleared first); `Ok(false)` at the end.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        use std::io::Read;
        out.clear();
        loop {
            let at = self.offset;
            let mut header = [0u8; 8];
            match read_full(&mut self.reader, &mut header).map_err(|e| format!("reading byte {at}: {e}"))? {
                0 if out.is_empty() => return Ok(false),
                0 => return Err(format!("the stream ends inside a continued record at byte {at}")),
                8 => {}
                _ => return Err(format!("record header cut short at byte {at}")),
            }
            let magic = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            if magic != MAGIC {
                return Err(format!("bad RecordIO magic 0x{magic:08x} at byte {at}"));
            }
            let word = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            let (flag, len) = (word >> 29, (word & ((1 << 29) - 1)) as usize);
            if out.len() + len > self.max_record {
                return Err(format!(
                    "the record at byte {at} is longer than {} bytes, the most a record may hold",
                    self.max_record
                ));
            }
            let padded = len.div_ceil(4) * 4;
            let start = out.len();
            // The buffer grows with the bytes that arrive, not by the untrusted length: a
            // header alone cannot make us allocate `max_record` bytes.
            let read = (&mut self.reader)
                .take(padded as u64)
                .read_to_end(out)
                .map_err(|e| format!("reading byte {at}: {e}"))?;
            if read != padded {
                return Err(format!("record at byte {at} is cut short"));
            }
            out.truncate(start + len);
            self.offset += 8 + padded as u64;
            match (flag, start == 0) {
                (0, true) | (3, false) => return Ok(true),
                (1, true) | (2, false) => continue,
                (1 | 0, false) => return Err(format!("a record starts at byte {at} inside a continued one")),
                (2 | 3, true) => return Err(format!("a continuation without a start at byte {at}")),
                _ => return Err(format!("bad RecordIO flag {flag} at byte {at}")),
            }
        }
    }
}

/// Read until `buf` is full or the stream ends; the bytes read.
fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(field: u64, data: &[u8], out: &mut Vec<u8>) {
    put_varint((field << 3) | 2, out);
    put_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// A `Record` whose `label` map holds `key -> float32 tensor` entries (the built-in's output).
pub fn label_record(entries: &[(&str, Vec<f32>)]) -> Vec<u8> {
    let mut record = Vec::new();
    for (key, values) in entries {
        let mut floats = Vec::with_capacity(values.len() * 4);
        values.iter().for_each(|v| floats.extend_from_slice(&v.to_le_bytes()));
        let mut tensor = Vec::new();
        put_bytes(1, &floats, &mut tensor);
        let mut value = Vec::new();
        put_bytes(2, &tensor, &mut value);
        let mut entry = Vec::new();
        put_bytes(1, key.as_bytes(), &mut entry);
        put_bytes(2, &value, &mut entry);
        put_bytes(2, &entry, &mut record);
    }
    record
}

/// A `Record` with one dense or sparse float32 feature tensor under `values` (for tests and
/// clients).
pub fn feature_record(values: &[f32], keys: &[u64], shape: &[u64]) -> Vec<u8> {
    let mut tensor = Vec::new();
    let mut floats = Vec::new();
    values.iter().for_each(|v| floats.extend_from_slice(&v.to_le_bytes()));
    put_bytes(1, &floats, &mut tensor);
    for (field, list) in [(2, keys), (3, shape)] {
        if !list.is_empty() {
            let mut packed = Vec::new();
            list.iter().for_each(|&k| put_varint(k, &mut packed));
            put_bytes(field, &packed, &mut tensor);
        }
    }
    let mut value = Vec::new();
    put_bytes(2, &tensor, &mut value);
    let mut entry = Vec::new();
    put_bytes(1, b"values", &mut entry);
    put_bytes(2, &value, &mut entry);
    let mut record = Vec::new();
    put_bytes(1, &entry, &mut record);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_round_trip() {
        let mut stream = Vec::new();
        write_frame(&feature_record(&[1.5, 2.0, -3.0], &[], &[]), &mut stream);
        write_frame(&feature_record(&[7.0], &[2], &[4]), &mut stream);
        let records = frames(&stream).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(record_features(&records[0]).unwrap().values, [1.5, 2.0, -3.0]);
        let sparse = record_features(&records[1]).unwrap();
        assert_eq!((sparse.values, sparse.keys, sparse.shape), (vec![7.0], vec![2], vec![4]));
        assert!(frames(&stream[..stream.len() - 3]).is_err());
        assert!(frames(b"garbage!").is_err());

        let mut reader = FrameReader::new(&stream[..], 1 << 10);
        let mut payload = Vec::new();
        for record in &records {
            assert!(reader.next_into(&mut payload).unwrap());
            assert_eq!(&payload, record);
        }
        assert!(!reader.next_into(&mut payload).unwrap());
        let err = FrameReader::new(&stream[..], 8).next_into(&mut payload).unwrap_err();
        assert!(err.contains("longer than 8 bytes"), "{err}");
        assert!(FrameReader::new(&stream[..stream.len() - 3], 1 << 10).next_into(&mut payload).is_ok());
    }

    #[test]
    fn labels_come_from_the_label_map() {
        let mut record = feature_record(&[1.0, 2.0], &[], &[]);
        assert_eq!(record_label(&record).unwrap(), None);
        record.extend(label_record(&[("values", vec![4.5])]));
        assert_eq!(record_label(&record).unwrap().unwrap().values, [4.5]);
        assert_eq!(record_features(&record).unwrap().values, [1.0, 2.0]);
    }
}

//! Objects several hosts read by ranges of cells: before any row is parsed, each host counts
//! the lines and data rows of its ranges (no parsing, a newline scan) and tells the others,
//! so that every range knows the number of its first line (for messages naming file and
//! line) and the index of its first row (a row's identity in the split), as one host reading
//! the whole object would.

use super::Error;
use super::exchange::Together;
use crate::cluster::Hosts;
use crate::features::reader::{self, Columns, Counted, Object};
use crate::features::stats::{Decoder, Encoder};

/// A range's counts, as sent: its object, its first cell, its lines and rows.
type RangeCount = (String, u64, Counted);

fn encode(counts: &[RangeCount]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.u64(counts.len() as u64);
    for (key, first, c) in counts {
        e.bytes(key.as_bytes()).u64(*first).u64(c.lines).u64(c.rows);
    }
    e.0
}

fn decode(bytes: &[u8]) -> Result<Vec<RangeCount>, String> {
    let mut d = Decoder::new(bytes);
    let n = d.len(32)?;
    let counts = (0..n)
        .map(|_| Ok((d.text()?, d.u64()?, Counted { lines: d.u64()?, rows: d.u64()? })))
        .collect::<Result<Vec<_>, String>>()?;
    d.finish()?;
    Ok(counts)
}

/// This host's objects with their ranges' first line and row set. `cut`: whether the deal
/// cut any object, on any host (every host knows it, so all take part in the exchange or none).
pub fn locate(
    team: &Together<'_>,
    hosts: &Hosts,
    columns: &Columns,
    mut objects: Vec<Object>,
    cut: bool,
) -> Result<Vec<Object>, Error> {
    if !cut {
        return Ok(objects);
    }
    let counted = objects
        .iter()
        .filter_map(|o| o.range.as_ref().map(|r| (o, r.cells.start)))
        .map(|(o, first)| Ok((o.key.clone(), first, reader::count_range(columns, o)?)))
        .collect::<Result<Vec<RangeCount>, Error>>();
    let (_, all) = team.share(counted, |c| encode(c))?;
    let mut everyone = Vec::new();
    for (rank, bytes) in all.iter().enumerate() {
        everyone.extend(decode(bytes).map_err(|problem| Error::Garbled { host: hosts.hosts[rank].clone(), problem })?);
    }
    for object in &mut objects {
        if let Some(range) = &mut object.range {
            let before = everyone.iter().filter(|(key, first, _)| *key == object.key && *first < range.cells.start);
            let (lines, rows) = before.fold((0, 0), |(l, r), (_, _, c)| (l + c.lines, r + c.rows));
            (range.line, range.row) = (1 + lines, rows);
        }
    }
    Ok(objects)
}

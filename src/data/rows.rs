//! What a label-first channel's rows are, shared by every reader: the content type, the
//! layout a channel is read with, and a block of consecutive rows (text readers in
//! `blocks`, binary ones in `binary_blocks`, whole matrices in `labelled`).

use std::path::PathBuf;
use std::sync::Arc;

use super::Position;

/// How the rows are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum ContentType {
    #[default]
    #[serde(rename = "text/csv")]
    Csv,
    #[serde(rename = "text/libsvm")]
    Libsvm,
    /// The label is the first column; every column numeric, null = missing.
    #[serde(rename = "application/x-parquet")]
    Parquet,
    /// SageMaker's RecordIO-protobuf: a `values` feature tensor (dense or sparse) and a label.
    #[serde(rename = "application/x-recordio-protobuf")]
    RecordIo,
}

impl ContentType {
    /// SageMaker's names, lowercased, parameters (`; label_size=1`) ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let base = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match base.as_str() {
            "csv" | "text/csv" => Some(Self::Csv),
            "libsvm" | "text/libsvm" | "text/x-libsvm" => Some(Self::Libsvm),
            "parquet" | "application/x-parquet" => Some(Self::Parquet),
            "recordio-protobuf" | "application/x-recordio-protobuf" => Some(Self::RecordIo),
            _ => None,
        }
    }

    /// A libsvm line has `index:value` pairs after the label.
    pub(super) fn sniff(line: &str) -> Self {
        let mut tokens = line.split_ascii_whitespace();
        tokens.next();
        if tokens.next().is_some_and(|t| t.contains(':')) { Self::Libsvm } else { Self::Csv }
    }
}

/// The largest libsvm feature index: XGBoost's node keeps the feature in 31 bits beside the
/// default direction, and reads a node whose both are all ones (feature 2^31 - 1, missing
/// values left) as a deleted node, so a model splitting there would not load in XGBoost.
pub const MAX_FEATURE_INDEX: u32 = (1 << 31) - 2;

/// A block of consecutive rows.
#[derive(Debug, Clone, Default)]
pub struct RowBlock {
    pub file: Arc<PathBuf>,
    /// Line (or Parquet row) of each row, for messages.
    pub lines: Vec<u64>,
    pub labels: Vec<f32>,
    /// Empty when the rows carry no weights.
    pub weights: Vec<f32>,
    /// Dense rows: `rows x width` values. Sparse rows: one value per entry.
    pub values: Vec<f32>,
    /// Sparse rows only: `offsets[r]..offsets[r + 1]` are row `r`'s entries.
    pub offsets: Vec<u32>,
    /// Sparse rows only: each entry's feature index.
    pub indices: Vec<u32>,
    /// Dense width (features per row); 0 for sparse blocks.
    pub width: usize,
    pub sparse: bool,
}

impl RowBlock {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `r`'s features as `(index, value)` pairs (missing values skipped).
    pub fn entries(&self, r: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let (indices, values): (&[u32], &[f32]) = if self.sparse {
            let span = self.offsets[r] as usize..self.offsets[r + 1] as usize;
            (&self.indices[span.clone()], &self.values[span])
        } else {
            (&[], &self.values[r * self.width..(r + 1) * self.width])
        };
        let sparse = self.sparse;
        values.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(move |(i, &v)| {
            let index = if sparse { indices[i] } else { i as u32 };
            (index, v)
        })
    }

    pub(super) fn at(&self, row: usize, column: Option<String>) -> Position {
        Position { file: (*self.file).clone(), line: self.lines.get(row).copied().unwrap_or(0), column }
    }
}

/// How a channel's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub content_type: ContentType,
    /// CSV: the second column is the row's weight (`csv_weights=1`).
    pub csv_weights: bool,
}

//! The quantized data the trees are grown from: each present value replaced by its bin, in
//! the narrowest integer type that holds the bins. Dense rows (CSV, Parquet) are
//! `rows x features` with a sentinel for missing values; sparse rows (libsvm) keep only their
//! entries, so a feature index of 2^31 - 1 costs nothing but its entries.
//!
//! Training bins are XGBoost's (the first cut above the value). A matrix that is only
//! predicted on (validation) holds "fine" bins instead: the number of thresholds
//! `[min_value, cuts...]` at or below the value, unclamped, so that any split of the model
//! routes it exactly as the float would (`x < threshold[t]` iff `fine_bin <= t`).

/// An unsigned bin type.
pub trait Bin: Copy + Send + Sync + Eq + 'static {
    const MAX: u32;
    fn get(self) -> u32;
    fn new(v: u32) -> Self;
}

macro_rules! bin_type {
    ($t:ty) => {
        impl Bin for $t {
            const MAX: u32 = <$t>::MAX as u32;
            #[inline(always)]
            fn get(self) -> u32 {
                self as u32
            }
            #[inline(always)]
            fn new(v: u32) -> Self {
                v as $t
            }
        }
    };
}
bin_type!(u8);
bin_type!(u16);
bin_type!(u32);

/// Bins in one of three widths.
#[derive(Debug, Clone, PartialEq)]
pub enum BinVec {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

/// Run `$body` with `$v` bound to the typed slice (monomorphized per width).
#[macro_export]
macro_rules! with_bins {
    ($bins:expr, $v:ident => $body:expr) => {
        match $bins {
            $crate::training::hist::matrix::BinVec::U8($v) => $body,
            $crate::training::hist::matrix::BinVec::U16($v) => $body,
            $crate::training::hist::matrix::BinVec::U32($v) => $body,
        }
    };
}

impl BinVec {
    /// The narrowest type for values `0..=largest`, plus a missing sentinel (the type's
    /// maximum) when `sentinel`.
    pub fn for_values(largest: u32, sentinel: bool, capacity: usize) -> Self {
        let needed = u64::from(largest) + u64::from(sentinel);
        if needed <= u64::from(u8::MAX) {
            Self::U8(Vec::with_capacity(capacity))
        } else if needed <= u64::from(u16::MAX) {
            Self::U16(Vec::with_capacity(capacity))
        } else {
            Self::U32(Vec::with_capacity(capacity))
        }
    }

    pub fn empty_like(&self, capacity: usize) -> Self {
        match self {
            Self::U8(_) => Self::U8(Vec::with_capacity(capacity)),
            Self::U16(_) => Self::U16(Vec::with_capacity(capacity)),
            Self::U32(_) => Self::U32(Vec::with_capacity(capacity)),
        }
    }

    /// The missing-value sentinel of this width.
    pub fn missing(&self) -> u32 {
        match self {
            Self::U8(_) => u8::MAX.into(),
            Self::U16(_) => u16::MAX.into(),
            // u32::MAX itself means "no value is missing".
            Self::U32(_) => u32::MAX - 1,
        }
    }

    #[inline]
    pub fn push(&mut self, v: u32) {
        match self {
            Self::U8(b) => b.push(v as u8),
            Self::U16(b) => b.push(v as u16),
            Self::U32(b) => b.push(v),
        }
    }

    pub fn extend(&mut self, other: &Self) {
        match (self, other) {
            (Self::U8(a), Self::U8(b)) => a.extend_from_slice(b),
            (Self::U16(a), Self::U16(b)) => a.extend_from_slice(b),
            (Self::U32(a), Self::U32(b)) => a.extend_from_slice(b),
            _ => unreachable!("blocks of one matrix share a bin width"),
        }
    }

    pub fn len(&self) -> usize {
        with_bins!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        with_bins!(self, v => std::mem::size_of_val(v.as_slice()))
    }

    pub fn get(&self, i: usize) -> u32 {
        with_bins!(self, v => v[i].get())
    }

    pub fn shrink_to_fit(&mut self) {
        with_bins!(self, v => v.shrink_to_fit())
    }
}

/// Rows of bins.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// `rows x features`, row-major; `missing` marks an absent value (`u32::MAX`, which no
    /// stored bin equals, when every value is present).
    Dense { bins: BinVec, missing: u32 },
    /// Each row's entries sorted by feature: `row_ptr[r]..row_ptr[r + 1]`.
    Sparse { row_ptr: Vec<u64>, features: Vec<u32>, bins: BinVec },
}

/// Quantized rows of (compact) features.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedMatrix {
    pub rows: usize,
    pub features: usize,
    pub storage: Storage,
    /// Dense storage only, optional: the same bins feature by feature (`features x rows`),
    /// which splitting a node reads one byte per row of (XGBoost's `ColumnMatrix`).
    pub columns: Option<BinVec>,
}

impl BinnedMatrix {
    /// An empty matrix to append rows to.
    pub fn new(features: usize, dense: bool, largest_bin: u32, any_missing: bool, rows_hint: usize) -> Self {
        let storage = if dense {
            let bins = BinVec::for_values(largest_bin, any_missing, rows_hint.saturating_mul(features));
            let missing = if any_missing { bins.missing() } else { u32::MAX };
            Storage::Dense { bins, missing }
        } else {
            let mut row_ptr = Vec::with_capacity(rows_hint + 1);
            row_ptr.push(0);
            Storage::Sparse { row_ptr, features: Vec::new(), bins: BinVec::for_values(largest_bin, false, 0) }
        };
        Self { rows: 0, features, storage, columns: None }
    }

    /// An empty block with this matrix's layout and width.
    pub fn block(&self, rows_hint: usize) -> BinnedMatrix {
        let storage = match &self.storage {
            Storage::Dense { bins, missing } => {
                Storage::Dense { bins: bins.empty_like(rows_hint * self.features), missing: *missing }
            }
            Storage::Sparse { bins, .. } => {
                Storage::Sparse { row_ptr: vec![0], features: Vec::new(), bins: bins.empty_like(0) }
            }
        };
        Self { rows: 0, features: self.features, storage, columns: None }
    }

    pub fn is_dense(&self) -> bool {
        matches!(self.storage, Storage::Dense { .. })
    }

    /// Append a dense row (`features` bins, `missing` where absent).
    #[inline]
    pub fn push_dense_row(&mut self, row: impl Iterator<Item = Option<u32>>) {
        let Storage::Dense { bins, missing } = &mut self.storage else { unreachable!("a dense matrix") };
        let missing = *missing;
        for b in row {
            bins.push(b.unwrap_or(missing));
        }
        self.rows += 1;
    }

    /// Append a sparse row from `(feature, bin)` entries sorted by feature.
    pub fn push_sparse_row(&mut self, entries: impl Iterator<Item = (u32, u32)>) {
        let Storage::Sparse { row_ptr, features, bins } = &mut self.storage else { unreachable!("a sparse matrix") };
        for (f, b) in entries {
            features.push(f);
            bins.push(b);
        }
        row_ptr.push(features.len() as u64);
        self.rows += 1;
    }

    /// Append another block's rows.
    pub fn append(&mut self, block: &BinnedMatrix) {
        match (&mut self.storage, &block.storage) {
            (Storage::Dense { bins, .. }, Storage::Dense { bins: more, .. }) => bins.extend(more),
            (Storage::Sparse { row_ptr, features, bins }, Storage::Sparse { row_ptr: ptr, features: f, bins: b }) => {
                let base = *row_ptr.last().expect("row_ptr starts with 0");
                row_ptr.extend(ptr[1..].iter().map(|p| p + base));
                features.extend_from_slice(f);
                bins.extend(b);
            }
            _ => unreachable!("blocks share the matrix layout"),
        }
        self.rows += block.rows;
    }

    pub fn shrink_to_fit(&mut self) {
        match &mut self.storage {
            Storage::Dense { bins, .. } => bins.shrink_to_fit(),
            Storage::Sparse { row_ptr, features, bins } => {
                row_ptr.shrink_to_fit();
                features.shrink_to_fit();
                bins.shrink_to_fit();
            }
        }
    }

    /// Add the column-major copy of dense bins.
    pub fn add_columns(&mut self) {
        let Storage::Dense { bins, .. } = &self.storage else { return };
        let (rows, width) = (self.rows, self.features);
        let columns = with_bins!(bins, v => {
            let mut out = bins.empty_like(rows * width);
            for f in 0..width {
                for r in 0..rows {
                    out.push(v[r * width + f].get());
                }
            }
            out
        });
        self.columns = Some(columns);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.columns.as_ref().map_or(0, BinVec::bytes)
            + match &self.storage {
                Storage::Dense { bins, .. } => bins.bytes(),
                Storage::Sparse { row_ptr, features, bins } => row_ptr.len() * 8 + features.len() * 4 + bins.bytes(),
            }
    }

    /// Row `r`'s bin for feature `f`, if present.
    #[inline]
    pub fn bin(&self, r: usize, f: usize) -> Option<u32> {
        match &self.storage {
            Storage::Dense { bins, missing } => {
                let b = bins.get(r * self.features + f);
                (b != *missing).then_some(b)
            }
            Storage::Sparse { row_ptr, features, bins } => {
                let span = row_ptr[r] as usize..row_ptr[r + 1] as usize;
                let at = features[span.clone()].binary_search(&(f as u32)).ok()?;
                Some(bins.get(span.start + at))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_largest_bin_and_the_sentinel() {
        assert!(matches!(BinVec::for_values(255, false, 0), BinVec::U8(_)));
        assert!(matches!(BinVec::for_values(255, true, 0), BinVec::U16(_)));
        assert!(matches!(BinVec::for_values(254, true, 0), BinVec::U8(_)));
        assert!(matches!(BinVec::for_values(70_000, false, 0), BinVec::U32(_)));
    }

    #[test]
    fn dense_and_sparse_rows_read_back() {
        let mut m = BinnedMatrix::new(3, true, 10, true, 2);
        m.push_dense_row([Some(1), None, Some(3)].into_iter());
        let mut block = m.block(1);
        block.push_dense_row([Some(4), Some(5), Some(6)].into_iter());
        m.append(&block);
        assert_eq!((m.rows, m.bin(0, 1), m.bin(1, 2)), (2, None, Some(6)));

        let mut s = BinnedMatrix::new(5, false, 10, false, 2);
        s.push_sparse_row([(1, 2), (4, 7)].into_iter());
        let mut block = s.block(1);
        block.push_sparse_row([(0, 1)].into_iter());
        s.append(&block);
        assert_eq!((s.bin(0, 4), s.bin(0, 0), s.bin(1, 0)), (Some(7), None, Some(1)));
    }
}

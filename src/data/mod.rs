//! Reading tabular inputs: files or directories of files, gzip, CSV with any common
//! delimiter, and whitespace-separated layouts such as UCI's; each record with its line.

pub mod binary_blocks;
pub mod blocks;
pub mod dmlc;
pub mod files;
pub mod labelled;
pub mod memory;
pub mod parquet_file;
pub mod recordio;
pub mod records;
pub mod rows;

use std::path::PathBuf;

/// Where in the input a problem is: file, line (1-based) and, when known, the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    pub line: u64,
    pub column: Option<String>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        // Line 0 means the whole file (a file-level problem).
        if self.line > 0 {
            write!(f, ", line {}", self.line)?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column `{column}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("the input `{}` does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("the input `{}` holds no files", path.display())]
    NoFiles { path: PathBuf },
    #[error("the input `{}` has a symbolic link `{link}` that cannot be read: {problem}", root.display())]
    Link { root: PathBuf, link: String, problem: String },
    #[error("the input `{}` is empty: no data rows", path.display())]
    Empty { path: PathBuf },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {problem}")]
    Malformed { at: Position, problem: String },
    #[error("{rows} rows x {cols} features do not fit in memory as floats")]
    TooLarge { rows: usize, cols: usize },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

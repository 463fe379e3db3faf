//! Preprocessing: the schema, reading raw rows through it, the deterministic split, the
//! transform fitted on the training split alone, and its application.

pub mod fit;
pub mod schema;
pub mod split;
pub mod table;

pub use fit::{FitError, FittedColumn, FittedTransform};
pub use schema::{Schema, SchemaError};
pub use split::{Ratios, Split, SplitError};
pub use table::Table;

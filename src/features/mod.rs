//! Preprocessing: the schema, streaming raw rows through it, the deterministic split, the
//! statistics of the training rows (mergeable across hosts), the transform fitted from them,
//! and its application.

pub mod cells;
pub mod fit;
pub mod reader;
pub mod schema;
pub mod split;
pub mod stats;

pub use fit::{FitError, FittedColumn, FittedTransform};
pub use schema::{Schema, SchemaError};
pub use split::{Ratios, Set, SplitError};

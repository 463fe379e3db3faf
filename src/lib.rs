//! sagestep: Amazon SageMaker pipeline steps as small static binaries.
//!
//! The library holds every step's logic; `src/bin/*.rs` only parse arguments and call in.
//! Module map and rules: see `ARCHITECTURE.md` in the repository.

pub mod contract;
pub mod data;
pub mod evaluate;
pub mod features;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod preprocess;
pub mod storage;

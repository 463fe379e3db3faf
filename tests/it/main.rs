//! Integration tests: the real binaries against temporary `/opt/ml` trees, and the real
//! images under Docker (build them first: `docker/build-images.sh`, as `scripts/test` does).

mod deploy;
mod distributed;
mod drift;
mod endpoints;
mod evaluate;
mod fuzz_regressions;
mod hist;
mod hostile;
mod kfold;
mod mme;
mod model;
mod model_quality;
mod model_quality_job;
mod monitor;
mod multi_instance;
mod pipeline;
mod preprocess;
mod preprocess_ranges;
mod python_interop;
mod report;
mod s3;
mod serve;
mod signing;
mod train;
mod transform;
mod util;

//! sagestep: Amazon SageMaker pipeline steps as small static binaries.
//!
//! The library holds every step's logic; `src/bin/*.rs` only parse arguments and call in.
//! Module map and rules: see `ARCHITECTURE.md` in the repository.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod contract;
pub mod data;
pub mod emf;
pub mod endpoint;
pub mod evaluate;
pub mod features;
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod parallel;
pub mod pipeline;
pub mod plot;
pub mod preprocess;
pub mod serving;
pub mod signing;
pub mod storage;
pub mod training;

/// musl's allocator takes a global lock on every call and is slow (measured: training 1.8x
/// slower, serving spends a third of its time in malloc/free and futexes); mimalloc is the
/// allocator static musl binaries use for this (ripgrep, static-web-server use jemalloc or
/// mimalloc). Declared here once, it serves every binary and test.
/// Not under the fuzzer (`--cfg fuzzing`): the system allocator lets the sanitizer and
/// libFuzzer's `-malloc_limit_mb` see every allocation.
#[cfg(not(fuzzing))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keep freed memory for `millis` before returning it to the system (mimalloc's
/// `purge_delay`, 10 ms by default). Training frees and allocates blocks of megabytes many
/// times a second; returned pages come back zero-filled by the kernel, which cost a tenth of
/// the loading time.
pub fn retain_freed_memory(millis: i64) {
    /// `mi_option_purge_delay` in mimalloc v2's `mi_option_e` (include/mimalloc.h).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is thread-safe in mimalloc and takes effect for later frees.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, millis as std::ffi::c_long) };
}

//! `sagestep::fuzzing::train_parquet`: any bytes give a value or an error, never a panic, a hang or
//! an allocation sized by the input. The regression test runs this target's findings
//! (`tests/data/fuzz/train_parquet/`) through the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // Rayon's pool is this thread alone: the readers' parallel work runs inline, without
        // waking a worker thread for every input (that waiting was most of an input's 25 ms).
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build_global();
        // libFuzzer's hook aborts on any panic. The Parquet reader contains the parquet
        // crate's documented panics on corrupt data and returns an error, as the release
        // binaries do: let those unwind to it.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !sagestep::data::parquet_file::decoding() {
                abort(info)
            }
        }));
    },
    |data: &[u8]| sagestep::fuzzing::train_parquet(data)
);

//! `sagestep::fuzzing::job_config`: any bytes give a value or an error, never a panic, a hang or
//! an allocation sized by the input. The regression test runs this target's findings
//! (`tests/data/fuzz/job_config/`) through the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(
    // Rayon's pool is this thread alone: the readers' parallel work runs inline, without
    // waking a worker thread for every input (that waiting was most of an input's 25 ms).
    init: {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build_global();
    },
    |data: &[u8]| sagestep::fuzzing::job_config(data)
);

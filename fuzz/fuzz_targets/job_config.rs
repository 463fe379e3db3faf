//! `sagestep::fuzzing::job_config`: any bytes give a value or an error, never a panic, a hang or
//! an allocation sized by the input. The regression test runs this target's findings
//! (`tests/data/fuzz/job_config/`) through the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sagestep::fuzzing::job_config(data));

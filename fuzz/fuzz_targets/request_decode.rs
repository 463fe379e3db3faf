//! `sagestep::fuzzing::request_decode`: any bytes give a value or an error, never a panic, a hang or
//! an allocation sized by the input. The regression test runs this target's findings
//! (`tests/data/fuzz/request_decode/`) through the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sagestep::fuzzing::request_decode(data));

//! cargo-fuzz target `proto`: see `flotilla_fuzzing::proto`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flotilla_fuzzing::proto(data));

//! cargo-fuzz target `spec_toml`: see `flotilla_fuzzing::spec_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flotilla_fuzzing::spec_toml(data));

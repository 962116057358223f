//! cargo-fuzz target `template`: see `flotilla_fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flotilla_fuzzing::template(data));

//! cargo-fuzz target `provider_answers`: see `flotilla_fuzzing::provider_answers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flotilla_fuzzing::provider_answers(data));

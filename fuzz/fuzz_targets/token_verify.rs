//! A login token checked by parlor_protocol::token::verify: see `parlor_fuzzing::token_verify`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parlor_fuzzing::token_verify(data));

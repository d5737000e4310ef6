//! What a client decodes from the server: see `parlor_fuzzing::server_frame`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parlor_fuzzing::server_frame(data));

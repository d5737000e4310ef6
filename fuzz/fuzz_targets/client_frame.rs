//! What the server decodes from a client: see `parlor_fuzzing::client_frame`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parlor_fuzzing::client_frame(data));

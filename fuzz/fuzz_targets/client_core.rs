//! The client core driven by an arbitrary app, network and server: see `parlor_fuzzing::client_core`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parlor_fuzzing::client_core(data));

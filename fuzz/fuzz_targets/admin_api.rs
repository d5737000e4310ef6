//! An admin HTTP request to the real axum router: see `parlor_fuzzing::admin_api`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parlor_fuzzing::admin_api(data));

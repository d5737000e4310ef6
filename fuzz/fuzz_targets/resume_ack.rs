//! A resume frame and its ack, replayed by a memory-engine node: see `parlor_fuzzing::resume_ack`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parlor_fuzzing::resume_ack(data));

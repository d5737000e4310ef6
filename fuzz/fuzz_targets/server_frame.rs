//! What a client decodes from the server: any bytes give a frame or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parlor_protocol::decode_server_frame(text);
    }
});

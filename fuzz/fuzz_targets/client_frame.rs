//! What the server decodes from every client: any bytes give a frame or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frame) = parlor_protocol::decode_client_frame(text) {
            // A decoded frame encodes again and decodes to itself.
            let again = parlor_protocol::decode_client_frame(&frame.to_json()).expect("re-decodes");
            assert_eq!(again, frame);
        }
    }
});

//! The client state machine fed arbitrary server text after a login: it never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parlor_client_core::{Command, Config, Core};
use parlor_protocol::{RoomConfig, User};

fuzz_target!(|data: &[u8]| {
    let mut core = Core::new(Config::default(), Box::new(|| 0.5));
    let user = User { id: "u1".into(), name: String::new() };
    core.handle_command(0, 1, Command::LoginRoom { room: "r1".into(), user, token: "t".into(), config: RoomConfig::default() });
    core.handle_opened(1);
    let mut now = 2;
    for chunk in data.split(|b| *b == b'\n') {
        if let Ok(text) = std::str::from_utf8(chunk) {
            let _ = core.handle_text(now, text);
        }
        now += 100;
        core.handle_timeout(now);
        while core.poll_output().is_some() {}
    }
});

//! `parlor config check`: the committed example file is good, and each kind of mistake is
//! reported with its line and column and exit code 1 (the binary, as an operator runs it).

use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parlor")).args(["config", "check"]).arg(path).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn check_text(name: &str, toml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, toml).unwrap();
    let (code, out, err) = check(&path);
    (code, out, err.replace(&dir.path().display().to_string(), "DIR"))
}

#[test]
fn the_example_file_is_good() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/parlor.example.toml");
    let (code, out, err) = check(&example);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK: "), "{out}");
    assert!(out.contains("  apps: 1001, 1002\n") && out.contains("  engine: redis\n"), "{out}");
    assert!(out.contains("  webhooks: 2\n"), "{out}");
}

#[test]
fn each_kind_of_mistake_has_a_clear_message_and_exit_code_1() {
    let cases = [
        (
            "heartbeet = \"1s\"\n",
            "DIR/p.toml:1:1: unknown field `heartbeet`, expected one of `listen`, `app`, `heartbeat`",
        ),
        ("\ndrain_time = \"soon\"\n", "DIR/p.toml:2:14: bad duration \"soon\""),
        ("[[app]]\nid = 0\nsecret = \"s\"\n", "DIR/p.toml:2:6: bad app id 0"),
        ("[[app]]\nid = 2\nsecret = \"\"\n", "DIR/p.toml:3:10: app 2: the secret must not be empty"),
        ("[[app]]\nid = 2\nsecret = \"a\"\n[[app]]\nid = 2\nsecret = \"b\"\n", "DIR/p.toml:5:6: duplicate app 2"),
        ("[webhook]\nretries = 3\n", "DIR/p.toml:2:1: unknown field `retries`, expected one of `queue`, `attempts`"),
    ];
    for (toml, want) in cases {
        let (code, out, err) = check_text("p.toml", toml);
        assert_eq!(code, 1, "{toml:?}: {out}{err}");
        assert!(out.is_empty(), "{toml:?}: {out}");
        assert!(err.starts_with(want), "{toml:?}:\n{err}\nwanted it to start with\n{want}");
        assert!(err.ends_with("error(s)\n"), "{err}");
    }
}

#[test]
fn serve_refuses_a_bad_file_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nmax_frame = \"big\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parlor")).args(["serve", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.toml:2:13: invalid type: string \"big\", expected usize"), "{err}");
}

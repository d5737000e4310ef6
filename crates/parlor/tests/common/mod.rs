//! What the tests of the `parlor` binary share: a `parlor serve` child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Start `parlor serve` with `args` (its listen address included) and read the address it
/// says it listens on from its first line of stdout.
pub fn serve<I, S>(args: I) -> (Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("parlor serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("its first line");
    let addr = line["parlor listening on http://".len()..].split_whitespace().next().expect("an address").to_string();
    (child, addr)
}

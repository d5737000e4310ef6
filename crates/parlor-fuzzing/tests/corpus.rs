//! Replays the regression corpus of every fuzz target (`fuzz/corpus/<target>/`, the inputs the
//! fuzzers kept, and each crash found and fixed) through the same functions the fuzz targets
//! call, so a plain `cargo test` catches a regression without a fuzzing toolchain.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} holds no input");
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file reads");
        let run = std::panic::catch_unwind(|| parlor_fuzzing::run(target, &data));
        match run {
            Ok(known) => assert!(known, "no target {target}"),
            Err(_) => panic!("{target} fails on {}", file.display()),
        }
    }
}

#[test]
fn every_target_has_a_corpus() {
    for target in parlor_fuzzing::TARGETS {
        assert!(!corpus(target).is_empty(), "fuzz/corpus/{target} is empty");
    }
}

#[test]
fn client_frame() {
    replay("client_frame");
}

#[test]
fn server_frame() {
    replay("server_frame");
}

#[test]
fn token_verify() {
    replay("token_verify");
}

#[test]
fn resume_ack() {
    replay("resume_ack");
}

#[test]
fn admin_api() {
    replay("admin_api");
}

#[test]
fn client_core() {
    replay("client_core");
}

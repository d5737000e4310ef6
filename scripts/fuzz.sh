#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# (default 15 s, every target). Installs cargo-fuzz when missing; on a stable toolchain uses
# RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags). When the toolchain cannot build the
# targets it prints one "fuzz: skipped" line and exits 0: the corpus replay in `cargo test`
# (crates/parlor-fuzzing) still runs everywhere. A crash fails the script; its input is in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(client_frame server_frame token_verify resume_ack admin_api client_core)

if ! cargo fuzz --version >/dev/null 2>&1; then
  if ! cargo install cargo-fuzz --locked --quiet >/dev/null 2>&1; then
    echo "fuzz: skipped: cargo-fuzz is not installed and 'cargo install cargo-fuzz --locked' failed"
    exit 0
  fi
fi
export RUSTC_BOOTSTRAP=1
if ! log=$(cargo fuzz build -O -s none 2>&1); then
  echo "fuzz: skipped: this toolchain cannot build the fuzz targets ($(printf '%s\n' "$log" | grep -m1 -E '^error' || echo 'see cargo fuzz build'))"
  exit 0
fi
for t in "${targets[@]}"; do
  # New inputs go to a scratch directory: the committed corpus is only read.
  scratch=$(mktemp -d)
  out=$(cargo fuzz run -O -s none "$t" "$scratch" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1) || {
    printf '%s\n' "$out" | tail -40
    rm -rf "$scratch"
    echo "fuzz: $t FAILED (the input is in fuzz/artifacts/$t/)" >&2
    exit 1
  }
  rm -rf "$scratch"
  runs=$(printf '%s\n' "$out" | sed -n 's/^stat::number_of_executed_units: *//p' | tail -1)
  echo "fuzz: $t: ${runs:-?} runs in ${secs} s, no crash"
done

#!/usr/bin/env bash
# Profile the Parlor server while a benchmark runs, and draw a flamegraph of it:
#
#   bench/flamegraph.sh OUT.svg SECONDS -- w2 --rates 320 --step-secs 20
#
# starts `target/release/parlor bench ARGS…` (which starts its own `parlor serve`), waits for
# that server, records it with `perf record --call-graph dwarf` for SECONDS (cpu-clock: this
# box has no hardware counters), and writes OUT.svg (inferno's flamegraph) and OUT.txt (perf
# report's top entries, self time). PARLOR_FLAME_DELAY=S waits S seconds after the server
# appears before recording (e.g. past W3's connecting, into its idle hold). Needs perf and inferno (`cargo install inferno`); the
# release build has symbols (the default profile keeps them).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?OUT.svg}"; secs="${2:?SECONDS}"; shift 2
[ "${1:-}" = "--" ] && shift
command -v perf >/dev/null || { echo "flamegraph: perf is not installed" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || { echo "flamegraph: cargo install inferno" >&2; exit 1; }
bin="$PWD/target/release/parlor"
export PARLOR_SOCKETIOXIDE_PEER="${PARLOR_SOCKETIOXIDE_PEER:-$PWD/target/release/parlor-peer-socketioxide}"

"$bin" bench "$@" > "${out%.svg}.bench.txt" 2>&1 &
bench=$!
trap 'kill $bench 2>/dev/null || true' EXIT
# The server is the generator's child `parlor serve` (or `BIN serve` with `--server-bin BIN`,
# to profile another build); give it up to 20 s to appear.
pid=""
for _ in $(seq 200); do
  pid=$(pgrep -P "$bench" -f ' serve( |$)' | head -1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "flamegraph: no 'parlor serve' child of the generator" >&2; exit 1; }
sleep "${PARLOR_FLAME_DELAY:-0}"
data=$(mktemp --suffix .perf.data)
# A server that ends before SECONDS (W1 is over in a few) ends the recording with it: perf then
# stops its `sleep` with SIGTERM and exits 143, and what it recorded is still good.
perf record -q -e cpu-clock -F 250 --call-graph dwarf,16384 -p "$pid" -o "$data" -- sleep "$secs" 2>/dev/null \
  || [ -s "$data" ] || { echo "flamegraph: perf record failed" >&2; exit 1; }
# --no-inline: without it perf resolves every inlined frame through addr2line, which took over
# five minutes for a few seconds of dwarf samples; with it, under a second (an inlined
# function's samples are shown in its caller).
perf script --no-inline -i "$data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "parlor serve: parlor bench $*" > "$out"
perf report --no-inline -i "$data" --no-children --stdio --percent-limit 1.5 2>/dev/null | grep -E '^ +[0-9]' | head -30 > "${out%.svg}.txt"
rm -f "$data"
wait "$bench" || true
trap - EXIT
echo "flamegraph: $out ($(wc -c < "$out") bytes), top entries in ${out%.svg}.txt, bench output in ${out%.svg}.bench.txt"

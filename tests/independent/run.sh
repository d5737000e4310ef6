#!/usr/bin/env bash
# Run the independent conformance client against a given parlor binary.
# Usage: tests/independent/run.sh /path/to/parlor
# Builds nothing. Starts the server on a free loopback port, waits for /healthz, runs the
# client, stops the server and exits with the client's status.
set -u
BIN="${1:?usage: run.sh /path/to/parlor}"
HERE="$(cd "$(dirname "$0")" && pwd)"
APP="7"
SECRET="some-secret"
LOG="$(mktemp -t parlor-indep.XXXXXX.log)"

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'
}

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT

healthy() {
  node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$1/healthz"
}

for attempt in 1 2 3 4 5; do
  PORT="$(free_port)"
  # --drain-time 0s: the cleanup's SIGTERM ends it at once (a drain keeps the door shut for
  # its whole drain time).
  "$BIN" serve --listen "127.0.0.1:$PORT" --app "$APP:$SECRET" --drain-time 0s >"$LOG" 2>&1 &
  SERVER_PID=$!
  up=0
  for _ in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    if healthy "$PORT"; then up=1; break; fi
    sleep 0.1
  done
  [ "$up" = 1 ] && break
  echo "server did not come up on port $PORT (attempt $attempt); log:" >&2
  tail -n 20 "$LOG" >&2
  cleanup
  SERVER_PID=""
done
if [ "$up" != 1 ]; then
  echo "could not start $BIN" >&2
  exit 2
fi

node --experimental-websocket "$HERE/client.mjs" "ws://127.0.0.1:$PORT/v1/ws" "$APP" "$SECRET"
STATUS=$?
if [ "$STATUS" != 0 ]; then
  echo "--- server log (tail) ---" >&2
  tail -n 40 "$LOG" >&2
fi
cleanup
SERVER_PID=""
rm -f "$LOG"
exit "$STATUS"

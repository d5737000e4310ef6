#!/usr/bin/env bash
# The door of a public server, by hand: 20 WebSocket upgrades at once (curl) against
# `parlor serve "$@"` on a free loopback port, each held open 2 s; prints how many got each HTTP
# status (101 upgraded, 429 per-IP limit, 503 connection rate). docs/reliability.md records it.
# Usage: scripts/door.sh [serve flags…], e.g. scripts/door.sh --max-connections-per-ip 5
set -u
BIN=${BIN:-target/debug/parlor}
OUT=$(mktemp)
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
$BIN serve --listen 127.0.0.1:$PORT "$@" >/dev/null 2>&1 & PID=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.05; done
for i in $(seq 20); do
  timeout 3 curl -s -o /dev/null -w "%{http_code}\n" --max-time 2 -H "Connection: Upgrade" -H "Upgrade: websocket" \
    -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" http://127.0.0.1:$PORT/v1/ws &
done > "$OUT"
sleep 2.5
kill $PID; wait $PID 2>/dev/null
sort "$OUT" | uniq -c
rm -f "$OUT"

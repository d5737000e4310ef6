#!/usr/bin/env bash
# The admin API against its own OpenAPI document with schemathesis (PyPI): every operation of
# GET /v1/admin/openapi.json, examples, coverage and fuzzing phases, every check, a bounded
# number of cases per operation, a fixed seed. Fails on any failure. Members stay in rooms
# meanwhile (scripts/schemathesis_members.py), and the room, user and stream path parameters
# are theirs most of the time, so that operations reach rooms rather than only 404s. Needs
# target/debug/parlor (`cargo build -p parlor --bins`) and python3 with venv.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     (default 30; about a minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
WEBSOCKETS=15.0.1
MAX_EXAMPLES="${1:-30}"
VENV=target/schemathesis-venv
APP_ID=7
SECRET=schemathesis-secret

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION" \
  || ! "$VENV/bin/python" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" "websockets==$WEBSOCKETS"
fi

# A free loopback port: bind port 0, read what the kernel gave, let it go.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
LOG=target/schemathesis-server.log
RUST_LOG=warn target/debug/parlor serve --listen "127.0.0.1:$PORT" --app "$APP_ID:$SECRET" >"$LOG" 2>&1 &
SERVER=$!
MEMBERS=""
trap 'kill $MEMBERS "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$BASE/healthz" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$LOG" >&2; echo "parlor serve did not start" >&2; exit 1; }
  sleep 0.1
done

tok() { target/debug/parlor token --app "$APP_ID:$SECRET" --user "$1" --ttl 1h; }
READY=target/schemathesis-members.ready
rm -f "$READY"
"$VENV/bin/python" scripts/schemathesis_members.py "ws://127.0.0.1:$PORT/v1/ws" "$APP_ID" "$READY" \
  "alice:lobby:$(tok alice)" "bob:lobby:$(tok bob):bob-cam" "carol:quiet:$(tok carol)" &
MEMBERS=$!
for _ in $(seq 200); do
  [ -f "$READY" ] && break
  kill -0 "$MEMBERS" 2>/dev/null || { echo "the members did not start" >&2; exit 1; }
  sleep 0.1
done
[ -f "$READY" ] || { echo "the members are not in their rooms after 20 s" >&2; exit 1; }

# The known app for every {app} (random app ids would only ever be 404 "unknown app"); the
# members' rooms, users and stream most of the time.
CONFIG=target/schemathesis.toml
cat >"$CONFIG" <<TOML
[dictionaries.rooms]
values = ["lobby", "quiet"]
[dictionaries.users]
values = ["alice", "bob", "carol"]
[dictionaries.streams]
values = ["bob-cam"]
[parameters]
"path.app" = $APP_ID
"path.room" = { dictionary = "rooms", probability = 0.8 }
"path.user" = { dictionary = "users", probability = 0.8 }
"path.stream" = { dictionary = "streams", probability = 0.8 }
"body.user" = { dictionary = "users", probability = 0.8 }
TOML

"$VENV/bin/st" --config-file "$CONFIG" run "$BASE/v1/admin/openapi.json" \
  --url "$BASE" \
  -H "Authorization: Bearer $SECRET" \
  --checks all \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed 1 \
  --workers 2 \
  --request-timeout 10 \
  --no-color

#!/usr/bin/env bash
# `make run`: the whole pipeline on this machine (`sluice up` on ./data) with
# demo traffic flowing into it, so a newcomer sees rows arrive. Ctrl-C stops
# both; run it again and the pipeline resumes on the same data.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/sluice}
DATA=${SLUICE_DATA_DIR:-$ROOT/data}
HTTP_PORT=${SLUICE_HTTP_PORT:-8080}
ADMIN_PORT=${SLUICE_ADMIN_PORT:-9090}

"$SLUICE" up --data-dir "$DATA" --http-port "$HTTP_PORT" --admin-port "$ADMIN_PORT" &
UP=$!
SEND=
stop() {
    [ -n "$SEND" ] && kill -INT "$SEND" 2>/dev/null || true
    kill -INT "$UP" 2>/dev/null || true
    wait "$UP" || true
}
trap stop INT TERM EXIT

# The demo starts once the collector answers (readyz on the admin port).
for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$ADMIN_PORT") 2>/dev/null; then break; fi
    kill -0 "$UP" 2>/dev/null || exit 1
    sleep 0.1
done
"$SLUICE" send --demo --rate 50 --url "http://127.0.0.1:$HTTP_PORT" &
SEND=$!
sleep 8
echo
echo "--- rows so far (sluice sql --data-dir $DATA \"...\") ---"
"$SLUICE" sql --data-dir "$DATA" "SELECT event, count(*) AS events FROM tracks GROUP BY event ORDER BY 2 DESC" || true
echo "--- the pipeline keeps running; Ctrl-C stops it ---"
wait "$UP"

#!/usr/bin/env bash
# Smoke run (not a timed assertion): redis-benchmark drives a fresh Strata
# with pipelining and must finish every test without an error reply.
set -euo pipefail
BIN="$1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d)
"$BIN" --port "$PORT" --dir "$DATA" --loglevel warning &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
# Ready when PING answers PONG (while it loads it answers -LOADING).
for _ in $(seq 300); do [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
# -q redraws a progress line with \r; keep only each test's final line.
TESTS=ping_inline,ping_mbulk,set,get,incr,mset,hset,lpush,rpush,lpop,rpop,sadd,spop,zadd,zpopmin,lrange_100
OUT=$(redis-benchmark -p "$PORT" -t "$TESTS" -P 16 -n 20000 -q 2>&1 | tr '\r' '\n' | grep -E 'requests per second|rror')
echo "$OUT"
if echo "$OUT" | grep -qi "error"; then
    echo "redis-benchmark reported errors" >&2
    exit 1
fi
[ "$(echo "$OUT" | grep -c 'requests per second')" -ge 16 ] || { echo "some benchmark tests did not run" >&2; exit 1; }

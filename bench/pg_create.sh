#!/usr/bin/env bash
# bench/pg_create.sh - the PostgreSQL create row of `make bench`, alone and quickly: a private
# PostgreSQL (fsync, synchronous_commit and full_page_writes on), one Redis and two catalogd
# instances on it, pinned as bench/run.sh pins them (servers on CPU1, wrk on CPU0), then
# RUNS measured runs of durable POST /products with unique SKUs through both instances at
# once (wrk -t2, one thread per instance), each after a warm-up. Prints one line per run
# (requests/s, latency, CPU µs per request of the two catalogd and PostgreSQL, of Redis) and
# the medians. Every process it starts is stopped by its PID on exit.
#
#   bench/pg_create.sh   (env: RUNS=3 DURATION=8 WARMUP=2 CONNS=32 PIN=1 KEEP=0,
#                         CATALOGD_BIN=build/catalogd, SCENARIO=create)
#   PIN=0: no taskset (the servers may use both cores, beside wrk).
#   SCENARIO=stock: stock adjustments (±1, stock.lua) on 4 hot products made first, instead.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
PY=/usr/bin/python3
RUNS=${RUNS:-3} DURATION=${DURATION:-8} WARMUP=${WARMUP:-2} CONNS=${CONNS:-32} PIN=${PIN:-1}
SCENARIO=${SCENARIO:-create}
CLK=$(getconf CLK_TCK)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/postgres" ] || { echo "pg_create: no PostgreSQL server installed" >&2; exit 1; }
BIN=${CATALOGD_BIN:-$REPO/build/catalogd}
[ -x "$BIN" ] || { echo "pg_create: no $BIN: build catalogd first (make)" >&2; exit 1; }
SRV_CPU=() WRK_CPU=()
if [ "$PIN" = 1 ]; then SRV_CPU=(taskset -c 1) WRK_CPU=(taskset -c 0); fi

WORK=$(mktemp -d /tmp/catalogd-pgcreate.XXXXXX)
PG_DIR=$(mktemp -d /tmp/catalogd-pgcreate-pg.XXXXXX)
PIDS=() PG_PID=""
state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }
alive() { local s; s=$(state "$1"); [ -n "$s" ] && [ "$s" != Z ]; }
stop_pid() {
    local p=$1 i
    if alive "$p"; then
        kill -TERM "$p" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do alive "$p" || break; sleep 0.1; done
        alive "$p" && kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null || true
}
pg_stop() { # SIGINT (fast shutdown) to the postmaster, then its runuser parent
    local pm i
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pm" ] && alive "$pm"; then
        kill -INT "$pm" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do alive "$pm" || break; sleep 0.1; done
    fi
    stop_pid "$PG_PID"
}
cleanup() {
    set +e
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    [ -n "$PG_PID" ] && pg_stop
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $WORK $PG_DIR"; else rm -rf "$WORK" "$PG_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
freeport() { "$PY" "$HERE/tool.py" freeport; }
wait_until() { # SECONDS CMD...
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || { echo "pg_create: not up in time: $*" >&2; exit 1; }
        sleep 0.1
    done
}
http_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ]; }

# PostgreSQL, as bench/run.sh starts it (as the postgres user when run as root).
AS_PG=()
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
(umask 077 && printf '%s\n' "$PASSWORD" >"$PG_DIR/pw")
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --) && chown -R postgres: "$PG_DIR"; fi
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U catalogd --pwfile="$PG_DIR/pw" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    >"$WORK/initdb.log" 2>&1 || { echo "initdb failed: $WORK/initdb.log" >&2; exit 1; }
rm -f "$PG_DIR/pw"
PG_PORT=$(freeport)
"${SRV_CPU[@]}" "${AS_PG[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -c listen_addresses=127.0.0.1 \
    -c port="$PG_PORT" -c unix_socket_directories="$PG_DIR" -c fsync=on -c synchronous_commit=on \
    -c full_page_writes=on -c max_connections=100 -c shared_buffers=256MB \
    >>"$WORK/postgres.log" 2>&1 &
PG_PID=$!
wait_until 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1
PGPASSWORD=$PASSWORD "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U catalogd -d postgres \
    -c "CREATE DATABASE catalogd"
URI="postgresql://catalogd:$PASSWORD@127.0.0.1:$PG_PORT/catalogd"

REDIS_PORT=$(freeport)
"${SRV_CPU[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_until 10 redis-cli -p "$REDIS_PORT" ping
ADDRS="" SRV="$PG_PID" URL=""
for i in 1 2; do
    port=$(freeport)
    CATALOGD_DB=$URI "${SRV_CPU[@]}" "$BIN" serve --listen "127.0.0.1:$port" \
        --redis "redis://127.0.0.1:$REDIS_PORT/0" --instance-id "pg-$i" --allowed-host 127.0.0.1 \
        --threads 1 --log-level warn 2>>"$WORK/catalogd-$i.log" &
    PIDS+=($!)
    SRV="$SRV $!"
    ADDRS="$ADDRS 127.0.0.1:$port"
    [ -n "$URL" ] || URL=http://127.0.0.1:$port
    wait_until 60 http_ok "http://127.0.0.1:$port/ready"
done
export BENCH_ADDRS=${ADDRS# }

WRK() { timeout $(($2 + 60)) "${WRK_CPU[@]}" wrk -t2 -c"$1" -d"$2s" --timeout 10s "${@:3}"; }
RUN_ID=$(date +%s)
script_args() { # PREFIX: the wrk script of the scenario and its arguments
    if [ "$SCENARIO" = stock ]; then echo "$HERE/lua/stock.lua $URL -- $WORK/hot 60"; else
        echo "$HERE/lua/post.lua $URL -- $1"; fi
}
if [ "$SCENARIO" = stock ]; then
    for i in 1 2 3 4; do
        curl -sf -H 'Content-Type: application/json' -d "{\"sku\":\"HOT-$RUN_ID-$i\",\"name\":\"Hot $i\",\"price\":1.00,\"stock\":3}" \
            "$URL/products" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
    done >"$WORK/hot"
fi
for ((r = 1; r <= RUNS; r++)); do
    if [ "$WARMUP" -gt 0 ]; then
        WRK "$CONNS" "$WARMUP" -s $(script_args "W${RUN_ID}r$r") >"$WORK/warmup-$r.log" 2>&1
    fi
    "$PY" "$HERE/tool.py" snap --srv "$SRV" --redis "$REDIS_PID" >"$WORK/before-$r"
    WRK "$CONNS" "$DURATION" --latency -s $(script_args "M${RUN_ID}r$r") \
        >"$WORK/wrk-$r.log" 2>&1 || echo "wrk exited $? (run $r), see $WORK/wrk-$r.log"
    "$PY" "$HERE/tool.py" snap --srv "$SRV" --redis "$REDIS_PID" >"$WORK/after-$r"
    "$PY" "$HERE/tool.py" record --out "$WORK/results.jsonl" --wrk-log "$WORK/wrk-$r.log" \
        --before "$WORK/before-$r" --after "$WORK/after-$r" --clk "$CLK" type=run rep="$r" \
        system=pg scenario="$SCENARIO" conns="$CONNS" duration_s="$DURATION"
done
"$PY" - "$WORK/results.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in runs if "error" not in r]
if runs:
    med = lambda k: statistics.median(r[k] for r in runs)
    print("median of %d runs: %.0f req/s  p50 %.2f ms  p99 %.2f ms  server %.1f us/req"
          "  redis %.1f us/req  non2xx %d" % (len(runs), med("rps"), med("p50_ms"), med("p99_ms"),
          med("server_cpu_us"), med("redis_cpu_us"), sum(r["non2xx"] for r in runs)))
EOF
for a in $BENCH_ADDRS; do # the writer's batches, all runs and warm-ups: commands per batch
    echo "$a: $("$PY" "$HERE/tool.py" batches "http://$a" | "$PY" -c 'import json,sys; d=json.load(sys.stdin)
print("%.1f commands per batch over %d batches" % (d["sum"] / d["count"], d["count"]) if d.get("count") else d)')"
done

#!/usr/bin/env bash
# bench/run.sh - `make bench`: catalogd measured side by side with the seed's FastAPI rebuild
# and with nginx returning a fixed body (this machine's ceiling), in the same run.
#
# What it does, in order:
#   1. installs missing Debian packages (as root; else prints the apt-get line and stops),
#      builds catalogd (make all: -O2 -g) and the callgrind driver bench/hotpaths.c;
#   2. counts instructions per iteration of the pure hot paths with callgrind, and measures
#      what one dependent memory load costs on CPU1 by working-set size (bench/memlat.c) and
#      what one fdatasync costs on the disk the databases live on;
#   3. for each repetition: starts a fresh Redis + catalogd and a fresh Redis + seed, preloads
#      N products into each, then runs the scenarios, taking turns between systems (round
#      robin, the starting system rotating per repetition) so drift hits all of them:
#        get_by_id     GET /products/{id}, random over the N preloaded ids   catalogd seed nginx
#                      (and nginx answering catalogd's own views, held in a map) nginx-views
#                      (and catalogd's GET /health, a fixed body: no Redis)    catalogd-fixed
#                      (and, on a catalogd serving HTTPS: wrk over TLS, h2load over h2)   https h2
#        catalog_page  GET /catalog?limit=100&cursor=<random Link cursor>   catalogd (+ big)
#        stock         POST /products/{id}/stock {"delta":±1} on 4 hot ids  catalogd
#        create        POST /products, unique SKUs, --durability full       catalogd seed
#        mixed         95 % GET by id, 5 % POST                             catalogd
#      then records peak RSS (VmHWM) and Redis used_memory per product, and stops both;
#      then (WITH_PG=1) the PostgreSQL column: a private PostgreSQL (fsync on,
#      synchronous_commit=on), one Redis and two catalogd instances on it (--instance-id pg-1,
#      pg-2), N products preloaded, and through both instances at once (wrk -t2, one thread
#      per instance, CONNS split between them):
#        get_by_id     GET /products/{id}, random over the N preloaded ids   pg
#        create        POST /products, unique SKUs (durable in PostgreSQL)   pg
#                      (and from 64 and 128 connections, WITH_MORE_CONNS)    pg-c64 pg-c128
#        pgbench       pgbench -N -c PGBENCH_CLIENTS on the same server       pgbench
#      and the takeover: kill -9 of the projecting instance, then the seconds until the
#      survivor's /admin/projection names a new projecting instance and until a create on it
#      answers Projection: applied;
#      in the last repetition each catalogd scenario runs once more under perf (PROFILE=1),
#      and after the first preload Redis's memory is counted key kind by key kind;
#      with BIG=1, before the repetitions, the big catalogd grows to BIG_N in steps and
#      scenarios 1 and 2 are measured at each step (the growth curve, WITH_GROWTH=1);
#      after the repetitions (WITH_TWO_CORES=1), every catalogd scenario once more with
#      `serve --threads 2` and nginx with 2 workers, nothing pinned (see Pinning);
#   4. writes bench/results/latest.json, bench/results/chart.png and ../BENCHMARKS.md.
#
# Pinning: every server and its Redis run on CPU1 (taskset -c 1); wrk -t1 and the helpers on
# CPU0 (taskset -c 0). Except the two-core runs: catalogd --threads 2, its Redis, nginx's two
# workers and wrk -t2 are not pinned at all, so wrk shares both cores with them.
# Server CPU µs per request = utime+stime delta of the server's processes (all threads) from
# /proc/<pid>/stat over the measured run / completed requests; Redis likewise. Loopback only.
# Every wrk run has -d and a `timeout`; every wait a deadline.
# Every process this script starts is stopped by its PID on exit (trap).
#
# Env (defaults):
#   REPS=3 DURATION=8 (s, each measured run) WARMUP=2 (s, before each) N=10000 CONNS=32
#   BIG=0 (1: also catalog pages with BIG_N=1000000 products, preloaded once)
#   WITH_GROWTH=1 (with BIG=1: the growth curve. The big catalogd is preloaded in steps,
#     GROWTH_SIZES=BIG_N/100,BIG_N/10,BIG_N (ascending, the last one BIG_N), and at each
#     size GET by id and catalog pages are measured REPS times each, as scenarios 1 and 2;
#     at the largest size both once more, read only within the first step's products (the
#     same sets, a working set as small as the first step's: what the size costs in memory);
#     with the defaults ~3.5 min on top of BIG=1, as it reuses BIG's one preload)
#   WITH_TWO_CORES=1 (after the repetitions, each catalogd scenario once more, one run each,
#     on a catalogd --threads 2 with its own Redis, both unpinned, and wrk -t2 unpinned too;
#     nginx with 2 workers, unpinned, for the GET; ~1.5 min with the defaults)
#   WITH_MORE_CONNS=1 (in each repetition, scenario 3 once more from 64 and from 128
#     connections: fuller batches, to split a create's cost into its own and its batch's share;
#     ~25 s per repetition; with WITH_PG=1 the same for the two instances on PostgreSQL, ~25 s
#     more)
#   WITH_KEYED=1 (in each repetition, scenario 3 once more with an Idempotency-Key on every
#     create, post_keyed.lua: what storing each answer for a replay costs; ~12 s per repetition)
#   PAGE_LIMIT=100 HOT=4 HOT_STOCK=3 (hot products, their initial stock)
#   STOCK_DOWN_PCT=55 (odds of a -1) WRITE_PCT=5 (POSTs in the mixed scenario)
#   PRELOAD_CONNS=64 BIG_PRELOAD_CONNS=256 SEED_PRELOAD_CONNS=8 (as the seed's own harness;
#     more only makes its SQLite writers time out)
#   WITH_SEED=1 WITH_NGINX=1 (0: leave that system out) CALLGRIND=1 CG_N=20000
#   WITH_PG=1 (the PostgreSQL column; catalogd's rows need a build with the PostgreSQL store,
#     else only the pgbench row is measured) PGBENCH_CLIENTS=8 PGBENCH_SCALE=10
#   WITH_HTTPS=1 (also GET by id from a catalogd serving HTTPS: over HTTP/1.1 with wrk, and
#     over HTTP/2 with h2load, H2_STREAMS=1 stream in flight per connection, as wrk has one)
#   NGINX_SAME_CORE=1 (also nginx with wrk on CPU1 beside it: the cost of the cross-core hop)
#   (with WITH_NGINX=1, also catalogd's own fixed answer, GET /health, beside nginx's)
#   PROFILE=1 (in the last repetition, one more run of each catalogd scenario, not measured,
#     with `perf record -C 1`: where CPU1's time goes, by process, library and function)
#   QUIET_WAIT=30 (max s to wait, before each run, for both CPUs to be >= 80 % idle)
#   KEEP=0 (1: keep the work dir in /tmp) SEED_DIR=<repo>/../shared/peers/seed-fastapi
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
PY=/usr/bin/python3 # Debian's interpreter: the one python3-fastapi & co. are installed for
export REPS=${REPS:-3} DURATION=${DURATION:-8} WARMUP=${WARMUP:-2} N=${N:-10000}
export CONNS=${CONNS:-32} PAGE_LIMIT=${PAGE_LIMIT:-100} HOT=${HOT:-4} HOT_STOCK=${HOT_STOCK:-3}
export STOCK_DOWN_PCT=${STOCK_DOWN_PCT:-55}
export WRITE_PCT=${WRITE_PCT:-5} BIG=${BIG:-0} BIG_N=${BIG_N:-1000000}
export PRELOAD_CONNS=${PRELOAD_CONNS:-64} BIG_PRELOAD_CONNS=${BIG_PRELOAD_CONNS:-256}
export SEED_PRELOAD_CONNS=${SEED_PRELOAD_CONNS:-8}
export WITH_SEED=${WITH_SEED:-1} WITH_NGINX=${WITH_NGINX:-1} CALLGRIND=${CALLGRIND:-1} CG_N=${CG_N:-20000}
export NGINX_SAME_CORE=${NGINX_SAME_CORE:-1} PROFILE=${PROFILE:-1}
export WITH_HTTPS=${WITH_HTTPS:-1} H2_STREAMS=${H2_STREAMS:-1}
export WITH_PG=${WITH_PG:-1} PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8} PGBENCH_SCALE=${PGBENCH_SCALE:-10}
export WITH_GROWTH=${WITH_GROWTH:-1} GROWTH_SIZES=${GROWTH_SIZES:-$((BIG_N / 100)),$((BIG_N / 10)),$BIG_N}
export WITH_TWO_CORES=${WITH_TWO_CORES:-1} WITH_MORE_CONNS=${WITH_MORE_CONNS:-1}
export WITH_KEYED=${WITH_KEYED:-1}
QUIET_WAIT=${QUIET_WAIT:-30}
SEED_DIR=${SEED_DIR:-$REPO/../shared/peers/seed-fastapi}
RESULTS=$HERE/results
CLK=$(getconf CLK_TCK)
RUN_ID=$(date +%s)

log() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes we own
WORK=$(mktemp -d /tmp/catalogd-bench.XXXXXX)
PIDS=() # every process started here, by PID; stopped in reverse order on exit
state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; } # R, S, Z... or ""
alive() { local s; s=$(state "$1"); [ -n "$s" ] && [ "$s" != Z ]; }
stop_pid() { # TERM, wait up to 10 s, then KILL; reap; forget the PID (it may be reused)
    local p=$1 i keep=()
    if alive "$p"; then
        kill -TERM "$p" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do alive "$p" || break; sleep 0.1; done
        alive "$p" && kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null || true
    for i in "${PIDS[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    set +e
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        if [ "${PIDS[i]}" = "${PG_PID:-}" ]; then pg_stop; else stop_pid "${PIDS[i]}"; fi
    done
    if [ "${KEEP:-0}" = 1 ]; then
        log "work dir kept: $WORK${PG_DIR:+ (PostgreSQL: $PG_DIR)}"
    else
        rm -rf "$WORK" ${PG_DIR:+"$PG_DIR"}
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() { "$PY" "$HERE/tool.py" freeport; }
http_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ]; }
https_ok() { [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ]; }
wait_until() { # SECONDS CMD...: poll CMD every 0.1 s; 1 if it never succeeded in time
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}
wait_for() { # WHAT SECONDS CMD...: wait_until, or stop the benchmark
    local what=$1
    shift
    wait_until "$@" || die "$what: not up within $1 s (logs: $WORK)"
}

# Per system: base URL, server PID (CPU is summed over it and its children), Redis PID/port.
declare -A URL SRV REDIS_PID REDIS_PORT PRODUCTS
# How the start_* functions below start servers: on CPU1, catalogd with one thread, nginx with
# one worker. The two-core runs empty PIN (no taskset) and raise the other two.
PIN=(taskset -c 1)
SERVE_THREADS=1 NGINX_WORKERS=1

start_redis() { # NAME
    local port
    port=$(freeport)
    "${PIN[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK" --logfile "$WORK/redis-$1.log" &
    PIDS+=($!)
    REDIS_PID[$1]=$!
    REDIS_PORT[$1]=$port
    PRODUCTS[$1]=0 # a fresh system: preload starts from none
    wait_for "redis ($1)" 10 redis-cli -p "$port" ping
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=mem phase=empty system="$1" \
        rep="${REP:-0}" redis_used_memory="$(redis_used "$1")"
}

start_catalogd() { # NAME
    local port
    start_redis "$1"
    port=$(freeport)
    rm -f "$WORK/$1.db"*
    "${PIN[@]}" "$REPO/build/catalogd" serve --listen "127.0.0.1:$port" --db "$WORK/$1.db" \
        --redis "redis://127.0.0.1:${REDIS_PORT[$1]}/0" --threads "$SERVE_THREADS" \
        --durability full --log-level warn 2>>"$WORK/$1.log" &
    PIDS+=($!)
    SRV[$1]=$!
    URL[$1]=http://127.0.0.1:$port
    wait_for "catalogd ($1)" 30 http_ok "${URL[$1]}/ready"
}

# start_catalogd_https NAME: catalogd serving HTTPS (h2 and http/1.1 by ALPN, --http2) with
# a self-signed certificate made here; wrk and h2load do not verify it.
start_catalogd_https() {
    local port
    start_redis "$1"
    port=$(freeport)
    rm -f "$WORK/$1.db"*
    [ -s "$WORK/tls.key" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.crt" \
        >/dev/null 2>&1 || die "openssl could not make the benchmark's certificate"
    taskset -c 1 "$REPO/build/catalogd" serve --listen "127.0.0.1:$port" --db "$WORK/$1.db" \
        --redis "redis://127.0.0.1:${REDIS_PORT[$1]}/0" --threads 1 --durability full \
        --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" --http2 \
        --log-level warn 2>>"$WORK/$1.log" &
    PIDS+=($!)
    SRV[$1]=$!
    URL[$1]=https://127.0.0.1:$port
    wait_for "catalogd ($1)" 30 https_ok "${URL[$1]}/ready"
}

start_seed() { # NAME: the seed's FastAPI app, run in place (read-only dir) with --app-dir
    local port
    start_redis "$1"
    port=$(freeport)
    (cd "$WORK" && SQLITE_PATH="$WORK/$1-r$REP.db" REDIS_HOST=127.0.0.1 \
        REDIS_PORT="${REDIS_PORT[$1]}" REDIS_DB=0 PYTHONDONTWRITEBYTECODE=1 \
        exec taskset -c 1 "$PY" -m uvicorn main:app --app-dir "$SEED_DIR" --host 127.0.0.1 \
        --port "$port" --no-access-log) >>"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    SRV[$1]=$!
    URL[$1]=http://127.0.0.1:$port
    wait_for "seed ($1)" 30 http_ok "${URL[$1]}/catalog"
}

# The ceiling: nginx, NGINX_WORKERS worker(s) (1; 2 for the two-core runs), `return 200`
# with a fixed body the size of a catalogd view. keepalive_requests is raised so nginx does
# not close each connection every 1000 requests (catalogd never does). No '$' in the body:
# nginx would read it as a variable. Given a MAP (tool.py views_map), it answers each path
# with its view from that map instead: nginx serving the same views from memory.
NGINX_BODY='{"id":"01a22256-d976-7000-b126-8c2720b242f3","sku":"P1764336446nginx-4242","name":"Bench product 4242","price":51.42,"stock":42,"available":true,"desc":"Bench product 4242 - 51.42","version":1,"created_at":"2026-11-28T13:27:26.838Z","updated_at":"2026-11-28T13:27:26.838Z"}'
start_nginx() { # NAME [MAP]
    local port d=$WORK/$1 answer="return 200 '$NGINX_BODY'" include=""
    if [ -n "${2:-}" ]; then answer='return 200 $view' include="include $2;"; fi
    port=$(freeport)
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    $include
    server {
        listen 127.0.0.1:$port;
        default_type application/json;
        location / { $answer; }
    }
}
EOF
    env -u NGINX "${PIN[@]}" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" &
    PIDS+=($!)
    SRV[$1]=$!
    URL[$1]=http://127.0.0.1:$port
    wait_for "nginx ($1)" 10 http_ok "${URL[$1]}/products/x"
}

stop_system() { # NAME: server first, then its Redis
    [ -n "${SRV[$1]:-}" ] && stop_pid "${SRV[$1]}"
    [ -n "${REDIS_PID[$1]:-}" ] && stop_pid "${REDIS_PID[$1]}"
    unset "SRV[$1]" "REDIS_PID[$1]"
}

# alias_system NAME OF [PRODUCTS]: runs measured as NAME on the system OF, already running: its
# URL, server and Redis (if it has one), and its products unless PRODUCTS says how many count.
# unalias_system NAME forgets NAME again, leaving OF running (stop_system OF stops it).
alias_system() {
    URL[$1]=${URL[$2]} SRV[$1]=${SRV[$2]} PRODUCTS[$1]=${3:-${PRODUCTS[$2]:-0}}
    if [ -n "${REDIS_PID[$2]:-}" ]; then REDIS_PID[$1]=${REDIS_PID[$2]}; fi
}
unalias_system() { unset "SRV[$1]" "REDIS_PID[$1]"; }

# ---------------------------------------------------------------- PostgreSQL (issue 11)
# One private PostgreSQL, initdb'd once into a directory of its own (not $WORK, which is 0700:
# as root the server runs as the postgres user, which must reach its data), started for the
# PostgreSQL column of each repetition and stopped after it. Durable as in production: fsync,
# synchronous_commit and full_page_writes on (the defaults, given explicitly).
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PG_DIR="" PG_PID="" PG_PORT="" PG_PASSWORD=""
AS_PG=()
pg_start() {
    if [ -z "$PG_DIR" ]; then
        PG_DIR=$(mktemp -d /tmp/catalogd-bench-pg.XXXXXX)
        PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
        (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pw")
        if [ "$(id -u)" = 0 ]; then
            AS_PG=(runuser -u postgres --)
            chown -R postgres: "$PG_DIR"
        fi
        "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U catalogd --pwfile="$PG_DIR/pw" \
            --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            >"$WORK/initdb.log" 2>&1 || die "initdb failed: $WORK/initdb.log"
        rm -f "$PG_DIR/pw"
    fi
    PG_PORT=$(freeport)
    taskset -c 1 "${AS_PG[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -c listen_addresses=127.0.0.1 \
        -c port="$PG_PORT" -c unix_socket_directories="$PG_DIR" -c fsync=on \
        -c synchronous_commit=on -c full_page_writes=on -c max_connections=100 \
        -c shared_buffers=256MB >>"$WORK/postgres.log" 2>&1 &
    PIDS+=($!)
    PG_PID=$!
    wait_for postgresql 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1
}
pg_sql() { PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U catalogd "$@"; }
# pg_stop: SIGINT (fast shutdown) to the postmaster itself; as root PG_PID is runuser, which
# would turn a signal into SIGTERM (smart shutdown) and SIGKILL 2 s later.
pg_stop() {
    local pm i
    [ -n "$PG_PID" ] || return 0
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
    if [ -n "$pm" ] && alive "$pm" && { [ "$pm" = "$PG_PID" ] ||
        [ "$(sed 's/.*) //' "/proc/$pm/stat" 2>/dev/null | cut -d' ' -f2)" = "$PG_PID" ]; }; then
        kill -INT "$pm" 2>/dev/null
        for ((i = 0; i < 600; i++)); do alive "$pm" || break; sleep 0.1; done
    fi
    stop_pid "$PG_PID"
    PG_PID=""
}

declare -A PG_INSTANCE_PID PG_INSTANCE_URL
# start_pg_catalogd NAME: a fresh database, one Redis and two catalogd instances on both (the
# system NAME; its CPU is theirs and PostgreSQL's). wrk names the first instance in Host, so
# both allow 127.0.0.1 on any port.
start_pg_catalogd() {
    local i port uri
    pg_sql -d postgres -c "DROP DATABASE IF EXISTS catalogd" -c "CREATE DATABASE catalogd" ||
        die "could not create the benchmark's database"
    uri="postgresql://catalogd:$PG_PASSWORD@127.0.0.1:$PG_PORT/catalogd"
    start_redis "$1"
    for i in 1 2; do
        port=$(freeport)
        CATALOGD_DB=$uri taskset -c 1 "$REPO/build/catalogd" serve --listen "127.0.0.1:$port" \
            --redis "redis://127.0.0.1:${REDIS_PORT[$1]}/0" --instance-id "$1-$i" \
            --allowed-host 127.0.0.1 --threads 1 --log-level warn 2>>"$WORK/$1-$i.log" &
        PIDS+=($!)
        PG_INSTANCE_PID[$i]=$!
        PG_INSTANCE_URL[$i]=http://127.0.0.1:$port
    done
    for i in 1 2; do wait_for "catalogd ($1-$i)" 60 http_ok "${PG_INSTANCE_URL[$i]}/ready"; done
    SRV[$1]="${PG_INSTANCE_PID[1]} ${PG_INSTANCE_PID[2]} $PG_PID"
    URL[$1]=${PG_INSTANCE_URL[1]}
    PG_ADDRS="${PG_INSTANCE_URL[1]#http://} ${PG_INSTANCE_URL[2]#http://}"
}

# measure_pgbench: pgbench -N (per transaction: one UPDATE of pgbench_accounts, one INSERT
# into pgbench_history) with PGBENCH_CLIENTS clients, one pgbench thread on CPU0, against the
# same server: what PostgreSQL does with one small write transaction per commit here.
measure_pgbench() {
    local logf=$WORK/pgbench-r$REP.log txlog=$WORK/pgbench-tx-r$REP
    pg_sql -d postgres -c "DROP DATABASE IF EXISTS pgbench" -c "CREATE DATABASE pgbench" ||
        die "could not create the pgbench database"
    PGPASSWORD=$PG_PASSWORD timeout 600 taskset -c 0 "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" \
        -U catalogd -i -q -s "$PGBENCH_SCALE" pgbench >"$logf.init" 2>&1 ||
        die "pgbench -i failed: $logf.init"
    PGB() { PGPASSWORD=$PG_PASSWORD timeout $(($1 + 60)) taskset -c 0 "$PG_BIN/pgbench" -h 127.0.0.1 \
        -p "$PG_PORT" -U catalogd -N -c "$PGBENCH_CLIENTS" -j 1 -T "$1" "${@:2}" pgbench; }
    SRV[pgbench]=$PG_PID
    wait_quiet
    if [ "$WARMUP" -gt 0 ]; then PGB "$WARMUP" >"$logf.warmup" 2>&1 || log "    warm-up pgbench failed"; fi
    snapshot pgbench "$logf.before"
    PGB "$DURATION" -l --log-prefix="$txlog" >"$logf" 2>&1 || log "    pgbench exited $?, see $logf"
    snapshot pgbench "$logf.after"
    "$PY" "$HERE/tool.py" pgbench_result "$logf" "$txlog".* >>"$logf"
    "$PY" "$HERE/tool.py" record --out "$WORK/results.jsonl" --wrk-log "$logf" \
        --before "$logf.before" --after "$logf.after" --clk "$CLK" type=run rep="$REP" system=pgbench \
        scenario=pgbench conns="$PGBENCH_CLIENTS" duration_s="$DURATION" products=0
    rm -f "$txlog".*
    unset "SRV[pgbench]"
}

# pg_create NAME CONNS: scenario 3 through both instances from CONNS connections, and the
# batch sizes of their writers (summed) during it, as phase pg-create (pg-create-c64 for
# pg-c64, as the SQLite phases are named).
pg_create() {
    local before after urls=("${PG_INSTANCE_URL[1]}" "${PG_INSTANCE_URL[2]}")
    before=$("$PY" "$HERE/tool.py" batches "${urls[@]}")
    CONNS=$2 measure "$1" create post.lua UNIQUE
    after=$("$PY" "$HERE/tool.py" batches "${urls[@]}")
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=batches rep="$REP" \
        phase="pg-create${1#pg}" before="$before" after="$after"
}

# pg_takeover NAME: kill -9 the instance that projects, time the takeover from the other one.
pg_takeover() {
    local projecting killed survivor out
    projecting=$(curl -s --max-time 5 "${PG_INSTANCE_URL[1]}/admin/projection" |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("projecting_instance") or "")' 2>/dev/null)
    case $projecting in
    "$1-1") killed=1 survivor=2 ;;
    "$1-2") killed=2 survivor=1 ;;
    *) log "    takeover: /admin/projection names no projecting instance of ours ('$projecting'): skipped"
       "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=takeover rep="$REP" \
           result="{\"error\": \"no projecting_instance in /admin/projection\"}"
       return 0 ;;
    esac
    out=$("$PY" "$HERE/tool.py" takeover --survivor "${PG_INSTANCE_URL[$survivor]}" \
        --kill-pid "${PG_INSTANCE_PID[$killed]}" --killed-id "$projecting" --deadline 15)
    stop_pid "${PG_INSTANCE_PID[$killed]}" # reaps it (already killed)
    log "    takeover after kill -9 of $projecting: $out"
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=takeover rep="$REP" result="$out"
}

# ---------------------------------------------------------------- measuring
snapshot() { # SYSTEM FILE: CPU ticks of the server tree, its Redis, everyone else; /proc/stat
    "$PY" "$HERE/tool.py" snap --srv "${SRV[$1]}" --redis "${REDIS_PID[$1]:-}" >"$2"
}
idle_pct() { # lowest idle % of CPU0 and CPU1 over one second
    local a b
    a=$(awk '$1=="cpu0"||$1=="cpu1"{print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 1
    b=$(awk '$1=="cpu0"||$1=="cpu1"{print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    paste <(echo "$a") <(echo "$b") | awk '{ t = $4-$2; i = t > 0 ? 100*($3-$1)/t : 100
        if (NR == 1 || i < m) m = i } END { printf "%d", m }'
}
wait_quiet() { # up to QUIET_WAIT s for both CPUs to be >= 80 % idle (others share this box)
    local i
    for ((i = 0; i < QUIET_WAIT; i++)); do [ "$(idle_pct)" -ge 80 ] && return 0; done
    log "    (machine still busy after ${QUIET_WAIT}s; measuring anyway; see "others")"
}

# WRK CONNS SECONDS ARGS...: wrk on CPU0 (WRK_CPU=1: on CPU1; WRK_CPU=any: not pinned),
# WRK_THREADS threads (1)
WRK() {
    local pin=(taskset -c "${WRK_CPU:-0}")
    [ "${WRK_CPU:-0}" = any ] && pin=()
    timeout $(($2 + 60)) "${pin[@]}" wrk -t"${WRK_THREADS:-1}" -c"$1" -d"$2s" --timeout 10s "${@:3}"
}

UC=0
# measure SYSTEM SCENARIO LUA ARGS...: warm-up run, then the measured run; an argument
# "UNIQUE" becomes a SKU prefix that differs between the two runs (and from any other run).
measure() {
    local sys=$1 scen=$2 lua=$3 a
    shift 3
    local wargs=() margs=() logf=$WORK/wrk-r$REP-$sys-$scen.log
    for a in "$@"; do
        if [ "$a" = UNIQUE ]; then
            UC=$((UC + 1))
            wargs+=("W${RUN_ID}r${REP}n$UC") margs+=("M${RUN_ID}r${REP}n$UC")
        else
            wargs+=("$a") margs+=("$a")
        fi
    done
    wait_quiet
    if [ "$WARMUP" -gt 0 ]; then
        WRK "$CONNS" "$WARMUP" -s "$HERE/lua/$lua" "${URL[$sys]}" -- "${wargs[@]}" \
            >"$logf.warmup" 2>&1 || log "    warm-up wrk failed ($?), see $logf.warmup"
    fi
    # GETs by id: how many the view cache answered (catalogd's /metrics; others have none)
    local cache=() cache0="" h0 m0 h1 m1
    [ "$lua" = get_id.lua ] && cache0=$("$PY" "$HERE/tool.py" view_cache "${URL[$sys]}")
    snapshot "$sys" "$logf.before"
    WRK "$CONNS" "$DURATION" --latency -s "$HERE/lua/$lua" "${URL[$sys]}" -- "${margs[@]}" \
        >"$logf" 2>&1 || log "    wrk exited $? ($sys $scen), see $logf"
    snapshot "$sys" "$logf.after"
    if [ -n "$cache0" ]; then
        read -r h1 m1 <<<"$("$PY" "$HERE/tool.py" view_cache "${URL[$sys]}")"
        read -r h0 m0 <<<"$cache0"
        cache=(view_cache_hits=$((h1 - h0)) view_cache_misses=$((m1 - m0)))
    fi
    "$PY" "$HERE/tool.py" record --out "$WORK/results.jsonl" --wrk-log "$logf" \
        --before "$logf.before" --after "$logf.after" --clk "$CLK" type=run rep="$REP" system="$sys" \
        scenario="$scen" conns="$CONNS" duration_s="$DURATION" products="${PRODUCTS[$sys]:-0}" \
        "${cache[@]}"
    if [ "$PROFILE" = 1 ] && [ "$REP" = "$REPS" ] && { [ "$sys" = catalogd ] || [ "$sys" = big ]; }; then
        profile "$sys" "$scen" "$lua" "$@"
    fi
}

# measure_h2 SYSTEM IDS_FILE: GET /products/{id} over HTTP/2 with h2load (-c CONNS, one
# thread, H2_STREAMS streams in flight per connection), a warm-up run then the measured run. h2load
# takes the ids in turn rather than at random; its per-request log (--log-file) gives the
# latency percentiles, turned into the RESULT line the wrk scripts print.
measure_h2() {
    local sys=$1 logf=$WORK/h2load-r$REP-$1.log uris=$WORK/uris-$1.txt
    sed "s|^|${URL[$sys]}/products/|" "$2" >"$uris"
    H2LOAD() { timeout $(($1 + 60)) taskset -c 0 h2load -t1 -c"$CONNS" -m"$H2_STREAMS" -D"$1" -i "$uris" "${@:2}"; }
    wait_quiet
    if [ "$WARMUP" -gt 0 ]; then
        H2LOAD "$WARMUP" >"$logf.warmup" 2>&1 || log "    warm-up h2load failed ($?), see $logf.warmup"
    fi
    snapshot "$sys" "$logf.before"
    H2LOAD "$DURATION" --log-file="$logf.requests" >"$logf" 2>&1 || log "    h2load exited $? ($sys), see $logf"
    snapshot "$sys" "$logf.after"
    "$PY" "$HERE/tool.py" h2load_result "$logf" "$logf.requests" >>"$logf"
    "$PY" "$HERE/tool.py" record --out "$WORK/results.jsonl" --wrk-log "$logf" \
        --before "$logf.before" --after "$logf.after" --clk "$CLK" type=run rep="$REP" system="$sys" \
        scenario=get_by_id conns="$CONNS" streams="$H2_STREAMS" duration_s="$DURATION" \
        products="${PRODUCTS[$sys]:-0}"
}

# profile SYSTEM SCENARIO LUA ARGS...: the scenario once more (not measured; ARGS as measure
# takes them) while perf samples CPU1, where the server and its Redis run (the kernel's share
# is mostly loopback TCP); what perf reports, by process + library and by function ->
# $RESULTS/perf.*.{dso,sym}.txt
profile() {
    local sys=$1 scen=$2 lua=$3 a args=() data=$WORK/perf-$1-$2.data
    shift 3
    for a in "$@"; do # "UNIQUE": a SKU prefix of its own, as in measure
        if [ "$a" = UNIQUE ]; then UC=$((UC + 1)) && args+=("Q${RUN_ID}r${REP}n$UC"); else args+=("$a"); fi
    done
    WRK "$CONNS" $((DURATION + 2)) -s "$HERE/lua/$lua" "${URL[$sys]}" -- "${args[@]}" \
        >"$WORK/wrk-profile-$sys-$scen.log" 2>&1 &
    local wrk_pid=$!
    sleep 1
    timeout $((DURATION + 30)) perf record -q -C 1 -o "$data" -- sleep "$DURATION" \
        >/dev/null 2>&1 || log "    perf record failed ($sys $scen)"
    wait "$wrk_pid" || true
    [ -s "$data" ] || return 0
    (perf report -i "$data" --stdio --sort comm,dso --percent-limit 0.5 2>/dev/null || true) |
        sed -e "s|$REPO/||g" -e "s|$WORK/||g" >"$RESULTS/perf.$sys.$scen.dso.txt"
    (perf report -i "$data" --stdio --sort comm,dso,sym --percent-limit 0.4 2>/dev/null || true) |
        sed -e "s|$REPO/||g" -e "s|$WORK/||g" >"$RESULTS/perf.$sys.$scen.sym.txt"
    rm -f "$data"
}

redis_used() { redis-cli -p "${REDIS_PORT[$1]}" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }
product_count() { # catalogd: X-Total-Count of the catalog; seed: LLEN catalog
    if [ "$2" = seed ]; then
        redis-cli -p "${REDIS_PORT[$1]}" llen catalog
    else
        curl -s -D - -o /dev/null --max-time 10 "${URL[$1]}/catalog?limit=1" |
            tr -d '\r' | awk -F': ' 'tolower($1)=="x-total-count"{print $2}'
    fi
}
mem_record() { # SYSTEM KIND PHASE: catalogd/seed peak RSS and Redis memory per product
    local sys=$1 kind=$2 phase=$3 pid=${SRV[$1]}
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=mem system="$sys" phase="$phase" \
        rep="$REP" products="$(product_count "$sys" "$kind")" redis_used_memory="$(redis_used "$sys")" \
        vmhwm_kib="$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")" \
        vmrss_kib="$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")"
}

redis_bytes() { # SYSTEM: Redis's memory by key kind (MEMORY USAGE of every key), products
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=redis_bytes system="$1" \
        products="${PRODUCTS[$1]}" redis_used_memory="$(redis_used "$1")" \
        kinds="$("$PY" "$HERE/tool.py" redis_bytes "${REDIS_PORT[$1]}")"
}

# preload SYSTEM COUNT CONNS DEADLINE: creates products with unique SKUs until SYSTEM has
# COUNT (wrk + preload.lua, ends itself after the last answer): all of them on a fresh system,
# the difference when called again (BIG grows its catalogd in steps); ids appended to
# $WORK/ids-SYSTEM.txt; records the rate of this call.
preload() {
    local sys=$1 n=$2 conns=$3 deadline=$4 ids=$WORK/ids-$1.txt have=${PRODUCTS[$1]:-0}
    local want=$(($2 - have)) prefix=P${RUN_ID}r${REP}$1 t0 t1 got
    local logf=$WORK/preload-$1-r$REP-$2.log
    if [ "$have" = 0 ]; then : >"$ids"; else prefix=${prefix}g$have; fi
    [ "$want" -gt 0 ] || return 0
    t0=$(date +%s.%N)
    WRK "$conns" "$deadline" --timeout 30s -s "$HERE/lua/preload.lua" "${URL[$sys]}" -- \
        "$want" "$prefix" "$ids.step" >"$logf" 2>&1 || true
    t1=$(date +%s.%N)
    got=$(wc -l <"$ids.step")
    cat "$ids.step" >>"$ids"
    rm -f "$ids.step"
    local rate failed
    rate=$(awk -v n="$got" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
    failed=$(sed -n 's/^PRELOAD .*"failed":\([0-9]*\).*/\1/p' "$logf")
    log "    preload $sys: $got/$want products in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s = $rate/s (wrk -c$conns, one POST per product; ${failed:-?} failed and were replaced)$([ "$have" = 0 ] || echo "; $have -> $n products")"
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=preload system="$sys" rep="$REP" \
        requested="$want" created="$got" seconds="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" \
        rate="$rate" conns="$conns" failed="${failed:-null}" products_after="$n"
    [ "$got" -eq "$want" ] || die "preload of $sys created $got of $want products; see $logf"
    PRODUCTS[$sys]=$n
}

# page SYSTEM [AS]: follow the Link headers through the catalog; cursors ->
# $WORK/cursors-SYSTEM.txt; recorded as system AS (SYSTEM)
page() {
    local sys=$1 out
    out=$(taskset -c 0 timeout 1200 "$PY" "$HERE/tool.py" page "${URL[$sys]}" \
        "$WORK/cursors-$sys.txt" --limit "$PAGE_LIMIT" --deadline 1100) || die "paging $sys failed"
    log "    paged $sys: $out"
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=paging system="${2:-$sys}" \
        rep="$REP" summary="$out"
    [ "$(echo "$out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(int(d["complete"] and d["items"] == d["total_count"]))')" = 1 ] ||
        die "paging $sys did not see the whole catalog: $out"
}

# hot_products SYSTEM: HOT products with stock HOT_STOCK for the contention scenario, ids ->
# $WORK/hot-SYSTEM.txt; prints why the stock scenario cannot run there (nothing if it can).
hot_products() {
    local sys=$1 hot=$WORK/hot-$1.txt i code
    : >"$hot"
    for ((i = 1; i <= HOT; i++)); do
        curl -s --max-time 10 -H 'Content-Type: application/json' "${URL[$sys]}/products" \
            -d "{\"sku\":\"HOT-$RUN_ID-$REP-$i\",\"name\":\"Hot product $i\",\"price\":1.00,\"stock\":$HOT_STOCK}" |
            grep -o '^{"id":"[^"]*"' | cut -d'"' -f4 >>"$hot" || true
    done
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
        "${URL[$sys]}/products/$(head -1 "$WORK/ids-$sys.txt")/stock" -d '{"delta":1}')
    if [ "$code" = 404 ] || [ "$code" = 405 ]; then
        echo "POST /products/{id}/stock answered $code: the route is not in this build; scenario skipped"
    elif [ "$(grep -c . "$hot")" -ne "$HOT" ] || [ "${code:0:1}" != 2 ]; then
        echo "stock scenario skipped: could not set up $HOT hot products (stock probe answered $code)"
    fi
}

# stock_check SYSTEM: once the projection has caught up, the hot products' stock in the views
stock_check() {
    wait_until 15 sh -c "curl -s --max-time 2 '${URL[$1]}/ready' | grep -q '\"lag_events\":0'" ||
        log "    (projection lag not 0 after 15 s; reading the views anyway)"
    taskset -c 0 "$PY" "$HERE/tool.py" stock "${URL[$1]}" "$WORK/hot-$1.txt"
}

# measure_growth SIZE: the big catalogd, now at SIZE products: scenarios 1 (random of the ids
# preloaded so far) and 2 (random cursor of a paging at this size), REPS runs each, taking
# turns; recorded as the system "growth" with products=SIZE, apart from the big row.
measure_growth() {
    local s
    alias_system growth big "$1"
    for ((REP = 1; REP <= REPS; REP++)); do
        for s in $(rotate get_by_id catalog_page); do
            if [ "$s" = get_by_id ]; then
                measure growth get_by_id get_id.lua "$WORK/ids-big.txt"
            else
                measure growth catalog_page catalog.lua "$WORK/cursors-big.txt" "$PAGE_LIMIT"
            fi
        done
    done
    REP=0
    unalias_system growth
}

# measure_window SIZE: the big catalogd at its largest size, read only within the products of
# the first growth step (the first WINDOW ids, the pages that cover them): the same sorted sets,
# as deep as at SIZE, but a working set as small as the first step's. What this costs against
# the whole catalog's reads is what the catalog's size costs in the CPU's caches, not in the
# structure. Recorded as the system "growth-window" with products=SIZE (the report takes the
# window from GROWTH_SIZES).
measure_window() {
    local s window=${GROWTH_SIZES%%,*}
    head -n "$window" "$WORK/ids-big.txt" >"$WORK/ids-window.txt"
    head -n $((window / PAGE_LIMIT)) "$WORK/cursors-big.txt" >"$WORK/cursors-window.txt"
    alias_system growth-window big "$1"
    for ((REP = 1; REP <= REPS; REP++)); do
        for s in $(rotate get_by_id catalog_page); do
            if [ "$s" = get_by_id ]; then
                measure growth-window get_by_id get_id.lua "$WORK/ids-window.txt"
            else
                measure growth-window catalog_page catalog.lua "$WORK/cursors-window.txt" "$PAGE_LIMIT"
            fi
        done
    done
    REP=0
    unalias_system growth-window
}

rotate() { # the arguments, rotated left by REP-1: who goes first changes every repetition
    local k=$(((REP - 1) % $#))
    echo "${@:k+1}" "${@:1:k}"
}

# ---------------------------------------------------------------- 1. packages and builds
cd "$REPO"
case " $* " in *" -h "* | *" --help "*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
log "== catalogd benchmark: REPS=$REPS DURATION=${DURATION}s WARMUP=${WARMUP}s N=$N CONNS=$CONNS BIG=$BIG (work dir $WORK)"
debs="wrk redis-server curl valgrind python3-redis python3-matplotlib"
[ "${PROFILE:-1}" = 1 ] && debs="$debs linux-perf"
command -v nginx >/dev/null || debs="$debs nginx-light"
[ "$WITH_HTTPS" = 1 ] && debs="$debs nghttp2-client openssl"
[ "$WITH_PG" = 1 ] && debs="$debs postgresql"
# The seed's FastAPI rebuild lives beside the repository (../shared/peers); a clone without it
# still measures everything else.
if [ "$WITH_SEED" = 1 ] && [ ! -r "$SEED_DIR/main.py" ]; then
    log "note: no seed app at $SEED_DIR: measuring without it (WITH_SEED=0; SEED_DIR=... to give one)"
    WITH_SEED=0
fi
[ "$WITH_SEED" = 1 ] && debs="$debs python3-fastapi python3-uvicorn python3-uvloop python3-httptools"
# shellcheck disable=SC2086
"$REPO/scripts/ensure-debs.sh" $debs || die "missing packages (see above)"
make -C "$REPO" --no-print-directory deps >/dev/null || die "make deps failed (see above)"
make -C "$REPO" --no-print-directory all >/dev/null || die "make all failed"
SEED_DIR=$(cd "$SEED_DIR" 2>/dev/null && pwd || echo "$SEED_DIR")
PG_NOTE=""
if [ "$WITH_PG" = 1 ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$PG_BIN/pgbench" ] || die "postgresql is installed but has no pgbench in $PG_BIN"
    if ! "$REPO/build/catalogd" --help 2>&1 | grep -q -- '--instance-id'; then
        PG_NOTE="this catalogd has no PostgreSQL store (no --instance-id in --help): the PostgreSQL column has only its pgbench row"
        log "note: $PG_NOTE"
    fi
fi
: >"$WORK/results.jsonl"
rm -f "$RESULTS"/perf.*.txt # this run's profiles only
log "Pinning: every server and its Redis on CPU1 (taskset -c 1); wrk -t1 and helpers on CPU0 (taskset -c 0)."

# ---------------------------------------------------------------- 2. callgrind
if [ "$CALLGRIND" = 1 ]; then
    log "== callgrind: instructions per iteration of the pure hot paths (N=$CG_N)"
    cc -O2 -g -D_GNU_SOURCE -I"$REPO/src" "$HERE/hotpaths.c" "$REPO"/src/domain/*.c -ljansson -lm \
        -o "$WORK/hotpaths" || die "building bench/hotpaths.c failed"
    for mode in create encode cursor; do
        "$WORK/hotpaths" "$mode" 10 >/dev/null || die "hotpaths $mode failed"
        (cd "$WORK" && timeout 600 valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$mode" \
            --toggle-collect="hot_$mode" "$WORK/hotpaths" "$mode" "$CG_N" >/dev/null 2>"$WORK/callgrind.$mode.log") ||
            die "callgrind $mode failed: $WORK/callgrind.$mode.log"
        ir=$(awk '$1 == "totals:" {print $2}' "$WORK/callgrind.$mode")
        log "    $mode: $ir Ir / $CG_N = $(awk -v i="$ir" -v n="$CG_N" 'BEGIN{printf "%.0f", i/n}') instructions per iteration"
        "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=callgrind mode="$mode" \
            iterations="$CG_N" ir="$ir"
        # the functions where the instructions go, for BENCHMARKS.md
        # Paths relative to the repository: no machine paths in the results we commit.
        callgrind_annotate "$WORK/callgrind.$mode" 2>/dev/null |
            sed -e "s|$REPO/||g" -e "s|$WORK/||g" >"$RESULTS/callgrind.$mode.txt" || true
    done
fi

# What one dependent memory load costs here, by working-set size, on the CPU Redis runs on:
# the bound under a page of a catalog whose views outgrow the CPU's caches (bench/memlat.c).
cc -O2 "$HERE/memlat.c" -o "$WORK/memlat" || die "building bench/memlat.c failed"
wait_quiet
timeout 120 taskset -c 1 "$WORK/memlat" >>"$WORK/results.jsonl" || die "bench/memlat.c failed"
log "== memory latency (ns per dependent load, by working set): $(tail -n 1 "$WORK/results.jsonl")"
# What one fdatasync of a small append costs on the disk the databases live on: what every
# batch of commands waits for before it is acknowledged.
fsync=$("$PY" "$HERE/tool.py" fsync_latency "$WORK") || die "measuring fsync latency failed"
"$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=fsync_latency summary="$fsync"
log "== fsync latency (16 KiB appended, fdatasync): $fsync"

# ---------------------------------------------------------------- 3. load
if [ "$WITH_NGINX" = 1 ]; then start_nginx nginx; fi
if [ "$BIG" = 1 ]; then
    REP=0
    log "== BIG: catalogd with $BIG_N products (preloaded once, read-only afterwards)"
    start_catalogd big
    steps=$BIG_N
    if [ "$WITH_GROWTH" = 1 ]; then
        # the growth curve: the same preload in steps, scenarios 1 and 2 measured at each
        prev=0
        for size in ${GROWTH_SIZES//,/ }; do
            [[ "$size" =~ ^[0-9]+$ ]] && [ "$size" -gt "$prev" ] && [ "$size" -le "$BIG_N" ] ||
                die "GROWTH_SIZES must ascend and stay <= BIG_N ($BIG_N): '$GROWTH_SIZES'"
            prev=$size
        done
        [ "$prev" = "$BIG_N" ] || die "GROWTH_SIZES must end at BIG_N ($BIG_N): '$GROWTH_SIZES'"
        steps=${GROWTH_SIZES//,/ }
        log "   grown in steps ($GROWTH_SIZES), GET by id and catalog pages measured $REPS times at each"
    fi
    for size in $steps; do
        preload big "$size" "$BIG_PRELOAD_CONNS" 3600
        if [ "$size" = "$BIG_N" ]; then page big; else page big growth; fi
        if [ "$WITH_GROWTH" = 1 ]; then
            t_step=$SECONDS
            measure_growth "$size"
            if [ "$size" = "$BIG_N" ] && [ "$size" != "${GROWTH_SIZES%%,*}" ]; then
                measure_window "$size"
            fi
            log "    growth at $size products: measured in $((SECONDS - t_step)) s"
        fi
    done
    mem_record big catalogd preload
    redis_bytes big
fi

STOCK_NOTE=""
for ((REP = 1; REP <= REPS; REP++)); do
    log "== repetition $REP/$REPS"
    start_catalogd catalogd
    preload catalogd "$N" "$PRELOAD_CONNS" $((120 + N / 100))
    page catalogd
    mem_record catalogd catalogd preload
    if [ "$REP" = 1 ]; then redis_bytes catalogd; fi
    "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=batches rep="$REP" phase=preload \
        before="{}" after="$("$PY" "$HERE/tool.py" batches "${URL[catalogd]}")"
    if [ "$WITH_SEED" = 1 ]; then
        start_seed seed
        preload seed "$N" "$SEED_PRELOAD_CONNS" $((120 + N / 20))
        mem_record seed seed preload
    fi
    if [ "$WITH_NGINX" = 1 ]; then
        cp "$WORK/ids-catalogd.txt" "$WORK/ids-nginx.txt"
        PRODUCTS[nginx]=0
        # nginx serving this repetition's views, as catalogd answers them, from memory
        "$PY" "$HERE/tool.py" views_map "${URL[catalogd]}" "$WORK/ids-catalogd.txt" \
            "$WORK/views-r$REP.map" || die "fetching catalogd's views for nginx failed"
        start_nginx nginx-views "$WORK/views-r$REP.map"
        cp "$WORK/ids-catalogd.txt" "$WORK/ids-nginx-views.txt"
        PRODUCTS[nginx-views]=0
    fi

    # 4 hot products for the contention scenario; is the route there?
    STOCK_NOTE=$(hot_products catalogd)

    sys1="catalogd"
    [ "$WITH_SEED" = 1 ] && sys1="$sys1 seed"
    [ "$WITH_NGINX" = 1 ] && sys1="$sys1 nginx nginx-views"
    # each system reads its own preloaded ids (the seed's are uuid4 strings; nginx gets
    # catalogd's, to request the same paths)
    for s in $(rotate $sys1); do measure "$s" get_by_id get_id.lua "$WORK/ids-$s.txt"; done
    if [ "$WITH_NGINX" = 1 ]; then stop_system nginx-views; fi
    if [ "$WITH_NGINX" = 1 ] && [ "$NGINX_SAME_CORE" = 1 ]; then
        # the same nginx with wrk on its core (CPU1): what waking the other core costs here
        alias_system nginx-same-core nginx
        WRK_CPU=1 measure nginx-same-core get_by_id get_id.lua "$WORK/ids-nginx.txt"
        unalias_system nginx-same-core
    fi
    if [ "$WITH_NGINX" = 1 ]; then
        # catalogd answering a fixed body itself (GET /health: no Redis, no store), pinned as
        # the GET: its HTTP layer beside nginx's, so that what a GET costs beyond nginx splits
        # into that and the hop to Redis
        alias_system catalogd-fixed catalogd 0
        measure catalogd-fixed get_by_id fixed.lua /health
        unalias_system catalogd-fixed
    fi
    for s in $(rotate catalogd $([ "$BIG" = 1 ] && echo big)); do
        measure "$s" catalog_page catalog.lua "$WORK/cursors-$s.txt" "$PAGE_LIMIT"
    done
    if [ -z "$STOCK_NOTE" ]; then
        measure catalogd stock stock.lua "$WORK/hot-catalogd.txt" "$STOCK_DOWN_PCT"
        check=$(stock_check catalogd)
        log "    stock after the run: $check"
        "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=stock_check rep="$REP" \
            initial="$HOT_STOCK" result="$check"
    else
        log "    $STOCK_NOTE"
    fi
    batches_before=$("$PY" "$HERE/tool.py" batches "${URL[catalogd]}")
    for s in $(rotate catalogd $([ "$WITH_SEED" = 1 ] && echo seed)); do measure "$s" create post.lua UNIQUE; done
    if [ "$batches_before" != "{}" ]; then # the writer's batch sizes during scenario 3
        "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=batches rep="$REP" \
            phase=create before="$batches_before" after="$("$PY" "$HERE/tool.py" batches "${URL[catalogd]}")"
    fi
    if [ "$WITH_MORE_CONNS" = 1 ] && [ "$batches_before" != "{}" ]; then
        # scenario 3 from more clients, on the same catalogd: batches as full as they allow
        for c in 64 128; do
            s=catalogd-c$c
            alias_system "$s" catalogd
            batches_before=$("$PY" "$HERE/tool.py" batches "${URL[catalogd]}")
            CONNS=$c measure "$s" create post.lua UNIQUE
            "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=batches rep="$REP" \
                phase="create-c$c" before="$batches_before" after="$("$PY" "$HERE/tool.py" batches "${URL[catalogd]}")"
            unalias_system "$s"
        done
    fi
    if [ "$WITH_KEYED" = 1 ]; then
        # scenario 3 with an Idempotency-Key on every create, on the same catalogd: each
        # command's answer is stored for a replay, in the command's transaction
        s=catalogd-keyed
        alias_system "$s" catalogd
        measure "$s" create post_keyed.lua UNIQUE
        unalias_system "$s"
    fi
    measure catalogd mixed mixed.lua "$WORK/ids-catalogd.txt" UNIQUE "$WRITE_PCT"

    if [ "$WITH_HTTPS" = 1 ]; then # the same GET by id over TLS: HTTP/1.1 (wrk) and h2 (h2load)
        start_catalogd_https https
        preload https "$N" "$PRELOAD_CONNS" $((120 + N / 100))
        alias_system h2 https
        measure https get_by_id get_id.lua "$WORK/ids-https.txt"
        measure_h2 h2 "$WORK/ids-https.txt"
        unalias_system h2
        stop_system https
    fi

    mem_record catalogd catalogd end
    stop_system catalogd
    if [ "$WITH_SEED" = 1 ]; then
        mem_record seed seed end
        stop_system seed
    fi

    if [ "$WITH_PG" = 1 ]; then # the PostgreSQL column, after the others have stopped
        log "  PostgreSQL: two catalogd instances on one PostgreSQL and one Redis"
        pg_start
        if [ -z "$PG_NOTE" ]; then
            start_pg_catalogd pg
            preload pg "$N" "$PRELOAD_CONNS" $((120 + N / 100))
            export BENCH_ADDRS=$PG_ADDRS WRK_THREADS=2 # one wrk thread per instance
            measure pg get_by_id get_id.lua "$WORK/ids-pg.txt"
            pg_create pg "$CONNS"
            if [ "$WITH_MORE_CONNS" = 1 ]; then # as for SQLite: batches as full as they allow
                for c in 64 128; do
                    alias_system "pg-c$c" pg
                    pg_create "pg-c$c" "$c"
                    unalias_system "pg-c$c"
                done
            fi
            unset BENCH_ADDRS WRK_THREADS
            pg_takeover pg
            stop_pid "${PG_INSTANCE_PID[1]}"
            stop_pid "${PG_INSTANCE_PID[2]}"
            unset "SRV[pg]"
            stop_pid "${REDIS_PID[pg]}"
            unset "REDIS_PID[pg]"
        fi
        measure_pgbench
        pg_stop
    fi
done

if [ "$WITH_TWO_CORES" = 1 ]; then # the same scenarios once more with both cores, nothing pinned
    REP=0 t_two=$SECONDS
    log "== both cores: catalogd --threads 2, its Redis$([ "$WITH_NGINX" = 1 ] && echo ", nginx with 2 workers") and wrk -t2, none pinned"
    PIN=() SERVE_THREADS=2 NGINX_WORKERS=2
    start_catalogd two-cores
    if [ "$WITH_NGINX" = 1 ]; then start_nginx nginx-two-cores; PRODUCTS[nginx-two-cores]=0; fi
    PIN=(taskset -c 1) SERVE_THREADS=1 NGINX_WORKERS=1
    preload two-cores "$N" "$PRELOAD_CONNS" $((120 + N / 100))
    page two-cores
    two_cores_stock_note=$(hot_products two-cores)
    export WRK_THREADS=2 WRK_CPU=any
    measure two-cores get_by_id get_id.lua "$WORK/ids-two-cores.txt"
    if [ "$WITH_NGINX" = 1 ]; then measure nginx-two-cores get_by_id get_id.lua "$WORK/ids-two-cores.txt"; fi
    measure two-cores catalog_page catalog.lua "$WORK/cursors-two-cores.txt" "$PAGE_LIMIT"
    measure two-cores create post.lua UNIQUE
    if [ -z "$two_cores_stock_note" ]; then
        measure two-cores stock stock.lua "$WORK/hot-two-cores.txt" "$STOCK_DOWN_PCT"
        check=$(stock_check two-cores)
        log "    stock after the run: $check"
        "$PY" "$HERE/tool.py" append --out "$WORK/results.jsonl" type=two_cores_stock_check \
            initial="$HOT_STOCK" result="$check"
    else
        log "    $two_cores_stock_note"
    fi
    measure two-cores mixed mixed.lua "$WORK/ids-two-cores.txt" UNIQUE "$WRITE_PCT"
    unset WRK_THREADS WRK_CPU
    if [ "$WITH_NGINX" = 1 ]; then stop_system nginx-two-cores; fi
    stop_system two-cores
    log "    both cores: $((SECONDS - t_two)) s"
fi
if [ "$BIG" = 1 ]; then mem_record big catalogd end; fi

# ---------------------------------------------------------------- 4. report
cp "$WORK/results.jsonl" "$RESULTS/raw.jsonl"
CMD="make bench"
[ -z "${MAKELEVEL:-}" ] && CMD="bench/run.sh"
env_used=""
for v in REPS DURATION WARMUP N CONNS BIG BIG_N PAGE_LIMIT HOT HOT_STOCK STOCK_DOWN_PCT WRITE_PCT \
    PRELOAD_CONNS SEED_PRELOAD_CONNS WITH_SEED WITH_NGINX WITH_HTTPS H2_STREAMS NGINX_SAME_CORE \
    WITH_PG PGBENCH_CLIENTS PGBENCH_SCALE WITH_GROWTH GROWTH_SIZES WITH_TWO_CORES WITH_MORE_CONNS \
    WITH_KEYED CALLGRIND CG_N \
    QUIET_WAIT PROFILE; do
    env_used="$env_used $v=${!v}"
done
PG_NOTE=$PG_NOTE STOCK_NOTE=$STOCK_NOTE BENCH_CMD="$CMD" BENCH_ENV="${env_used# }" NGINX_BODY_LEN=${#NGINX_BODY} \
    "$PY" "$HERE/report.py" "$RESULTS/raw.jsonl" "$RESULTS" "$REPO/BENCHMARKS.md"

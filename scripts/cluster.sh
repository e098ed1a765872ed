#!/usr/bin/env bash
# cluster.sh BINARY - what `make cluster` does after building: the scaled shape on this machine.
#
#   a private PostgreSQL   initdb'd once into $CLUSTER_VAR/pg, 127.0.0.1:$CLUSTER_PG_PORT
#   a private Redis        on a unix socket under $CLUSTER_VAR
#   three catalogd         127.0.0.1:$CLUSTER_INSTANCE_PORTS, the same --db and --redis,
#                          --instance-id catalogd-1..3
#   nginx                  contrib/nginx/catalogd.conf (ports and log path rewritten) on
#                          http://localhost:$CLUSTER_PORT, balancing the three
#
# Each part is started only once the previous one answers; Ctrl-C (or SIGTERM) stops all of
# them by PID, in reverse order, and so does the death of any one of them. The data stays in
# $CLUSTER_VAR for the next start.
#
# Env (defaults): CLUSTER_VAR=./var/cluster CLUSTER_PORT=8000 CLUSTER_INSTANCE_PORTS="8001 8002
# 8003" CLUSTER_PG_PORT=8432 CLUSTER_THREADS=1 (--threads of each instance)
# CLUSTER_LOG_LEVEL=info. As root, PostgreSQL runs as the `postgres` user (it refuses root);
# otherwise as the user running this.
set -u

binary=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
VAR=${CLUSTER_VAR:-$PWD/var/cluster}
PORT=${CLUSTER_PORT:-8000}
read -r -a INSTANCE_PORTS <<<"${CLUSTER_INSTANCE_PORTS:-8001 8002 8003}"
PG_PORT=${CLUSTER_PG_PORT:-8432}
THREADS=${CLUSTER_THREADS:-1}
LOG_LEVEL=${CLUSTER_LOG_LEVEL:-info}
CONTRIB=$here/contrib/nginx/catalogd.conf

say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: %s\n' "$*" >&2; stop_all; exit 1; }

# ------------------------------------------------------------------ processes we own, by PID
NAMES=() PIDS=()
state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; } # R, S, Z... or ""
alive() { local s; s=$(state "$1"); [ -n "$s" ] && [ "$s" != Z ]; }
# stop_pid PID SIGNAL SECONDS: the signal, then up to SECONDS for it to go, then SIGKILL; reap.
stop_pid() {
    local pid=$1 i
    if alive "$pid"; then
        kill "-$2" "$pid" 2>/dev/null
        for ((i = 0; i < $3 * 10; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            say "pid $pid still running after $3 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
}
stopping=0
stop_all() {
    [ "$stopping" = 1 ] && return
    stopping=1
    trap '' INT TERM
    local i name pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        name=${NAMES[i]} pid=${PIDS[i]}
        case $name in
        nginx) stop_pid "$pid" QUIT 5 ;;           # graceful: finish what is in flight
        catalogd-*) stop_pid "$pid" TERM 10 ;;     # in-flight requests, projector drain
        redis) stop_pid "$pid" TERM 10 ;;
        postgres) stop_postgres "$pid" ;;
        esac
        alive "$pid" || say "stopped $name (pid $pid)"
    done
    [ -n "${redis_socket_link:-}" ] && rm -f "$redis_socket_link"
}
# start NAME LOG CMD...: start CMD in the background, remember it by PID. Job control is on
# while it forks, so each process gets a process group of its own: a Ctrl-C in the terminal
# reaches this script only, which then stops the others in order. (Off again at once: bash
# would print a line for every job that ends.)
start() {
    local name=$1 log=$2
    shift 2
    set -m
    "$@" >>"$log" 2>&1 </dev/null &
    NAMES+=("$name") PIDS+=($!)
    set +m
}
# postmaster_of PID: the postmaster PostgreSQL's pid file names, when it is PID (we started
# postgres itself) or a child of PID (as root we started runuser, which waits for it).
postmaster_of() {
    local pm
    pm=$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null)
    case $pm in '' | *[!0-9]*) return ;; esac
    alive "$pm" || return
    if [ "$pm" = "$1" ] || [ "$(sed 's/.*) //' "/proc/$pm/stat" 2>/dev/null | cut -d' ' -f2)" = "$1" ]; then
        echo "$pm"
    fi
}
# stop_postgres PID: SIGINT (PostgreSQL's fast shutdown: disconnect clients, checkpoint) to
# the postmaster itself, never to runuser (which would pass on SIGTERM, then SIGKILL after 2 s);
# SIGQUIT (immediate shutdown) if it is not gone in 30 s. Then reap PID.
stop_postgres() {
    local pm i
    pm=$(postmaster_of "$1")
    if [ -n "$pm" ]; then
        kill -INT "$pm" 2>/dev/null
        for ((i = 0; i < 300; i++)); do alive "$pm" || break; sleep 0.1; done
        alive "$pm" && kill -QUIT "$pm" 2>/dev/null
    fi
    stop_pid "$1" INT 10
}
pid_of() { local i; for i in "${!NAMES[@]}"; do [ "${NAMES[i]}" = "$1" ] && echo "${PIDS[i]}"; done; }

# wait_until WHAT SECONDS CMD...: poll CMD every 0.1 s; fail the start if it never succeeds, or
# if the process WHAT dies meanwhile.
wait_until() {
    local what=$1 end=$((SECONDS + $2)) pid
    shift 2
    pid=$(pid_of "$what")
    until "$@" >/dev/null 2>&1; do
        if [ -n "$pid" ] && ! alive "$pid"; then
            wait "$pid" 2>/dev/null
            die "$what exited with status $? while starting; its log: $(log_of "$what")$(tail_log "$what")"
        fi
        [ "$SECONDS" -lt "$end" ] || die "$what did not answer within $1 s; its log: $(log_of "$what")$(tail_log "$what")"
        sleep 0.1
    done
}
log_of() {
    case $1 in
    postgres) echo "$VAR/postgres.log" ;; redis) echo "$VAR/redis.log" ;;
    nginx) echo "$VAR/nginx/error.log" ;; *) echo "$VAR/$1.log" ;;
    esac
}
tail_log() { # the first 2 lines (a usage error) and the last 6 of the log
    local f
    f=$(log_of "$1")
    printf '\n'
    { if [ "$(wc -l <"$f")" -le 8 ]; then cat "$f"; else head -n 2 "$f"; echo ...; tail -n 6 "$f"; fi; } 2>/dev/null |
        sed 's/^/    /'
}

# port_free PORT: nothing answers a connection on 127.0.0.1:PORT nor on [::1]:PORT.
port_free() {
    local host
    for host in 127.0.0.1 ::1; do
        if (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; then return 1; fi
    done
    return 0
}
http_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ]; }

trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

# ------------------------------------------------------------------ checks before starting
command -v nginx >/dev/null || die "nginx is not installed (make cluster installs nginx-light)"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/postgres" ] || die "PostgreSQL is not installed (make cluster installs postgresql)"
[ -f "$CONTRIB" ] || die "missing $CONTRIB"
[ "${#INSTANCE_PORTS[@]}" -ge 1 ] || die "CLUSTER_INSTANCE_PORTS is empty"
for p in "$PORT" "$PG_PORT" "${INSTANCE_PORTS[@]}"; do
    case $p in '' | *[!0-9]*) die "'$p' is not a port number" ;; esac
    port_free "$p" || die "port $p is taken (something already listens on it); free it or set CLUSTER_PORT, CLUSTER_INSTANCE_PORTS, CLUSTER_PG_PORT"
done
mkdir -p "$VAR" || die "cannot create $VAR"
VAR=$(cd "$VAR" && pwd)

# ------------------------------------------------------------------ PostgreSQL
# As root, PostgreSQL runs as `postgres`: its data directory must be owned by that user and
# every directory above it searchable by it. When $VAR is not (a checkout under /root), the
# data lives in a directory of its own under /var/tmp, named after $VAR, and $VAR/pg points
# there.
as_pg=()
pg_home=$VAR
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (is the postgresql package installed?)"
    as_pg=(runuser -u postgres --)
    if ! runuser -u postgres -- test -x "$VAR"; then
        pg_home=/var/tmp/catalogd-cluster-$(printf '%s' "$VAR" | sha256sum | cut -c1-12)
        mkdir -p "$pg_home" && chmod 755 "$pg_home"
        ln -sfn "$pg_home/pg" "$VAR/pg"
        say "the postgres user cannot reach $VAR: PostgreSQL's data is in $pg_home/pg"
    fi
fi
PGDATA_DIR=$pg_home/pg
PG_SOCKET_DIR=$pg_home/pg-socket
PG_PASSWORD_FILE=$VAR/pg-password
[ ${#PG_SOCKET_DIR} -gt 90 ] && PG_SOCKET_DIR="" # a unix socket path has at most 107 bytes

if [ ! -s "$PG_PASSWORD_FILE" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$PG_PASSWORD_FILE")
fi
PG_PASSWORD=$(cat "$PG_PASSWORD_FILE")
if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
    say "initdb into $PGDATA_DIR (once)"
    mkdir -p "$PGDATA_DIR" && chmod 700 "$PGDATA_DIR"
    [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$PGDATA_DIR"
    pwfile=$pg_home/initdb-pw.$$
    (umask 077 && cp "$PG_PASSWORD_FILE" "$pwfile")
    [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$pwfile"
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$PGDATA_DIR" -U catalogd --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$VAR/initdb.log" 2>&1
    rc=$?
    rm -f "$pwfile"
    [ $rc = 0 ] || die "initdb failed; see $VAR/initdb.log$(printf '\n'; tail -n 5 "$VAR/initdb.log")"
fi
if [ -n "$PG_SOCKET_DIR" ]; then
    mkdir -p "$PG_SOCKET_DIR" && chmod 700 "$PG_SOCKET_DIR"
    [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$PG_SOCKET_DIR"
fi
: >>"$VAR/postgres.log"
[ ${#as_pg[@]} -gt 0 ] && chown postgres: "$VAR/postgres.log" 2>/dev/null
# Durable: fsync and synchronous_commit stay on (the defaults), as in production.
start postgres "$VAR/postgres.log" "${as_pg[@]}" "$PG_BIN/postgres" -D "$PGDATA_DIR" \
    -c listen_addresses=127.0.0.1 -c port="$PG_PORT" -c unix_socket_directories="$PG_SOCKET_DIR" \
    -c fsync=on -c synchronous_commit=on -c max_connections=200
wait_until postgres 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1
export PGPASSWORD=$PG_PASSWORD
if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U catalogd -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'catalogd'" | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U catalogd catalogd ||
        die "createdb catalogd failed"
fi
unset PGPASSWORD
PG_URI="postgresql://catalogd:$PG_PASSWORD@127.0.0.1:$PG_PORT/catalogd"
say "postgresql: 127.0.0.1:$PG_PORT, database catalogd (pid $(postmaster_of "$(pid_of postgres)"), data $PGDATA_DIR)"

# ------------------------------------------------------------------ Redis
mkdir -p "$VAR/redis"
redis_socket=$VAR/redis.sock
if [ ${#redis_socket} -gt 100 ]; then # a unix socket path has at most 107 bytes
    redis_socket_link=$redis_socket
    redis_socket=${TMPDIR:-/tmp}/catalogd-cluster-$$.redis.sock
fi
rm -f "$redis_socket"
start redis "$VAR/redis.log" redis-server --port 0 --unixsocket "$redis_socket" \
    --unixsocketperm 700 --dir "$VAR/redis" --save "" --appendonly no --daemonize no
wait_until redis 10 redis-cli -s "$redis_socket" ping
REDIS_URL_CLUSTER="unix://$redis_socket"
say "redis: $redis_socket (pid $(pid_of redis); the read model is rebuilt from PostgreSQL at each start)"

# ------------------------------------------------------------------ catalogd instances
# Each serves commands and queries; one of them (elected through PostgreSQL) projects. The
# writes nginx passes on name Host localhost, 127.0.0.1 or [::1] without the port ($host), allowed
# here for any port.
n=0
for p in "${INSTANCE_PORTS[@]}"; do
    n=$((n + 1))
    CATALOGD_DB=$PG_URI start "catalogd-$n" "$VAR/catalogd-$n.log" "$binary" serve \
        --listen "127.0.0.1:$p" --redis "$REDIS_URL_CLUSTER" --instance-id "catalogd-$n" \
        --allowed-host 'localhost,127.0.0.1,[::1]' --threads "$THREADS" --log-level "$LOG_LEVEL"
done
n=0
for p in "${INSTANCE_PORTS[@]}"; do
    n=$((n + 1))
    wait_until "catalogd-$n" 60 http_ok "http://127.0.0.1:$p/ready"
    say "catalogd-$n: http://127.0.0.1:$p (pid $(pid_of "catalogd-$n"), log $VAR/catalogd-$n.log)"
done

# ------------------------------------------------------------------ nginx
# The runtime configuration: the contrib file with this run's ports and log path, inside an
# nginx.conf of our own (foreground, pid, error log and temp paths under $VAR/nginx).
ng=$VAR/nginx
mkdir -p "$ng"
upstreams=""
for p in "${INSTANCE_PORTS[@]}"; do
    upstreams="$upstreams    server 127.0.0.1:$p max_fails=1 fail_timeout=5s;\n"
done
listens="    listen 127.0.0.1:$PORT;"
grep -q ' lo$' /proc/net/if_inet6 2>/dev/null && listens="$listens\n    listen [::1]:$PORT;"
awk -v upstreams="$upstreams" -v listens="$listens" -v access_log="$ng/access.log" '
    /^ *server 127\.0\.0\.1:800[0-9] / { if (!done_up++) printf "%s", upstreams; next }
    /^ *listen 127\.0\.0\.1:8000;/ { print listens; seen_listen++; next }
    /^ *access_log \/var\/log\/nginx\/catalogd\.access\.log catalogd;/ {
        print "    access_log " access_log " catalogd;"; seen_log++; next }
    { print }
    END { if (!done_up || !seen_listen || !seen_log) exit 1 }
' "$CONTRIB" >"$ng/catalogd.conf" ||
    die "$CONTRIB no longer has the upstream servers, listen or access_log lines this script rewrites"
cat >"$ng/nginx.conf" <<EOF
# Generated by scripts/cluster.sh at each start; the catalogd part is contrib/nginx/catalogd.conf.
worker_processes 1;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $ng/client_body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    default_type application/octet-stream;
    include $ng/catalogd.conf;
}
EOF
nginx -t -q -p "$ng/" -e "$ng/error.log" -c "$ng/nginx.conf" 2>"$ng/config-test.log" ||
    die "nginx rejects $ng/nginx.conf:$(printf '\n'; sed 's/^/    /' "$ng/config-test.log")"
start nginx "$ng/error.log" env -u NGINX nginx -p "$ng/" -e "$ng/error.log" -c "$ng/nginx.conf"
wait_until nginx 10 http_ok "http://127.0.0.1:$PORT/health"

cat <<EOF
cluster: nginx: http://localhost:$PORT (pid $(pid_of nginx), balancing ${#INSTANCE_PORTS[@]} instances; access log $ng/access.log)
cluster: the write model: CATALOGD_DB=postgresql://catalogd:\$(cat $PG_PASSWORD_FILE)@127.0.0.1:$PG_PORT/catalogd
cluster:   e.g. CATALOGD_DB=... $1 verify --redis $REDIS_URL_CLUSTER
cluster: ready. Ctrl-C stops everything.
EOF

# Until Ctrl-C, or until one of them exits by itself (then stop the others: a cluster with a
# part missing is not the one announced).
while :; do
    wait -n
    for i in "${!PIDS[@]}"; do
        if ! alive "${PIDS[i]}"; then
            say "${NAMES[i]} (pid ${PIDS[i]}) exited by itself; stopping the rest. Its log: $(log_of "${NAMES[i]}")$(tail_log "${NAMES[i]}")"
            stop_all
            exit 1
        fi
    done
done

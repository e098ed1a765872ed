#!/usr/bin/env bash
# run.sh BINARY - what `make run` does after building: pick a Redis, then serve on :8000.
# Redis: $REDIS_URL if set; else the one on 127.0.0.1:6379 if it answers PING; else a private
# redis-server under ./var/, stopped again when catalogd exits.
set -u
binary=$1
shift
mkdir -p var

redis_answers() {
    # PING over bash's /dev/tcp: needs no client tool.
    { exec 3<>/dev/tcp/127.0.0.1/6379; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    local reply=""
    read -r -t 1 reply <&3
    exec 3>&-
    [[ $reply == +PONG* ]]
}

redis_pid=""
stop_redis() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
}
trap stop_redis EXIT

if [ -n "${REDIS_URL:-}" ]; then
    echo "run: using REDIS_URL=$REDIS_URL"
elif redis_answers; then
    export REDIS_URL=redis://127.0.0.1:6379/0
    echo "run: using the Redis on 127.0.0.1:6379"
else
    socket="$PWD/var/redis.sock"
    [ ${#socket} -gt 100 ] && socket="${TMPDIR:-/tmp}/catalogd-redis-$$.sock"
    redis-server --port 0 --unixsocket "$socket" --unixsocketperm 700 --dir "$PWD/var" \
        --save "" --appendonly no --daemonize no --logfile "$PWD/var/redis.log" &
    redis_pid=$!
    for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
    export REDIS_URL="unix://$socket"
    echo "run: started a private redis-server (pid $redis_pid) on $socket"
fi

# Not exec: the EXIT trap must still stop the private Redis. Ctrl-C reaches both processes;
# catalogd finishes its in-flight requests and exits 0.
"$binary" serve "$@" &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null' INT TERM
wait $server_pid
status=$?
wait $server_pid 2>/dev/null && status=$?
exit $status

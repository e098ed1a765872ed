"""Redis with a password or an ACL user (issue 12): every connection catalogd makes (query
loops, projector, maintenance, verify, rebuild) authenticates, again after every reconnect;
wrong credentials are reported, never fatal, and fixed by themselves once Redis accepts them.
Tested with exactly the minimal ACL the README documents."""
import subprocess
import time

import pytest
import requests

from conftest import (PREFIX, RedisProc, Server, Stack, assert_degraded_without_spinning, bulk_create,
                      product_body, uniq_sku, wait_until)
from test_faults import query_connection_ids

JSON = {"Content-Type": "application/json"}
PASSWORD = "s3cr%t:p@ss"  # needs percent-encoding in a URL
PASSWORD_IN_URL = "s3cr%25t%3Ap%40ss"

# The minimal ACL of a catalogd user, as in the README: its key prefix and its commands.
CATALOGD_COMMANDS = ("get set del mget exists type incr unlink scan pexpire time info "
                     "zadd zrem zcard zrangebylex hget hmget hset hdel hexists hkeys hgetall "
                     "hscan hlen rpush lpop lindex llen lrange multi exec eval evalsha select")


def make_stack(name, redis_args, password, url_credentials, db=0):
    """A stack whose Redis needs credentials; catalogd is given `url_credentials`."""
    s = Stack(name)
    s.redis = RedisProc(s.tmp, extra_args=redis_args, password=password)
    at = f"{url_credentials}@" if url_credentials else ""
    url = f"redis://{at}127.0.0.1:{s.redis.port}/{db}"
    s.server = Server(s.tmp, url, s.db)
    s.cli_redis = url
    return s


def run_cli(s, *args):
    """verify or rebuild against the stack's Redis, with the server's flags (TLS files)."""
    return subprocess.run([s.server.command()[0], *args, "--db", str(s.db), "--redis",
                           s.cli_redis, *s.server.extra_args], capture_output=True, text=True,
                          timeout=60)


def exercise(s):
    """Every command and query, a rebuild, and verify: all through the credentials."""
    created = s.post_raw("/products", product_body(uniq_sku(), stock=3))
    assert created.status_code == 201 and created.headers["Projection"] == "applied"
    product = created.json()
    assert s.get(f"/products/{product['id']}").json() == product
    assert s.get(f"/products/by-sku/{product['sku']}").status_code == 200
    assert s.get("/catalog?in_stock=true").status_code == 200
    r = s.http.post(s.url(f"/products/{product['id']}/stock"), data='{"delta": -1}',
                    headers=JSON, timeout=10)
    assert r.status_code == 200 and r.headers["Projection"] == "applied"
    r = s.http.patch(s.url(f"/products/{product['id']}"), data='{"name": "Renamed"}',
                     headers=JSON, timeout=10)
    assert r.status_code == 200 and r.headers["Projection"] == "applied"
    bulk_create(s.base, 50)
    assert requests.post(s.url("/admin/rebuild"), timeout=10).status_code == 202
    wait_until(lambda: not s.get("/admin/projection").json()["rebuild"]["running"], 30,
               what="the rebuild")
    rebuilt = run_cli(s, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    verified = run_cli(s, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_password_protected_redis(stack_factory):
    s = make_stack("requirepass", ["--requirepass", PASSWORD], PASSWORD, f":{PASSWORD_IN_URL}")
    try:
        s.start()
        exercise(s)
        # a Redis restart: the loops and the projector authenticate again
        s.redis.stop()
        s.redis.start()
        wait_until(lambda: requests.get(s.url("/ready"), timeout=5).status_code == 200, 20,
                   what="catalogd to be ready again after Redis restarted")
        exercise(s)
        assert PASSWORD not in s.server.stderr_tail(10**6)
    finally:
        s.stop()


def test_an_acl_user_with_only_what_catalogd_needs(stack_factory):
    s = make_stack("acl", [], None, "catalogd:pw%2F1")
    try:
        s.redis.start()
        s.r.execute_command("ACL", "SETUSER", "catalogd", "on", ">pw/1", f"~{PREFIX}:*",
                            "resetchannels", "-@all",
                            *[f"+{c}" for c in CATALOGD_COMMANDS.split()])
        s.r.execute_command("ACL", "SETUSER", "default", "off")
        s.redis.password = None
        s._r = None
        s.server.start()
        exercise(s)
    finally:
        s.stop()


def test_wrong_credentials_are_reported_and_fixed_by_themselves(stack_factory):
    s = make_stack("wrongpass", ["--requirepass", "right"], "right", ":wrong")
    try:
        s.redis.start()
        s.server.proc = subprocess.Popen(s.server.command(), stdout=subprocess.DEVNULL,
                                         stderr=open(s.server.stderr_path, "ab"), cwd=str(s.tmp))

        def refused():
            r = requests.get(s.url("/ready"), timeout=5)
            reason = r.json().get("reasons", {}).get("redis", "")
            return r.status_code == 503 and "credentials" in reason and "WRONGPASS" in reason
        wait_until(refused, 10, interval=0.1, what="/ready to name the refused credentials")
        created = assert_degraded_without_spinning(s)
        log = s.server.stderr_tail(10**6)
        assert "refused the credentials" in log
        assert log.count("Redis refused the credentials") <= 4, log[-2000:]  # once per connection
        s.r.config_set("requirepass", "wrong")  # the operator fixes Redis' side
        s.redis.password = "wrong"
        s._r = None
        wait_until(lambda: requests.get(s.url("/ready"), timeout=5).status_code == 200, 15,
                   interval=0.2, what="catalogd to recover by itself")
        got = s.get(f"/products/{created.json()['id']}")
        assert got.status_code == 200, got.text
        assert run_cli(s, "verify").returncode == 0
    finally:
        s.stop()


# What catalogd says of a Redis at maxclients, whatever command met the refusal.
FULL = "Redis refused the session: ERR max number of clients reached"


@pytest.mark.parametrize("credentials, db", [(f":{PASSWORD_IN_URL}", 0), ("", 1)],
                         ids=["password", "database-1"])
def test_a_full_redis_is_not_blamed_on_the_credentials(stack_factory, credentials, db):
    """A Redis at maxclients answers whatever a new connection sends first with "ERR max number
    of clients reached", and closes it: AUTH with a password, SELECT with another database.
    /ready and the log blamed the credentials for the first; for the second, SELECT's error went
    unread and they said only that the connection was lost. Both name the refused session now,
    on every server thread, and catalogd comes back by itself once Redis takes clients again."""
    password = PASSWORD if credentials else None
    s = make_stack(f"full-{db}", ["--requirepass", PASSWORD] if password else [], password,
                   credentials, db)
    try:
        s.start()
        s.create()
        ids = query_connection_ids(s)
        assert len(ids) == 2, s.r.client_list()
        limit = s.r.config_get("maxclients")["maxclients"]
        s.r.config_set("maxclients", s.r.info("clients")["connected_clients"] - 1)
        try:
            assert s.r.client_kill_filter(_id=ids[0]) == 1  # its place is not free again

            def refused():
                r = requests.get(s.url("/ready"), timeout=5)
                reason = r.json().get("reasons", {}).get("redis", "")
                return r.status_code == 503 and FULL in reason
            wait_until(refused, 5, interval=0.05, what="/ready to name the refused session")
            readies = [requests.get(s.url("/ready"), timeout=5) for _ in range(6)]
        finally:
            s.r.config_set("maxclients", limit)
        for r in readies:  # whichever thread answers
            assert r.status_code == 503 and FULL in r.json()["reasons"]["redis"], r.text
        wait_until(lambda: {requests.get(s.url("/ready"), timeout=5).status_code
                            for _ in range(6)} == {200}, 5, what="/ready to answer 200")
        log = s.server.stderr_tail(10**6)
        assert FULL in log and "refused the credentials" not in log, log[-2000:]
    finally:
        s.stop()


# The README's ACL line as a command: catalogd's user, its key prefix, its commands.
GRANT = ["ACL", "SETUSER", "catalogd", "on", ">pw/1", f"~{PREFIX}:*", "resetchannels", "-@all",
         *[f"+{c}" for c in CATALOGD_COMMANDS.split()]]


def start_with_the_minimal_acl(s):
    """Starts a make_stack(..., "catalogd:pw%2F1") stack whose user has GRANT; returns a product
    it created."""
    s.redis.start()
    s.r.execute_command(*GRANT)
    s.server.start()
    return s.post_raw("/products", product_body(uniq_sku())).json()


def ready_again_once_granted(s, path, expected):
    """GRANT again: /ready is 200 again within 10 s, and "path" answers "expected"."""
    s.r.execute_command(*GRANT)
    wait_until(lambda: requests.get(s.url("/ready"), timeout=5).status_code == 200, 10,
               interval=0.1, what="/ready once the commands are granted again")
    assert s.get(path).json() == expected


def test_a_user_refused_the_query_commands_fails_ready_and_says_so(stack_factory):
    """A Redis that refuses the commands queries send (an ACL change without them) answered
    every query 503 while /ready said 200 ("redis": "ok"): its probe read only the
    generation. Nothing was logged and the query errors in /metrics stayed at 0."""
    s = make_stack("acl-narrowed", [], None, "catalogd:pw%2F1")
    try:
        product = start_with_the_minimal_acl(s)
        s.r.execute_command("ACL", "SETUSER", "catalogd", "-zrangebylex")

        def ready_names_redis():
            r = requests.get(s.url("/ready"), timeout=5)
            return r.status_code == 503 and "redis" in r.json().get("reasons", {})
        wait_until(ready_names_redis, 5, interval=0.1, what="/ready to name redis")
        assert s.get(f"/products/{product['id']}").status_code == 503
        assert s.get("/catalog").status_code == 503
        metrics = s.get("/metrics").text
        errors = [line for line in metrics.splitlines()
                  if line.startswith('catalogd_redis_errors_total{component="queries"}')]
        assert errors and int(errors[0].split()[-1]) > 0, errors
        log = s.server.stderr_tail(10**6)
        assert "Redis answered a query with NOPERM" in log, log[-2000:]
        assert log.count("Redis answered a query with NOPERM") <= 4, log[-2000:]  # once a loop

        ready_again_once_granted(s, f"/products/{product['id']}", product)
    finally:
        s.stop()


def test_queries_that_fail_in_turn_do_not_flood_the_log_and_fail_ready(stack_factory):
    """With EVALSHA and ZCARD taken away, by-sku and catalog queries failed in turn, and each
    logged a line: one per request (and with five kinds of refusal or more, a memory of the
    last few texts alone does not help). /ready said 200 while every by-sku query failed: its
    probe does not send EVALSHA, and the stalled projector (its scripts refused too) did not
    count while no command came."""
    s = make_stack("acl-in-turn", [], None, "catalogd:pw%2F1")
    try:
        product = start_with_the_minimal_acl(s)
        s.r.execute_command("ACL", "SETUSER", "catalogd", "-evalsha", "-zcard")
        started = time.monotonic()
        for _ in range(20):
            assert s.get(f"/products/by-sku/{product['sku']}").status_code == 503
            assert s.get("/catalog?limit=1").status_code == 503
        seconds = int(time.monotonic() - started) + 1
        told = s.server.stderr_tail(10**6).count("Redis answered a query with")
        assert 1 <= told <= 2 * seconds, s.server.stderr_tail()  # a line a second, per loop

        def zcard_named():  # its turn comes; the command refused, not only EXEC's EXECABORT
            s.get("/catalog?limit=1")
            return "'zcard' command" in s.server.stderr_tail(10**6)
        wait_until(zcard_named, 8, interval=0.3, what="the refused ZCARD in the log")
        wait_until(lambda: "redis" in requests.get(s.url("/ready"), timeout=5).json().get(
            "reasons", {}), 5, interval=0.1, what="/ready to name redis")
        told = s.server.stderr_tail(10**6).count("Redis answered a query with")
        assert told <= 12, s.server.stderr_tail(6000)  # a few kinds, each once a loop
        ready_again_once_granted(s, f"/products/by-sku/{product['sku']}", product)
    finally:
        s.stop()


def test_a_user_refused_info_is_told_to_grant_it(stack_factory):
    """INFO became needed: every connection that reads or applies views reads its Redis' run
    id from it when it is made (a Redis back with an older state has another). A user without
    it gets queries answered 503, never an answer from a Redis it cannot tell, and /ready and
    the log say what to grant; granted again, everything recovers by itself."""
    s = make_stack("acl-no-info", [], None, "catalogd:pw%2F1")
    try:
        product = start_with_the_minimal_acl(s)
        s.r.execute_command("ACL", "SETUSER", "catalogd", "-info")
        s.r.execute_command("CLIENT", "KILL", "USER", "catalogd")  # each connects again

        def ready_says_grant():
            r = requests.get(s.url("/ready"), timeout=5)
            return r.status_code == 503 and "grant +info" in r.json()["reasons"].get("redis", "")
        wait_until(ready_says_grant, 10, interval=0.1, what="/ready to say what to grant")
        assert s.get(f"/products/{product['id']}").status_code == 503
        assert s.get(f"/products/by-sku/{product['sku']}").status_code == 503
        assert s.get("/catalog").status_code == 503
        created = s.post_raw("/products", product_body(uniq_sku()))
        assert created.status_code == 201 and created.headers["Projection"] == "pending"
        time.sleep(1.5)  # reconnects, with backoff, each refused the same way
        log = s.server.stderr_tail(10**6)
        assert 1 <= log.count("Redis refused INFO, which catalogd needs (grant +info)") <= 6, \
            log[-3000:]  # once per connection that lost it (2 loops, projector), not per try
        ready_again_once_granted(s, f"/products/{product['id']}", product)
        assert s.get(f"/products/{created.json()['id']}").json() == created.json()
    finally:
        s.stop()

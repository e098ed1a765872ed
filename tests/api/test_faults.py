"""Fault injection against real processes: Redis stopped, frozen or wiped under load, catalogd
killed with SIGKILL, the write model locked, read-only or full, and a rebuild under a reader.

Every test starts its own redis-server and catalogd (conftest's fixtures), injects the fault for
real, and bounds every wait and every load loop (in count and in time). Processes are stopped
only through the fixture objects or by the PIDs these tests started themselves.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from conftest import (BACKEND, PREFIX, WRITE_MODEL_CHECK, Server, Stack, assert_problem,
                      free_port, projection_of, redis_gen, row_text, sql, sql_write, write_lock,
                      uniq_sku, wait_until)

JSON_CT = {"Content-Type": "application/json"}
PRODUCT_COLUMNS = "id, sku, name, price_cents, stock, version, created_at, updated_at"


# ---------------------------------------------------------------------------------------------
# private helpers


def product_body(sku, name="Load item", price="4.20", stock=3):
    return ('{"sku":' + json.dumps(sku) + ',"name":' + json.dumps(name) + ',"price":'
            + str(price) + ',"stock":' + str(stock) + "}")


def post_product(base, sku=None, session=None, timeout=10, **fields):
    sku = sku or uniq_sku()
    return (session or requests).post(base + "/products", data=product_body(sku, **fields),
                                      headers=JSON_CT, timeout=timeout)




def sqlite_texts(db):
    """{id: expected view text} for every product in the write model."""
    rows = sql(db, f"SELECT {PRODUCT_COLUMNS} FROM products")
    return {r[0]: row_text(r) for r in rows}


def max_seq(db):
    return sql(db, "SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]


def out(proc):
    return proc.stdout + proc.stderr


def assert_verify_ok(s):
    v = s.cli("verify")
    assert v.returncode == 0, "catalogd verify reported differences:\n" + out(v)[-4000:]


_tls = threading.local()


def _session():
    s = getattr(_tls, "session", None)
    if s is None:
        s = _tls.session = requests.Session()
    return s


def fetch_views(base, ids, workers=6):
    """GET /products/{id} for each id, concurrently. Returns [(id, status|None, text)]."""
    def one(pid):
        try:
            r = _session().get(f"{base}/products/{pid}", timeout=5)
            return pid, r.status_code, r.text
        except requests.RequestException as exc:
            return pid, None, repr(exc)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, ids))


def wait_all_served(base, expected, timeout, what="products"):
    """Waits until GET /products/{id} serves exactly expected[id] for every id."""
    deadline = time.monotonic() + timeout
    missing = dict(expected)
    last = {}
    while True:
        for pid, status, text in fetch_views(base, list(missing)):
            if status == 200 and text == missing[pid]:
                del missing[pid]
            else:
                last[pid] = (status, text[:300])
        if not missing:
            return
        if time.monotonic() >= deadline:
            sample = [(pid, last.get(pid)) for pid in list(missing)[:5]]
            raise AssertionError(f"{len(missing)} of {len(expected)} {what} are not served as "
                                 f"SQLite has them after {timeout}s; e.g. {sample}")
        time.sleep(0.1)


def ready_status(base):
    r = requests.get(base + "/ready", timeout=3)
    return r.status_code, r


def wait_ready(base, timeout, what="/ready to answer 200"):
    wait_until(lambda: ready_status(base)[0] == 200, timeout, interval=0.05, what=what)


class WriteLoad:
    """`threads` clients POSTing unique SKUs until stop() or `seconds` have passed, at most
    `max_posts` in all. Every attempt is recorded: status, Projection header, timings, body."""

    def __init__(self, base, threads=4, seconds=3.0, max_posts=6000, prefix="LOAD",
                 timeout=5.0):
        self.base = base
        self.n_threads = threads
        self.seconds = seconds
        self.max_posts = max_posts
        self.prefix = prefix
        self.timeout = timeout
        self.results = []
        self.sent = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = []

    def start(self):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.seconds
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(self.n_threads)]
        for t in self.threads:
            t.start()
        return self

    def _run(self, k):
        session = requests.Session()
        try:
            while not self.stop_event.is_set() and time.monotonic() < self.deadline:
                with self.lock:
                    if self.sent >= self.max_posts:
                        return
                    self.sent += 1
                sku = uniq_sku(f"{self.prefix}{k}")
                rec = {"sku": sku, "t0": time.monotonic()}
                try:
                    r = session.post(self.base + "/products",
                                     data=product_body(sku, stock=self.sent % 3),
                                     headers=JSON_CT, timeout=self.timeout)
                    rec.update(status=r.status_code, projection=r.headers.get("Projection"),
                               retry_after=r.headers.get("Retry-After"), text=r.text)
                except requests.RequestException as exc:
                    rec.update(status=None, error=repr(exc))
                rec["t1"] = time.monotonic()
                with self.lock:
                    self.results.append(rec)
                if rec["status"] is None:
                    time.sleep(0.05)  # the server is gone or refusing: do not spin
        finally:
            session.close()

    def join(self, timeout=None):
        limit = timeout if timeout is not None else self.seconds + self.timeout + 5
        for t in self.threads:
            t.join(max(0.0, self.t0 + limit - time.monotonic()))
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, f"{len(alive)} load threads did not finish"

    def stop(self):
        self.stop_event.set()
        self.join(self.timeout + 5 + (time.monotonic() - self.t0))

    def acked(self):
        return [r for r in self.results if r["status"] is not None and 200 <= r["status"] < 300]

    def summary(self):
        counts = {}
        for r in self.results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return counts


def redis_checkpoint(client):
    gen = redis_gen(client)
    if gen is None:
        return None, None
    cp = client.get(f"{PREFIX}:g{gen}:checkpoint")
    return gen, None if cp is None else int(cp)


# ---------------------------------------------------------------------------------------------
# 1. Redis stopped under a write load


def test_redis_stopped_under_write_load_loses_nothing(fresh):
    before = {pid: t for pid, t in sqlite_texts(fresh.db).items()}
    load = WriteLoad(fresh.base, threads=4, seconds=3.2, prefix="OUT").start()
    time.sleep(1.0)
    fresh.redis.stop()  # SIGTERM; returns once the process is gone
    t_down = time.monotonic()
    time.sleep(1.0)
    t_restart = time.monotonic()
    fresh.redis.start()  # same port, comes back empty (no persistence)
    load.join()

    results = load.results
    assert results, "the load made no request"
    errors = [r for r in results if r["status"] is None]
    assert not errors, (f"{len(errors)} commands got no answer (catalogd exit status: "
                        f"{fresh.server.proc.poll()}), e.g. {errors[0]} (summary {load.summary()})")
    bad = [r for r in results if r["status"] != 201]
    assert not bad, f"commands must answer 201 through the outage; got {load.summary()}, " \
                    f"e.g. {bad[0]['status']} {bad[0].get('text', '')[:300]}"
    during = [r for r in results if r["t0"] >= t_down and r["t1"] <= t_restart]
    assert len(during) >= 10, f"only {len(during)} commands completed while Redis was down"
    not_pending = [r for r in during if r["projection"] != "pending"]
    assert not not_pending, (f"{len(not_pending)} of {len(during)} commands answered during the "
                             f"outage said Projection: {not_pending[0]['projection']!r}")
    slow = max(r["t1"] - r["t0"] for r in during)
    assert slow < 2.0, f"a command took {slow:.2f}s while Redis was down"

    # every acknowledged command is in the write model, exactly as it was acknowledged
    texts = sqlite_texts(fresh.db)
    acked = {}
    for r in load.acked():
        view = json.loads(r["text"])
        assert view["id"] in texts, f"acknowledged {view['id']} is not in SQLite"
        assert texts[view["id"]] == r["text"], (texts[view["id"]], r["text"])
        acked[view["id"]] = r["text"]
    assert len(acked) == len(results)
    assert len(texts) == len(before) + len(acked), "SQLite holds products nobody was told about"

    # ... and, once Redis is back, in the read model too, by itself
    wait_all_served(fresh.base, texts, timeout=15, what="acknowledged products")
    wait_ready(fresh.base, 10)
    c = fresh.redis.client()
    try:
        assert redis_checkpoint(c)[1] == max_seq(fresh.db)
    finally:
        c.close()
    assert_verify_ok(fresh)


def test_a_rebuild_asked_for_right_after_redis_dropped_every_connection_runs(stack_factory):
    """The maintenance thread keeps its Redis connection between runs. One that Redis dropped
    while idle (CLIENT KILL here; a restart or a proxy's idle cut alike) made the next rebuild
    fail with 503 until a collection, up to 5 s later, found it broken. The rebuild runs."""
    s = stack_factory("rebuild-after-drop")
    s.create()
    for trial in range(3):
        killed = s.r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 1, killed
        r = requests.post(s.url("/admin/rebuild"), timeout=10)
        assert r.status_code == 202, (trial, r.status_code, r.text)
        wait_until(lambda: not projection_of(s)["rebuild"]["running"], 30, interval=0.05,
                   what="the rebuild to finish")
        assert projection_of(s)["rebuild"]["last_error"] == "", projection_of(s)["rebuild"]


# ---------------------------------------------------------------------------------------------
# 2. Redis frozen with SIGSTOP


def test_sigstop_redis_queries_fail_fast_commands_succeed(fresh):
    views = [fresh.create(stock=i % 2)[1] for i in range(6)]
    rpid = fresh.redis.proc.pid
    paths = [f"/products/{views[0]['id']}", f"/products/by-sku/{views[1]['sku']}", "/catalog",
             "/catalog?in_stock=true&limit=2", f"/products/{views[2]['id']}"]
    created = []
    os.kill(rpid, signal.SIGSTOP)
    try:
        time.sleep(0.1)
        # one at a time
        for path in paths * 2:
            t0 = time.monotonic()
            r = requests.get(fresh.url(path), timeout=5)
            dt = time.monotonic() - t0
            assert dt < 1.5, f"GET {path} took {dt:.2f}s while Redis was frozen"
            assert_problem(r, 503)
            assert r.headers.get("Retry-After", "").isdigit(), r.headers

        # many at once: no request hangs, no loop thread starves
        def timed_get(path):
            t0 = time.monotonic()
            try:
                r = requests.get(fresh.url(path), timeout=5)
                return path, r.status_code, r.headers.get("Retry-After"), time.monotonic() - t0
            except requests.RequestException as exc:
                return path, repr(exc), None, time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=16) as pool:
            burst = list(pool.map(timed_get, paths * 4))
        for path, status, retry_after, dt in burst:
            assert status == 503 and (retry_after or "").isdigit(), (path, status, retry_after)
            assert dt < 1.5, f"GET {path} took {dt:.2f}s in a burst while Redis was frozen"

        # commands keep succeeding, without waiting for Redis
        for i in range(5):
            t0 = time.monotonic()
            r = post_product(fresh.base, timeout=5, name=f"Frozen {i}")
            dt = time.monotonic() - t0
            assert r.status_code == 201, (r.status_code, r.text)
            assert r.headers.get("Projection") == "pending", r.headers
            assert dt < 1.5, f"a command took {dt:.2f}s while Redis was frozen"
            created.append(r)
        assert requests.get(fresh.url("/health"), timeout=2).status_code == 200
    finally:
        os.kill(rpid, signal.SIGCONT)

    texts = sqlite_texts(fresh.db)
    for r in created:
        assert texts[r.json()["id"]] == r.text
    wait_all_served(fresh.base, texts, timeout=10)
    for path in paths:
        wait_until(lambda p=path: requests.get(fresh.url(p), timeout=3).status_code == 200, 10,
                   what=f"GET {path} to recover after SIGCONT")
    wait_ready(fresh.base, 10)
    assert_verify_ok(fresh)


def test_a_rebuild_asked_for_while_redis_is_frozen_fails_after_one_timeout(stack_factory):
    """With Redis frozen, a rebuild fails with 503 once its first command times out (5 s). The
    check of the maintenance thread's kept connection must not add a timeout of its own: a
    PING there made it 10 s. Once Redis thaws, the next rebuild asked for starts: the lock that
    the timed-out take left behind (Redis runs the queued SET when it thaws) is not another
    rebuild's, and made it 409 for 5 s."""
    s = stack_factory("rebuild-frozen")
    s.create()
    # The maintenance thread collects every 5 s, from when the projector holds the prefix: by
    # then it keeps a connection.
    time.sleep(6)
    rpid = s.redis.proc.pid
    os.kill(rpid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = requests.post(s.url("/admin/rebuild"), timeout=30)
        took = time.monotonic() - t0
    finally:
        os.kill(rpid, signal.SIGCONT)
    assert_problem(r, 503)
    assert took < 8, f"the rebuild took {took:.1f} s to fail while Redis was frozen"
    # Redis runs the timed-out SET of the lock as it thaws, before anything sent later. The
    # projector holds the prefix again within about 2 s, and a rebuild may start from then on:
    # the lock left behind would refuse it until 5 s after the thaw.
    wait_until(lambda: projection_of(s)["state"] == "live", 4, interval=0.05,
               what="the projector to be live again")
    r = requests.post(s.url("/admin/rebuild"), timeout=10)
    assert r.status_code == 202, (r.status_code, r.text, s.r.get(f"{PREFIX}:rebuild-lock"))
    wait_until(lambda: not projection_of(s)["rebuild"]["running"], 30, interval=0.05,
               what="the rebuild to finish")
    assert projection_of(s)["rebuild"]["last_error"] == "", projection_of(s)["rebuild"]


def test_a_dropped_query_connection_is_replaced_at_once(stack_factory):
    """Redis drops the queries' connection (CLIENT KILL here; a proxy's idle cut or a failover
    alike): the connection is made again at once, so reads fail for a few milliseconds at
    most, not for the 50-100 ms a reconnect on the next tick after the backoff took."""
    s = stack_factory("dropped", extra_args=["--threads", "1", "--view-cache-mb", "0"])
    _, view = s.create()
    path = f"/products/{view['id']}"
    with requests.Session() as http:
        for trial in range(3):
            assert http.get(s.url(path), timeout=5).status_code == 200
            killed = s.r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            assert killed >= 1, killed
            killed_at, failed, answered = time.monotonic(), [], None
            while time.monotonic() - killed_at < 1.0:
                r = http.get(s.url(path), timeout=5)
                if r.status_code == 200:
                    answered = time.monotonic() - killed_at
                    break
                assert_problem(r, 503)
                failed.append(time.monotonic() - killed_at)
            assert answered is not None, f"trial {trial}: no answer within 1 s"
            # the old reconnect came 50 ms after the loss at the earliest
            assert answered < 0.04, (trial, answered, len(failed))
            time.sleep(1.1)  # one reconnect at once per second; the next trial gets its own


def query_connection_ids(s):
    """The Redis client ids of the server threads' query connections, after a page on a new
    HTTP connection each (SO_REUSEPORT spreads them over both threads): the last thing they
    sent is a page's MULTI/EXEC, which no other connection of catalogd's sends."""
    for _ in range(20):
        assert requests.get(s.url("/catalog"), timeout=5).status_code == 200
    return [int(c["id"]) for c in s.r.client_list() if c["cmd"] == "exec"]


def test_ready_waits_for_every_server_threads_connection_to_redis(stack_factory):
    """Each server thread has its own connection to Redis. When one is lost and cannot come
    back while the other serves, /ready answers 503 on every thread: before, the thread still
    connected said 200 while the other answered queries 503. And when another connection's
    session begins (Redis back after an outage), a connection waiting out its backoff (up to a
    second) tries again at once, so every thread serves within a tick of the first."""
    s = stack_factory("ready-threads")  # two server threads (conftest's --threads 2)
    s.create()

    def spread(path, n=20):  # a new connection each: SO_REUSEPORT spreads them over threads
        return [requests.get(s.url(path), timeout=5) for _ in range(n)]

    for trial in range(2):
        ids = query_connection_ids(s)
        assert len(ids) == 2, s.r.client_list()
        # Redis listens elsewhere for a while: the connection killed cannot come back, and
        # its attempts, refused, back off to a second apart (50 ms doubling, 1 s at most)
        s.r.config_set("port", free_port())
        try:
            assert s.r.client_kill_filter(_id=ids[0]) == 1
            killed = time.monotonic()
            time.sleep(0.2)
            answers = spread("/ready", 10)
            assert {r.status_code for r in answers} == {503}, [r.text for r in answers]
            assert all("redis" in r.json()["reasons"] for r in answers), answers[0].text
            pages = {r.status_code for r in spread("/catalog")}
            assert pages == {200, 503}, pages  # one thread serves, the other cannot
            # its attempts come 50, 100, 200, 400, 800, 1000, 1000 ms apart, each on the next
            # 50 ms tick: the 7th 2.55-2.85 s after the kill, the 8th 3.55-3.9 s after. Open
            # again between the two, 0.6 s or more before the next
            time.sleep(max(0.0, killed + 2.95 - time.monotonic()))
        finally:
            s.r.config_set("port", s.redis.port)
        opened = time.monotonic()
        assert s.r.client_kill_filter(_id=ids[1]) == 1  # back at once: a session begins

        def both_back():
            return len([c for c in s.r.client_list()
                        if int(c["id"]) > max(ids) and c["cmd"] in ("info", "exec")]) == 2
        wait_until(both_back, 5, interval=0.005, what="both query connections to come back")
        took = time.monotonic() - opened
        assert took < 0.3, (trial, took)  # a tick (50 ms), not the rest of a 1 s backoff
        wait_until(lambda: {r.status_code for r in spread("/ready", 6)} == {200}, 5,
                   what="/ready to answer 200 on every thread")
        assert {r.status_code for r in spread("/catalog")} == {200}, trial


def test_a_session_redis_refuses_is_a_failed_attempt_and_backs_off(stack_factory):
    """Redis takes the connection, then refuses the session (no password given to a Redis that
    wants one here; maxclients alike). That is a failed attempt like a refused connect: the
    next waits twice as long, up to a second. The reply used to reset the backoff, so the
    connection was made again every 50-100 ms; and a session refused was taken for one that
    had worked, tried again at once every second on top. The log says the session was refused,
    not that INFO wants a permission, and so does /ready."""
    s = stack_factory("refused-session")
    s.create()
    ids = query_connection_ids(s)
    assert len(ids) == 2, s.r.client_list()
    s.r.config_set("requirepass", "closed")  # sessions begun from now on are refused
    try:
        before = s.r.info("stats")["total_connections_received"]
        assert s.r.client_kill_filter(_id=ids[0]) == 1
        killed_at = time.monotonic()
        time.sleep(1.0)
        # whichever thread answers, /ready says what Redis said, not only that it failed
        readies = [requests.get(s.url("/ready"), timeout=5) for _ in range(6)]
        time.sleep(max(0.0, killed_at + 5.0 - time.monotonic()))
        made = s.r.info("stats")["total_connections_received"] - before
    finally:
        s.r.config_set("requirepass", "")
    for r in readies:
        assert r.status_code == 503, r.text
        assert "Redis refused the session: NOAUTH" in r.json()["reasons"]["redis"], r.text
    # 50, 100, 200, 400, 800, then 1000 ms apart: 9 attempts in 5 s (each on a 50 ms tick, so
    # fewer when late); 13 when each refusal is followed by one at once, 50 or more on a reset
    assert 4 <= made <= 10, made
    wait_until(lambda: {requests.get(s.url("/ready"), timeout=5).status_code
                        for _ in range(6)} == {200}, 5, what="/ready to answer 200")
    log = s.server.stderr_tail(10**6)
    assert "Redis refused the session: NOAUTH" in log, log[-2000:]
    assert "grant +info" not in log, log[-2000:]



# ---------------------------------------------------------------------------------------------
# 3. catalogd killed with SIGKILL under a write load


class Sampler:
    """Calls self.sample() every "interval" s in a thread, until stop() or "max_seconds"."""

    interval = 0.01

    def __init__(self, max_seconds=30.0):
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            self.sample()
            time.sleep(self.interval)
        self.close()

    def sample(self):
        raise NotImplementedError

    def close(self):
        pass

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


class CheckpointSampler(Sampler):
    """Reads catalogd:gen-v2 and its checkpoint from Redis every few ms."""

    def __init__(self, redis_proc, max_seconds=30.0):
        super().__init__(max_seconds)
        self.client = redis_proc.client()
        self.samples = []
        self.errors = 0

    def sample(self):
        try:
            gen, cp = redis_checkpoint(self.client)
            if cp is not None:
                self.samples.append((time.monotonic(), gen, cp))
        except Exception:  # noqa: BLE001 - counted, the test decides
            self.errors += 1

    def close(self):
        self.client.close()


def test_sigkill_catalogd_under_write_load(fresh):
    for _ in range(5):
        fresh.create()
    sampler = CheckpointSampler(fresh.redis).start()
    load = WriteLoad(fresh.base, threads=4, seconds=6.0, prefix="KILL").start()
    try:
        time.sleep(1.0)
        old = fresh.server
        os.kill(old.proc.pid, signal.SIGKILL)
        rc = old.proc.wait(timeout=5)
        assert rc == -signal.SIGKILL
        t_killed = time.monotonic()
        load.stop()
        old.proc = None
        # a new catalogd on the same db and the same Redis
        new = Server(fresh.tmp, fresh.redis_url, fresh.db)
        fresh.server = new
        new.start()
        t_restarted = time.monotonic()

        acked = load.acked()
        assert len(acked) >= 20, f"the load got only {len(acked)} 201s before the kill"
        assert all(r["status"] == 201 for r in acked)
        texts = sqlite_texts(fresh.db)
        lost = [json.loads(r["text"])["id"] for r in acked
                if json.loads(r["text"])["id"] not in texts]
        assert not lost, f"{len(lost)} acknowledged products are not in SQLite after SIGKILL"
        for r in acked:
            assert texts[json.loads(r["text"])["id"]] == r["text"]

        # the restarted server serves every acknowledged id (and all the rest of SQLite)
        wait_all_served(new.base, texts, timeout=10, what="products after restart")
        wait_until(lambda: redis_checkpoint(fresh.r)[1] == max_seq(fresh.db), 10,
                   what="the checkpoint to reach the head after restart")
        # it resumed from its checkpoint rather than rebuilding
        proj = requests.get(new.base + "/admin/projection", timeout=3).json()
        assert proj.get("automatic_rebuilds") == 0, proj
        resp, _ = fresh.create()
        assert resp.headers.get("Projection") == "applied"
        time.sleep(0.1)
    finally:
        load.stop_event.set()
        sampler.stop()

    samples = sampler.samples
    assert samples, "no checkpoint was ever read"
    assert any(t < t_killed for t, _, _ in samples) and any(t > t_restarted for t, _, _ in samples)
    gens = {g for _, g, _ in samples}
    assert len(gens) == 1, f"the generation changed across the restart: {sorted(gens)}"
    backwards = [(a, b) for a, b in zip(samples, samples[1:]) if b[2] < a[2]]
    assert not backwards, f"the checkpoint moved backwards: {backwards[:3]}"
    assert_verify_ok(fresh)


# ---------------------------------------------------------------------------------------------
# 4. FLUSHALL under a write load: automatic rebuild


class ReadyPoller(Sampler):
    """Records every /ready answer, every 20 ms."""

    interval = 0.02

    def __init__(self, base, max_seconds=30.0):
        super().__init__(max_seconds)
        self.base = base
        self.seen = []
        self.session = requests.Session()

    def sample(self):
        try:
            r = self.session.get(self.base + "/ready", timeout=2)
            self.seen.append((time.monotonic(), r.status_code, r.text))
        except requests.RequestException as exc:
            self.seen.append((time.monotonic(), None, repr(exc)))

    def close(self):
        self.session.close()


def test_flushall_under_write_load_rebuilds_by_itself(fresh):
    with ThreadPoolExecutor(max_workers=4) as pool:
        pre = list(pool.map(lambda i: post_product(fresh.base, name=f"Pre {i}"), range(100)))
    assert all(r.status_code == 201 for r in pre)
    poller = ReadyPoller(fresh.base).start()
    load = WriteLoad(fresh.base, threads=4, seconds=3.0, prefix="FLUSH").start()
    try:
        time.sleep(1.0)
        t_flush = time.monotonic()
        fresh.r.flushall()
        load.join()
        bad = [r for r in load.results if r["status"] != 201]
        assert not bad, (f"commands must keep answering 201 through FLUSHALL: {load.summary()} "
                         f"(catalogd exit status: {fresh.server.proc.poll()})")

        texts = sqlite_texts(fresh.db)
        for r in load.acked():
            assert texts[json.loads(r["text"])["id"]] == r["text"]
        wait_all_served(fresh.base, texts, timeout=15, what="products after FLUSHALL")
        wait_ready(fresh.base, 10)
        time.sleep(0.1)
    finally:
        load.stop_event.set()
        poller.stop()

    after = [(t, st, body) for t, st, body in poller.seen if t >= t_flush]
    assert after and after[-1][1] == 200, after[-3:]
    for t, st, body in after:
        assert st in (200, 503), (st, body)
        if st == 503:
            problem = json.loads(body)
            detail = problem.get("detail", "")
            assert WRITE_MODEL_CHECK not in detail, \
                f"FLUSHALL made /ready blame the write model: {body}"
            assert "redis" in detail or "projection" in detail, body
            assert problem.get("state") in ("rebuilding", "catching_up", "redis_down",
                                            "starting", "live"), body
    proj = requests.get(fresh.url("/admin/projection"), timeout=3).json()
    assert proj["automatic_rebuilds"] >= 1, proj
    assert redis_gen(fresh.r) is not None
    assert proj["lag_events"] == 0 and proj["checkpoint"] == max_seq(fresh.db), proj
    assert_verify_ok(fresh)


def test_flushall_never_serves_404_for_a_known_product(fresh):
    """README: after Redis loses its data, queries answer 503 until the read model is back -
    never a 404 that tells a client an existing product does not exist."""
    views = [fresh.create()[1] for _ in range(20)]
    ids = [v["id"] for v in views]
    seen = []
    stop = threading.Event()

    def reader():
        s = requests.Session()
        deadline = time.monotonic() + 15
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            pid = ids[i % len(ids)]
            i += 1
            try:
                r = s.get(fresh.url(f"/products/{pid}"), timeout=3)
                seen.append((pid, r.status_code))
            except requests.RequestException as exc:
                seen.append((pid, repr(exc)))
        s.close()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        fresh.r.flushall()
        wait_all_served(fresh.base, {v["id"]: v["raw"] for v in views}, timeout=10)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(5)
    statuses = {}
    for _, st in seen:
        statuses[st] = statuses.get(st, 0) + 1
    assert statuses.get(200), f"no read succeeded around FLUSHALL: {statuses}"
    assert set(statuses) <= {200, 503}, f"known products answered {statuses} around FLUSHALL"


# ---------------------------------------------------------------------------------------------
# 5. the write model cannot take writes


def test_write_model_locked_by_another_process(fresh):
    views = [fresh.create()[1] for _ in range(3)]
    counts_before = fresh.counts()
    failed_skus = []
    with write_lock(fresh.db):
        t_locked = time.monotonic()
        # one command: 503 with Retry-After, in bounded time
        sku = uniq_sku("LOCK")
        t0 = time.monotonic()
        r = post_product(fresh.base, sku, timeout=10)
        dt = time.monotonic() - t0
        failed_skus.append(sku)
        problem = assert_problem(r, 503)
        assert problem["type"].endswith("write-model-unavailable"), problem
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        assert "Projection" not in r.headers
        assert dt < 3.0, f"the command took {dt:.2f}s to give up on a locked database"

        # several at once: all refused, none half-written
        skus = [uniq_sku("LOCKB") for _ in range(4)]
        failed_skus += skus

        def timed_post(s):
            t0 = time.monotonic()
            r = post_product(fresh.base, s, timeout=10)
            return r, time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=4) as pool:
            burst = list(pool.map(timed_post, skus))
        for r, dt in burst:
            assert_problem(r, 503)
            assert r.headers.get("Retry-After", "").isdigit()
            assert dt < 4.5, f"a concurrent command took {dt:.2f}s on a locked database"

        # reads keep working; /ready names the write model; the process lives
        got = fresh.get(f"/products/{views[0]['id']}")
        assert got.status_code == 200 and got.text == views[0]["raw"]
        assert fresh.get("/catalog").status_code == 200
        code, ready = ready_status(fresh.base)
        problem = assert_problem(ready, 503)
        assert WRITE_MODEL_CHECK in problem["detail"], problem
        assert fresh.get("/health").status_code == 200
        assert fresh.server.proc.poll() is None
        assert fresh.counts() == counts_before, "a refused command left rows behind"
        assert time.monotonic() - t_locked < 12

    # released: /ready recovers by itself, without any command to prove it
    wait_ready(fresh.base, 5, what="/ready to return to 200 after the lock is released, "
                                   "without traffic")
    assert fresh.counts() == counts_before
    for sku in failed_skus:
        assert sql(fresh.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(0,)]
    resp, v = fresh.create()
    assert resp.headers.get("Projection") == "applied"
    assert fresh.counts() == (counts_before[0] + 1, counts_before[1] + 1)
    # a refused SKU was never taken
    r = post_product(fresh.base, failed_skus[0])
    assert r.status_code == 201, r.text
    assert_verify_ok(fresh)


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (mount)")


def _run(cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed: {p.stdout}{p.stderr}")
    return p


@contextmanager
def tmpfs_dir(size):
    _need_root()
    d = Path(tempfile.mkdtemp(prefix="catalogd-tmpfs-"))
    p = _run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], check=False)
    if p.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield d
    finally:
        if _run(["umount", str(d)], check=False).returncode != 0:
            _run(["umount", "-l", str(d)], check=False)
        shutil.rmtree(d, ignore_errors=True)


@contextmanager
def ext4_loop_dir():
    """A small ext4 file system on a loop device, mounted errors=remount-ro."""
    _need_root()
    for tool in ("losetup", "mkfs.ext4"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="catalogd-ext4-"))
    img, mnt = work / "fs.img", work / "mnt"
    mnt.mkdir()
    loop = None
    try:
        with open(img, "wb") as f:
            f.truncate(32 * 1024 * 1024)
        _run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(img)])
        p = _run(["losetup", "-f", "--show", str(img)], check=False)
        if p.returncode != 0:
            pytest.skip(f"no loop device: {p.stderr.strip()}")
        loop = p.stdout.strip()
        p = _run(["mount", "-o", "errors=remount-ro", loop, str(mnt)], check=False)
        if p.returncode != 0:
            pytest.skip(f"cannot mount ext4 on {loop}: {p.stderr.strip()}")
        try:
            yield mnt, Path("/sys/fs/ext4") / os.path.basename(loop)
        finally:
            if _run(["umount", str(mnt)], check=False).returncode != 0:
                _run(["umount", "-l", str(mnt)], check=False)
    finally:
        if loop:
            _run(["losetup", "-d", loop], check=False)
        shutil.rmtree(work, ignore_errors=True)


def _stack_with_db(db_path):
    s = Stack("custom-db")
    s.db = Path(db_path)
    s.server = Server(s.tmp, s.redis.url, s.db)
    return s


def refusing_triggers(sku):
    """Triggers planted by hand in the write model: every UPDATE and DELETE of a product, and
    the INSERT of a product with "sku", fail with an error of the database's own."""
    if BACKEND == "postgresql":
        return ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'refused by a trigger'; END$$",
                "CREATE TRIGGER refuse_change BEFORE UPDATE OR DELETE ON products "
                "FOR EACH ROW EXECUTE FUNCTION refuse()",
                "CREATE TRIGGER refuse_sku BEFORE INSERT ON products FOR EACH ROW "
                f"WHEN (NEW.sku = '{sku}') EXECUTE FUNCTION refuse()"]
    return ["CREATE TRIGGER refuse_update BEFORE UPDATE ON products "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON products "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
            f"CREATE TRIGGER refuse_sku BEFORE INSERT ON products WHEN NEW.sku = '{sku}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"]


def test_a_write_the_write_model_refuses_fails_its_batch_whole(fresh):
    """A write the database itself refuses (a trigger planted by hand) fails its command's
    batch with 503 and leaves nothing of it: on PostgreSQL a change's UPDATE or DELETE goes
    unawaited with its event's INSERT, and a run of creates is one statement, so the refusal
    must reach every command of the batch. Once the trigger is gone the same commands pass."""
    _, changed = fresh.create(stock=5)
    _, deleted = fresh.create(stock=5)
    boom = uniq_sku("BOOM")
    for statement in refusing_triggers(boom):
        sql_write(fresh.db, statement)
    before = fresh.counts()
    item = fresh.url(f"/products/{changed['id']}")
    refused = [requests.patch(item, data='{"name":"Renamed"}', headers=JSON_CT, timeout=10),
               requests.post(item + "/stock", data='{"delta":-1}', headers=JSON_CT, timeout=10),
               requests.delete(fresh.url(f"/products/{deleted['id']}"), timeout=10)]
    for r in refused:
        assert_problem(r, 503)
    # creates at once, one of them refused: its batch fails whole, whichever others it held
    skus = [boom] + [uniq_sku("RUN") for _ in range(11)]
    with ThreadPoolExecutor(max_workers=len(skus)) as pool:
        answers = list(pool.map(lambda s: post_product(fresh.base, s), skus))
    assert_problem(answers[0], 503)
    made = {s: r.json()["id"] for s, r in zip(skus, answers) if r.status_code == 201}
    assert all(r.status_code in (201, 503) for r in answers), [r.status_code for r in answers]
    assert fresh.counts() == (before[0] + len(made), before[1] + len(made))
    for s, r in zip(skus, answers):
        rows = sql(fresh.db, "SELECT id FROM products WHERE sku = ?", (s,))
        assert rows == ([(made[s],)] if s in made else []), (s, r.status_code, rows)
    assert sql(fresh.db, "SELECT version, name, stock FROM products WHERE id = ?",
               (changed["id"],)) == [(1, "Widget", 5)]
    assert fresh.get(f"/products/{deleted['id']}").status_code == 200

    for statement in (["DROP FUNCTION refuse() CASCADE"] if BACKEND == "postgresql" else
                      ["DROP TRIGGER refuse_update", "DROP TRIGGER refuse_delete",
                       "DROP TRIGGER refuse_sku"]):
        sql_write(fresh.db, statement)
    assert requests.patch(item, data='{"name":"Renamed"}', headers=JSON_CT,
                          timeout=10).status_code == 200
    assert requests.delete(fresh.url(f"/products/{deleted['id']}"), timeout=10).status_code == 204
    assert post_product(fresh.base, boom).status_code == 201
    p = fresh.cli("verify")
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])


@pytest.mark.sqlite_only(reason="remounts the file system under the SQLite file read-only")
def test_tmpfs_remount_read_only_is_refused_while_catalogd_has_the_db_open():
    """Documents why the read-only test below uses a kernel-forced read-only ext4: Linux will
    not remount a file system read-only while a process holds a file on it open for writing.
    If this ever succeeds, catalogd must still answer 503 and keep serving reads."""
    with tmpfs_dir("4m") as d:
        s = _stack_with_db(d / "catalog.db")
        try:
            s.start()
            _, v = s.create()
            p = _run(["mount", "-o", "remount,ro", str(d)], check=False)
            if p.returncode != 0:
                assert "busy" in p.stderr, p.stderr
                pytest.skip("the kernel refuses `mount -o remount,ro` while catalogd holds the "
                            f"db open for writing ({p.stderr.strip().splitlines()[0]})")
            try:
                r = post_product(s.base, timeout=10)
                problem = assert_problem(r, 503)
                assert problem["type"].endswith("write-model-unavailable")
                assert s.get(f"/products/{v['id']}").status_code == 200
                assert s.server.proc.poll() is None
            finally:
                _run(["mount", "-o", "remount,rw", str(d)], check=False)
            wait_ready(s.base, 5)
            assert post_product(s.base).status_code == 201
        finally:
            s.stop()


@pytest.mark.sqlite_only(reason="the kernel makes the file system of the SQLite file "
                                  "read-only; PostgreSQL's data directory is the server's")
def test_write_model_made_read_only_by_the_kernel():
    """ext4 mounted errors=remount-ro; an injected file-system error makes the kernel switch it
    to read-only under the running catalogd (as after a disk error). Commands answer 503,
    queries keep answering, the process lives, nothing is half-written."""
    with ext4_loop_dir() as (mnt, sysfs):
        trigger = sysfs / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"{trigger} does not exist (kernel without ext4 error injection)")
        s = _stack_with_db(mnt / "catalog.db")
        try:
            s.start()
            views = [s.create()[1] for _ in range(5)]
            counts_before = s.counts()
            trigger.write_text("catalogd fault test\n")
            opts = set(_run(["findmnt", "-no", "OPTIONS", str(mnt)]).stdout.strip().split(","))
            assert "ro" in opts or "emergency_ro" in opts, opts  # the kernel made it read-only
            refused = []
            for i in range(3):
                sku = uniq_sku("RO")
                t0 = time.monotonic()
                r = post_product(s.base, sku, timeout=10)
                dt = time.monotonic() - t0
                refused.append(sku)
                assert r.status_code != 500, f"a read-only write model gave 500: {r.text}"
                problem = assert_problem(r, 503)
                assert problem["type"].endswith("write-model-unavailable"), problem
                assert r.headers.get("Retry-After", "").isdigit(), r.headers
                assert dt < 3.0, f"a command took {dt:.2f}s on a read-only file system"
            for v in views:
                got = s.get(f"/products/{v['id']}")
                assert got.status_code == 200 and got.text == v["raw"]
            assert s.get("/catalog").headers.get("X-Total-Count") == str(len(views))
            for sku in refused:
                assert s.get(f"/products/by-sku/{sku}").status_code == 404
            problem = assert_problem(ready_status(s.base)[1], 503)
            assert "sqlite" in problem["detail"], problem
            assert s.get("/health").status_code == 200
            assert s.server.proc.poll() is None, "catalogd died on a read-only file system"
            # nothing half-written: read a copy of the files (the file system is read-only)
            copy = Path(s.tmp) / "ro-copy"
            copy.mkdir()
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(s.db) + suffix)
                if src.exists():
                    shutil.copy(src, copy / ("catalog.db" + suffix))
            counts_after = (sql(copy / "catalog.db", "SELECT COUNT(*) FROM products")[0][0],
                            sql(copy / "catalog.db", "SELECT COUNT(*) FROM events")[0][0])
            assert counts_after == counts_before
        finally:
            s.stop()


@pytest.mark.sqlite_only(reason="fills the tmpfs that holds the SQLite file; PostgreSQL's "
                                  "data directory is the server's")
def test_write_model_disk_full():
    with tmpfs_dir("512k") as d:
        s = _stack_with_db(d / "catalog.db")
        try:
            s.start()
            acked = {}
            first_failure = None
            deadline = time.monotonic() + 15
            session = requests.Session()
            for i in range(3000):
                assert time.monotonic() < deadline, f"no failure after {i} posts in 15 s"
                sku = uniq_sku("FULL")
                r = post_product(s.base, sku, session=session, timeout=10,
                                 name="Filler " + "x" * 150)
                if r.status_code == 201:
                    acked[r.json()["id"]] = r.text
                    continue
                first_failure = (sku, r)
                break
            session.close()
            assert first_failure is not None, "512 KiB never filled up"
            sku, r = first_failure
            assert r.status_code != 500, f"a full disk gave 500: {r.text}"
            problem = assert_problem(r, 503)
            assert problem["type"].endswith("write-model-unavailable"), problem
            assert r.headers.get("Retry-After", "").isdigit(), r.headers
            refused = [sku]
            for _ in range(2):
                sku = uniq_sku("FULL")
                r = post_product(s.base, sku, timeout=10, name="Filler " + "x" * 150)
                if r.status_code == 503:
                    refused.append(sku)
                else:
                    assert r.status_code == 201, (r.status_code, r.text)  # never 500
                    acked[r.json()["id"]] = r.text
            assert s.server.proc.poll() is None, "catalogd died on a full disk"
            assert s.get("/health").status_code == 200
            some = list(acked)[:: max(1, len(acked) // 10)]
            for pid in some:
                got = s.get(f"/products/{pid}")
                assert got.status_code == 200 and got.text == acked[pid]
            texts = sqlite_texts(s.db)
            missing = [pid for pid in acked if pid not in texts]
            assert not missing, f"{len(missing)} acknowledged products are not in SQLite"
            for pid, text in acked.items():
                assert texts[pid] == text
            assert len(texts) == len(acked), "SQLite holds products nobody was told about"
            for sku in refused:
                assert sql(s.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(0,)]

            # space comes back: writes work again without a restart
            _run(["mount", "-o", "remount,size=16m", str(d)])
            wait_ready(s.base, 5, what="/ready 200 once the disk has room again")
            r = post_product(s.base, refused[0], timeout=10)
            assert r.status_code == 201, r.text
            assert_verify_ok(s)
        finally:
            s.stop()


# ---------------------------------------------------------------------------------------------
# 6. rebuild while a reader loops over the whole catalog


def test_rebuild_while_a_reader_loops_never_misses_a_product(fresh):
    n, limit = 300, 64
    with ThreadPoolExecutor(max_workers=6) as pool:
        resps = list(pool.map(lambda i: post_product(fresh.base, name=f"Item {i}", stock=i % 3),
                              range(n)))
    assert all(r.status_code == 201 for r in resps), {r.status_code for r in resps}
    texts = {r.json()["id"]: r.text for r in resps}
    by_sku = {r.json()["sku"]: r.text for r in resps}
    all_ids = sorted(texts)  # UUIDv7: creation order, the catalog's order
    problems = []
    passes = []
    stop = threading.Event()

    def one_pass(session, k):
        url = fresh.url(f"/catalog?limit={limit}")
        seen = []
        pages = 0
        while url:
            pages += 1
            if pages > n // limit + 3:
                problems.append(f"pass {k}: too many pages")
                return
            r = session.get(url, timeout=5)
            if r.status_code != 200:
                problems.append(f"pass {k}: GET {url} -> {r.status_code} {r.text[:200]}")
                return
            page = r.json()
            if r.headers.get("X-Total-Count") != str(n):
                problems.append(f"pass {k}: X-Total-Count {r.headers.get('X-Total-Count')}")
            nxt = r.links.get("next", {}).get("url")
            expected_len = limit if nxt else n - len(seen)
            if len(page) != expected_len:
                problems.append(f"pass {k}: short page: {len(page)} items, expected "
                                f"{expected_len} (after {len(seen)})")
            for v in page:
                if v.get("id") not in texts or json.loads(texts[v["id"]]) != v:
                    problems.append(f"pass {k}: unknown or altered product {v.get('id')}")
            seen += [v.get("id") for v in page]
            url = urljoin(fresh.base + "/", nxt) if nxt else None
        if seen != all_ids:
            missing = set(all_ids) - set(seen)
            problems.append(f"pass {k}: {len(seen)} ids, {len(missing)} missing, "
                            f"order ok={sorted(seen) == seen}")
        # by id and by SKU: a rotating slice of the catalog each pass
        for pid in all_ids[(k * 37) % n:][:37]:
            r = session.get(fresh.url(f"/products/{pid}"), timeout=5)
            if r.status_code != 200 or r.text != texts[pid]:
                problems.append(f"pass {k}: GET /products/{pid} -> {r.status_code}")
        for sku in list(by_sku)[(k * 7) % n:][:7]:
            r = session.get(fresh.url(f"/products/by-sku/{sku}"), timeout=5)
            if r.status_code != 200 or r.text != by_sku[sku]:
                problems.append(f"pass {k}: GET by-sku {sku} -> {r.status_code}")

    def reader():
        s = requests.Session()
        deadline = time.monotonic() + 30
        k = 0
        while not stop.is_set() and time.monotonic() < deadline and k < 2000:
            t0 = time.monotonic()
            try:
                one_pass(s, k)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                problems.append(f"pass {k}: {exc!r}")
            passes.append((t0, time.monotonic()))
            k += 1
        s.close()

    gen_before = redis_gen(fresh.r)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(passes) >= 2, 10, what="the reader's first passes")
        t_rb = time.monotonic()
        rb = fresh.cli("rebuild")  # switches, waits, then drops the old generation
        t_rb_done = time.monotonic()
        assert rb.returncode == 0, out(rb)
        n_after = len(passes)
        wait_until(lambda: len(passes) >= n_after + 3, 10, what="passes after the rebuild")
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    assert not problems, f"{len(problems)} problems in {len(passes)} passes: {problems[:8]}"
    during = [p for p in passes if p[1] > t_rb and p[0] < t_rb_done]
    assert len(during) >= 3, f"only {len(during)} passes overlapped the rebuild"
    gen_after = redis_gen(fresh.r)
    assert gen_after != gen_before
    leftovers = list(fresh.r.scan_iter(f"{PREFIX}:g{gen_before}:*", count=1000))
    assert not leftovers, f"{len(leftovers)} keys of the old generation are left"
    assert_verify_ok(fresh)

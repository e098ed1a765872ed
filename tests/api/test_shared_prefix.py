"""Two catalogs (two write models) given the same Redis and prefix by mistake.

Without a guard, each projector finds the read model "diverged" from its own write model and
rebuilds it from its own, over and over, and each server answers queries with the other's
products in between. The projector that writes the read model holds {prefix}:holder; the
other catalog keeps out (its queries and rebuilds answer 503, /ready says held_elsewhere)
until the holder stops or dies (its hold expires in 5 s) and the prefix has stayed free for
5 s more, then takes over, and answers queries once its own generation is there."""
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import (BACKEND, PREFIX, PgDatabase, Server, Stack, assert_problem, bulk_create,
                      cli, db_backup, db_restore, new_write_model, uniq_sku, wait_until)

HOLD_TTL_S = 5
HOLD_YIELD_S = 5  # how long a held-out catalog waits on a prefix it finds free


class SecondCatalog:
    """A catalogd on its own write model, pointed at another stack's Redis. Started without
    waiting for /ready: while the prefix is held elsewhere it is never ready."""

    def __init__(self, redis_url):
        self.tmp = Path(tempfile.mkdtemp(prefix="catalogd-api-second-"))
        self.server = Server(self.tmp, redis_url, new_write_model(self.tmp))

    def start(self):
        s = self.server
        err = open(s.stderr_path, "ab")
        s.proc = subprocess.Popen(s.command(), stdout=subprocess.DEVNULL, stderr=err,
                                  cwd=str(self.tmp))
        err.close()
        wait_until(lambda: self._health() == 200, 15, what="the second catalog's /health")
        # On PostgreSQL it first wins its own catalog's election, then finds the prefix held.
        wait_until(lambda: self.get("/ready").json().get("state") == "held_elsewhere", 15,
                   what="the second catalog to find the prefix held elsewhere")

    def _health(self):
        try:
            return requests.get(self.server.base + "/health", timeout=1).status_code
        except requests.RequestException:
            return None

    def get(self, path):
        return requests.get(self.server.base + path, timeout=5)

    def create(self, sku):
        return requests.post(self.server.base + "/products", timeout=5,
                             json={"sku": sku, "name": "Other", "price": 1.25, "stock": 4})

    def stop(self):
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(self.server.db, PgDatabase) and self.server.db.server.running:
            self.server.db.drop()


def catalog_ids(get):
    resp = get("/catalog?limit=100")
    assert resp.status_code == 200, resp.text
    return {view["id"] for view in resp.json()}


def assert_keeps_out(second, first_ids):
    """The second catalog answers nothing from the first's read model."""
    for path in ("/catalog", f"/products/{next(iter(first_ids))}"):
        problem = assert_problem(second.get(path), 503)
        assert problem["type"].endswith("read-model-unavailable"), problem
        assert "another catalog" in problem["detail"], problem
    ready = second.get("/ready")
    assert ready.status_code == 503 and ready.json()["state"] == "held_elsewhere", ready.text
    rebuild = requests.post(second.server.base + "/admin/rebuild", timeout=5)
    assert_problem(rebuild, 503)


def assert_first_serves_and_second_keeps_out(first, second, first_ids, generation):
    """For several of the holder's refresh periods: the first serves its own catalog, nothing
    rebuilds, and the second answers nothing from the first's read model."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert catalog_ids(first.get) == first_ids
        assert first.r.get(f"{PREFIX}:gen-v2") == generation
        assert_keeps_out(second, first_ids)
        time.sleep(0.2)


def test_a_second_catalog_keeps_out_while_the_first_lives_then_takes_over():
    first = Stack("first").start()
    second = SecondCatalog(first.redis_url)
    try:
        first_ids = {first.create()[1]["id"] for _ in range(3)}
        generation = first.r.get(f"{PREFIX}:gen-v2")
        second.start()
        made = [second.create(uniq_sku("OTHER")) for _ in range(3)]
        assert all(r.status_code == 201 for r in made), [r.text for r in made]
        assert all(r.headers["Projection"] == "pending" for r in made)
        # Enough products that the second's rebuild, when it takes over, takes a while.
        made += bulk_create(second.server.base, 1500, prefix="OTHER")
        second_ids = {r.json()["id"] for r in made}

        assert_first_serves_and_second_keeps_out(first, second, first_ids, generation)
        log = second.server.stderr_path.read_text(errors="replace")
        assert f":{first.server.proc.pid}" in log and "--redis-prefix" in log, log
        # Nor may a rebuild from the command line put the second catalog there.
        run = cli(["rebuild", "--db", str(second.server.db), "--redis", first.redis_url])
        assert run.returncode == 1 and "another catalog" in run.stderr, (run.stdout, run.stderr)
        assert first.r.get(f"{PREFIX}:gen-v2") == generation
        assert catalog_ids(first.get) == first_ids
        # verify from the second lists the first's read model as differences, and says why;
        # from the first, it finds none and names no other catalog.
        run = cli(["verify", "--db", str(second.server.db), "--redis", first.redis_url])
        assert run.returncode == 1 and "difference" in run.stdout, (run.stdout, run.stderr)
        assert "another catalog" in run.stderr, (run.stdout, run.stderr)
        assert f":{first.server.proc.pid}" in run.stderr, run.stderr
        run = cli(["verify", "--db", str(first.server.db), "--redis", first.redis_url])
        assert run.returncode == 0 and "another catalog" not in run.stderr, (run.stdout,
                                                                            run.stderr)
        # (keeping the hold from there would have named verify's process as its instance)
        assert first.r.get(f"{PREFIX}:holder").endswith(f":{first.server.proc.pid}".encode())

        # The first stops (and lets go): the second takes over, and from the first answer
        # on serves its own catalog, never the first's generation it rebuilds over.
        first.server.stop()
        deadline = time.monotonic() + HOLD_YIELD_S + 10
        with requests.Session() as http:
            while time.monotonic() < deadline:
                page = http.get(second.server.base + "/catalog?limit=100", timeout=5)
                if page.status_code == 200:
                    assert not {v["id"] for v in page.json()} & first_ids, page.text[:300]
                    if second.get("/ready").status_code == 200:
                        break
        assert second.get("/ready").status_code == 200, second.get("/ready").text
        assert second.get("/catalog").headers["X-Total-Count"] == str(len(second_ids))
        holder = first.r.get(f"{PREFIX}:holder").decode()
        assert holder.endswith(f":{second.server.proc.pid}"), holder
    finally:
        second.stop()
        first.stop()


def test_the_holder_keeps_the_prefix_when_redis_loses_it():
    """FLUSHALL takes the hold with everything else: the holder claims it back at its next
    refresh, while the catalog held out waits for it to stay free; never a coin toss."""
    first = Stack("first").start()
    second = SecondCatalog(first.redis_url)
    try:
        first_ids = {first.create()[1]["id"] for _ in range(2)}
        second.start()
        second.create(uniq_sku("OTHER"))
        for _ in range(3):
            first.r.flushall()
            wait_until(lambda: first.get("/ready").status_code == 200, 15,
                       what="the first catalog's read model rebuilt")
            assert catalog_ids(first.get) == first_ids
            assert_keeps_out(second, first_ids)
            time.sleep(1)
    finally:
        second.stop()
        first.stop()


def test_a_catalog_held_out_collects_no_generation_under_the_prefix():
    """Generations nobody reads (left by a rebuild that died) are collected by the catalog that
    holds the prefix, never by one kept out: it writes nothing under another's prefix. Each
    catalog collects every 5 s; over four leftovers, one that collected too would drop one."""
    first = Stack("first").start()
    second = SecondCatalog(first.redis_url)
    try:
        first.create()
        second.start()
        for trial in range(4):
            gen = 1000 + trial
            leftover = f"{PREFIX}:g{gen}:leftover"
            first.r.hset(f"{PREFIX}:generations", str(gen), 1)  # retired long ago
            first.r.set(leftover, "x")
            # Its keys go first, then its entry in the registry: a step apart.
            wait_until(lambda: not first.r.exists(leftover)
                       and first.r.hget(f"{PREFIX}:generations", str(gen)) is None, 15,
                       what=f"leftover generation {gen} collected")
            dropped = second.get("/admin/projection").json()["generations_dropped"]
            assert dropped == 0, (trial, dropped)
        # Counted a step after the registry entry goes.
        wait_until(lambda: first.get("/admin/projection").json()["generations_dropped"] >= 4,
                   5, what="the holder to count its four drops")
    finally:
        second.stop()
        first.stop()


def test_a_hold_not_written_by_catalogd_is_taken_over():
    """A value written by hand under the key, not of the holder's form, or with an expiry
    past or further ahead than a hold lasts, and no expiry of its own, would keep every
    catalog out for ever: it counts as free."""
    forever = "9" * 15  # Unix ms in the year 33658
    for value, ttl in (("junk", None), ("0" * 32 + " 1 someone", None),
                       ("0" * 32 + f" {forever} someone", None)):
        s = Stack("junk-hold")
        try:
            s.start(before_server=lambda st: st.r.set(f"{PREFIX}:holder", value, px=ttl))
            assert s.get("/catalog").status_code == 200
            assert s.r.get(f"{PREFIX}:holder").decode().endswith(f":{s.server.proc.pid}")
        finally:
            s.stop()


def test_the_hold_of_a_dead_catalog_expires():
    first = Stack("first").start()
    second = SecondCatalog(first.redis_url)
    try:
        first_ids = {first.create()[1]["id"] for _ in range(2)}
        second.start()
        second_id = second.create(uniq_sku("OTHER")).json()["id"]
        assert_keeps_out(second, first_ids)
        first.server.proc.send_signal(signal.SIGKILL)
        first.server.proc.wait(timeout=5)
        killed_at = time.monotonic()
        # The dead one's hold lives on until it expires, at least 4 s from now (it was
        # refreshed at most 1 s before the kill): the second must not take over before.
        time.sleep(2)
        assert_keeps_out(second, first_ids)
        wait_until(lambda: second.get("/ready").status_code == 200, HOLD_TTL_S + HOLD_YIELD_S + 8,
                   what="the second catalog ready once the first's hold expired")
        assert time.monotonic() - killed_at >= HOLD_TTL_S - 1.5
        assert catalog_ids(second.get) == {second_id}
    finally:
        second.stop()
        first.stop()


def test_a_copy_of_a_catalog_on_the_same_prefix_keeps_out():
    """A copy of the write model (a backup restored elsewhere, a staging clone: SQLite's online
    backup into another file, or pg_dump restored into another database) is another catalog
    from then on: given the same Redis and prefix, it keeps out as any other catalog does. A
    name kept in the write model alone, which a copy keeps too, made both project, and each
    rebuilt the read model over the other's every second or two."""
    first = Stack("first").start()
    second = SecondCatalog(first.redis_url)
    try:
        first_ids = {first.create()[1]["id"] for _ in range(3)}
        generation = first.r.get(f"{PREFIX}:gen-v2")
        copy = second.tmp / "copy.backup"
        db_backup(first.db, copy)
        db_restore(second.server.db, copy)
        second.start()  # waits for held_elsewhere
        made = second.create(uniq_sku("COPY"))
        assert made.status_code == 201 and made.headers["Projection"] == "pending", made.text
        assert_first_serves_and_second_keeps_out(first, second, first_ids, generation)
        rebuilt = cli(["rebuild", "--db", str(second.server.db), "--redis", first.redis_url])
        assert rebuilt.returncode != 0 and "another catalog" in rebuilt.stderr, rebuilt.stderr
        assert first.r.get(f"{PREFIX}:gen-v2") == generation
        assert catalog_ids(first.get) == first_ids
    finally:
        second.stop()
        first.stop()


def test_a_holder_frozen_past_its_hold_never_serves_what_replaced_it():
    """The holder frozen (SIGSTOP) longer than its hold lasts: the other catalog takes the
    prefix over and rebuilds it. Woken up, the old holder's queries must not answer from the
    other catalog's generation before its projector has looked again (it finds the prefix
    held elsewhere)."""
    first = Stack("first").start()
    second = SecondCatalog(first.redis_url)
    try:
        first_ids = {first.create()[1]["id"] for _ in range(2)}
        second.start()
        second_ids = {second.create(uniq_sku("OTHER")).json()["id"] for _ in range(2)}
        first.server.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: second.get("/ready").status_code == 200,
                       HOLD_TTL_S + HOLD_YIELD_S + 8, what="the second catalog taking over")
            assert catalog_ids(second.get) == second_ids
        finally:
            first.server.proc.send_signal(signal.SIGCONT)
        answers = []
        deadline = time.monotonic() + 3
        with requests.Session() as http:
            while time.monotonic() < deadline:
                page = http.get(first.url("/catalog?limit=100"), timeout=5)
                answers.append(page.status_code)
                if page.status_code == 200:
                    assert {v["id"] for v in page.json()} <= first_ids, page.text[:300]
        assert 503 in answers
        ready = first.get("/ready")
        assert ready.status_code == 503 and ready.json()["state"] == "held_elsewhere", ready.text
    finally:
        second.stop()
        first.stop()



@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL's catalog_identity")
def test_a_postgresql_catalog_that_lost_its_name_gets_one_all_its_instances_share():
    """catalog_identity without its row (a dump restored without that table's data): the
    first writer names the catalog again. Unnamed, each instance named it by its own spelling
    of the URI, and one spelled otherwise found its own catalog's read model held elsewhere."""
    s = Stack("unnamed").start()
    try:
        s.create()
        s.server.stop()
        s.db.query("DELETE FROM catalog_identity", read_only=False)
        s.server.start()
        assert len(s.db.query("SELECT catalog FROM catalog_identity")) == 1
        spelled_otherwise = f"{s.db.uri}?application_name=another-spelling"
        done = cli(["verify", "--db", spelled_otherwise, "--redis", s.redis_url])
        assert done.returncode == 0, done.stdout + done.stderr
        assert "another catalog" not in done.stderr, done.stderr
    finally:
        s.stop()

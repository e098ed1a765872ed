"""The sync between the write model (SQLite) and the read model (Redis): field-by-field
agreement, the checkpoint, the verify/rebuild CLI, and a Redis outage with catch-up."""

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import (BIN, PREFIX, assert_problem, bulk_create, cpu_seconds, delete_views,
                      redis_gen, redis_view, sql, sql_write, stored_views, uniq_sku,
                      verify_output, wait_until, write_lock)

UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"


def max_seq(db):
    return sql(db, "SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]


def assert_models_agree(s, product_id, served=None):
    """The SQLite row and the Redis view of one product agree, field by field."""
    rows = sql(s.db, "SELECT id, sku, name, price_cents, stock, version, created_at, updated_at "
               "FROM products WHERE id=?", (product_id,))
    assert len(rows) == 1, rows
    pid, sku, name, cents, stock, version, created_at, updated_at = rows[0]
    rv = redis_view(s.r, product_id)
    assert rv["raw"] is not None, f"no view for {product_id} in generation {rv['gen']}"
    view = rv["view"]
    raw = rv["raw"].decode()
    assert view["id"] == pid
    assert view["sku"] == sku
    assert view["name"] == name
    assert round(view["price"] * 100) == cents
    price_text = f"{cents // 100}.{cents % 100:02d}"
    assert f'"price":{price_text},' in raw, raw
    assert view["desc"] == f"{name} - ${price_text}"
    assert view["stock"] == stock
    assert view["available"] is (stock > 0)
    assert view["version"] == version
    assert view["created_at"] == created_at
    assert view["updated_at"] == updated_at
    assert rv["sku_id"] == pid
    assert rv["all_score"] == 0
    assert rv["in_stock_score"] == (0 if stock > 0 else None)
    if served is not None:
        assert raw == served
    return rv


def assert_checkpoint_is_head(s):
    gen = redis_gen(s.r)
    cp = s.r.get(f"{PREFIX}:g{gen}:checkpoint")
    assert cp is not None, "no checkpoint"
    assert cp.decode() == str(max_seq(s.db))


# ---------------------------------------------------------------------------------------------
# agreement after commands


def test_each_create_is_projected_before_the_response(stack):
    for stock, price in [(5, "5000.00"), (0, "0"), (1, "0.01"), (42, "1e2")]:
        resp, view = stack.create(price=price, stock=stock)
        assert resp.headers.get("Projection") == "applied"
        # read straight from Redis, right after the 201: read-your-writes
        rv = assert_models_agree(stack, view["id"], served=resp.text)
        assert stack.get(f"/products/{view['id']}").text == rv["raw"].decode()
        assert_checkpoint_is_head(stack)
        ev = sql(stack.db, "SELECT type, version, payload FROM events WHERE product_id=?",
                 (view["id"],))
        assert len(ev) == 1 and ev[0][:2] == ("ProductCreated", 1)
        assert json.loads(ev[0][2]) == json.loads(rv["raw"])


def test_redis_layout(stack):
    _, view = stack.create(stock=3)
    _, sold_out = stack.create(stock=0)
    gen = stack.r.get(f"{PREFIX}:gen-v2")
    assert gen is not None and gen.decode().isdigit()
    base = f"{PREFIX}:g{gen.decode()}"
    for name in ("in", "out"):
        assert stack.r.type(f"{base}:{name}") == b"zset"
    assert stack.r.type(f"{base}:skus") == b"hash"
    # a view is a member (score 0) of the in-stock set or the out-of-stock one, as served
    assert stored_views(stack.r, base, view["id"]) == {"in": [view["raw"].encode()], "out": []}
    assert stored_views(stack.r, base, sold_out["id"]) == {
        "in": [], "out": [sold_out["raw"].encode()]}
    assert stack.r.zscore(f"{base}:in", view["raw"]) == 0
    assert stack.r.zscore(f"{base}:out", sold_out["raw"]) == 0
    assert stack.r.hget(f"{base}:skus", view["sku"]).decode() == view["id"]
    assert stack.r.hget(f"{base}:skus", sold_out["sku"]).decode() == sold_out["id"]
    assert stack.r.get(f"{base}:checkpoint").decode().isdigit()


def test_whole_catalog_agrees(stack):
    for _ in range(3):
        stack.create()
    ids = [r[0] for r in sql(stack.db, "SELECT id FROM products ORDER BY id")]
    assert ids
    for pid in ids:
        assert_models_agree(stack, pid)
    base = f"{PREFIX}:g{redis_gen(stack.r)}"
    in_stock = sql(stack.db, "SELECT COUNT(*) FROM products WHERE stock > 0")[0][0]
    assert stack.r.zcard(f"{base}:in") == in_stock
    assert stack.r.zcard(f"{base}:out") == len(ids) - in_stock
    assert_checkpoint_is_head(stack)


def _create_then_read(base):
    sku = uniq_sku("CC")
    body = '{"sku":"%s","name":"Concurrent","price":3.50,"stock":2}' % sku
    resp = requests.post(base + "/products", data=body,
                         headers={"Content-Type": "application/json"}, timeout=10)
    got = requests.get(base + resp.headers.get("Location", "/x"), timeout=10) \
        if resp.status_code == 201 else None
    by_sku = requests.get(f"{base}/products/by-sku/{sku}", timeout=10) \
        if resp.status_code == 201 else None
    return resp, got, by_sku


def test_concurrent_creates_read_their_writes(stack):
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _create_then_read(stack.base), range(32)))
    ids = []
    for resp, got, by_sku in results:
        assert resp.status_code == 201, resp.text
        assert resp.headers.get("Projection") == "applied"
        assert got.status_code == 200 and got.content == resp.content
        assert by_sku.status_code == 200 and by_sku.content == resp.content
        ids.append(resp.json()["id"])
    assert len(set(ids)) == 32
    for pid in ids:
        assert_models_agree(stack, pid)
    assert_checkpoint_is_head(stack)


def zadd_calls(r):
    return r.info("commandstats").get("cmdstat_zadd", {}).get("calls", 0)


def test_a_products_changes_in_one_batch_are_written_to_redis_once(fresh):
    """Events carry their product's whole view: of one product's changes applied together, only
    the last is written. Defect: each stock change of a hot product was written in turn (a view
    removed and added per change), a third of a stock change's Redis time. 30 changes queued
    behind a held write lock commit in one or two batches: a few view writes, not 30, and the
    view ends as the write model has it."""
    _, view = fresh.create(stock=0)
    path = f"/products/{view['id']}/stock"
    before = zadd_calls(fresh.r)
    pool = ThreadPoolExecutor(max_workers=30)
    try:
        with write_lock(fresh.db):
            futures = [pool.submit(fresh.post_raw, path, '{"delta":1}') for _ in range(30)]
            time.sleep(0.7)  # every change queued behind the lock
        statuses = [f.result().status_code for f in futures]
    finally:
        pool.shutdown()
    assert statuses == [200] * 30, statuses
    wait_until(lambda: fresh.get(f"/products/{view['id']}").json()["stock"] == 30, 10,
               what="the view to show all 30 changes")
    assert_models_agree(fresh, view["id"])
    assert_checkpoint_is_head(fresh)
    written = zadd_calls(fresh.r) - before
    assert 1 <= written <= 5, f"{written} view writes for 30 changes in one or two batches"


def test_a_command_that_waited_for_the_write_lock_is_still_applied(fresh):
    """The wait for a command's view counts from its commit. Defect: the projector measured its
    lag from the event's own time, taken before the commit; a command that had waited 0.8 s for
    the write model's lock found the projector "not keeping up" and answered
    `Projection: pending` at once, with Redis healthy and its view about to be written."""
    pool = ThreadPoolExecutor(max_workers=3)
    try:
        with write_lock(fresh.db):
            futures = [pool.submit(fresh.create) for _ in range(3)]
            time.sleep(0.8)  # every create queued behind the lock, past the projector's 0.5 s
        created = [f.result() for f in futures]
    finally:
        pool.shutdown()
    for resp, view in created:
        assert resp.headers.get("Projection") == "applied", resp.headers
        assert fresh.get(f"/products/{view['id']}").text == view["raw"]
    assert_checkpoint_is_head(fresh)


def test_an_entry_repeating_an_older_version_does_not_hide_the_newer_view(fresh):
    """Only a view of a higher version overwrites an earlier event of its product in one batch.
    Defect: an entry written by something else, repeating a product's older version after its
    newer one in the same batch, made the script skip the newer one and write neither: the
    older view stayed, stale. Redis is paused for writes so the events pile up into one batch
    (the foreign entries make the projector read them from the log)."""
    a = fresh.create(stock=2)[1]
    b = fresh.create(stock=2)[1]

    def patch(product_id, name):
        r = fresh.request("PATCH", f"/products/{product_id}", data=json.dumps({"name": name}),
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text

    def repeat_event(product_id, version):
        row = sql(fresh.db, "SELECT product_id, type, version, payload, recorded_at FROM events "
                            "WHERE product_id = ? AND version = ?", (product_id, version))[0]
        sql_write(fresh.db, "INSERT INTO events (seq, product_id, type, version, payload, "
                            "recorded_at) VALUES (?, ?, ?, ?, ?, ?)", (max_seq(fresh.db) + 1, *row))

    patch(a["id"], "A2")
    fresh.r.execute_command("CLIENT", "PAUSE", "3000", "WRITE")
    try:
        patch(b["id"], "B2")  # its batch waits in Redis; what follows piles up behind it
        repeat_event(b["id"], 1)
        patch(a["id"], "A3")
        repeat_event(a["id"], 2)  # A's version 2 again, after its version 3
        patch(b["id"], "B3")
        head = max_seq(fresh.db)
    finally:
        fresh.r.execute_command("CLIENT", "UNPAUSE")
    wait_until(lambda: fresh.r.get(f"{PREFIX}:g{redis_gen(fresh.r)}:checkpoint") == str(head).encode(),
               10, what="the checkpoint to reach the log's head")
    assert fresh.get(f"/products/{a['id']}").json()["name"] == "A3"
    assert fresh.get(f"/products/{b['id']}").json()["name"] == "B3"
    rc, out = verify_output(fresh)
    assert rc == 0, out


def test_an_entry_written_to_the_log_while_idle_reaches_redis_by_itself(fresh):
    """The read model follows the log, whoever appends to it: a product changed, and its event
    written, by something else (an operator's repair script) while catalogd is idle reaches
    Redis with no command to wake the projector. Defect: on SQLite it waited for the next
    command, however long that took; only several PostgreSQL instances read the log's head."""
    view = fresh.create(stock=2)[1]
    pid, name = view["id"], "Renamed by hand"
    raw = fresh.get(f"/products/{pid}").text
    changed = (raw.replace('"name":"%s"' % view["name"], '"name":"%s"' % name, 1)
               .replace('"desc":"%s"' % view["desc"],
                        '"desc":"%s"' % view["desc"].replace(view["name"], name, 1), 1)
               .replace('"version":1,', '"version":2,', 1))
    assert changed.count(name) == 2 and '"version":2,' in changed, changed
    time.sleep(1.5)  # idle: the create's wake-ups are long spent
    sql_write(fresh.db, "UPDATE products SET name = ?, version = 2 WHERE id = ?", (name, pid))
    sql_write(fresh.db, "INSERT INTO events (seq, product_id, type, version, payload, "
                        "recorded_at) VALUES (?, ?, 'ProductUpdated', 2, ?, ?)",
              (max_seq(fresh.db) + 1, pid, changed, view["updated_at"]))
    wait_until(lambda: fresh.get(f"/products/{pid}").text == changed, 5,
               what="the hand-written event to reach Redis without a command")
    assert_models_agree(fresh, pid, served=changed)
    assert_checkpoint_is_head(fresh)
    rc, out = verify_output(fresh)
    assert rc == 0, out


def test_the_logs_newest_event_deleted_leaves_no_lag_and_no_busy_projector(fresh):
    """The log's newest event deleted by hand (as a backup restored under a running catalogd
    takes the log back): the projector rebuilds the read model from the write model, then
    rests. Defect: its idea of the log's head only ever rose, so it stayed at the deleted seq
    for good: /admin/projection showed a lag of 1 that never cleared, and the projector never
    napped (it waits only while nothing is ahead of the checkpoint), spinning on a core until
    a new command passed that seq."""
    fresh.create()
    fresh.create()
    head, gen = max_seq(fresh.db), redis_gen(fresh.r)
    time.sleep(0.5)
    sql_write(fresh.db, "DELETE FROM events WHERE seq = ?", (head,))
    wait_until(lambda: redis_gen(fresh.r) != gen, 10, what="the rebuild")

    def at_rest():
        state = fresh.get("/admin/projection").json()
        return state["head"] == state["checkpoint"] == head - 1 and state["lag_events"] == 0
    wait_until(at_rest, 10, what="the projector to see the log's head where the log ends")
    pid = fresh.server.proc.pid
    cpu0 = cpu_seconds(pid)
    time.sleep(2)
    assert cpu_seconds(pid) - cpu0 < 0.3, "the projector spins while idle"
    rc, out = verify_output(fresh)
    assert rc == 0, out
    r, _ = fresh.create()
    assert r.headers["Projection"] == "applied"


def test_concurrent_duplicate_sku_has_one_winner(stack):
    sku = uniq_sku("RACE")
    before = stack.counts()
    body = '{"sku":"%s","name":"Race","price":1,"stock":1}' % sku

    def post(_):
        return requests.post(stack.url("/products"), data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, range(8)))
    winners = [r for r in results if r.status_code == 201]
    assert len(winners) == 1, [r.status_code for r in results]
    winner_id = winners[0].json()["id"]
    for r in results:
        if r is not winners[0]:
            assert assert_problem(r, 409).get("existing_id") == winner_id
    assert stack.counts() == (before[0] + 1, before[1] + 1)


# ---------------------------------------------------------------------------------------------
# verify / rebuild


def _out(proc):
    return proc.stdout + proc.stderr


def test_verify_detects_a_missing_view_and_rebuild_repairs_it(fresh):
    views = [fresh.create(stock=i % 2)[1] for i in range(5)]
    ok = fresh.cli("verify")
    assert ok.returncode == 0, _out(ok)
    gen_before = redis_gen(fresh.r)
    victim = views[2]["id"]
    assert delete_views(fresh.r, f"{PREFIX}:g{gen_before}", victim) == 1
    bad = fresh.cli("verify")
    assert bad.returncode == 1, _out(bad)
    assert f"missing view: {victim}" in _out(bad)
    rb = fresh.cli("rebuild")
    assert rb.returncode == 0, _out(rb)
    assert redis_gen(fresh.r) != gen_before  # a new generation, switched atomically
    ok = fresh.cli("verify")
    assert ok.returncode == 0, _out(ok)
    for v in views:
        got = fresh.get(f"/products/{v['id']}")
        assert got.status_code == 200 and got.text == v["raw"]
        assert_models_agree(fresh, v["id"], served=v["raw"])
    cat = fresh.get("/catalog")
    assert cat.text == "[" + ",".join(v["raw"] for v in views) + "]"
    assert fresh.get("/catalog?in_stock=true").headers.get("X-Total-Count") == "2"
    assert_checkpoint_is_head(fresh)
    # the server keeps projecting into the new generation
    resp, v = fresh.create()
    assert resp.headers.get("Projection") == "applied"
    assert_models_agree(fresh, v["id"], served=v["raw"])
    assert fresh.cli("verify").returncode == 0


def test_verify_detects_a_stale_view(fresh):
    _, v = fresh.create(stock=5)
    key = f"{PREFIX}:g{redis_gen(fresh.r)}:in"
    raw = redis_view(fresh.r, v["id"])["raw"].decode()
    assert '"stock":5,' in raw
    fresh.r.zrem(key, raw)
    fresh.r.zadd(key, {raw.replace('"stock":5,', '"stock":6,'): 0})
    bad = fresh.cli("verify")
    assert bad.returncode == 1, _out(bad)
    assert v["id"] in _out(bad)


def test_verify_detects_an_extra_view(fresh):
    _, v = fresh.create()
    base = f"{PREFIX}:g{redis_gen(fresh.r)}"
    fake = v["raw"].replace(v["id"], UNKNOWN_ID).replace(v["sku"], "GHOST-1")
    fresh.r.zadd(f"{base}:in", {fake: 0})
    fresh.r.hset(f"{base}:skus", "GHOST-1", UNKNOWN_ID)
    bad = fresh.cli("verify")
    assert bad.returncode == 1, _out(bad)
    assert f"extra view: {UNKNOWN_ID} (no such product)" in _out(bad)
    assert fresh.cli("rebuild").returncode == 0
    assert fresh.cli("verify").returncode == 0
    assert_problem(fresh.get(f"/products/{UNKNOWN_ID}"), 404)


def test_verify_reads_a_view_set_longer_than_one_read(fresh):
    """verify reads a view set a thousand members at a time; the next read starts after the
    last member read. With 1000 products all in stock, that member must not be read (and
    reported as a duplicate view) twice."""
    bulk_create(fresh.base, 1000, in_stock_only=True)
    ok = fresh.cli("verify")
    assert ok.returncode == 0, _out(ok)


def test_verify_reads_the_member_at_a_pages_bound(fresh):
    """verify reads the view sets per thousand products, by id range; a member equal to the
    bound between two pages ("{"id":"<1000th id>"" and the byte 0xff, which no view is) must
    be read by one of them. A page of the catalog refuses it, and so must verify."""
    bulk_create(fresh.base, 999, in_stock_only=True)
    fresh.create(stock=0)  # the 1000th product, out of stock: its id bounds the first page
    fresh.create(stock=1)
    ids = sorted(row[0] for row in sql(fresh.db, "SELECT id FROM products"))
    assert fresh.cli("verify").returncode == 0
    fresh.r.zadd(f"{PREFIX}:g{redis_gen(fresh.r)}:in",
                 {b'{"id":"' + ids[999].encode() + b'"\xff': 0})
    assert fresh.get("/catalog?limit=1000").status_code == 503
    bad = fresh.cli("verify")
    assert bad.returncode == 1, _out(bad)


def test_readers_never_see_a_partial_catalog_during_rebuild(fresh):
    n = 120
    for i in range(n):
        fresh.create(stock=1)
    proc = subprocess.Popen([str(BIN), "rebuild", "--db", str(fresh.db), "--redis",
                             fresh.redis_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    polls = 0
    try:
        deadline = time.monotonic() + 20
        while proc.poll() is None or polls < 3:
            assert time.monotonic() < deadline, "rebuild took too long"
            resp = fresh.get("/catalog?limit=1000")
            assert resp.status_code == 200
            assert resp.headers.get("X-Total-Count") == str(n)
            assert len(resp.json()) == n
            polls += 1
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, (out, err)
    assert fresh.cli("verify").returncode == 0


# ---------------------------------------------------------------------------------------------
# Redis outage and catch-up


def test_redis_outage_then_catch_up(fresh):
    resp_a, a = fresh.create(name="Before outage")
    fresh.redis.stop()

    t0 = time.monotonic()
    body = '{"sku":"%s","name":"During outage","price":12.30,"stock":4}' % uniq_sku("OUT")
    resp = requests.post(fresh.url("/products"), data=body,
                         headers={"Content-Type": "application/json"}, timeout=2)
    assert time.monotonic() - t0 < 2
    assert resp.status_code == 201, resp.text
    assert resp.headers.get("Projection") == "pending"
    assert resp.headers.get("ETag") == '"1"'
    b = resp.json()
    assert resp.headers.get("Location") == f"/products/{b['id']}"
    assert '"price":12.30,' in resp.text and b["version"] == 1
    # the write model has it
    assert sql(fresh.db, "SELECT sku, price_cents, stock FROM products WHERE id=?",
               (b["id"],)) == [(b["sku"], 1230, 4)]

    for path in [f"/products/{b['id']}", f"/products/{a['id']}", f"/products/by-sku/{a['sku']}",
                 "/catalog"]:
        t0 = time.monotonic()
        got = requests.get(fresh.url(path), timeout=2)
        assert time.monotonic() - t0 < 2
        assert_problem(got, 503)
        assert got.headers.get("Retry-After", "").isdigit(), got.headers

    def ready_is_503():
        r = requests.get(fresh.url("/ready"), timeout=2)
        return [r] if r.status_code == 503 else None  # a 503 Response is falsy
    [r] = wait_until(ready_is_503, 5, what="/ready to answer 503")
    assert "redis" in r.text.lower(), r.text  # names the failing check
    assert requests.get(fresh.url("/health"), timeout=2).status_code == 200

    fresh.redis.start()  # same port; comes back empty (no persistence)

    def served(pid):
        g = requests.get(fresh.url(f"/products/{pid}"), timeout=2)
        return g if g.status_code == 200 else None
    got_b = wait_until(lambda: served(b["id"]), 10, what="the pending product's view")
    assert got_b.content == resp.content
    got_a = wait_until(lambda: served(a["id"]), 10, what="the earlier product's view")
    assert got_a.content == resp_a.content
    wait_until(lambda: requests.get(fresh.url("/ready"), timeout=2).status_code == 200, 10,
               what="/ready to answer 200")
    assert_models_agree(fresh, a["id"])
    assert_models_agree(fresh, b["id"])
    assert_checkpoint_is_head(fresh)
    v = fresh.cli("verify")
    assert v.returncode == 0, _out(v)
    cat = fresh.get("/catalog")
    assert cat.status_code == 200
    assert [x["id"] for x in cat.json()] == [a["id"], b["id"]]
    # and commands are projected synchronously again
    resp_c, _ = fresh.create()
    assert resp_c.headers.get("Projection") == "applied"


def test_ready_503_is_a_problem_naming_redis(fresh):
    fresh.redis.stop()

    def ready_is_503():
        r = requests.get(fresh.url("/ready"), timeout=2)
        return [r] if r.status_code == 503 else None
    [r] = wait_until(ready_is_503, 5, what="/ready to answer 503")
    problem = assert_problem(r, 503)  # every 4xx/5xx body is application/problem+json
    assert "redis" in r.text.lower(), problem
    assert requests.get(fresh.url("/health"), timeout=2).status_code == 200


def test_flushall_is_noticed_and_rebuilt(fresh):
    views = [fresh.create()[1] for _ in range(3)]
    fresh.r.flushall()

    def all_served():
        return all(requests.get(fresh.url(f"/products/{v['id']}"), timeout=2).status_code
                   == 200 for v in views)
    wait_until(all_served, 10, interval=0.1, what="the read model to be rebuilt after FLUSHALL")
    for v in views:
        assert fresh.get(f"/products/{v['id']}").text == v["raw"]
    wait_until(lambda: fresh.get("/ready").status_code == 200, 10, what="/ready 200")
    assert fresh.cli("verify").returncode == 0
    assert_checkpoint_is_head(fresh)

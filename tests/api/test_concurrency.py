"""Commands under real parallel clients: one thread and one HTTP connection per client, all
released together by a barrier, every wait bounded. Each test uses a private stack and ends
with `catalogd verify` exiting 0 and the SQLite row agreeing with its Redis view."""

import hashlib
import json
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import requests

from conftest import (Server, Stack, assert_problem, expected_view_text, redis_view, sku_owner,
                      sql, uniq_sku, verify_output, write_lock)

REQUEST_TIMEOUT = 15
BARRIER_TIMEOUT = 15
POOL_TIMEOUT = 60


# ---------------------------------------------------------------------------------------------
# helpers


def run_parallel(s, n, fn):
    """Runs fn(session, i) in n threads at once; returns the n results in order of i.

    Each thread opens its own keep-alive connection first (GET /health), then all wait on a
    barrier so the commands leave as close together as the OS allows."""
    barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT)

    def worker(i):
        with requests.Session() as sess:
            warm = sess.get(s.url("/health"), timeout=REQUEST_TIMEOUT)
            assert warm.status_code == 200, warm.text
            barrier.wait()
            return fn(sess, i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(worker, i) for i in range(n)]
        done, not_done = wait(futures, timeout=POOL_TIMEOUT)
        assert not not_done, f"{len(not_done)} of {n} clients did not finish in {POOL_TIMEOUT}s"
        return [f.result() for f in futures]


def post_json(sess, url, body, headers=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return sess.post(url, data=data, headers=h, timeout=REQUEST_TIMEOUT)


def product_row(db, pid):
    rows = sql(db, "SELECT id, sku, name, price_cents, stock, version, created_at, updated_at "
               "FROM products WHERE id=?", (pid,))
    return rows[0] if rows else None


def events_of(db, pid):
    return sql(db, "SELECT type, version, payload FROM events WHERE product_id=? ORDER BY seq",
               (pid,))


def assert_verify(s):
    p = s.cli("verify")
    assert p.returncode == 0, ("catalogd verify failed", p.returncode, p.stdout[-3000:],
                               p.stderr[-3000:])


def assert_agree(s, pid, sku):
    """After verify has settled: the row and its Redis view and indexes agree (or both gone)."""
    row = product_row(s.db, pid)
    rv = redis_view(s.r, pid)
    if row is None:
        assert rv["raw"] is None and rv["all_score"] is None and rv["in_stock_score"] is None
        assert sku_owner(s.r, sku) is None
        return None
    _, rsku, name, cents, stock, version, created_at, updated_at = row
    want = expected_view_text({"id": pid, "sku": rsku, "name": name,
                               "price_text": f"{cents // 100}.{cents % 100:02d}",
                               "stock": stock, "version": version, "created_at": created_at,
                               "updated_at": updated_at})
    assert rv["raw"] is not None and rv["raw"].decode() == want, (rv["raw"], want)
    assert rv["sku_id"] == pid
    assert rv["all_score"] == 0
    assert rv["in_stock_score"] == (0 if stock > 0 else None)
    return row


def assert_event_chain(s, pid):
    """A product's events have versions 1..N with no gap or repeat; a delete is the last."""
    evs = events_of(s.db, pid)
    assert [v for _, v, _ in evs] == list(range(1, len(evs) + 1)), evs
    assert evs[0][0] == "ProductCreated"
    types = [t for t, _, _ in evs]
    assert "ProductDeleted" not in types[:-1], types
    for _, version, payload in evs:
        assert json.loads(payload)["version"] == version
    return evs


# ---------------------------------------------------------------------------------------------
# tests


def test_100_concurrent_creates_of_one_sku_make_exactly_one_product(fresh):
    sku = uniq_sku("RACE")
    url = fresh.url("/products")

    def create(sess, i):
        r = post_json(sess, url, '{"sku":"%s","name":"Racer %d","price":1.00,"stock":%d}'
                      % (sku, i, i))
        return r.status_code, r.headers.get("Content-Type"), r.text, r.headers.get("ETag")

    results = run_parallel(fresh, 100, create)
    statuses = [st for st, _, _, _ in results]
    assert statuses.count(201) == 1, sorted(statuses)
    assert statuses.count(409) == 99, sorted(statuses)
    winner_index = statuses.index(201)
    winner = json.loads(results[winner_index][2])
    assert winner["sku"] == sku and winner["name"] == f"Racer {winner_index}"
    assert results[winner_index][3] == '"1"'
    for st, ctype, text, _ in results:
        if st == 409:
            assert ctype == "application/problem+json"
            problem = json.loads(text)
            assert problem["type"].endswith("duplicate-sku"), problem
            assert problem["existing_id"] == winner["id"], problem
    assert sql(fresh.db, "SELECT id, stock FROM products WHERE sku=?", (sku,)) == [
        (winner["id"], winner_index)]
    assert sql(fresh.db, "SELECT COUNT(*) FROM products")[0][0] == 1
    assert sql(fresh.db, "SELECT COUNT(*) FROM events")[0][0] == 1
    assert_verify(fresh)
    assert_agree(fresh, winner["id"], sku)
    got = fresh.get(f"/products/by-sku/{sku}")
    assert got.status_code == 200 and got.json()["id"] == winner["id"]


def test_concurrent_creates_of_repeated_skus_keep_each_sku_once_and_seqs_in_order(fresh):
    """60 creates at once over 20 SKUs, three each, every seventh with an Idempotency-Key (it
    runs alone, between the runs of plain creates that the writer sends as one statement on
    PostgreSQL): each SKU ends with one product, every 409 names it, and the events' seqs are
    1..20 in the order the products were made (ids grow with it)."""
    base = uniq_sku("RUN")
    url = fresh.url("/products")

    def create(sess, i):
        headers = {"Idempotency-Key": f"{base}-key-{i}"} if i % 7 == 0 else None
        r = post_json(sess, url, {"sku": f"{base}-{i % 20}", "name": f"Run {i}", "price": 2.5,
                                  "stock": i}, headers)
        return i, r.status_code, r.json()

    results = run_parallel(fresh, 60, create)
    winners = {}
    for i, status, body in results:
        if status == 201:
            assert body["sku"] not in winners, ("two products for one sku", body)
            winners[body["sku"]] = body
            assert body["name"] == f"Run {i}" and body["stock"] == i
    assert sorted(winners) == sorted(f"{base}-{k}" for k in range(20))
    for i, status, body in results:
        if status != 201:
            assert status == 409 and body["type"].endswith("duplicate-sku"), body
            assert body["existing_id"] == winners[f"{base}-{i % 20}"]["id"], body
    events = sql(fresh.db, "SELECT seq, product_id, type FROM events ORDER BY seq")
    assert [seq for seq, _, _ in events] == list(range(1, 21))
    assert {t for _, _, t in events} == {"ProductCreated"}
    ids = [pid for _, pid, _ in events]
    assert ids == sorted(ids) and set(ids) == {w["id"] for w in winners.values()}
    assert_verify(fresh)
    for sku, body in winners.items():
        assert_agree(fresh, body["id"], sku)


def send_in_order_behind_a_lock(s, requests_in_order, gap=0.04):
    """Sends (method, path, body, headers) requests one by one, "gap" seconds apart, while the
    write model is locked (write_lock) behind a create that waits on it: they queue in that
    order and run together once the lock goes, in one batch or a few. Returns the responses."""
    results = [None] * len(requests_in_order)

    def send(i, method, path, body, headers):
        results[i] = requests.request(method, s.url(path), data=body, timeout=REQUEST_TIMEOUT,
                                      headers={"Content-Type": "application/json",
                                               **(headers or {})})
    with write_lock(s.db):
        waiting = threading.Thread(target=post_json, args=(
            requests, s.url("/products"), {"sku": uniq_sku("WAIT"), "name": "Waits",
                                           "price": 1, "stock": 1}))
        waiting.start()
        time.sleep(0.15)
        threads = []
        for i, request in enumerate(requests_in_order):
            threads.append(threading.Thread(target=send, args=(i, *request)))
            threads[-1].start()
            time.sleep(gap)
        time.sleep(0.1)
    for t in [waiting, *threads]:
        t.join(REQUEST_TIMEOUT + 5)
    return results


def test_a_mixed_batch_answers_as_its_commands_would_one_by_one(fresh):
    """Creates, keyed and not, between deletes, changes and refusals, queued in a known order:
    each answer is the one running them one by one gives (a run of plain creates goes to the
    store as one call: a sku taken earlier in the run, by a keyed create or before the run
    refuses the later one, and a sku a delete freed goes to the next create)."""
    _, a = fresh.create(sku=uniq_sku("A"))
    _, c = fresh.create(sku=uniq_sku("C"))
    _, e = fresh.create(sku=uniq_sku("E"), stock=5)
    b, d, f, g = (uniq_sku(x) for x in "BDFG")

    def create(sku, name, key=None):
        return ("POST", "/products", json.dumps({"sku": sku, "name": name, "price": 7.5,
                                                 "stock": 2}),
                {"Idempotency-Key": key} if key else None)
    queue = [create(a["sku"], "a1"),                                      # 0 409: a's
             create(b, "b1"), create(b, "b2"),                            # 1 201, 2 409: 1's
             ("DELETE", f"/products/{c['id']}", None, None),              # 3 204
             create(c["sku"], "c2"), create(c["sku"], "c3"),              # 4 201, 5 409: 4's
             ("PATCH", f"/products/{e['id']}", '{"name":"e2"}', None),    # 6 200
             ("POST", f"/products/{e['id']}/stock", '{"delta":-5}', None),  # 7 200
             create(f, "f1", uniq_sku("key")), create(f, "f2"),           # 8 201, 9 409: 8's
             create(g, "g1"), create(g, "g2", uniq_sku("key")),           # 10 201, 11 409: 10's
             ("POST", f"/products/{e['id']}/stock", '{"delta":-1}', None),  # 12 409 stock
             create(d, "d1"),                                             # 13 201
             ("DELETE", f"/products/{a['id']}", None, None),              # 14 204
             create(a["sku"], "a2"), create(d, "d2")]                     # 15 201, 16 409: 13's
    answers = send_in_order_behind_a_lock(fresh, queue)
    assert [r.status_code for r in answers] == [409, 201, 409, 204, 201, 409, 200, 200, 201,
                                                409, 201, 409, 409, 201, 204, 201, 409], [
        (r.status_code, r.text[:160]) for r in answers]
    body = [r.json() if r.content else None for r in answers]
    for refused, owner in ((0, a), (2, body[1]), (5, body[4]), (9, body[8]), (11, body[10]),
                           (16, body[13])):
        assert body[refused]["existing_id"] == owner["id"], (refused, body[refused])
    assert body[12]["type"].endswith("insufficient-stock"), body[12]
    made = [body[i] for i in (1, 4, 8, 10, 13, 15)]
    assert [m["name"] for m in made] == ["b1", "c2", "f1", "g1", "d1", "a2"]
    created = sql(fresh.db, "SELECT product_id FROM events WHERE type = 'ProductCreated' "
                  "ORDER BY seq")
    assert [pid for (pid,) in created][-6:] == [m["id"] for m in made]
    assert_verify(fresh)
    for m in made:
        assert fresh.get(f"/products/{m['id']}").json() == m
        assert_agree(fresh, m["id"], m["sku"])


def batch_counters(s):
    """catalogd_write_batch_size_count and _sum from GET /metrics: batches, and their commands."""
    found = dict(re.findall(r"^catalogd_write_batch_size_(count|sum) (\d+)$",
                            s.get("/metrics").text, re.M))
    return int(found["count"]), int(found["sum"])


def test_keyed_commands_go_at_most_64_to_a_batch(fresh):
    """Each command with an Idempotency-Key runs in a savepoint, and PostgreSQL keeps only 64
    subtransactions a transaction in shared memory: 130 keyed creates queued at once go in
    three batches at least, not one, and every one is created."""
    batches_before, commands_before = batch_counters(fresh)
    queue = [("POST", "/products", json.dumps({"sku": uniq_sku("KB"), "name": f"Keyed {i}",
                                               "price": 1, "stock": 1}),
              {"Idempotency-Key": uniq_sku("key")}) for i in range(130)]
    answers = send_in_order_behind_a_lock(fresh, queue, gap=0.006)
    assert [r.status_code for r in answers] == [201] * 130, [
        (r.status_code, r.text[:160]) for r in answers if r.status_code != 201]
    batches, commands = batch_counters(fresh)
    assert commands - commands_before == 131  # with the create that waited on the lock
    assert batches - batches_before >= 1 + 3, (batches - batches_before)
    assert len({r.json()["id"] for r in answers}) == 130


def test_50_concurrent_decrements_on_stock_5_never_oversell(fresh):
    _, v = fresh.create(stock=5)
    url = fresh.url(f"/products/{v['id']}/stock")

    def take_one(sess, i):
        r = post_json(sess, url, '{"delta":-1}')
        return r.status_code, r.text, r.headers.get("ETag")

    results = run_parallel(fresh, 50, take_one)
    statuses = [st for st, _, _ in results]
    assert statuses.count(200) == 5, sorted(statuses)
    assert statuses.count(409) == 45, sorted(statuses)
    ok = [json.loads(t) for st, t, _ in results if st == 200]
    assert sorted(x["stock"] for x in ok) == [0, 1, 2, 3, 4]
    assert sorted(x["version"] for x in ok) == [2, 3, 4, 5, 6]
    for x in ok:  # each success saw its own stock: version and stock move together
        assert x["stock"] == 5 - (x["version"] - 1), x
    assert sorted(e for st, _, e in results if st == 200) == ['"2"', '"3"', '"4"', '"5"', '"6"']
    for st, text, _ in results:
        if st == 409:
            problem = json.loads(text)
            assert problem["type"].endswith("insufficient-stock"), problem
            assert 0 <= problem["current_stock"] <= 4, problem
            assert problem["status"] == 409
    assert product_row(fresh.db, v["id"])[4:6] == (0, 6)
    evs = assert_event_chain(fresh, v["id"])
    assert [t for t, _, _ in evs] == ["ProductCreated"] + ["StockAdjusted"] * 5
    assert_verify(fresh)
    row = assert_agree(fresh, v["id"], v["sku"])
    assert row[4] == 0
    view = redis_view(fresh.r, v["id"])["view"]
    assert (view["stock"], view["available"], view["version"]) == (0, False, 6)
    got = fresh.get("/catalog?in_stock=true")
    assert got.status_code == 200 and got.json() == []
    # and it stays at zero: one more -1 is refused with the current stock
    problem = assert_problem(fresh.post_raw(f"/products/{v['id']}/stock", '{"delta":-1}'), 409)
    assert problem["current_stock"] == 0


def test_two_patches_with_the_same_if_match_one_wins(fresh):
    _, v = fresh.create(name="Contended", stock=5)
    url = fresh.url(f"/products/{v['id']}")
    rounds = 5
    for rnd in range(rounds):
        version = rnd + 1

        def patch(sess, i, version=version, rnd=rnd):
            r = sess.patch(url, data=json.dumps({"name": f"round {rnd} client {i}"}),
                           headers={"Content-Type": "application/json",
                                    "If-Match": f'"{version}"'}, timeout=REQUEST_TIMEOUT)
            return r.status_code, r.text, r.headers.get("ETag")

        results = run_parallel(fresh, 2, patch)
        statuses = sorted(st for st, _, _ in results)
        assert statuses == [200, 412], (rnd, results)
        (w_text, w_etag), = [(t, e) for st, t, e in results if st == 200]
        (l_text,) = [t for st, t, _ in results if st == 412]
        winner = json.loads(w_text)
        assert winner["version"] == version + 1 and w_etag == f'"{version + 1}"'
        loser = json.loads(l_text)
        assert loser["type"].endswith("version-mismatch"), loser
        assert loser["current_version"] == version + 1, loser
        row = product_row(fresh.db, v["id"])
        assert row[2] == winner["name"] and row[5] == version + 1
    assert len(events_of(fresh.db, v["id"])) == rounds + 1
    assert_event_chain(fresh, v["id"])
    assert_verify(fresh)
    assert_agree(fresh, v["id"], v["sku"])


def test_idempotent_create_replay_returns_the_same_id_and_one_row(fresh):
    sku = uniq_sku("IDEM")
    key = "idem-" + uniq_sku("k")
    body = '{"sku":"%s","name":"Once","price":9.99,"stock":3}' % sku
    first = fresh.post_raw("/products", body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = fresh.post_raw("/products", body, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    assert again.headers.get("Location") == first.headers.get("Location")
    assert again.json()["id"] == first.json()["id"]
    assert sql(fresh.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(1,)]
    assert sql(fresh.db, "SELECT COUNT(*) FROM events")[0][0] == 1
    assert sql(fresh.db, "SELECT COUNT(*) FROM idempotency_keys WHERE key_sha256=?",
               (hashlib.sha256(key.encode()).digest(),)) == [(1,)]
    assert_verify(fresh)
    assert_agree(fresh, first.json()["id"], sku)


def test_same_idempotency_key_from_many_clients_at_once(fresh):
    """Every answer is the one 201, a replay of it, or 409 idempotency-key-in-use; one row."""
    sku = uniq_sku("IDEMRACE")
    key = "race-" + uniq_sku("k")
    body = '{"sku":"%s","name":"Once","price":1,"stock":1}' % sku
    url = fresh.url("/products")

    def create(sess, i):
        r = post_json(sess, url, body, headers={"Idempotency-Key": key})
        return (r.status_code, r.text, r.headers.get("Idempotent-Replayed"),
                r.headers.get("Content-Type"))

    all_results = []
    for _ in range(3):
        all_results += run_parallel(fresh, 30, create)
    originals = [r for r in all_results if r[0] == 201 and r[2] is None]
    assert len(originals) == 1, [r[:1] + r[2:] for r in all_results]
    created = json.loads(originals[0][1])
    in_use = 0
    for status, text, replayed, ctype in all_results:
        if status == 201:
            assert text == originals[0][1]
            assert replayed in (None, "true")
        else:
            assert status == 409, (status, text)
            assert replayed is None
            assert ctype == "application/problem+json"
            assert json.loads(text)["type"].endswith("idempotency-key-in-use"), text
            in_use += 1
    assert in_use < len(all_results)
    assert sql(fresh.db, "SELECT id FROM products WHERE sku=?", (sku,)) == [(created["id"],)]
    assert sql(fresh.db, "SELECT COUNT(*) FROM products")[0][0] == 1
    assert sql(fresh.db, "SELECT COUNT(*) FROM events")[0][0] == 1
    assert sql(fresh.db, "SELECT COUNT(*) FROM idempotency_keys")[0][0] == 1
    # once settled, the key always replays
    again = fresh.post_raw("/products", body, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.text == originals[0][1]
    assert_verify(fresh)
    assert_agree(fresh, created["id"], sku)


def test_mixed_concurrent_commands_leave_the_models_in_agreement(fresh):
    products = [fresh.create(name=f"Mix {i}", stock=3)[1] for i in range(3)]

    def op(sess, i):
        p = products[i % 3]
        base = fresh.url(f"/products/{p['id']}")
        kind = (i // 3) % 4  # 20 clients: every product gets every kind of command
        if kind == 0:
            r = sess.patch(base, data=json.dumps({"name": f"Mix {i}", "price": i}),
                           headers={"Content-Type": "application/json"},
                           timeout=REQUEST_TIMEOUT)
        elif kind == 1:
            r = post_json(sess, base + "/stock", '{"delta":-2}')
        elif kind == 2:
            r = post_json(sess, base + "/stock", '{"delta":5}')
        else:
            r = sess.delete(base, timeout=REQUEST_TIMEOUT) if p is not products[2] else \
                sess.patch(base, data='{"stock":0}', headers={"Content-Type": "application/json"},
                           timeout=REQUEST_TIMEOUT)
        return i % 3, kind, r.status_code, r.text

    results = run_parallel(fresh, 20, op)
    allowed = {0: {200, 404}, 1: {200, 404, 409}, 2: {200, 404}, 3: {200, 204, 404}}
    for pi, kind, status, text in results:
        assert status in allowed[kind], (pi, kind, status, text)
    for pi, p in enumerate(products):
        mine = [(kind, status) for i, kind, status, _ in results if i == pi]
        successes = [s for _, s in mine if s in (200, 204)]
        deletes = [s for _, s in mine if s == 204]
        assert len(deletes) == (1 if pi < 2 else 0), (pi, mine)  # one DELETE each for 0, 1
        evs = assert_event_chain(fresh, p["id"])
        # one event per success, and nothing else
        assert len(evs) == 1 + len(successes), (pi, mine, [(t, v) for t, v, _ in evs])
        row = product_row(fresh.db, p["id"])
        if deletes:
            assert row is None and evs[-1][0] == "ProductDeleted"
        else:
            assert [s for _, s in mine if s == 404] == []
            assert row is not None and row[5] == len(evs)
            assert json.loads(evs[-1][2])["stock"] == row[4]
    assert products[2]["id"] in {r[0] for r in sql(fresh.db, "SELECT id FROM products")}
    assert_verify(fresh)
    for p in products:
        assert_agree(fresh, p["id"], p["sku"])


# ---------------------------------------------------------------------------------------------
# instances starting on one new SQLite file


@pytest.mark.sqlite_only(reason="holds a write lock on a new SQLite file before catalogd opens it")
def test_a_write_lock_held_on_a_new_file_at_start_is_waited_out(stack_factory):
    """catalogd's first connection switches a new file to WAL. While another connection holds a
    write transaction on it, SQLite refuses that switch at once ("database is locked") without
    calling the busy handler; catalogd must wait the lock out, as it waits out any other."""
    holders = []

    def lock_the_new_file(s):
        holder = sqlite3.connect(s.db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("CREATE TABLE held_by_the_test (x)")
        release = threading.Timer(0.5, holder.execute, ("ROLLBACK",))
        holders.append((holder, release))
        release.start()

    s = stack_factory(before_server=lock_the_new_file)  # fails if catalogd exited
    holder, release = holders[0]
    release.join()
    holder.close()
    resp, view = s.create()
    assert resp.headers.get("Projection") == "applied"
    assert sql(s.db, "PRAGMA journal_mode")[0][0] == "wal"
    assert s.get(f"/products/{view['id']}").status_code == 200
    code, out = verify_output(s)
    assert code == 0, out


@pytest.mark.sqlite_only(reason="several instances open one new SQLite file at once")
def test_instances_started_together_on_a_new_file_all_serve():
    """Three instances started in the same instant on one new file and one Redis (a service
    manager starting them together): all three come up, each serves commands, and verify
    finds the models equal. Repeated on new files, since the instant they collide varies.
    (Without a view cache: one instance's cache would not see the others' writes.)"""
    for _ in range(4):
        s = Stack("together")
        servers = [Server(s.tmp, s.redis.url, s.db, ["--view-cache-mb", "0"]) for _ in range(3)]
        try:
            s.redis.start()
            with ThreadPoolExecutor(max_workers=len(servers)) as pool:
                started = [pool.submit(server.start) for server in servers]
                for future in started:
                    future.result(timeout=30)  # raises with the log if one exited
            for server in servers:
                r = requests.post(server.base + "/products", timeout=10,
                                  json={"sku": uniq_sku("TOG"), "name": "Together",
                                        "price": 1.5, "stock": 1})
                assert r.status_code == 201, (r.status_code, r.text)
            code, out = verify_output(s)
            assert code == 0, out
        finally:
            for server in servers:
                server.stop()
            s.stop()

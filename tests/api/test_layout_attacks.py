"""Attacks on the read model's layout (views as members of two sorted sets, README "Redis key
layout") and on group commit without a savepoint per command (SQLite, no Idempotency-Key):
forged cursors and limits at their bounds, paging and read-your-writes while products move
between the sets, verify against planted corruption, failing commands sharing a batch, the
upgrade from the older layout under commands and kill -9, faults under load. Each attacks
one guarantee with real processes; every loop is bounded in count and time."""
import base64
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import (PREFIX, assert_problem, bulk_create, catalog_pages, generation_numbers,
                      plant_old_layout, product_body, redis_gen, row_text, sql, stored_views,
                      uniq_sku, verify_output, wait_until)

JSON = {"Content-Type": "application/json"}


def cursor_of(id_text):
    return base64.urlsafe_b64encode(uuid.UUID(id_text).bytes).rstrip(b"=").decode()


def cursor_before(id_text):
    """The cursor of the id just below id_text: a page from it starts at id_text."""
    return base64.urlsafe_b64encode((uuid.UUID(id_text).int - 1).to_bytes(16, "big")) \
        .rstrip(b"=").decode()


def create(s, stock, http=None):
    http = http or s.http
    r = http.post(s.url("/products"), data=product_body(uniq_sku("H"), stock=stock),
                  headers=JSON, timeout=10)
    assert r.status_code == 201 and r.headers["Projection"] == "applied", (r.status_code, r.text)
    v = r.json()
    v["raw"] = r.text
    return v


# ---------------------------------------------------------------------------------------------
# 1. cursors and limits


def test_forged_cursors_and_limits_are_400_never_500(fresh):
    ids = [create(fresh, i % 2)["id"] for i in range(5)]
    good = cursor_of(ids[1])
    bad_cursors = ["", "A", good[:-1], good + "A", good[:-1] + "B",  # padding bits set
                   good[:-1] + "=", "%41" * 22, "+" * 22, "/" * 22, good.replace(good[3], "."),
                   "A" * 4096, good + "%00", "%00" * 22, "\u00e9" * 11]
    for c in bad_cursors:
        r = fresh.get("/catalog", params={"cursor": c})
        assert_problem(r, 400)
    for lim in ["0", "-1", "1001", "1e2", "+5", " 5", "5 ", "0x10", "", "99999999999999999999",
                "1.0", "\u0661"]:
        r = fresh.get("/catalog", params={"limit": lim})
        assert_problem(r, 400)
    # valid but never handed out: the lowest and the highest possible ids
    assert [v["id"] for v in fresh.get("/catalog?cursor=" + "A" * 22).json()] == sorted(ids)
    r = fresh.get("/catalog?cursor=" + "_" * 21 + "w")
    assert r.status_code == 200 and r.json() == [] and "Link" not in r.headers
    for lim in ("1", "01", "1000"):
        r = fresh.get(f"/catalog?limit={lim}")
        assert r.status_code == 200 and len(r.json()) == min(int(lim), 5), (lim, r.text)
    assert fresh.get("/health").status_code == 200


def test_limits_at_the_bounds_with_one_set_empty(fresh):
    # every product out of stock: the in-stock set is empty
    ids = sorted(create(fresh, 0)["id"] for _ in range(12))
    for limit in (1, 5, 11, 12, 13, 1000):
        pages = catalog_pages(fresh, limit)
        assert [v["id"] for p, _ in pages for v in p] == ids, limit
        assert all(len(p) <= limit for p, _ in pages) and {t for _, t in pages} == {12}
        assert all(len(p) == limit for p, _ in pages[:-1])
        assert catalog_pages(fresh, limit, in_stock=True) == [([], 0)]


# ---------------------------------------------------------------------------------------------
# 2. paging through while others create, move and delete products


def test_paging_under_churn_never_skips_or_repeats(fresh):
    s = fresh
    # stable products, out-of-stock ones crowded together in the middle
    stable = {}
    for stock in [3] * 60 + [0] * 50 + [2] * 60 + [0] * 10:
        v = create(s, stock)
        stable[v["id"]] = stock
    churn = [create(s, i % 2)["id"] for i in range(30)]
    stop = time.monotonic() + 20
    errors = []
    created, deleted = [], []

    def churner(seed):
        rnd = random.Random(seed)
        with requests.Session() as http:
            for _ in range(3000):
                if time.monotonic() > stop:
                    return
                op = rnd.random()
                try:
                    if op < 0.5:
                        pid = rnd.choice(churn)
                        http.post(s.url(f"/products/{pid}/stock"),
                                  data='{"delta":%d}' % rnd.choice([1, -1]), headers=JSON,
                                  timeout=10)
                    elif op < 0.75:
                        created.append(create(s, rnd.randrange(2), http)["id"])
                    elif created:
                        pid = created.pop(rnd.randrange(len(created)))
                        r = http.delete(s.url(f"/products/{pid}"), timeout=10)
                        if r.status_code == 204:
                            deleted.append(pid)
                except Exception as exc:  # noqa: BLE001
                    errors.append(repr(exc))
    threads = [threading.Thread(target=churner, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    passes = 0
    try:
        while time.monotonic() < stop - 1 and passes < 40:
            for limit in (1, 3, 17, 1000):
                for in_stock in (False, True):
                    pages = catalog_pages(s, limit, in_stock)
                    seen = [v["id"] for p, _ in pages for v in p]
                    assert len(seen) == len(set(seen)), (limit, in_stock, "a product twice")
                    assert seen == sorted(seen), (limit, in_stock, "out of order")
                    assert all(len(p) <= limit for p, _ in pages)
                    assert all(v["available"] for p, _ in pages for v in p) or not in_stock
                    want = {i for i, st in stable.items() if st > 0 or not in_stock}
                    missing = want - set(seen)
                    assert not missing, (limit, in_stock, len(missing), sorted(missing)[:3])
                    for p, total in pages:
                        assert len(want) <= total <= len(stable) + 30 + 3000, total
                    passes += 1
    finally:
        stop = 0
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert passes >= 8
    rc, out = verify_output(s)
    assert rc == 0, out


# ---------------------------------------------------------------------------------------------
# 3. read-your-writes on every path while stock flips 0 -> 1 -> 0


def test_read_your_writes_on_every_path_while_stock_flips(fresh):
    ryw_while_stock_flips(fresh, rebuilds=False)


def test_read_your_writes_on_every_path_while_stock_flips_across_rebuilds(fresh):
    bulk_create(fresh.base, 1500, workers=4)
    ryw_while_stock_flips(fresh, rebuilds=True)


def ryw_while_stock_flips(s, rebuilds):
    owners = [create(s, 0) for _ in range(4)]
    others = [create(s, 1)["id"] for _ in range(20)]
    stop = time.monotonic() + 12
    bad = []

    def noise(seed):
        rnd = random.Random(seed)
        with requests.Session() as http:
            for _ in range(5000):
                if time.monotonic() > stop:
                    return
                pid = rnd.choice(others)
                http.post(s.url(f"/products/{pid}/stock"), data='{"delta":%d}' % rnd.choice([1, -1]),
                          headers=JSON, timeout=10)

    def owner(v):
        pid, sku = v["id"], v["sku"]
        delta = 1
        with requests.Session() as http:
            for _ in range(2000):
                if time.monotonic() > stop:
                    return
                r = http.post(s.url(f"/products/{pid}/stock"), data='{"delta":%d}' % delta,
                              headers=JSON, timeout=10)
                if r.status_code != 200 or r.headers.get("Projection") != "applied":
                    bad.append(("cmd", r.status_code, r.headers.get("Projection"), r.text))
                    continue
                want = r.json()
                delta = -delta
                g = http.get(s.url(f"/products/{pid}"), timeout=10)
                if g.status_code != 200 or g.json()["version"] != want["version"]:
                    bad.append(("id", g.status_code, g.text[:200], want["version"]))
                g = http.get(s.url(f"/products/by-sku/{sku}"), timeout=10)
                if g.status_code != 200 or g.json()["version"] != want["version"]:
                    bad.append(("sku", g.status_code, g.text[:200], want["version"]))
                c = cursor_before(pid)
                for in_stock in (False, True):
                    for limit in (1, 2):
                        url = f"/catalog?limit={limit}&cursor={c}" + \
                            ("&in_stock=true" if in_stock else "")
                        g = http.get(s.url(url), timeout=10)
                        page = g.json() if g.status_code == 200 else None
                        mine = [x for x in page or [] if x["id"] == pid]
                        expect_listed = want["stock"] > 0 or not in_stock
                        if page is None or (expect_listed and (
                                not mine or mine[0]["version"] != want["version"])) or \
                                (not expect_listed and mine):
                            bad.append(("page", url, g.status_code, want["version"],
                                        want["stock"], [x["version"] for x in mine]))
    started = []

    def rebuild_loop():
        while time.monotonic() < stop and len(started) < 30:
            r = requests.post(s.url("/admin/rebuild"), timeout=10)
            if r.status_code == 202:
                started.append(time.monotonic())
            time.sleep(0.3)
    threads = [threading.Thread(target=owner, args=(v,)) for v in owners]
    threads += [threading.Thread(target=noise, args=(k,)) for k in range(2)]
    if rebuilds:
        threads.append(threading.Thread(target=rebuild_loop))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad, (len(bad), bad[:5])
    assert not rebuilds or len(started) >= 5, started


# ---------------------------------------------------------------------------------------------
# 4. verify: 0 on a converged model, and it finds planted corruption


def test_verify_finds_each_planted_corruption(fresh):
    s = fresh
    a, b, c = create(s, 2), create(s, 0), create(s, 1)
    r = s.http.patch(s.url(f"/products/{c['id']}"), data='{"name":"Second"}', headers=JSON,
                     timeout=10)
    assert r.status_code == 200
    rc, out = verify_output(s)
    assert rc == 0, out
    missed = []
    for name in ("view removed", "extra sku", "wrong set", "duplicate in both sets",
                 "stale view"):
        base = f"{PREFIX}:g{redis_gen(s.r)}"
        raw_a = stored_views(s.r, base, a["id"])["in"][0]
        raw_b = stored_views(s.r, base, b["id"])["out"][0]
        raw_c = stored_views(s.r, base, c["id"])["in"][0]
        plant = {
            "view removed": lambda: s.r.zrem(f"{base}:in", raw_a),
            "stale view": lambda: (s.r.zrem(f"{base}:in", raw_c),
                                   s.r.zadd(f"{base}:in", {c["raw"]: 0})),
            "extra sku": lambda: s.r.hset(f"{base}:skus", "NOPE-1", a["id"]),
            "wrong set": lambda: (s.r.zrem(f"{base}:out", raw_b),
                                  s.r.zadd(f"{base}:in", {raw_b: 0})),
            "duplicate in both sets": lambda: s.r.zadd(f"{base}:out", {raw_a: 0}),
        }[name]
        plant()
        rc, out = verify_output(s)
        if rc == 0:
            missed.append((name, out))
        assert s.cli("rebuild").returncode == 0
        rc, out = verify_output(s)
        assert rc == 0, (name, "not repaired", out)
    assert not missed, missed


# ---------------------------------------------------------------------------------------------
# 5. failing commands sharing a batch (SQLite: no savepoint without an Idempotency-Key)


def check_write_model(db):
    """Every product has its events, the last one's payload is its row, seq has no gaps."""
    seqs = [r[0] for r in sql(db, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq has gaps"
    products = sql(db, "SELECT id, sku, name, price_cents, stock, version, created_at, "
                       "updated_at FROM products")
    problems = []
    for row in products:
        evs = sql(db, "SELECT version, type, payload FROM events WHERE product_id = ? "
                      "ORDER BY seq", (row[0],))
        if [e[0] for e in evs] != list(range(1, row[5] + 1)):
            problems.append(("versions", row[0], [e[0] for e in evs], row[5]))
        elif evs[-1][2] != row_text(row):
            problems.append(("payload", row[0], evs[-1][2], row_text(row)))
    orphans = sql(db, "SELECT DISTINCT e.product_id FROM events e LEFT JOIN products p "
                      "ON p.id = e.product_id WHERE p.id IS NULL AND e.product_id NOT IN "
                      "(SELECT product_id FROM events WHERE type = 'ProductDeleted')")
    assert not orphans, ("events of products that never existed", orphans[:5])
    assert not problems, problems[:5]


def test_failing_commands_in_a_shared_batch_leave_nothing_and_spoil_nothing(fresh):
    s = fresh
    base = [create(s, 1) for _ in range(20)]
    deleted = create(s, 1)
    assert s.http.delete(s.url(f"/products/{deleted['id']}"), timeout=10).status_code == 204
    dup_skus = [v["sku"] for v in base[:5]]
    outcomes = {}
    lock = threading.Lock()

    def one(i):
        rnd = random.Random(i)
        with requests.Session() as http:
            res = []
            for k in range(40):
                op = (i + k) % 7
                v = rnd.choice(base)
                if op == 0:
                    r = http.post(s.url("/products"), headers=JSON, timeout=10,
                                  data=product_body(rnd.choice(dup_skus)))
                elif op == 1:
                    r = http.post(s.url("/products"), headers=JSON, timeout=10,
                                  data=product_body(f"DUP-{k % 3}", stock=k % 2))
                elif op == 2:
                    r = http.post(s.url(f"/products/{v['id']}/stock"), headers=JSON, timeout=10,
                                  data='{"delta":-%d}' % rnd.choice([1, 2, 1000]))
                elif op == 3:
                    r = http.post(s.url(f"/products/{v['id']}/stock"), headers=JSON, timeout=10,
                                  data='{"delta":1}')
                elif op == 4:
                    r = http.delete(s.url(f"/products/{deleted['id']}"), timeout=10)
                elif op == 5:
                    r = http.patch(s.url(f"/products/{v['id']}"), timeout=10,
                                   data='{"price":%d.25}' % k,
                                   headers={**JSON, "If-Match": '"1"'})
                else:
                    r = http.post(s.url("/products"), headers=JSON, timeout=10,
                                  data=product_body(uniq_sku("OK"), stock=k % 3))
                res.append((op, r.status_code))
            with lock:
                outcomes[i] = res
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(one, range(24)))
    codes = {}
    for res in outcomes.values():
        for op, code in res:
            codes.setdefault(op, set()).add(code)
    assert 500 not in {c for cs in codes.values() for c in cs}, codes
    assert codes[4] == {404} and codes[6] == {201}, codes
    assert all(sql(s.db, "SELECT COUNT(*) FROM products WHERE sku = ?", (f"DUP-{k}",))[0][0] == 1
               for k in range(3))
    assert sql(s.db, "SELECT MIN(stock) FROM products")[0][0] >= 0
    metrics = s.get("/metrics").text
    count = float(metrics.split("catalogd_write_batch_size_count ")[1].split()[0])
    total = float(metrics.split("catalogd_write_batch_size_sum ")[1].split()[0])
    assert total - count >= 100, ("the commands did not share batches", total, count)
    check_write_model(s.db)
    rc, out = verify_output(s)
    assert rc == 0, out


# ---------------------------------------------------------------------------------------------
# 6. the upgrade from the old layout while commands keep coming


def test_upgrade_from_old_layout_with_commands_meanwhile(stack_factory):
    s = stack_factory("upgrade")
    bulk_create(s.base, 3000, workers=4)
    s.server.stop()
    s.r.flushall()
    plant_old_layout(s)
    out = open(s.tmp / "upgrade.stderr", "ab")
    s.server.proc = subprocess.Popen(s.server.command(), stdout=out, stderr=out, cwd=str(s.tmp))
    out.close()
    wait_until(lambda: requests.get(s.url("/health"), timeout=1).status_code == 200, 10,
               what="health")
    seen_503, lies, tries = 0, [], 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = s.http.post(s.url("/products"), data=product_body(uniq_sku("UP"), stock=1),
                        headers=JSON, timeout=10)
        assert r.status_code == 201, r.text
        g = s.get(f"/products/{r.json()['id']}")
        if g.status_code == 503:  # rebuilding, or rebuilt and catching up to the log's head
            seen_503 += 1
            assert "rebuilt" in g.text or "not yet applied every change" in g.text, g.text
        if r.headers["Projection"] == "applied" and g.status_code != 200:
            lies.append((g.status_code, g.text[:120]))
        tries += 1
        if g.status_code == 200 and tries > 50:
            break
    assert not lies, ("applied, then not readable", lies[:3])
    wait_until(lambda: verify_output(s)[0] == 0, 20, interval=0.5, what="verify 0")


# ---------------------------------------------------------------------------------------------
# 7. faults during load: FLUSHALL, SIGSTOP/SIGCONT of Redis, kill -9 of catalogd


def test_faults_during_load_converge(stack_factory):
    s = stack_factory("faults")
    acked = {}
    stop = [time.monotonic() + 18]
    lock = threading.Lock()

    def load(seed):
        rnd = random.Random(seed)
        with requests.Session() as http:
            for _ in range(4000):
                if time.monotonic() > stop[0]:
                    return
                try:
                    if acked and rnd.random() < 0.4:
                        with lock:
                            pid = rnd.choice(list(acked))
                        r = http.post(s.url(f"/products/{pid}/stock"), headers=JSON, timeout=5,
                                      data='{"delta":%d}' % rnd.choice([1, -1]))
                        if r.status_code == 200:
                            with lock:
                                acked[pid] = max(acked[pid], r.json()["version"])
                    else:
                        r = http.post(s.url("/products"), headers=JSON, timeout=5,
                                      data=product_body(uniq_sku("F"), stock=rnd.randrange(2)))
                        if r.status_code == 201:
                            with lock:
                                acked[r.json()["id"]] = 1
                except requests.RequestException:
                    time.sleep(0.05)
    threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        s.r.flushall()
        time.sleep(3)
        rpid = s.redis.proc.pid
        os.kill(rpid, signal.SIGSTOP)
        time.sleep(2)
        os.kill(rpid, signal.SIGCONT)
        time.sleep(2)
        s.server.proc.send_signal(signal.SIGKILL)
        s.server.proc.wait(5)
        s.server.proc = None
        s.server.start()
        time.sleep(2)
        s.r.flushall()
    finally:
        for t in threads:
            t.join()
    wait_until(lambda: verify_output(s)[0] == 0, 30, interval=0.5, what="verify 0 after faults")
    rows = dict(sql(s.db, "SELECT id, version FROM products"))
    skus = dict(sql(s.db, "SELECT id, sku FROM products"))
    stale = []
    for pid, version in list(acked.items()):
        assert pid in rows, ("acknowledged product lost", pid)
        for path in (f"/products/{pid}", f"/products/by-sku/{skus[pid]}"):
            g = s.get(path)
            if g.status_code != 200 or g.json()["version"] < version:
                stale.append((path, g.status_code, version))
    assert not stale, stale[:5]
    listed = [v["id"] for p, _ in catalog_pages(s, 1000) for v in p]
    assert sorted(listed) == sorted(rows), "the catalog lists other products than the write model"


# ---------------------------------------------------------------------------------------------
# 8. kill -9 during the upgrade's rebuild


def test_kill_during_the_upgrade_rebuild_converges(stack_factory):
    s = stack_factory("upgrade-kill")
    bulk_create(s.base, 4000, workers=4)
    s.server.stop()
    s.r.flushall()
    plant_old_layout(s)
    for _ in range(3):
        out = open(s.tmp / "upgrade.stderr", "ab")
        s.server.proc = subprocess.Popen(s.server.command(), stdout=out, stderr=out,
                                         cwd=str(s.tmp))
        out.close()
        wait_until(lambda: any(k for k in s.r.scan_iter(f"{PREFIX}:g*:in", count=1000)
                               if not k.startswith(f"{PREFIX}:g1:".encode())), 10,
                   interval=0.002, what="the upgrade's rebuild to start")
        s.server.proc.send_signal(signal.SIGKILL)
        s.server.proc.wait(5)
        s.server.proc = None
    s.server.start()
    wait_until(lambda: verify_output(s)[0] == 0, 30, interval=0.5, what="verify 0")
    wait_until(lambda: generation_numbers(s.r) == {int(redis_gen(s.r))}, 20, interval=0.3,
               what="only the current generation left")
    assert s.r.get(f"{PREFIX}:rebuild-lock") is None or True
    n = len([v for p, _ in catalog_pages(s, 1000) for v in p])
    assert n == sql(s.db, "SELECT COUNT(*) FROM products")[0][0]


# ---------------------------------------------------------------------------------------------
# 9. a limit of 1000 past 1000 products, and paging on across a FLUSHALL and a kill -9


def test_limit_1000_and_paging_on_across_flushall_and_kill(fresh):
    s = fresh
    bulk_create(s.base, 1100, workers=4, in_stock_only=True)
    for _ in range(700):
        create(s, 0)
    ids = sorted(r[0] for r in sql(s.db, "SELECT id FROM products"))
    pages = catalog_pages(s, 1000)
    assert [len(p) for p, _ in pages] == [1000, 800] and {t for _, t in pages} == {1800}
    assert [v["id"] for p, _ in pages for v in p] == ids
    pages = catalog_pages(s, 1000, in_stock=True)
    assert [len(p) for p, _ in pages] == [1000, 100] and {t for _, t in pages} == {1100}
    assert_problem(s.get("/catalog?limit=1001"), 400)
    # follow the links with limit 37, wiping Redis and killing catalogd on the way
    seen, url, n = [], "/catalog?limit=37", 0
    for _ in range(500):
        r = s.get(url)
        if r.status_code == 503:
            time.sleep(0.05)
            continue
        assert r.status_code == 200, (r.status_code, r.text)
        page = r.json()
        assert len(page) <= 37
        seen += [v["id"] for v in page]
        n += 1
        if n == 10:
            s.r.flushall()
        if n == 25:
            s.server.proc.send_signal(signal.SIGKILL)
            s.server.proc.wait(5)
            s.server.proc = None
            s.server.start()
        link = r.headers.get("Link")
        if not link:
            break
        url = link[1:link.index(">")]
    assert seen == ids, (len(seen), len(ids), len(set(seen)))

"""Operations: POST /admin/rebuild, GET /admin/projection, GET /metrics and --api-token, against
real processes (each test starts its own redis-server and catalogd)."""

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import PREFIX, assert_problem, bulk_create, redis_gen, sql, uniq_sku, wait_until

JSON_CT = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------------------
# private helpers


def product_body(sku, name="Admin item", price="7.50", stock=2):
    return ('{"sku":' + json.dumps(sku) + ',"name":' + json.dumps(name) + ',"price":'
            + str(price) + ',"stock":' + str(stock) + "}")


def post_product(base, sku=None, headers=None, session=None, **fields):
    h = dict(JSON_CT)
    h.update(headers or {})
    return (session or requests).post(base + "/products", data=product_body(sku or uniq_sku(),
                                                                           **fields),
                                      headers=h, timeout=10)


def max_seq(db):
    return sql(db, "SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]


def projection(s, headers=None):
    r = requests.get(s.url("/admin/projection"), headers=headers or {}, timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    return r.json()


def assert_verify_ok(s):
    v = s.cli("verify")
    assert v.returncode == 0, ("catalogd verify reported differences:\n"
                               + (v.stdout + v.stderr)[-4000:])


def generation_keys(r, gen):
    return list(r.scan_iter(f"{PREFIX}:g{gen}:*", count=1000))


def generation_views(r, gen):
    """How many views generation "gen" holds (its two view sets)."""
    return sum(r.zcard(f"{PREFIX}:g{gen}:{name}") for name in ("in", "out"))


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def parse_metrics(text):
    """Prometheus text format -> ({(name, frozenset(labels)): value}, {family: type})."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        name, labels_text, value = m.groups()
        labels = {}
        if labels_text:
            consumed = 0
            for lm in LABEL_RE.finditer(labels_text):
                assert lm.start() == consumed, f"bad labels in {line!r}"
                labels[lm.group(1)] = lm.group(2)
                consumed = lm.end()
            assert consumed == len(labels_text), f"bad labels in {line!r}"
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def get_metrics(s):
    r = requests.get(s.url("/metrics"), timeout=5)
    assert r.status_code == 200, r.text
    ct = r.headers.get("Content-Type", "")
    assert ct.startswith("text/plain") and "version=0.0.4" in ct, ct
    return parse_metrics(r.text)


def check_histogram(samples, family, labels_without_le):
    """Buckets are cumulative (non-decreasing in le), +Inf equals _count; returns _count."""
    buckets = []
    for (name, labels), value in samples.items():
        if name != family + "_bucket":
            continue
        d = dict(labels)
        le = d.pop("le", None)
        if d != labels_without_le:
            continue
        assert le is not None
        buckets.append((math.inf if le == "+Inf" else float(le), value))
    assert buckets, f"no buckets for {family} {labels_without_le}"
    buckets.sort()
    values = [v for _, v in buckets]
    assert values == sorted(values), \
        f"{family} {labels_without_le} buckets are not cumulative: {buckets}"
    assert buckets[-1][0] == math.inf, f"{family} {labels_without_le} has no +Inf bucket"
    count = metric(samples, family + "_count", **labels_without_le)
    total = metric(samples, family + "_sum", **labels_without_le)
    assert count is not None and total is not None, (family, labels_without_le)
    assert buckets[-1][1] == count, (family, labels_without_le, buckets[-1], count)
    assert total >= 0
    return count


# ---------------------------------------------------------------------------------------------
# 7. POST /admin/rebuild


def test_admin_rebuild_202_then_409_then_completes(fresh):
    n = 2000
    resps = bulk_create(fresh.base, n)
    gen_before = redis_gen(fresh.r)
    assert generation_views(fresh.r, gen_before) == n
    proj0 = projection(fresh)
    assert proj0["rebuild"]["running"] is False and proj0["rebuild"]["runs"] == 0, proj0

    s = requests.Session()
    first = s.post(fresh.url("/admin/rebuild"), timeout=10)
    second = s.post(fresh.url("/admin/rebuild"), timeout=10)
    t_first = time.monotonic()
    assert first.status_code == 202, (first.status_code, first.text)
    assert first.headers.get("Content-Type", "").startswith("application/json"), first.headers
    assert first.json().get("status") == "rebuilding", first.text
    if second.status_code == 409:
        problem = assert_problem(second, 409)
        assert problem["type"].endswith("rebuild-in-progress"), problem
        expected_runs = 1
    else:
        # the first one was already over: the second is a rebuild of its own
        assert second.status_code == 202, (second.status_code, second.text)
        assert second.json().get("status") == "rebuilding"
        expected_runs = 2
    s.close()

    proj = wait_until(lambda: (lambda p: p if not p["rebuild"]["running"] else None)(
        projection(fresh)), 30, interval=0.1, what="the rebuild to finish")
    rb = proj["rebuild"]
    assert rb["runs"] >= expected_runs, proj
    gen_now = redis_gen(fresh.r)
    assert gen_now != gen_before
    assert rb["last_generation"] == int(gen_now), (proj, gen_now)
    assert rb.get("last_error") in ("", None), proj
    assert rb.get("last_products") in (None, n), proj
    assert proj["generation"] == int(gen_now), proj
    # the old generation goes away, in the background
    wait_until(lambda: not generation_keys(fresh.r, gen_before),
               max(0.5, 5 - (time.monotonic() - t_first)) + 1, interval=0.1,
               what=f"generation {gen_before}'s keys to be deleted")
    cat = fresh.get("/catalog?limit=1")
    assert cat.status_code == 200 and cat.headers.get("X-Total-Count") == str(n)
    for r in resps[:: n // 50]:
        got = fresh.get(f"/products/{r.json()['id']}")
        assert got.status_code == 200 and got.text == r.text
    # the projector keeps projecting into the new generation
    r = post_product(fresh.base)
    assert r.status_code == 201 and r.headers.get("Projection") == "applied", r.headers
    assert_verify_ok(fresh)
    # and a rebuild is possible again once the first is over
    again = requests.post(fresh.url("/admin/rebuild"), timeout=10)
    assert again.status_code == 202, (again.status_code, again.text)
    wait_until(lambda: not projection(fresh)["rebuild"]["running"], 30, interval=0.1,
               what="the third rebuild to finish")


def test_a_rebuild_refused_for_another_holder_of_the_lock_leaves_the_last_rebuilds_figures(fresh):
    """Another process holds the rebuild lock (a `catalogd rebuild`, another host's): the
    request is refused with 409 and no rebuild of this server ran, so `runs` and `last_error`
    keep telling of the last one. They counted the refusal as a failed rebuild."""
    post_product(fresh.base)
    assert requests.post(fresh.url("/admin/rebuild"), timeout=10).status_code == 202
    before = wait_until(lambda: (lambda p: p if not p["rebuild"]["running"] else None)(
        projection(fresh)), 30, interval=0.05, what="the rebuild to finish")["rebuild"]
    assert before["runs"] == 1 and before["last_error"] == "", before
    fresh.r.set(f"{PREFIX}:rebuild-lock", "0123456789abcdef0123456789abcdef elsewhere 1", px=5000)
    refused = requests.post(fresh.url("/admin/rebuild"), timeout=10)
    assert assert_problem(refused, 409)["type"].endswith("rebuild-in-progress"), refused.text
    after = projection(fresh)["rebuild"]
    assert after == before, (before, after)
    fresh.r.delete(f"{PREFIX}:rebuild-lock")
    assert requests.post(fresh.url("/admin/rebuild"), timeout=10).status_code == 202


# ---------------------------------------------------------------------------------------------
# 8. GET /admin/projection


def test_admin_projection_fields_and_lag_during_an_outage(fresh):
    for _ in range(3):
        post_product(fresh.base)
    p = projection(fresh)
    for key, kind in [("state", str), ("generation", int), ("checkpoint", int), ("head", int),
                      ("lag_events", int), ("lag_seconds", (int, float)),
                      ("redis_errors", int), ("reconnects", int), ("rebuild", dict)]:
        assert key in p, f"/admin/projection lacks {key}: {p}"
        assert isinstance(p[key], kind) and not isinstance(p[key], bool), (key, p[key])
    for key in ("running", "runs", "last_generation"):
        assert key in p["rebuild"], p
    assert isinstance(p["rebuild"]["running"], bool)
    head = max_seq(fresh.db)
    assert p["state"] == "live", p
    assert p["checkpoint"] == head and p["head"] == head, (p, head)
    assert p["lag_events"] == 0 and p["lag_seconds"] == 0, p
    assert p["generation"] == int(redis_gen(fresh.r)), p
    errors_before = p["redis_errors"]

    fresh.redis.stop()
    try:
        for _ in range(3):
            r = post_product(fresh.base)
            assert r.status_code == 201 and r.headers.get("Projection") == "pending"
        p1 = wait_until(lambda: (lambda q: q if q["lag_events"] >= 3 else None)(projection(fresh)),
                        5, what="lag_events to count the pending events")
        assert p1["head"] == max_seq(fresh.db), p1
        assert p1["lag_events"] == p1["head"] - p1["checkpoint"] == 3, p1
        time.sleep(0.6)
        for _ in range(2):
            assert post_product(fresh.base).status_code == 201
        p2 = projection(fresh)
        assert p2["lag_events"] == 5, p2
        assert p2["lag_seconds"] >= p1["lag_seconds"] + 0.5, (p1, p2)
        assert p2["lag_seconds"] < 30, p2
        assert p2["state"] == "redis_down", p2
        assert p2["redis_errors"] > errors_before, (p, p2)
    finally:
        fresh.redis.start()

    p3 = wait_until(lambda: (lambda q: q if q["lag_events"] == 0 and q["state"] == "live"
                             else None)(projection(fresh)), 10,
                    what="the projector to catch up after Redis returns")
    assert p3["lag_seconds"] == 0, p3
    assert p3["checkpoint"] == p3["head"] == max_seq(fresh.db), p3
    assert p3["reconnects"] >= 1, p3
    assert p3["generation"] == int(redis_gen(fresh.r)), p3


# ---------------------------------------------------------------------------------------------
# 9. GET /metrics


def test_metrics_counts_requests_histograms_lag_and_redis_errors(fresh):
    k = 7
    views = [post_product(fresh.base, name=f"Metric {i}") for i in range(k)]
    assert all(r.status_code == 201 for r in views)
    bad = [post_product(fresh.base, price="-1"), post_product(fresh.base, stock="1.5")]
    assert [r.status_code for r in bad] == [422, 422]
    for r in views[:3]:
        assert fresh.get(f"/products/{r.json()['id']}").status_code == 200
    assert fresh.get("/products/01900000-0000-7000-8000-000000000000").status_code == 404

    samples, types = get_metrics(fresh)
    assert types.get("catalogd_requests_total") == "counter", types
    assert types.get("catalogd_request_duration_seconds") == "histogram", types
    assert types.get("catalogd_write_batch_size") == "histogram", types
    assert types.get("catalogd_projection_lag_events") == "gauge", types
    assert metric(samples, "catalogd_requests_total", route="create_product", status="201") == k
    assert metric(samples, "catalogd_requests_total", route="create_product", status="422") == 2
    assert metric(samples, "catalogd_requests_total", route="get_product", status="200") == 3
    assert metric(samples, "catalogd_requests_total", route="get_product", status="404") == 1
    # every route's latency histogram is cumulative and +Inf == count
    routes = {dict(lbl)["route"] for (name, lbl) in samples
              if name == "catalogd_request_duration_seconds_count"}
    assert {"create_product", "get_product"} <= routes, routes
    for route in routes:
        count = check_histogram(samples, "catalogd_request_duration_seconds", {"route": route})
        by_status = sum(v for (name, lbl), v in samples.items()
                        if name == "catalogd_requests_total" and dict(lbl)["route"] == route)
        assert count == by_status, (route, count, by_status)
    assert check_histogram(samples, "catalogd_request_duration_seconds",
                           {"route": "create_product"}) == k + 2
    # write batches: at least one, and the sizes add up to the commands that reached the writer
    batches = check_histogram(samples, "catalogd_write_batch_size", {})
    assert batches >= 1
    assert metric(samples, "catalogd_write_batch_size_sum") == k
    # caught up
    assert metric(samples, "catalogd_projection_lag_events") == 0
    assert metric(samples, "catalogd_projection_lag_seconds") == 0
    for comp in ("projector", "queries"):
        assert metric(samples, "catalogd_redis_errors_total", component=comp) is not None, comp
        assert metric(samples, "catalogd_redis_reconnects_total", component=comp) is not None

    # a Redis outage shows in the error counters
    before = {c: metric(samples, "catalogd_redis_errors_total", component=c)
              for c in ("projector", "queries")}
    fresh.redis.stop()
    try:
        assert post_product(fresh.base).status_code == 201
        for r in views[:3]:
            assert fresh.get(f"/products/{r.json()['id']}").status_code == 503
        mid, _ = get_metrics(fresh)
        assert metric(mid, "catalogd_requests_total", route="get_product", status="503") == 3
        wait_until(lambda: metric(get_metrics(fresh)[0], "catalogd_projection_lag_events") >= 1,
                   5, what="catalogd_projection_lag_events to show the pending event")
        time.sleep(0.3)
    finally:
        fresh.redis.start()
    wait_until(lambda: requests.get(fresh.url("/ready"), timeout=3).status_code == 200, 10,
               what="/ready 200 after Redis returns")
    wait_until(lambda: metric(get_metrics(fresh)[0], "catalogd_projection_lag_events") == 0, 10,
               what="lag 0 after Redis returns")
    after, _ = get_metrics(fresh)
    for comp in ("projector", "queries"):
        assert metric(after, "catalogd_redis_errors_total", component=comp) > before[comp], comp
    assert metric(after, "catalogd_redis_reconnects_total", component="projector") >= 1
    assert metric(after, "catalogd_redis_reconnects_total", component="queries") >= 1
    assert metric(after, "catalogd_requests_total", route="create_product", status="201") == k + 1


def test_concurrent_clients_commands_wait_to_fill_a_batch_and_all_are_answered(fresh):
    """Eight clients posting at once: the writer waits for the commands in flight to fill its
    batches (catalogd_write_batch_fill_waits_total counts it), and every command is answered,
    applied, in a batch."""
    clients, each = 8, 25

    def client(n):
        with requests.Session() as session:
            return [post_product(fresh.base, session=session, name=f"Filler {n}-{i}")
                    for i in range(each)]

    with ThreadPoolExecutor(clients) as pool:
        answers = [r for rs in pool.map(client, range(clients)) for r in rs]
    assert [r.status_code for r in answers] == [201] * clients * each
    assert {r.headers.get("Projection") for r in answers} == {"applied"}
    samples, types = get_metrics(fresh)
    assert types.get("catalogd_write_batch_fill_waits_total") == "counter", types
    assert metric(samples, "catalogd_write_batch_fill_waits_total") >= 1
    assert metric(samples, "catalogd_write_batch_size_sum") == clients * each
    assert check_histogram(samples, "catalogd_write_batch_size", {}) < clients * each


# ---------------------------------------------------------------------------------------------
# 10. --api-token


TOKEN = "secret"
WRONG = [None, "Bearer wrong", "Bearer secretx", "Bearer secre", "Bearer", "Bearer ",
         "secret", "Basic c2VjcmV0", "Token secret", "Bearer  secret x"]


def _auth(value):
    return {} if value is None else {"Authorization": value}


def test_api_token_guards_commands_and_admin_only(stack_factory):
    s = stack_factory("token", extra_args=("--api-token", TOKEN))
    good = {"Authorization": f"Bearer {TOKEN}"}
    created = post_product(s.base, headers=good)
    assert created.status_code == 201, created.text
    pid, sku = created.json()["id"], created.json()["sku"]
    counts = (sql(s.db, "SELECT COUNT(*) FROM products")[0][0],
              sql(s.db, "SELECT COUNT(*) FROM events")[0][0])

    guarded = [
        ("POST", "/products", product_body(uniq_sku())),
        ("PATCH", f"/products/{pid}", '{"name":"Changed"}'),
        ("POST", f"/products/{pid}/stock", '{"delta":1}'),
        ("DELETE", f"/products/{pid}", None),
        ("GET", "/admin/projection", None),
        ("POST", "/admin/rebuild", None),
    ]
    for method, path, body in guarded:
        for value in WRONG:
            h = _auth(value)
            if body is not None:
                h.update(JSON_CT)
            r = requests.request(method, s.url(path), data=body, headers=h, timeout=5)
            problem = assert_problem(r, 401)
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), \
                (method, path, value, r.headers)
            assert "Projection" not in r.headers
            assert problem["type"], problem
    assert (sql(s.db, "SELECT COUNT(*) FROM products")[0][0],
            sql(s.db, "SELECT COUNT(*) FROM events")[0][0]) == counts, "a 401 changed something"
    got = requests.get(s.url(f"/products/{pid}"), timeout=5)
    assert got.status_code == 200 and got.text == created.text
    assert not s.r.exists(f"{PREFIX}:rebuild-lock")

    # queries and operations stay open (with or without a token, even a wrong one)
    for value in (None, "Bearer wrong"):
        for path in (f"/products/{pid}", f"/products/by-sku/{sku}", "/catalog", "/health",
                     "/ready", "/metrics"):
            r = requests.get(s.url(path), headers=_auth(value), timeout=5)
            assert r.status_code == 200, (path, value, r.status_code, r.text[:200])

    # with the right token, commands work
    h = dict(good, **JSON_CT)
    r = requests.patch(s.url(f"/products/{pid}"), data='{"name":"Renamed"}', headers=h, timeout=5)
    assert r.status_code == 200 and r.json()["name"] == "Renamed", r.text
    r = requests.post(s.url(f"/products/{pid}/stock"), data='{"delta":3}', headers=h, timeout=5)
    assert r.status_code == 200 and r.json()["stock"] == 5, r.text
    r = requests.get(s.url("/admin/projection"), headers=good, timeout=5)
    assert r.status_code == 200 and "checkpoint" in r.json()
    r = requests.post(s.url("/admin/rebuild"), headers=good, timeout=5)
    assert r.status_code == 202, r.text
    wait_until(lambda: not projection(s, headers=good)["rebuild"]["running"], 20, interval=0.1,
               what="the rebuild to finish")
    r = requests.delete(s.url(f"/products/{pid}"), headers=good, timeout=5)
    assert r.status_code == 204, r.text
    assert requests.get(s.url(f"/products/{pid}"), timeout=5).status_code == 404
    assert_verify_ok(s)

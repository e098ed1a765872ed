"""Command routes other than create: PATCH /products/{id}, DELETE /products/{id},
POST /products/{id}/stock, If-Match, Idempotency-Key, and the events each change appends.

Every test ends with `catalogd verify` exiting 0 on the stack it used (see verify_after)."""

import hashlib
import json
import re
import time

import pytest
import requests

from conftest import (PREFIX, TS_RE, VIEW_KEYS, all_views, assert_problem, expected_view_text,
                      redis_gen, redis_view, sku_owner, sql, uniq_sku)

UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"


# ---------------------------------------------------------------------------------------------
# helpers (local to this file)


@pytest.fixture(autouse=True)
def verify_after(request):
    """After each test, the write and read models of the stack(s) it used agree.

    The stacks are requested here, before the test runs, so they are torn down after this
    fixture's teardown and are still alive when verify runs."""
    stacks = [request.getfixturevalue(name) for name in ("stack", "fresh")
              if name in request.fixturenames]
    yield
    for s in stacks:
        p = s.cli("verify")
        assert p.returncode == 0, ("catalogd verify failed after the test", p.returncode,
                                   p.stdout[-3000:], p.stderr[-3000:])


def send(s, method, path, body=None, headers=None, content_type="application/json"):
    """Sends one request; body is literal JSON text (str/bytes) or a dict to dump."""
    h = dict(headers or {})
    data = None
    if body is not None:
        if content_type is not None:
            h["Content-Type"] = content_type
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        if isinstance(data, str):
            data = data.encode()
    return s.request(method, path, data=data, headers=h)


def patch(s, pid, body, headers=None, **kw):
    return send(s, "PATCH", f"/products/{pid}", body, headers, **kw)


def delete(s, pid, headers=None):
    return send(s, "DELETE", f"/products/{pid}", None, headers)


def adjust(s, pid, delta, headers=None, **kw):
    body = delta if isinstance(delta, (str, bytes)) else '{"delta":%d}' % delta
    return send(s, "POST", f"/products/{pid}/stock", body, headers, **kw)


def product_row(db, pid):
    rows = sql(db, "SELECT id, sku, name, price_cents, stock, version, created_at, updated_at "
               "FROM products WHERE id=?", (pid,))
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def row_view(row):
    """The view dict (with price_text) that a products row must be served as."""
    pid, sku, name, cents, stock, version, created_at, updated_at = row
    return {"id": pid, "sku": sku, "name": name, "price_text": f"{cents // 100}.{cents % 100:02d}",
            "stock": stock, "version": version, "created_at": created_at,
            "updated_at": updated_at}


def events_of(db, pid):
    return sql(db, "SELECT type, version, payload FROM events WHERE product_id=? ORDER BY seq",
               (pid,))


def event_count(db):
    return sql(db, "SELECT COUNT(*) FROM events")[0][0]


def key_hash(key):
    """How the store names a key: its SHA-256, 32 bytes."""
    return hashlib.sha256(key.encode()).digest()


def key_rows(db, key):
    return sql(db, "SELECT status, body FROM idempotency_keys WHERE key_sha256=?", (key_hash(key),))


def snapshot(s, pid):
    """Everything a refused command must leave untouched."""
    rv = redis_view(s.r, pid)
    return (product_row(s.db, pid), len(events_of(s.db, pid)), event_count(s.db), rv["raw"],
            rv["all_score"], rv["in_stock_score"])


def assert_served(s, pid, sku=None):
    """The SQLite row, the Redis view and its indexes, and GET agree; or all say 'gone'."""
    row = product_row(s.db, pid)
    rv = redis_view(s.r, pid)
    if row is None:
        assert rv["raw"] is None, rv
        assert rv["all_score"] is None and rv["in_stock_score"] is None, rv
        if sku is not None:
            assert sku_owner(s.r, sku) is None
        assert_problem(s.get(f"/products/{pid}"), 404)
        return None
    want = expected_view_text(row_view(row))
    assert rv["raw"] is not None and rv["raw"].decode() == want, (rv["raw"], want)
    assert rv["sku_id"] == pid
    assert rv["all_score"] == 0
    assert rv["in_stock_score"] == (0 if row[4] > 0 else None), rv
    got = s.get(f"/products/{pid}")
    assert got.status_code == 200, got.text
    assert got.text == want
    assert got.headers.get("ETag") == f'"{row[5]}"'
    return want


def assert_view_response(resp, status=200):
    """A command success carrying the view: headers and exact JSON shape; returns the dict."""
    assert resp.status_code == status, (resp.status_code, resp.headers, resp.text)
    assert resp.headers.get("Content-Type") == "application/json", resp.headers
    assert resp.headers.get("X-Request-Id"), resp.headers
    assert resp.headers.get("Projection") == "applied", resp.headers
    pairs = json.loads(resp.text, object_pairs_hook=lambda p: p)
    assert [k for k, _ in pairs] == VIEW_KEYS, resp.text
    view = resp.json()
    assert resp.headers.get("ETag") == f'"{view["version"]}"', resp.headers
    m = re.search(r'"price":([0-9]+\.[0-9]{2}),', resp.text)
    assert m, resp.text
    view["price_text"] = m.group(1)
    assert resp.text == expected_view_text(view), resp.text
    assert TS_RE.match(view["created_at"]) and TS_RE.match(view["updated_at"])
    return view


def catalog_ids(s, in_stock=False):
    resp = s.get("/catalog?limit=1000" + ("&in_stock=true" if in_stock else ""))
    assert resp.status_code == 200, resp.text
    assert "Link" not in resp.headers, "a private stack must fit in one page"
    ids = [v["id"] for v in resp.json()]
    assert resp.headers.get("X-Total-Count") == str(len(ids))
    return ids


def problem_type_is(problem, slug):
    assert problem["type"].endswith(slug), problem


def tick():
    """Lets the millisecond clock move, so updated_at visibly changes."""
    time.sleep(0.005)


# ---------------------------------------------------------------------------------------------
# PATCH /products/{id}


def test_patch_name_returns_the_new_view(stack):
    _, before = stack.create(name="Old Name", price="10.50", stock=3)
    tick()
    resp = patch(stack, before["id"], {"name": "New Name"})
    view = assert_view_response(resp)
    assert view["id"] == before["id"]
    assert view["sku"] == before["sku"]
    assert view["name"] == "New Name"
    assert view["desc"] == "New Name - $10.50"
    assert view["price_text"] == "10.50" and view["stock"] == 3
    assert view["available"] is True
    assert view["version"] == 2
    assert view["created_at"] == before["created_at"]
    assert view["updated_at"] > before["updated_at"]
    assert "Location" not in resp.headers
    assert product_row(stack.db, view["id"]) == (
        view["id"], view["sku"], "New Name", 1050, 3, 2, before["created_at"], view["updated_at"])
    assert assert_served(stack, view["id"]) == resp.text
    evs = events_of(stack.db, view["id"])
    assert [(t, v) for t, v, _ in evs] == [("ProductCreated", 1), ("ProductUpdated", 2)]
    assert evs[1][2] == resp.text


@pytest.mark.parametrize("body,expect", [
    ('{"name":"Only Name"}', {"name": "Only Name"}),
    ('{"price":7}', {"price_text": "7.00"}),
    ('{"price":0.1}', {"price_text": "0.10"}),
    ('{"price":1e2}', {"price_text": "100.00"}),
    ('{"price":999999999.99}', {"price_text": "999999999.99"}),
    ('{"stock":42}', {"stock": 42}),
    ('{"stock":2147483647}', {"stock": 2147483647}),
    ('{"name":"  Trimmed  "}', {"name": "Trimmed"}),
    ('{"name":"All","price":0,"stock":0}', {"name": "All", "price_text": "0.00", "stock": 0}),
    ('{"stock":9,"price":3.25}', {"stock": 9, "price_text": "3.25"}),
], ids=["name", "price-int", "price-0.1", "price-exp", "price-max", "stock", "stock-max",
        "name-trimmed", "all-three", "stock-and-price"])
def test_patch_changes_exactly_the_fields_given(stack, body, expect):
    _, before = stack.create(name="Base", price="19.99", stock=5)
    resp = patch(stack, before["id"], body)
    view = assert_view_response(resp)
    want = {"name": "Base", "price_text": "19.99", "stock": 5}
    want.update(expect)
    assert {k: view[k] for k in want} == want
    assert view["available"] is (want["stock"] > 0)
    assert view["version"] == 2
    row = product_row(stack.db, before["id"])
    cents = int(want["price_text"].replace(".", ""))
    assert row[2:6] == (want["name"], cents, want["stock"], 2)
    assert assert_served(stack, before["id"]) == resp.text


def test_patch_name_utf8_is_kept_exact(stack):
    _, before = stack.create()
    name = 'Caf\u00e9 "q" \\ \U0001F600'
    view = assert_view_response(patch(stack, before["id"], {"name": name}))
    assert view["name"] == name
    assert product_row(stack.db, before["id"])[2] == name
    assert_served(stack, before["id"])


PATCH_INVALID = {
    "name-empty": ('{"name":""}', {"name"}),
    "name-blank": ('{"name":"   "}', {"name"}),
    "name-too-long": ('{"name":"%s"}' % ("n" * 201), {"name"}),
    "name-control": ('{"name":"a\\u0001b"}', {"name"}),
    "name-number": ('{"name":5}', {"name"}),
    "name-null": ('{"name":null}', {"name"}),
    "price-string": ('{"price":"1.00"}', {"price"}),
    "price-negative": ('{"price":-1}', {"price"}),
    "price-three-decimals": ('{"price":1.001}', {"price"}),
    "price-too-big": ('{"price":1000000000}', {"price"}),
    "price-null": ('{"price":null}', {"price"}),
    "stock-negative": ('{"stock":-1}', {"stock"}),
    "stock-float": ('{"stock":1.0}', {"stock"}),
    "stock-string": ('{"stock":"3"}', {"stock"}),
    "stock-too-big": ('{"stock":2147483648}', {"stock"}),
    "stock-way-too-big": ('{"stock":99999999999999999999}', {"stock"}),
    "unknown-field": ('{"name":"ok","color":"red"}', {"color"}),
    "read-only-id": ('{"name":"ok","id":"%s"}' % UNKNOWN_ID, {"id"}),
    "read-only-sku": ('{"name":"ok","sku":"OTHER-SKU"}', {"sku"}),
    "read-only-version": ('{"name":"ok","version":7}', {"version"}),
    "valid-name-bad-price-and-stock": ('{"name":"ok","price":"x","stock":-5}',
                                       {"price", "stock"}),
}


@pytest.mark.parametrize("body,fields", list(PATCH_INVALID.values()), ids=list(PATCH_INVALID))
def test_patch_validation_is_422_naming_each_field(stack, body, fields):
    _, before = stack.create()
    snap = snapshot(stack, before["id"])
    resp = patch(stack, before["id"], body)
    problem = assert_problem(resp, 422)
    problem_type_is(problem, "validation-failed")
    errors = problem.get("errors")
    assert isinstance(errors, list) and errors, problem
    for e in errors:
        assert isinstance(e.get("message"), str) and e["message"], e
    assert {e["field"] for e in errors} == fields, errors
    assert len(errors) == len(fields), errors
    assert "ETag" not in resp.headers
    assert snapshot(stack, before["id"]) == snap


@pytest.mark.parametrize("body,field", [
    ('{"sku":"NEW-SKU"}', "sku"),
    ('{"id":"x"}', "id"),
    ('{"version":2}', "version"),
    ('{"color":"red"}', "color"),
])
def test_patch_with_only_a_forbidden_field_is_422(stack, body, field):
    _, before = stack.create()
    snap = snapshot(stack, before["id"])
    problem = assert_problem(patch(stack, before["id"], body), 422)
    assert field in {e["field"] for e in problem["errors"]}, problem
    assert snapshot(stack, before["id"]) == snap


def test_patch_empty_object_is_422(stack):
    _, before = stack.create()
    snap = snapshot(stack, before["id"])
    problem = assert_problem(patch(stack, before["id"], "{}"), 422)
    problem_type_is(problem, "validation-failed")
    assert isinstance(problem.get("errors"), list) and len(problem["errors"]) >= 1, problem
    assert snapshot(stack, before["id"]) == snap


MALFORMED = {
    "invalid-json": '{"name":',
    "empty": "",
    "array": '[{"name":"x"}]',
    "string": '"x"',
    "null": "null",
    "duplicate-keys": '{"name":"a","name":"b"}',
    "nan": '{"price":NaN}',
    "infinity": '{"price":Infinity}',
    "trailing-garbage": '{"name":"a"} x',
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_patch_malformed_body_is_400(stack, body):
    _, before = stack.create()
    snap = snapshot(stack, before["id"])
    problem_type_is(assert_problem(patch(stack, before["id"], body), 400), "malformed-body")
    assert snapshot(stack, before["id"]) == snap


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/jsonx",
                                   "application/x-www-form-urlencoded"])
def test_patch_wrong_content_type_is_415(stack, ctype):
    _, before = stack.create()
    snap = snapshot(stack, before["id"])
    resp = patch(stack, before["id"], '{"name":"x"}', content_type=ctype)
    problem_type_is(assert_problem(resp, 415), "unsupported-media-type")
    assert snapshot(stack, before["id"]) == snap


def test_patch_content_type_with_charset_is_accepted(stack):
    _, before = stack.create()
    resp = patch(stack, before["id"], '{"name":"x"}',
                 content_type="application/json; charset=utf-8")
    assert assert_view_response(resp)["name"] == "x"


def test_patch_body_over_64k_is_413(stack):
    _, before = stack.create()
    snap = snapshot(stack, before["id"])
    body = ('{"name":"' + "n" * 70000 + '"}').encode()
    resp = requests.patch(stack.url(f"/products/{before['id']}"), data=body,
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert_problem(resp, 413)
    assert snapshot(stack, before["id"]) == snap


@pytest.mark.parametrize("pid", [UNKNOWN_ID, "not-a-uuid", UNKNOWN_ID.upper()[:-1] + "A"])
def test_patch_unknown_id_is_404(stack, pid):
    before = stack.counts()
    problem_type_is(assert_problem(patch(stack, pid, {"name": "x"}), 404), "not-found")
    assert stack.counts() == before


# ---------------------------------------------------------------------------------------------
# version, ETag, timestamps and events over a series of changes


def test_each_change_bumps_the_version_by_one_and_appends_one_event(stack):
    _, v1 = stack.create(name="Series", price="1.00", stock=10)
    pid = v1["id"]
    responses = []
    for step in [lambda: patch(stack, pid, {"name": "Series 2"}),
                 lambda: adjust(stack, pid, -3),
                 lambda: patch(stack, pid, {"price": 2.5, "stock": 1}),
                 lambda: adjust(stack, pid, 4)]:
        tick()
        responses.append(step())
    views = [assert_view_response(r) for r in responses]
    assert [v["version"] for v in views] == [2, 3, 4, 5]
    assert [r.headers["ETag"] for r in responses] == ['"2"', '"3"', '"4"', '"5"']
    assert [v["stock"] for v in views] == [10, 7, 1, 5]
    assert views[-1]["name"] == "Series 2" and views[-1]["price_text"] == "2.50"
    assert all(v["created_at"] == v1["created_at"] for v in views)
    stamps = [v1["updated_at"]] + [v["updated_at"] for v in views]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps
    evs = events_of(stack.db, pid)
    assert [(t, v) for t, v, _ in evs] == [
        ("ProductCreated", 1), ("ProductUpdated", 2), ("StockAdjusted", 3),
        ("ProductUpdated", 4), ("StockAdjusted", 5)]
    assert [p for _, _, p in evs[1:]] == [r.text for r in responses]
    assert assert_served(stack, pid) == responses[-1].text


# ---------------------------------------------------------------------------------------------
# DELETE /products/{id}


def test_delete_removes_everything_and_frees_the_sku(stack):
    _, v = stack.create(stock=4)
    pid, sku = v["id"], v["sku"]
    assert sku_owner(stack.r, sku) == pid
    before_events = event_count(stack.db)
    tick()
    resp = delete(stack, pid)
    assert resp.status_code == 204, (resp.status_code, resp.text)
    assert resp.content == b""
    assert resp.headers.get("ETag") == '"2"'
    assert resp.headers.get("Projection") == "applied"
    assert resp.headers.get("X-Request-Id")
    # write model
    assert product_row(stack.db, pid) is None
    assert sql(stack.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(0,)]
    assert event_count(stack.db) == before_events + 1
    evs = events_of(stack.db, pid)
    assert [(t, ver) for t, ver, _ in evs] == [("ProductCreated", 1), ("ProductDeleted", 2)]
    last = json.loads(evs[1][2])
    assert list(last) == VIEW_KEYS
    assert last["version"] == 2
    for k in ("id", "sku", "name", "price", "stock", "available", "desc", "created_at"):
        assert last[k] == v[k], k
    assert TS_RE.match(last["updated_at"]) and last["updated_at"] >= v["updated_at"]
    # read model: the view (in either view set) and the sku entry gone
    rv = redis_view(stack.r, pid)
    assert rv["raw"] is None
    assert rv["all_score"] is None and rv["in_stock_score"] is None
    assert sku_owner(stack.r, sku) is None
    assert_served(stack, pid, sku)
    assert_problem(stack.get(f"/products/by-sku/{sku}"), 404)
    # the sku is free again: a new product with a new id
    _, again = stack.create(sku=sku, name="Reborn", stock=0)
    assert again["id"] != pid and again["version"] == 1
    got = stack.get(f"/products/by-sku/{sku}")
    assert got.status_code == 200 and got.json()["id"] == again["id"]
    assert_problem(stack.get(f"/products/{pid}"), 404)
    assert_served(stack, again["id"])


def test_delete_twice_is_404_and_changes_nothing(stack):
    _, v = stack.create()
    assert delete(stack, v["id"]).status_code == 204
    n = event_count(stack.db)
    problem_type_is(assert_problem(delete(stack, v["id"]), 404), "not-found")
    assert event_count(stack.db) == n


def test_commands_on_a_deleted_product_are_404(stack):
    _, v = stack.create()
    assert delete(stack, v["id"]).status_code == 204
    n = event_count(stack.db)
    assert_problem(patch(stack, v["id"], {"name": "x"}), 404)
    assert_problem(adjust(stack, v["id"], 1), 404)
    assert_problem(patch(stack, v["id"], {"name": "x"}, headers={"If-Match": '"2"'}), 404)
    assert event_count(stack.db) == n


@pytest.mark.parametrize("pid", [UNKNOWN_ID, "not-a-uuid"])
def test_delete_unknown_id_is_404(stack, pid):
    before = stack.counts()
    problem_type_is(assert_problem(delete(stack, pid), 404), "not-found")
    assert stack.counts() == before


def test_delete_leaves_the_catalog_and_its_count(fresh):
    views = [fresh.create(stock=s)[1] for s in (3, 0, 7)]
    assert catalog_ids(fresh) == [v["id"] for v in views]
    assert catalog_ids(fresh, in_stock=True) == [views[0]["id"], views[2]["id"]]
    assert delete(fresh, views[2]["id"]).status_code == 204
    assert delete(fresh, views[1]["id"]).status_code == 204
    assert catalog_ids(fresh) == [views[0]["id"]]
    assert catalog_ids(fresh, in_stock=True) == [views[0]["id"]]
    base = f"{PREFIX}:g{redis_gen(fresh.r)}"
    assert all_views(fresh.r, base) == {"in": [views[0]["raw"].encode()], "out": []}
    assert fresh.r.hgetall(f"{base}:skus") == {views[0]["sku"].encode(): views[0]["id"].encode()}


# ---------------------------------------------------------------------------------------------
# POST /products/{id}/stock


def test_stock_increment_returns_the_new_view(stack):
    _, v = stack.create(stock=5)
    resp = adjust(stack, v["id"], 3)
    view = assert_view_response(resp)
    assert (view["stock"], view["available"], view["version"]) == (8, True, 2)
    assert view["name"] == v["name"] and view["price_text"] == v["price_text"]
    assert view["created_at"] == v["created_at"]
    assert product_row(stack.db, v["id"])[4:6] == (8, 2)
    evs = events_of(stack.db, v["id"])
    assert [(t, ver) for t, ver, _ in evs] == [("ProductCreated", 1), ("StockAdjusted", 2)]
    assert evs[1][2] == resp.text
    assert assert_served(stack, v["id"]) == resp.text


def test_stock_to_zero_leaves_the_in_stock_index_and_restock_returns(fresh):
    _, a = fresh.create(stock=2)
    _, b = fresh.create(stock=5)
    assert catalog_ids(fresh, in_stock=True) == [a["id"], b["id"]]
    view = assert_view_response(adjust(fresh, b["id"], -5))
    assert (view["stock"], view["available"]) == (0, False)
    assert catalog_ids(fresh, in_stock=True) == [a["id"]]
    assert catalog_ids(fresh) == [a["id"], b["id"]]
    assert redis_view(fresh.r, b["id"])["in_stock_score"] is None
    assert_served(fresh, b["id"])
    view = assert_view_response(adjust(fresh, b["id"], 1))
    assert (view["stock"], view["available"], view["version"]) == (1, True, 3)
    assert catalog_ids(fresh, in_stock=True) == [a["id"], b["id"]]
    assert redis_view(fresh.r, b["id"])["in_stock_score"] == 0
    # the same through PATCH
    assert_view_response(patch(fresh, a["id"], {"stock": 0}))
    assert catalog_ids(fresh, in_stock=True) == [b["id"]]
    assert_view_response(patch(fresh, a["id"], {"stock": 9}))
    assert catalog_ids(fresh, in_stock=True) == [a["id"], b["id"]]
    assert_served(fresh, a["id"])
    assert_served(fresh, b["id"])


def test_stock_exactly_to_zero_is_allowed(stack):
    _, v = stack.create(stock=3)
    view = assert_view_response(adjust(stack, v["id"], -3))
    assert (view["stock"], view["available"]) == (0, False)
    assert_served(stack, v["id"])


@pytest.mark.parametrize("stock,delta", [(2, -3), (0, -1), (5, -2147483647)])
def test_insufficient_stock_is_409_and_changes_nothing(stack, stock, delta):
    _, v = stack.create(stock=stock)
    snap = snapshot(stack, v["id"])
    resp = adjust(stack, v["id"], delta)
    problem = assert_problem(resp, 409)
    problem_type_is(problem, "insufficient-stock")
    assert problem.get("current_stock") == stock, problem
    assert type(problem["current_stock"]) is int
    assert "ETag" not in resp.headers
    assert snapshot(stack, v["id"]) == snap
    assert product_row(stack.db, v["id"])[4:6] == (stock, 1)


@pytest.mark.parametrize("stock,delta", [(2147483647, 1), (10, 2147483647), (2147483000, 648)])
def test_stock_over_the_maximum_is_422_and_changes_nothing(stack, stock, delta):
    _, v = stack.create(stock=stock)
    snap = snapshot(stack, v["id"])
    problem = assert_problem(adjust(stack, v["id"], delta), 422)
    assert {e["field"] for e in problem.get("errors", [])} == {"delta"}, problem
    assert snapshot(stack, v["id"]) == snap


def test_stock_delta_extremes_are_accepted(stack):
    _, v = stack.create(stock=0)
    assert assert_view_response(adjust(stack, v["id"], 2147483647))["stock"] == 2147483647
    assert assert_view_response(adjust(stack, v["id"], -2147483647))["stock"] == 0
    assert product_row(stack.db, v["id"])[4:6] == (0, 3)


DELTA_INVALID = {
    "zero": ('{"delta":0}', {"delta"}),
    "minus-zero": ('{"delta":-0}', {"delta"}),
    "float": ('{"delta":1.0}', {"delta"}),
    "fraction": ('{"delta":1.5}', {"delta"}),
    "string": ('{"delta":"1"}', {"delta"}),
    "null": ('{"delta":null}', {"delta"}),
    "bool": ('{"delta":true}', {"delta"}),
    "too-big": ('{"delta":2147483648}', {"delta"}),
    "too-small": ('{"delta":-2147483648}', {"delta"}),
    "huge": ('{"delta":-99999999999999999999}', {"delta"}),
    "missing": ("{}", {"delta"}),
    "unknown-field": ('{"delta":1,"reason":"x"}', {"reason"}),
    "wrong-name": ('{"stock":1}', {"stock", "delta"}),
}


@pytest.mark.parametrize("body,fields", list(DELTA_INVALID.values()), ids=list(DELTA_INVALID))
def test_stock_delta_validation_is_422(stack, body, fields):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    problem = assert_problem(adjust(stack, v["id"], body), 422)
    problem_type_is(problem, "validation-failed")
    errors = problem.get("errors")
    assert isinstance(errors, list), problem
    assert {e["field"] for e in errors} == fields, errors
    assert len(errors) == len(fields), errors
    assert snapshot(stack, v["id"]) == snap


@pytest.mark.parametrize("body", ['{"delta":', "", "[1]", "-1", '{"delta":1,"delta":2}',
                                  '{"delta":NaN}'],
                         ids=["invalid", "empty", "array", "number", "duplicate", "nan"])
def test_stock_malformed_body_is_400(stack, body):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    assert_problem(adjust(stack, v["id"], body), 400)
    assert snapshot(stack, v["id"]) == snap


@pytest.mark.parametrize("ctype", [None, "text/plain"])
def test_stock_wrong_content_type_is_415(stack, ctype):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    assert_problem(adjust(stack, v["id"], '{"delta":1}', content_type=ctype), 415)
    assert snapshot(stack, v["id"]) == snap


def test_stock_body_over_64k_is_413(stack):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    body = ('{"delta":1}' + " " * 70000).encode()
    resp = requests.post(stack.url(f"/products/{v['id']}/stock"), data=body,
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert_problem(resp, 413)
    assert snapshot(stack, v["id"]) == snap


@pytest.mark.parametrize("pid", [UNKNOWN_ID, "not-a-uuid"])
def test_stock_unknown_id_is_404(stack, pid):
    before = stack.counts()
    problem_type_is(assert_problem(adjust(stack, pid, 1), 404), "not-found")
    assert stack.counts() == before


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/products/{id}", {"GET", "HEAD", "PATCH", "DELETE"}),
    ("POST", "/products/{id}", {"GET", "HEAD", "PATCH", "DELETE"}),
    ("GET", "/products/{id}/stock", {"POST"}),
    ("PATCH", "/products/{id}/stock", {"POST"}),
    ("DELETE", "/products/{id}/stock", {"POST"}),
])
def test_wrong_method_on_command_routes_is_405(stack, method, path, allowed):
    _, v = stack.create()
    resp = send(stack, method, path.format(id=v["id"]), '{"delta":1}')
    problem_type_is(assert_problem(resp, 405), "method-not-allowed")
    assert {m.strip() for m in resp.headers.get("Allow", "").split(",")} == allowed, resp.headers
    assert product_row(stack.db, v["id"])[5] == 1


# ---------------------------------------------------------------------------------------------
# If-Match


COMMANDS = {
    "patch": lambda s, pid, h: patch(s, pid, {"name": "Matched"}, headers=h),
    "stock": lambda s, pid, h: adjust(s, pid, 1, headers=h),
    "delete": lambda s, pid, h: delete(s, pid, headers=h),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_if_match_current_version_succeeds(stack, command):
    _, v = stack.create(stock=5)
    assert_view_response(patch(stack, v["id"], {"stock": 6}))  # now at version 2
    resp = COMMANDS[command](stack, v["id"], {"If-Match": '"2"'})
    assert resp.status_code == (204 if command == "delete" else 200), resp.text
    assert resp.headers.get("ETag") == '"3"'
    assert_served(stack, v["id"], v["sku"])


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("sent", ['"1"', '"3"', '"12345"', '"4294967297"'])
def test_if_match_other_version_is_412_and_changes_nothing(stack, command, sent):
    _, v = stack.create(stock=5)
    assert_view_response(patch(stack, v["id"], {"stock": 6}))  # now at version 2
    snap = snapshot(stack, v["id"])
    resp = COMMANDS[command](stack, v["id"], {"If-Match": sent})
    problem = assert_problem(resp, 412)
    problem_type_is(problem, "version-mismatch")
    assert problem.get("current_version") == 2, problem
    assert type(problem["current_version"]) is int
    assert "ETag" not in resp.headers
    assert snapshot(stack, v["id"]) == snap


@pytest.mark.parametrize("command", list(COMMANDS))
def test_if_match_star_matches_any_version(stack, command):
    _, v = stack.create(stock=5)
    assert_view_response(adjust(stack, v["id"], 1))
    assert_view_response(adjust(stack, v["id"], 1))  # version 3
    resp = COMMANDS[command](stack, v["id"], {"If-Match": "*"})
    assert resp.status_code == (204 if command == "delete" else 200), resp.text
    assert resp.headers.get("ETag") == '"4"'


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("value", ["1", '"abc"', 'W/"1"', '"1', '1"', '""', '"1.0"', '"-1"',
                                   "'1'", '"01"', '"0001"'])
def test_malformed_if_match_is_400_and_changes_nothing(stack, command, value):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    resp = COMMANDS[command](stack, v["id"], {"If-Match": value})
    assert_problem(resp, 400)
    assert snapshot(stack, v["id"]) == snap


def test_if_match_with_the_etag_of_the_previous_response_chains(stack):
    resp, v = stack.create(stock=5)
    etag = resp.headers["ETag"]
    for body in ({"name": "A"}, {"price": 1}, {"stock": 2}):
        resp = patch(stack, v["id"], body, headers={"If-Match": etag})
        assert resp.status_code == 200, resp.text
        etag = resp.headers["ETag"]
    assert etag == '"4"'
    assert_problem(patch(stack, v["id"], {"name": "B"}, headers={"If-Match": '"3"'}), 412)
    assert delete(stack, v["id"], headers={"If-Match": etag}).status_code == 204


# ---------------------------------------------------------------------------------------------
# Idempotency-Key


def ikey():
    return "idem-" + uniq_sku("k")


def assert_replay_of(first, again):
    assert again.status_code == first.status_code, (again.status_code, again.text)
    assert again.headers.get("Idempotent-Replayed") == "true", again.headers
    assert again.content == first.content
    assert again.headers.get("Content-Type") == first.headers.get("Content-Type")
    assert again.headers.get("ETag") == first.headers.get("ETag")
    assert again.headers.get("Location") == first.headers.get("Location")
    assert again.headers.get("X-Request-Id")


def test_create_replay_returns_the_same_response_and_creates_nothing(stack):
    key, sku = ikey(), uniq_sku()
    body = '{"sku":"%s","name":"Idem","price":3.50,"stock":2}' % sku
    first = stack.post_raw("/products", body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    view = first.json()
    assert first.headers.get("Location") == f"/products/{view['id']}"
    assert key_rows(stack.db, key) == [(201, first.content)]
    counts = stack.counts()
    for _ in range(3):
        again = stack.post_raw("/products", body, headers={"Idempotency-Key": key})
        assert_replay_of(first, again)
        assert again.json()["id"] == view["id"]
    assert stack.counts() == counts
    assert sql(stack.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(1,)]
    assert len(events_of(stack.db, view["id"])) == 1
    assert sql(stack.db, "SELECT COUNT(*) FROM idempotency_keys WHERE key_sha256=?",
               (key_hash(key),)) == [(1,)]
    assert_served(stack, view["id"])


def test_replay_still_answers_after_the_product_changed(stack):
    """The replay is the stored response, not a new read of the product."""
    _, v = stack.create(stock=5)
    key = ikey()
    first = patch(stack, v["id"], {"name": "First"}, headers={"Idempotency-Key": key})
    assert assert_view_response(first)["version"] == 2
    assert_view_response(patch(stack, v["id"], {"name": "Second"}))  # version 3
    n = event_count(stack.db)
    again = patch(stack, v["id"], {"name": "First"}, headers={"Idempotency-Key": key})
    assert_replay_of(first, again)
    assert again.json()["version"] == 2 and again.json()["name"] == "First"
    assert event_count(stack.db) == n
    assert product_row(stack.db, v["id"])[2] == "Second"
    assert product_row(stack.db, v["id"])[5] == 3
    assert_served(stack, v["id"])


def test_stock_replay_does_not_adjust_twice(stack):
    _, v = stack.create(stock=5)
    key = ikey()
    first = adjust(stack, v["id"], -2, headers={"Idempotency-Key": key})
    assert assert_view_response(first)["stock"] == 3
    n = event_count(stack.db)
    for _ in range(3):
        assert_replay_of(first, adjust(stack, v["id"], -2, headers={"Idempotency-Key": key}))
    assert product_row(stack.db, v["id"])[4:6] == (3, 2)
    assert event_count(stack.db) == n
    assert_served(stack, v["id"])


def test_delete_replay_is_204_not_404(stack):
    _, v = stack.create()
    key = ikey()
    first = delete(stack, v["id"], headers={"Idempotency-Key": key})
    assert first.status_code == 204 and first.content == b""
    n = event_count(stack.db)
    again = delete(stack, v["id"], headers={"Idempotency-Key": key})
    assert_replay_of(first, again)
    assert again.status_code == 204 and again.content == b""
    assert event_count(stack.db) == n
    # without the key, the same request is an ordinary 404
    assert_problem(delete(stack, v["id"]), 404)


def test_refused_command_is_remembered_too(stack):
    """The first response is stored whatever it was: a 409 replays as that 409."""
    _, v = stack.create(stock=1)
    key = ikey()
    first = adjust(stack, v["id"], -2, headers={"Idempotency-Key": key})
    assert_problem(first, 409)
    assert_view_response(adjust(stack, v["id"], 5))  # now there would be enough
    again = adjust(stack, v["id"], -2, headers={"Idempotency-Key": key})
    assert_replay_of(first, again)
    assert_problem(again, 409)
    assert product_row(stack.db, v["id"])[4:6] == (6, 2)


def test_replay_of_a_412_is_the_412(stack):
    _, v = stack.create()
    key = ikey()
    h = {"Idempotency-Key": key, "If-Match": '"7"'}
    first = patch(stack, v["id"], {"name": "x"}, headers=h)
    assert_problem(first, 412)
    again = patch(stack, v["id"], {"name": "x"}, headers=h)
    assert_replay_of(first, again)
    assert product_row(stack.db, v["id"])[5] == 1


def test_same_key_with_a_different_body_is_422(stack):
    key, sku = ikey(), uniq_sku()
    first = stack.post_raw("/products", '{"sku":"%s","name":"A","price":1,"stock":1}' % sku,
                           headers={"Idempotency-Key": key})
    assert first.status_code == 201
    counts = stack.counts()
    other = uniq_sku()
    resp = stack.post_raw("/products", '{"sku":"%s","name":"A","price":1,"stock":1}' % other,
                          headers={"Idempotency-Key": key})
    problem = assert_problem(resp, 422)
    problem_type_is(problem, "idempotency-key-reused")
    assert "Idempotent-Replayed" not in resp.headers
    assert stack.counts() == counts
    assert sql(stack.db, "SELECT COUNT(*) FROM products WHERE sku=?", (other,)) == [(0,)]
    assert key_rows(stack.db, key) == [(201, first.content)]
    # a byte-different but equivalent body is a different request too
    resp = stack.post_raw("/products", '{"sku":"%s", "name":"A","price":1,"stock":1}' % sku,
                          headers={"Idempotency-Key": key})
    problem_type_is(assert_problem(resp, 422), "idempotency-key-reused")
    # and the original still replays
    assert_replay_of(first, stack.post_raw(
        "/products", '{"sku":"%s","name":"A","price":1,"stock":1}' % sku,
        headers={"Idempotency-Key": key}))


def test_same_key_on_another_path_or_method_is_422(stack):
    _, a = stack.create(stock=5)
    _, b = stack.create(stock=5)
    key = ikey()
    first = adjust(stack, a["id"], 1, headers={"Idempotency-Key": key})
    assert first.status_code == 200
    n = event_count(stack.db)
    # same body, other product
    problem_type_is(assert_problem(adjust(stack, b["id"], 1, headers={"Idempotency-Key": key}),
                                   422), "idempotency-key-reused")
    # same path, other method
    problem_type_is(assert_problem(delete(stack, a["id"], headers={"Idempotency-Key": key}),
                                   422), "idempotency-key-reused")
    problem_type_is(assert_problem(patch(stack, a["id"], '{"stock":1}',
                                         headers={"Idempotency-Key": key}), 422),
                    "idempotency-key-reused")
    assert event_count(stack.db) == n
    assert product_row(stack.db, a["id"])[4:6] == (6, 2)
    assert product_row(stack.db, b["id"])[4:6] == (5, 1)


@pytest.mark.parametrize("key", ["has space", "k" * 256, "tab\there", "caf\u00e9".encode(),
                                 ""], ids=["space", "256-chars", "tab", "non-ascii", "empty"])
def test_invalid_idempotency_key_is_400(stack, key):
    sku = uniq_sku()
    counts = stack.counts()
    n_keys = sql(stack.db, "SELECT COUNT(*) FROM idempotency_keys")[0][0]
    resp = stack.post_raw("/products", '{"sku":"%s","name":"A","price":1,"stock":1}' % sku,
                          headers={"Idempotency-Key": key})
    problem_type_is(assert_problem(resp, 400), "invalid-header")
    assert stack.counts() == counts
    assert sql(stack.db, "SELECT COUNT(*) FROM idempotency_keys")[0][0] == n_keys


def test_invalid_idempotency_key_on_every_command_is_400(stack):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    h = {"Idempotency-Key": "k" * 256}
    assert_problem(patch(stack, v["id"], {"name": "x"}, headers=h), 400)
    assert_problem(adjust(stack, v["id"], 1, headers=h), 400)
    assert_problem(delete(stack, v["id"], headers=h), 400)
    assert snapshot(stack, v["id"]) == snap


def test_idempotency_key_of_255_visible_characters_is_accepted(stack):
    key = ("!~" + uniq_sku("k")).ljust(255, "z")
    assert len(key) == 255
    sku = uniq_sku()
    body = '{"sku":"%s","name":"A","price":1,"stock":1}' % sku
    first = stack.post_raw("/products", body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert_replay_of(first, stack.post_raw("/products", body, headers={"Idempotency-Key": key}))
    assert len(key_rows(stack.db, key)) == 1


def test_keys_are_distinct_per_value(stack):
    """Two different keys with the same body are two requests (the second is a 409 dup)."""
    sku = uniq_sku()
    body = '{"sku":"%s","name":"A","price":1,"stock":1}' % sku
    first = stack.post_raw("/products", body, headers={"Idempotency-Key": ikey()})
    assert first.status_code == 201
    second = stack.post_raw("/products", body, headers={"Idempotency-Key": ikey()})
    problem = assert_problem(second, 409)
    problem_type_is(problem, "duplicate-sku")
    assert problem.get("existing_id") == first.json()["id"]
    assert "Idempotent-Replayed" not in second.headers


# ---------------------------------------------------------------------------------------------
# a header that decides what a command does, sent twice: 400, and nothing is done


def send_repeated(s, method, path, body, headers):
    """Sends one request whose "headers" (a list of pairs) may repeat a name, which requests
    cannot do. Returns (status, headers as a message, body bytes)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", s.server.port, timeout=10)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        data = body.encode() if body is not None else b""
        for name, value in headers:
            c.putheader(name, value)
        c.putheader("Content-Length", str(len(data)))
        c.endheaders(data)
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def assert_repeated_header_refused(reply, header):
    status, headers, body = reply
    assert status == 400, (status, body)
    assert headers.get_content_type() == "application/problem+json", headers
    assert headers.get("X-Request-Id"), headers
    problem = json.loads(body)
    problem_type_is(problem, "invalid-header")
    assert header in problem["detail"] and "once" in problem["detail"], problem


def test_two_idempotency_keys_are_400_and_neither_key_is_kept(stack):
    """Two Idempotency-Key headers had two readings: the first key was stored, so a proxy that
    kept the last one turned a retry into a second execution. Refused now, neither key is
    kept, and each key alone then runs the command exactly once."""
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    k1, k2 = ikey(), ikey()
    path, body = f"/products/{v['id']}/stock", '{"delta":1}'
    json_type = [("Content-Type", "application/json")]
    assert_repeated_header_refused(send_repeated(
        stack, "POST", path, body, json_type + [("Idempotency-Key", k1), ("Idempotency-Key", k2)]),
        "Idempotency-Key")
    assert snapshot(stack, v["id"]) == snap
    assert key_rows(stack.db, k1) == [] and key_rows(stack.db, k2) == []
    status, headers, _ = send_repeated(stack, "POST", path, body, json_type + [("Idempotency-Key", k1)])
    assert (status, headers.get("Idempotent-Replayed")) == (200, None), "k1 was kept"
    status, headers, _ = send_repeated(stack, "POST", path, body, json_type + [("Idempotency-Key", k2)])
    assert (status, headers.get("Idempotent-Replayed")) == (200, None), "k2 was kept"
    status, headers, _ = send_repeated(stack, "POST", path, body, json_type + [("Idempotency-Key", k1)])
    assert (status, headers.get("Idempotent-Replayed")) == (200, "true")
    assert product_row(stack.db, v["id"])[4] == 7, "two keys, two executions in all"


@pytest.mark.parametrize("route", ["patch", "stock", "delete"])
def test_two_if_match_headers_are_400(stack, route):
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    method, path, body = {"patch": ("PATCH", f"/products/{v['id']}", '{"name":"Two tags"}'),
                          "stock": ("POST", f"/products/{v['id']}/stock", '{"delta":1}'),
                          "delete": ("DELETE", f"/products/{v['id']}", None)}[route]
    headers = [("If-Match", '"1"'), ("If-Match", '"2"')]
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    assert_repeated_header_refused(send_repeated(stack, method, path, body, headers), "If-Match")
    assert snapshot(stack, v["id"]) == snap


@pytest.mark.parametrize("types", [("application/json", "text/plain"),
                                   ("text/plain", "application/json")],
                         ids=["json-first", "text-first"])
def test_two_content_types_are_400(stack, types):
    sku = uniq_sku()
    counts = stack.counts()
    create = '{"sku":"%s","name":"A","price":1,"stock":1}' % sku
    assert_repeated_header_refused(send_repeated(
        stack, "POST", "/products", create, [("Content-Type", t) for t in types]), "Content-Type")
    assert stack.counts() == counts
    _, v = stack.create(stock=5)
    snap = snapshot(stack, v["id"])
    assert_repeated_header_refused(send_repeated(
        stack, "POST", f"/products/{v['id']}/stock", '{"delta":1}',
        [("Content-Type", t) for t in types]), "Content-Type")
    assert snapshot(stack, v["id"]) == snap

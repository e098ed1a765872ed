"""Read side: GET /products/{id}, 304, by-sku, /catalog paging and filters, errors, request ids,
health and readiness."""

import http.client
import re

import pytest
import requests

from conftest import Stack, assert_problem, raw_connect, read_until_closed, uniq_sku

UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"
LINK_RE = re.compile(r'^<(/catalog\?limit=(\d+)&cursor=([^&>]+)(&in_stock=true)?)>; rel="next"$')


def allow_set(resp):
    return {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


# ---------------------------------------------------------------------------------------------
# GET /products/{id}


def test_get_by_id_serves_the_view_bytes(stack):
    resp, view = stack.create(price="5000.00")
    got = stack.get(f"/products/{view['id']}")
    assert got.status_code == 200
    assert got.headers.get("Content-Type") == "application/json"
    assert got.headers.get("ETag") == '"1"'
    assert got.headers.get("X-Request-Id")
    assert got.content == resp.content
    assert '"price":5000.00,' in got.text


def test_if_none_match_gives_304(stack):
    _, view = stack.create()
    resp = stack.get(f"/products/{view['id']}", headers={"If-None-Match": '"1"'})
    assert resp.status_code == 304
    assert resp.content == b""
    assert resp.headers.get("ETag") == '"1"'
    assert resp.headers.get("X-Request-Id")
    resp = stack.get(f"/products/{view['id']}", headers={"If-None-Match": '"2"'})
    assert resp.status_code == 200
    assert resp.text == view["raw"]


@pytest.mark.parametrize("value", ['"0", "1"', 'W/"1"', "*"])
def test_if_none_match_list_weak_and_star(stack, value):
    """RFC 9110: If-None-Match takes a list, compares weakly, and "*" matches any."""
    _, view = stack.create()
    resp = stack.get(f"/products/{view['id']}", headers={"If-None-Match": value})
    assert resp.status_code == 304, (value, resp.status_code, resp.text)
    assert resp.content == b""


@pytest.mark.parametrize("pid", [
    UNKNOWN_ID,
    "not-a-uuid",
    "01900000-0000-7000-8000-00000000000",   # one digit short
    "01900000000070008000000000000000",       # no dashes
    "zz900000-0000-7000-8000-000000000000",
])
def test_unknown_or_malformed_id_is_404(stack, pid):
    assert_problem(stack.get(f"/products/{pid}"), 404)


def test_uppercase_id_is_not_canonical(stack):
    _, view = stack.create()
    assert_problem(stack.get(f"/products/{view['id'].upper()}"), 404)


# ---------------------------------------------------------------------------------------------
# GET /products/by-sku/{sku}


def test_get_by_sku(stack):
    resp, view = stack.create()
    got = stack.get(f"/products/by-sku/{view['sku']}")
    assert got.status_code == 200
    assert got.headers.get("Content-Type") == "application/json"
    assert got.content == resp.content


@pytest.mark.parametrize("sku", ["NO-SUCH-SKU-zz", "bad%20sku", "a" * 65])
def test_unknown_sku_is_404(stack, sku):
    assert_problem(stack.get(f"/products/by-sku/{sku}"), 404)


# ---------------------------------------------------------------------------------------------
# /catalog


def test_empty_catalog(fresh):
    resp = fresh.get("/catalog")
    assert resp.status_code == 200
    assert resp.headers.get("Content-Type") == "application/json"
    assert resp.text == "[]"
    assert resp.headers.get("X-Total-Count") == "0"
    assert "Link" not in resp.headers
    resp = fresh.get("/catalog?in_stock=true")
    assert resp.status_code == 200
    assert resp.text == "[]"
    assert resp.headers.get("X-Total-Count") == "0"


def test_catalog_contains_a_new_product(stack):
    resp, view = stack.create()
    url = "/catalog?limit=1000"
    found = []
    for _ in range(50):
        page = stack.get(url)
        assert page.status_code == 200
        found += [v for v in page.json() if v["id"] == view["id"]]
        link = page.headers.get("Link")
        if not link:
            break
        url = LINK_RE.match(link).group(1)
    assert found == [resp.json()]


@pytest.fixture(scope="module")
def paged():
    """A private catalog of 250 products created sequentially; every third has stock 0."""
    s = Stack("paged")
    try:
        s.start()
        views = []
        for i in range(250):
            _, v = s.create(sku=f"PG-{i:03d}-{uniq_sku('x')}", name=f"Paged {i}",
                            price=f"{i}.{i % 100:02d}", stock=0 if i % 3 == 0 else i)
            views.append(v)
    except BaseException:
        s.stop()
        raise
    yield s, views
    s.stop()


def walk(s, first_url, limit, in_stock=False, raw_by_id=None):
    """Follows Link over every page; returns (pages' lengths, concatenated raw views)."""
    url, lengths, items, seen_urls = first_url, [], [], set()
    total = None
    for _ in range(300):
        assert url not in seen_urls, f"Link loops back to {url}"
        seen_urls.add(url)
        resp = s.get(url)
        assert resp.status_code == 200, (url, resp.text)
        assert resp.headers.get("Content-Type") == "application/json"
        page = resp.json()
        assert isinstance(page, list)
        lengths.append(len(page))
        items += page
        if raw_by_id is not None:  # the page is the views' exact bytes, comma separated
            assert resp.text == "[" + ",".join(raw_by_id[v["id"]] for v in page) + "]"
        count = resp.headers.get("X-Total-Count")
        assert count is not None and re.fullmatch(r"\d+", count), resp.headers
        if total is None:
            total = int(count)
        assert int(count) == total
        link = resp.headers.get("Link")
        if link is None:
            return lengths, items, total, resp
        m = LINK_RE.match(link)
        assert m, link
        assert int(m.group(2)) == limit, link
        assert bool(m.group(4)) == in_stock, link
        url = m.group(1)
    raise AssertionError("too many pages")


@pytest.mark.parametrize("limit,expected_pages", [(100, [100, 100, 50]), (7, [7] * 35 + [5]),
                                                  (250, [250]), (1000, [250])])
def test_catalog_paging_follows_link(paged, limit, expected_pages):
    s, views = paged
    lengths, items, total, _ = walk(s, f"/catalog?limit={limit}", limit,
                                    raw_by_id={v["id"]: v["raw"] for v in views})
    assert lengths == expected_pages
    assert total == 250
    assert [v["id"] for v in items] == [v["id"] for v in views]
    assert len({v["id"] for v in items}) == 250


def test_catalog_page_is_the_exact_view_bytes(paged):
    s, views = paged
    resp = s.get("/catalog?limit=5")
    assert resp.status_code == 200
    assert resp.text == "[" + ",".join(v["raw"] for v in views[:5]) + "]"


def test_pages_asked_for_all_at_once_each_get_their_own_views(paged):
    """Pages asked for from many connections at once come back from Redis as one stream of
    replies, which catalogd takes in pieces that end wherever a read or a piece ends (inside
    a view, inside a reply's header); every page must still be its own views, whole and in
    order."""
    s, views = paged
    limits = [250, 7, 100, 1, 250, 33] * 8  # 48 connections, 5,128 views per round
    for _ in range(5):
        socks = [raw_connect(s.server.port, timeout=10) for _ in limits]
        try:
            for sock, limit in zip(socks, limits):
                sock.sendall(f"GET /catalog?limit={limit} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Connection: close\r\n\r\n".encode())
            answers = [read_until_closed(sock, deadline_s=10) for sock in socks]
        finally:
            for sock in socks:
                sock.close()
        for answer, limit in zip(answers, limits):
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), answer[:300]
            expected = "[" + ",".join(v["raw"] for v in views[:limit]) + "]"
            assert body.decode() == expected, (limit, len(body), body[:200])


def test_catalog_default_limit_is_100(paged):
    s, views = paged
    resp = s.get("/catalog")
    assert resp.status_code == 200
    assert [v["id"] for v in resp.json()] == [v["id"] for v in views[:100]]
    assert resp.headers.get("X-Total-Count") == "250"
    m = LINK_RE.match(resp.headers.get("Link", ""))
    assert m and m.group(2) == "100" and not m.group(4), resp.headers.get("Link")


def test_catalog_exact_fit_has_no_link(paged):
    s, views = paged
    resp = s.get("/catalog?limit=100")
    url = LINK_RE.match(resp.headers["Link"]).group(1)
    resp = s.get(url.replace("limit=100", "limit=150"))
    assert resp.status_code == 200
    assert [v["id"] for v in resp.json()] == [v["id"] for v in views[100:]]
    assert "Link" not in resp.headers


@pytest.mark.parametrize("limit", [40, 1000])
def test_catalog_in_stock_filter(paged, limit):
    s, views = paged
    wanted = [v["id"] for v in views if v["stock"] > 0]
    assert len(wanted) == 166
    lengths, items, total, _ = walk(s, f"/catalog?limit={limit}&in_stock=true", limit,
                                    in_stock=True)
    assert total == len(wanted)
    assert [v["id"] for v in items] == wanted
    assert all(v["available"] is True and v["stock"] > 0 for v in items)
    assert sum(lengths) == 166 and all(n == limit for n in lengths[:-1])


def test_catalog_in_stock_false_means_all(paged):
    s, views = paged
    lengths, items, total, _ = walk(s, "/catalog?limit=100&in_stock=false", 100)
    assert total == 250
    assert [v["id"] for v in items] == [v["id"] for v in views]


def test_catalog_limit_one(paged):
    s, views = paged
    resp = s.get("/catalog?limit=1")
    assert resp.status_code == 200
    assert resp.text == "[" + views[0]["raw"] + "]"
    assert resp.headers.get("X-Total-Count") == "250"
    assert LINK_RE.match(resp.headers.get("Link", ""))


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "limit=-1", "limit=",
                                   "limit=1.5", "limit=99999999999999999999"])
def test_catalog_bad_limit_is_400(stack, query):
    assert_problem(stack.get(f"/catalog?{query}"), 400)


@pytest.mark.parametrize("cursor", ["garbage", "AAAA", "!" * 22, "not-a-cursor-at-all-xyz",
                                    "A" * 23, "%00"])
def test_catalog_bad_cursor_is_400(stack, cursor):
    assert_problem(stack.get(f"/catalog?cursor={cursor}"), 400)


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", "", "null"])
def test_catalog_bad_in_stock_is_400(stack, value):
    assert_problem(stack.get(f"/catalog?in_stock={value}"), 400)


@pytest.mark.parametrize("query,name", [("limit=5&limit=6", "limit"),
                                        ("limit=5&in_stock=true&limit=5", "limit"),
                                        ("in_stock=true&in_stock=false", "in_stock"),
                                        ("cursor=a&limit=2&cursor=b", "cursor"),
                                        ("in_stock&in_stock", "in_stock")])
def test_catalog_parameter_given_twice_is_400(stack, query, name):
    """Which one counts would be a guess: a cache or proxy in front that reads the last one
    would serve a page other than the one this server chose. It used the first."""
    problem = assert_problem(stack.get(f"/catalog?{query}"), 400)
    assert problem["type"].endswith("invalid-query"), problem
    assert problem["detail"] == f"{name} is given more than once", problem


def get_as_written(s, target):
    """GET "target" sent byte for byte (requests and urllib3 would decode "%6C" and encode "%zz"
    first), answered as a requests.Response."""
    conn = http.client.HTTPConnection("127.0.0.1", s.server.port, timeout=10)
    try:
        conn.request("GET", target)
        answer = conn.getresponse()
        resp = requests.Response()
        resp.status_code = answer.status
        resp.headers = requests.structures.CaseInsensitiveDict(answer.getheaders())
        resp._content = answer.read()
        resp.encoding = "utf-8"
        return resp
    finally:
        conn.close()


def percent_encoded(text):
    return "".join(f"%{ord(c):02X}" for c in text)


@pytest.mark.parametrize("query", ["%6Cimit=5", "limit=%35", "%6c%69%6d%69%74=%35",
                                   "limit=5&in_%73tock=%66alse"])
def test_catalog_parameters_are_read_percent_decoded(paged, query):
    """RFC 3986: "%6Cimit" is "limit", and a cache or proxy in front that normalizes the
    query reads it so. catalogd took it for an unknown parameter and served 100 views."""
    s, views = paged
    resp = get_as_written(s, f"/catalog?{query}")
    assert resp.status_code == 200, resp.text
    assert resp.text == "[" + ",".join(v["raw"] for v in views[:5]) + "]"
    assert LINK_RE.match(resp.headers.get("Link", "")).group(2) == "5"


def test_catalog_in_stock_and_cursor_percent_encoded(paged):
    s, views = paged
    wanted = [v["id"] for v in views if v["stock"] > 0][:3]
    resp = get_as_written(s, "/catalog?limit=3&in_%73tock=%74%72%75%65")
    assert resp.status_code == 200, resp.text
    assert [v["id"] for v in resp.json()] == wanted
    cursor = LINK_RE.match(resp.headers["Link"]).group(3)
    plain = s.get(f"/catalog?limit=7&cursor={cursor}")
    encoded = get_as_written(s, f"/catalog?limit=7&cursor={percent_encoded(cursor)}")
    assert plain.status_code == encoded.status_code == 200, (plain.text, encoded.text)
    assert encoded.text == plain.text
    assert encoded.json()[0]["id"] == [v["id"] for v in views if v["id"] > wanted[-1]][0]


@pytest.mark.parametrize("query,name", [("limit=5&%6Cimit=6", "limit"),
                                        ("%6c%69%6d%69%74=5&limit", "limit"),
                                        ("in_stock=true&in%5Fstock=true", "in_stock"),
                                        ("cursor=a&%63ursor=a", "cursor")])
def test_catalog_parameter_given_twice_in_two_spellings_is_400(stack, query, name):
    """A copy spelled otherwise is still a second copy: a proxy that decodes the names sees two."""
    problem = assert_problem(get_as_written(stack, f"/catalog?{query}"), 400)
    assert problem["detail"] == f"{name} is given more than once", problem


@pytest.mark.parametrize("query,name", [("limit=%zz", "limit"), ("limit=5%", "limit"),
                                        ("limit=%3", "limit"), ("cursor=%00", "cursor"),
                                        ("in_stock=%", "in_stock"),
                                        ("in_stock=tru%65%", "in_stock")])
def test_catalog_value_that_does_not_decode_is_400(stack, query, name):
    problem = assert_problem(get_as_written(stack, f"/catalog?{query}"), 400)
    assert problem["type"].endswith("invalid-query"), problem
    assert problem["detail"] == f"{name} is not validly percent-encoded", problem


@pytest.mark.parametrize("query,name", [("cursor=" + "A" * 65, "cursor"),
                                        ("limit=" + "%30" * 64 + "5", "limit"),
                                        ("in_stock=" + "t" * 1000, "in_stock")])
def test_catalog_value_longer_than_any_it_takes_is_400(stack, query, name):
    problem = assert_problem(get_as_written(stack, f"/catalog?{query}"), 400)
    assert problem["detail"] == f"{name} is longer than any value it takes", problem


# ---------------------------------------------------------------------------------------------
# routing errors


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("GET", "/api/v1/products"),
                                         ("POST", "/nope"), ("GET", "/products/by-sku/"),
                                         ("GET", "/catalogx")])
def test_unknown_route_is_404(stack, method, path):
    before = stack.counts()
    kw = {}
    if method == "POST":
        kw = {"data": b"{}", "headers": {"Content-Type": "application/json"}}
    assert_problem(stack.request(method, path, **kw), 404)
    assert stack.counts() == before


def test_get_products_is_405_allow_post(stack):
    resp = stack.get("/products")
    assert_problem(resp, 405)
    assert allow_set(resp) == {"POST"}, resp.headers.get("Allow")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_wrong_method_on_catalog_is_405(stack, method):
    before = stack.counts()
    resp = stack.request(method, "/catalog", data=b"{}",
                         headers={"Content-Type": "application/json"})
    assert_problem(resp, 405)
    allow = allow_set(resp)
    assert "GET" in allow and method not in allow, resp.headers.get("Allow")
    assert stack.counts() == before


def test_put_on_a_product_is_405(stack):
    _, view = stack.create()
    resp = stack.request("PUT", f"/products/{view['id']}", data=b"{}",
                         headers={"Content-Type": "application/json"})
    assert_problem(resp, 405)
    allow = allow_set(resp)
    assert "GET" in allow and "PUT" not in allow, resp.headers.get("Allow")


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_post_on_health_is_405(stack, path):
    resp = stack.request("POST", path, data=b"{}", headers={"Content-Type": "application/json"})
    assert_problem(resp, 405)
    assert "GET" in allow_set(resp)


# ---------------------------------------------------------------------------------------------
# request ids


def test_client_request_id_is_echoed(stack):
    for method, path in [("GET", "/health"), ("GET", "/catalog?limit=1"), ("GET", "/nope"),
                         ("GET", "/products")]:
        resp = stack.request(method, path, headers={"X-Request-Id": "abc-123"})
        assert resp.headers.get("X-Request-Id") == "abc-123", (path, resp.headers)
    resp = stack.post_raw("/products", "[]", headers={"X-Request-Id": "abc-123"})
    assert resp.status_code == 400
    assert resp.headers.get("X-Request-Id") == "abc-123"
    _, view = stack.create()
    resp = stack.get(f"/products/{view['id']}", headers={"X-Request-Id": "req.42_Z"})
    assert resp.headers.get("X-Request-Id") == "req.42_Z"


def test_request_id_generated_when_absent_or_insane(stack):
    a = stack.get("/health").headers.get("X-Request-Id")
    b = stack.get("/health").headers.get("X-Request-Id")
    assert a and b and a != b
    insane = "x" * 1000
    c = stack.get("/health", headers={"X-Request-Id": insane}).headers.get("X-Request-Id")
    assert c and c != insane
    d = stack.get("/health", headers={"X-Request-Id": "has space"}).headers.get("X-Request-Id")
    assert d and d != "has space"


# ---------------------------------------------------------------------------------------------
# health / ready


def test_health(stack):
    resp = stack.get("/health")
    assert resp.status_code == 200
    assert resp.headers.get("Content-Type") == "application/json"
    assert resp.json() == {"status": "ok"}


def test_ready(stack):
    stack.create()
    resp = stack.get("/ready")
    assert resp.status_code == 200
    assert resp.headers.get("Content-Type") == "application/json"
    body = resp.json()
    assert body.get("status") == "ready", body
    assert isinstance(body.get("lag_events"), int) and not isinstance(body["lag_events"], bool)
    assert body["lag_events"] >= 0
    assert isinstance(body.get("lag_seconds"), (int, float))
    assert not isinstance(body["lag_seconds"], bool) and body["lag_seconds"] >= 0
    assert body["lag_seconds"] < 5

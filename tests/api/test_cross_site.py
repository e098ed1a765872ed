"""Who is calling: a page on another site (a "simple" POST needs no CORS preflight) and a page
that rebinds its DNS name to 127.0.0.1 must not change anything, in the default setup
(loopback, no token). State-changing requests must name this server in Host and, when they
carry an Origin, come from a page of this server; admin routes take JSON or no body, like the
commands. Queries stay open to any Host."""
import json
import socket
import subprocess

import pytest
import requests

from conftest import BIN, assert_problem, free_port, sql, uniq_sku

EVIL = "https://evil.example"


def create_body(sku):
    return json.dumps({"sku": sku, "name": "Cross", "price": 1, "stock": 1})


def count_sku(stack, sku):
    return sql(stack.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,))[0][0]


def rebuild_runs(stack):
    return stack.get("/admin/projection").json()["rebuild"]["runs"]


def problem_type(resp_or_problem):
    problem = resp_or_problem if isinstance(resp_or_problem, dict) else resp_or_problem.json()
    return problem["type"].rsplit(":", 1)[-1]


# ---------------------------------------------------------------------------------------------
# cross-site: what a browser sends from another origin without a preflight


@pytest.mark.parametrize("content_type,body", [
    ("text/plain", "x"),
    ("application/x-www-form-urlencoded", "a=1"),
    ("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--\r\n"),
    (None, ""),
], ids=["text-plain", "form", "multipart", "no-body"])
def test_cross_origin_admin_rebuild_is_refused(fresh, content_type, body):
    runs = rebuild_runs(fresh)
    headers = {"Origin": EVIL}
    if content_type:
        headers["Content-Type"] = content_type
    resp = fresh.request("POST", "/admin/rebuild", data=body, headers=headers)
    problem = assert_problem(resp, 403)
    assert problem_type(resp) == "cross-origin-request", problem
    assert "evil.example" in problem["detail"], problem
    assert rebuild_runs(fresh) == runs


@pytest.mark.parametrize("content_type,body", [
    ("text/plain", "x"),
    ("application/x-www-form-urlencoded", "a=1"),
    ("multipart/form-data; boundary=b", "--b--\r\n"),
    (None, "x"),
], ids=["text-plain", "form", "multipart", "untyped-body"])
def test_admin_rebuild_takes_json_or_no_body(fresh, content_type, body):
    runs = rebuild_runs(fresh)
    headers = {"Content-Type": content_type} if content_type else {}
    resp = fresh.request("POST", "/admin/rebuild", data=body, headers=headers)
    assert problem_type(assert_problem(resp, 415)) == "unsupported-media-type"
    resp = fresh.request("POST", "/admin/rebuild", data="[1]",
                         headers={"Content-Type": "application/json"})
    assert problem_type(assert_problem(resp, 400)) == "malformed-body"
    assert rebuild_runs(fresh) == runs


def test_admin_rebuild_with_no_body_or_a_json_object_still_runs(fresh):
    assert fresh.request("POST", "/admin/rebuild").status_code == 202  # the README's curl
    import time
    deadline = time.monotonic() + 10
    while fresh.get("/admin/projection").json()["rebuild"]["running"]:
        assert time.monotonic() < deadline, "the rebuild did not finish"
        time.sleep(0.1)
    resp = fresh.request("POST", "/admin/rebuild", data="{}",
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/products", "create"),
    ("PATCH", "/products/{id}", '{"name":"x"}'),
    ("DELETE", "/products/{id}", ""),
    ("POST", "/products/{id}/stock", '{"delta":1}'),
    ("OPTIONS", "/products", ""),
])
def test_cross_origin_commands_are_refused(stack, method, path, body):
    _, view = stack.create()
    sku = uniq_sku("XO")
    data = create_body(sku) if body == "create" else body
    resp = stack.request(method, path.format(id=view["id"]), data=data,
                         headers={"Origin": EVIL, "Content-Type": "application/json"})
    assert problem_type(assert_problem(resp, 403)) == "cross-origin-request"
    assert count_sku(stack, sku) == 0
    row = sql(stack.db, "SELECT version FROM products WHERE id=?", (view["id"],))
    assert row == [(1,)], row


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1.evil.example", "file://",
                                    "http://localhost:1", "http://localhost"])
def test_foreign_or_opaque_origins_are_refused(stack, origin):
    sku = uniq_sku("XO")
    resp = stack.post_raw("/products", create_body(sku), headers={"Origin": origin})
    assert problem_type(assert_problem(resp, 403)) == "cross-origin-request"
    assert count_sku(stack, sku) == 0


def test_same_origin_pages_may_write(stack):
    port = stack.server.port
    for origin in [f"http://127.0.0.1:{port}", f"http://localhost:{port}",
                   f"http://[::1]:{port}", f"HTTP://LOCALHOST:{port}"]:
        sku = uniq_sku("SO")
        resp = stack.post_raw("/products", create_body(sku), headers={"Origin": origin})
        assert resp.status_code == 201, (origin, resp.text)


def test_queries_stay_open_to_any_origin_and_host(stack):
    _, view = stack.create()
    for headers in [{"Origin": EVIL}, {"Host": "attacker.example"}]:
        assert stack.get(f"/products/{view['id']}", headers=headers).status_code == 200
        assert stack.get("/catalog?limit=1", headers=headers).status_code == 200
        assert stack.get("/health", headers=headers).status_code == 200


# ---------------------------------------------------------------------------------------------
# DNS rebinding: the Host names the attacker's domain


def test_foreign_host_cannot_write(stack):
    port = stack.server.port
    for host in [f"attacker.example:{port}", "attacker.example", f"127.0.0.1:{port + 1}",
                 f"localhost.attacker.example:{port}", f"127.0.0.1.nip.io:{port}"]:
        sku = uniq_sku("DR")
        resp = stack.post_raw("/products", create_body(sku), headers={"Host": host})
        problem = assert_problem(resp, 421)
        assert problem_type(resp) == "misdirected-request", problem
        assert "--allowed-host" in problem["detail"], problem
        assert count_sku(stack, sku) == 0, host
    runs = rebuild_runs(stack)
    resp = stack.request("POST", "/admin/rebuild", headers={"Host": f"attacker.example:{port}"})
    assert_problem(resp, 421)
    assert rebuild_runs(stack) == runs


def test_a_request_without_host_cannot_write(stack):
    sku = uniq_sku("NH")
    body = create_body(sku).encode()
    with socket.create_connection(("127.0.0.1", stack.server.port), timeout=5) as s:
        s.sendall(b"POST /products HTTP/1.0\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 421"), reply[:300]
    assert count_sku(stack, sku) == 0


def test_loopback_names_with_the_port_may_write(stack):
    port = stack.server.port
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LocalHost:{port}"]:
        sku = uniq_sku("LB")
        resp = stack.post_raw("/products", create_body(sku), headers={"Host": host})
        assert resp.status_code == 201, (host, resp.text)


def test_allowed_hosts_from_flags_and_environment(tmp_path, stack_factory, monkeypatch):
    monkeypatch.setenv("CATALOGD_ALLOWED_HOSTS", "ignored.example")
    s = stack_factory("allowed", extra_args=["--allowed-host", "shop.example, api.example:9443",
                                             "--allowed-host", "[fd00::1]"])
    for host, status in [("shop.example", 201), ("SHOP.example:8443", 201),
                         ("api.example:9443", 201), ("api.example:9444", 421),
                         ("api.example", 421), ("[fd00::1]:80", 201),
                         ("ignored.example", 421), ("other.example", 421)]:
        sku = uniq_sku("AH")
        resp = s.post_raw("/products", create_body(sku), headers={"Host": host})
        assert resp.status_code == status, (host, resp.status_code, resp.text)
    origin = s.post_raw("/products", create_body(uniq_sku("AH")),
                        headers={"Host": "shop.example", "Origin": "https://shop.example"})
    assert origin.status_code == 201, origin.text


def test_allowed_hosts_from_the_environment(stack_factory, monkeypatch):
    monkeypatch.setenv("CATALOGD_ALLOWED_HOSTS", "env.example,second.example:81")
    s = stack_factory("allowed-env")
    for host, status in [("env.example:8080", 201), ("second.example:81", 201),
                         ("second.example", 421)]:
        resp = s.post_raw("/products", create_body(uniq_sku("AE")), headers={"Host": host})
        assert resp.status_code == status, (host, resp.text)


@pytest.mark.parametrize("value", ["bad host", "a:0", "a:99999", "a:b", "[::1", "x/y"])
def test_bad_allowed_host_exits_2(tmp_path, value):
    p = subprocess.run([str(BIN), "serve", "--allowed-host", value, "--db",
                        str(tmp_path / "c.db"), "--redis", f"redis://127.0.0.1:{free_port()}/0"],
                       capture_output=True, text=True, timeout=10, cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--allowed-host" in p.stderr.splitlines()[0], p.stderr


def test_help_lists_allowed_host():
    p = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, timeout=10)
    assert "--allowed-host" in p.stdout and "CATALOGD_ALLOWED_HOSTS" in p.stdout, p.stdout


def test_seed_curl_commands_send_localhost(stack):
    """curl http://localhost:PORT sends Host: localhost:PORT and no Origin: still served."""
    sku = uniq_sku("CURL")
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        f"http://localhost:{stack.server.port}/products", "-H",
                        "Content-Type: application/json", "-d", create_body(sku)],
                       capture_output=True, text=True, timeout=10)
    assert p.stdout == "201", (p.stdout, p.stderr)
    assert requests.get(stack.url("/catalog?limit=1"), timeout=5).status_code == 200

"""Secrets from files and JSON logs (issue 12): a token or a Redis password given as a file
never shows in the process' command line or environment, and --log-format json writes one
JSON object per line, requests with their fields."""
import json

from conftest import RedisProc, Server, Stack, cli, product_body, uniq_sku, wait_until

JSON_CT = {"Content-Type": "application/json"}


def process_text(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read()
    return (cmdline + environ).decode(errors="replace")


def test_api_token_from_a_file(stack_factory, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token-123\n")  # as `echo token > file` writes it
    s = stack_factory("token-file", extra_args=["--api-token-file", str(token_file)])
    body = product_body(uniq_sku())
    assert s.post_raw("/products", body).status_code == 401
    ok = s.post_raw("/products", body, headers={"Authorization": "Bearer file-token-123"})
    assert ok.status_code == 201, ok.text
    assert "file-token-123" not in process_text(s.server.proc.pid)


def test_bad_secret_files_are_one_line_and_exit_2(tmp_path):
    token = tmp_path / "token"
    token.write_text("t\n")
    empty = tmp_path / "empty"
    empty.write_text("")
    for args, says in [
        (["--api-token-file", str(tmp_path / "missing")], "No such file"),
        (["--api-token-file", str(empty)], "empty"),
        (["--api-token-file", str(token), "--api-token", "t"], "not both"),
        (["--redis", "redis://:pw@127.0.0.1:1/0", "--redis-password-file", str(token)],
         "not both"),
        (["--log-format", "xml"], "--log-format"),
    ]:
        p = cli(["serve", "--db", str(tmp_path / "c.db"), *args])
        assert p.returncode == 2, (args, p.stderr)
        first = p.stderr.splitlines()[0]
        assert first.startswith("catalogd: ") and says in first, (args, first)


def test_redis_password_from_a_file(tmp_path):
    password_file = tmp_path / "redis-password"
    password_file.write_text("from-a-file\n")
    s = Stack("redis-password-file")
    s.redis = RedisProc(s.tmp, extra_args=["--requirepass", "from-a-file"],
                        password="from-a-file")
    s.server = Server(s.tmp, s.redis.url, s.db,
                      ["--redis-password-file", str(password_file)])
    try:
        s.start()
        r = s.post_raw("/products", product_body(uniq_sku()))
        assert r.status_code == 201 and r.headers["Projection"] == "applied", r.headers
        assert s.get(f"/products/{r.json()['id']}").status_code == 200
        assert "from-a-file" not in process_text(s.server.proc.pid)
    finally:
        s.stop()


def test_json_logs_are_one_object_per_line(stack_factory):
    s = stack_factory("json-logs", extra_args=["--log-format", "json"])
    r = s.post_raw("/products", product_body(uniq_sku()),
                   headers={"X-Request-Id": "json-log-probe"})
    assert r.status_code == 201
    s.get("/products/%ZZ\x01")  # bytes a log must not carry raw

    def probe_line():
        for line in s.server.stderr_tail(10**6).splitlines():
            if "json-log-probe" in line:
                return line
    line = wait_until(probe_line, 5, what="the request's log line")
    lines = [ln for ln in s.server.stderr_tail(10**6).splitlines() if ln]
    parsed = [json.loads(ln) for ln in lines]  # every line is one JSON object
    for entry in parsed:
        assert {"time", "level", "message"} <= entry.keys(), entry
    request = json.loads(line)
    assert request["message"] == "request"
    assert request["method"] == "POST" and request["path"] == "/products"
    assert request["status"] == 201 and request["request_id"] == "json-log-probe"
    assert isinstance(request["duration_ms"], float)
    assert any("serving http://" in e["message"] for e in parsed)

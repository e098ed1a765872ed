"""Logs and secrets: one line per request that says what the client really sent (h2o's own
413 names the real method and path, not the error document), bytes a terminal or a log
pipeline could misread escaped, and no Redis password in any line."""
import re
import subprocess
import time

import requests

from conftest import BIN, free_port, raw_connect, read_until_closed, wait_until


def log_lines_with(stack, needle, timeout=5.0):
    def found():
        lines = [ln for ln in stack.server.stderr_tail(400000).splitlines() if needle in ln]
        return lines or None
    return wait_until(found, timeout, what=f"a log line with {needle!r}")


def raw_exchange(stack, data):
    with raw_connect(stack.server.port, timeout=5) as s:
        s.sendall(data)
        return read_until_closed(s, 5.0)


def test_h2o_own_413_logs_the_real_method_and_path(stack):
    reply = raw_exchange(stack, (f"POST /products?from=log-test HTTP/1.1\r\n"
                                 f"Host: 127.0.0.1:{stack.server.port}\r\n"
                                 "X-Request-Id: log-413\r\nContent-Length: 999999999\r\n\r\n"
                                 ).encode())
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    (line,) = log_lines_with(stack, "id=log-413")
    assert "request POST /products?from=log-test 413 " in line, line
    assert "_errors" not in line, line


def test_bytes_outside_printable_ascii_are_escaped_in_the_log(stack):
    raw_exchange(stack, b"GET /caf\xc3\xa9/\xff\\x?q=\x80\x7e HTTP/1.1\r\nHost: h\r\n"
                        b"X-Request-Id: log-esc\r\nConnection: close\r\n\r\n")
    (line,) = log_lines_with(stack, "id=log-esc")
    assert line.isascii() and line.isprintable(), repr(line)
    assert r"GET /caf\xc3\xa9/\xff\\x?q=\x80~ 404 " in line, line


def test_redis_credentials_never_reach_a_log_or_error(tmp_path):
    """A URL with credentials (issue 12) to a Redis that is not there: the start-up line, the
    projector's errors and /ready's reasons name the URL without its password."""
    secret = "s3cret-redis-password"
    for url in [f"redis://user:{secret}@127.0.0.1:{free_port()}/0",
                f"redis://:{secret}@127.0.0.1:{free_port()}/0"]:
        port = free_port()
        p = subprocess.Popen([str(BIN), "serve", "--redis", url, "--db", str(tmp_path / "c.db"),
                              "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            (ready,) = wait_until(  # a list: a 503 response is falsy
                lambda: [requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)], 10,
                what="catalogd to answer")
            assert ready.status_code == 503 and secret not in ready.text, ready.text
            time.sleep(1.0)  # a few reconnection attempts, each one logged or not
        finally:
            p.terminate()
            out, err = p.communicate(timeout=10)
        assert "serving http://" in err, err
        assert secret not in out + err, err


def test_startup_line_names_the_redis_url(stack):
    (line,) = log_lines_with(stack, "serving http://")
    assert re.search(r"redis redis://127\.0\.0\.1:\d+/0", line), line

"""Connection limits: --max-connections makes new connections wait (never crash or refuse the
server), --idle-timeout closes silent and trickling clients. Also 413 for an oversized body
sent with a small Content-Length promise broken; a body over the limit refused unread, with a
lingering close so the client still reads the 413; and the server serving on after all of it."""
import socket
import time

import pytest
import requests

from conftest import wait_until


def http_get(sock, path="/health"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock.recv(4096)


def connect(stack, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", stack.server.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def test_connections_over_the_cap_wait_until_one_closes(stack_factory):
    # One loop thread: with several, the cap is shared out per loop and the kernel spreads
    # connections over their listeners, so which connection waits would be up to chance.
    stack = stack_factory("cap", extra_args=["--threads", "1", "--max-connections", "4"])
    held = [connect(stack) for _ in range(4)]
    try:
        for s in held:  # each connection is served; SO_REUSEPORT may put them on either loop
            assert http_get(s).startswith(b"HTTP/1.1 200")
        waiting = []
        answered = 0
        for _ in range(4):
            s = connect(stack, timeout=0.3)
            try:
                if http_get(s).startswith(b"HTTP/1.1 200"):
                    answered += 1
            except socket.timeout:
                waiting.append(s)
            else:
                s.close()
        assert waiting, "every connection over the cap was served at once"
        for s in held:
            s.close()
        held = []
        for s in waiting:  # the server accepts them once others close
            s.settimeout(3)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.close()
        assert requests.get(stack.url("/health"), timeout=2).status_code == 200
    finally:
        for s in held:
            s.close()


def test_silent_client_is_disconnected_after_the_idle_timeout(stack_factory):
    stack = stack_factory("idle", extra_args=["--idle-timeout", "1"])
    s = connect(stack, timeout=5)
    started = time.monotonic()
    assert s.recv(100) == b""  # closed by the server
    took = time.monotonic() - started
    assert 0.8 <= took <= 3.0, took
    assert requests.get(stack.url("/health"), timeout=2).status_code == 200


def test_trickling_client_is_cut_off(stack_factory):
    stack = stack_factory("trickle", extra_args=["--idle-timeout", "1"])
    s = connect(stack, timeout=5)
    started = time.monotonic()
    cut = False
    try:
        for byte in b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100:
            s.sendall(bytes([byte]))
            time.sleep(0.1)
            if time.monotonic() - started > 5:
                break
        cut = s.recv(100) == b""
    except OSError:
        cut = True
    assert cut, "a client sending one byte every 100 ms was never disconnected"
    assert time.monotonic() - started < 4
    assert requests.get(stack.url("/health"), timeout=2).status_code == 200


def closed_by_server(sock, deadline_s):
    """Reads and drops what the server sent until it closes (True) or the deadline (False)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not sock.recv(1 << 20):
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
    return False


def test_a_client_that_never_reads_its_answers_is_cut_after_the_idle_timeout(stack_factory):
    """Requests pipelined, then nothing read: h2o times out only the reading of a request, so
    each such connection held its slot of --max-connections, and its answers, for good, and
    one client could lock every other one out."""
    stack = stack_factory("noread", extra_args=["--threads", "1", "--max-connections", "6",
                                                "--idle-timeout", "1"])
    stalled = []
    for _ in range(6):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # fills at once
        s.connect(("127.0.0.1", stack.server.port))
        s.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n" * 40)
        stalled.append(s)
    try:
        time.sleep(0.5)
        # Every slot is held: another client waits in the kernel's backlog.
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(stack.url("/health"), timeout=0.5)
        time.sleep(4)  # the idle timeout, its check every second, and some slack
        # Their slots are free again (before any of them read a byte more, which would let
        # the answers go on), and each was reset: what it still reads ends at once.
        assert requests.get(stack.url("/health"), timeout=2).status_code == 200
        wait_until(lambda: "took no byte of its answer" in stack.server.stderr_tail(200000), 5,
                   what="a log line for the cut")
        assert all(closed_by_server(s, 2) for s in stalled)
    finally:
        for s in stalled:
            s.close()


def test_a_slow_reader_of_a_long_answer_is_not_cut(stack_factory):
    """What moves is not cut: a client that reads its answers slowly, slower than the idle
    timeout in all, but some bytes every half second."""
    stack = stack_factory("slowread", extra_args=["--idle-timeout", "1"])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", stack.server.port))
    try:
        s.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n" * 4)
        got, started, whole = b"", time.monotonic(), None
        s.settimeout(5)
        while whole is None or len(got) < whole:
            chunk = s.recv(16384)
            assert chunk, f"cut after {time.monotonic() - started:.1f} s, {len(got)} bytes read"
            got += chunk
            head, blank, _ = got.partition(b"\r\n\r\n")
            if whole is None and blank:  # four answers of the first one's length
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                whole = 4 * (len(head) + 4 + length)
            time.sleep(0.05)
        assert got.count(b"HTTP/1.1 200") == 4
        assert time.monotonic() - started > 2, "read too fast to show anything"
    finally:
        s.close()


def test_keep_alive_client_within_the_timeout_is_served(stack_factory):
    stack = stack_factory("keepalive", extra_args=["--idle-timeout", "2"])
    s = connect(stack, timeout=3)
    for _ in range(3):
        assert http_get(s).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
    s.close()


def test_bad_limit_flags_exit_2(tmp_path):
    import subprocess
    from conftest import BIN
    for flag, value in [("--max-connections", "0"), ("--max-connections", "x"),
                        ("--idle-timeout", "0"), ("--idle-timeout", "99999"),
                        ("--max-body-bytes", "10"), ("--max-header-bytes", "x")]:
        p = subprocess.run([str(BIN), "serve", flag, value], capture_output=True, text=True,
                           timeout=10, cwd=tmp_path)
        assert p.returncode == 2, (flag, value, p.stderr)
        assert flag in p.stderr


def test_body_and_header_limits_are_configurable(stack_factory):
    stack = stack_factory("limits", extra_args=["--max-body-bytes", "2048",
                                                "--max-header-bytes", "4096"])
    body = '{"sku":"SMALL-LIMIT","name":"' + "n" * 2100 + '","price":1,"stock":1}'
    r = stack.post_raw("/products", body, headers={"X-Request-Id": "limit-1"})
    assert r.status_code == 413, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["X-Request-Id"] == "limit-1"
    assert "2048 bytes" in r.json()["detail"]
    r = stack.get("/health", headers={"X-Pad": "p" * 5000})
    assert r.status_code == 431 and "4096 bytes" in r.json()["detail"]
    assert stack.get("/health", headers={"X-Pad": "p" * 3000}).status_code == 200
    _, view = stack.create(name="fits")  # an ordinary product is well under 2 KiB
    assert view["name"] == "fits"
    assert stack.counts() == (1, 1)  # the refused body wrote nothing


# ---------------------------------------------------------------------------------------------
# a body over the limit: refused from its Content-Length, unread, and the client reads the 413


def read_until_closed(sock, deadline_s=5.0):
    """Everything the server sends until it closes its side (FIN)."""
    sock.settimeout(deadline_s)
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk


def test_oversized_content_length_is_refused_before_the_body_is_sent(stack):
    before = stack.counts()
    s = connect(stack, timeout=3)
    try:
        s.sendall(b"POST /products HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"X-Request-Id: big-promise\r\nContent-Length: 10000000000\r\n\r\n{\"sku\":")
        started = time.monotonic()
        reply = read_until_closed(s)  # the 413, then FIN: no byte of the body was waited for
        assert time.monotonic() - started < 2
    finally:
        s.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"content-type: application/problem+json" in head.lower()
    assert b"x-request-id: big-promise" in head.lower()
    assert b"65536 bytes" in body
    assert stack.counts() == before


def test_client_sending_a_large_body_whole_still_reads_the_413(stack):
    # The client writes the whole body before it reads: the server must swallow the rest
    # rather than close on it, or the kernel resets the connection and the 413 is lost.
    before = stack.counts()
    for size in [70_000, 300_000, 1_100_000, 4_000_000] * 3:
        body = '{"sku":"HUGE","name":"' + "a" * size + '","price":1,"stock":1}'
        try:
            resp = requests.post(stack.url("/products"), data=body.encode(),
                                 headers={"Content-Type": "application/json"}, timeout=10)
        except requests.ConnectionError as exc:
            raise AssertionError(f"{size} bytes: the connection dropped, no 413: {exc!r}") from None
        assert resp.status_code == 413, (size, resp.text)
        assert resp.headers["Content-Type"] == "application/problem+json"
    assert stack.counts() == before
    assert requests.get(stack.url("/health"), timeout=2).status_code == 200


def open_connections(stack, session):
    text = session.get(stack.url("/metrics"), timeout=2).text
    line = next(x for x in text.splitlines() if x.startswith("catalogd_open_connections "))
    return int(line.split()[1])


def test_lingering_ends_at_the_deadline_and_frees_the_connection(stack_factory):
    # A client that is told 413 but neither sends nor closes is let go after 5 s (LINGER_MS);
    # until then it holds one of the --max-connections slots.
    stack = stack_factory("linger", extra_args=["--threads", "1"])
    scrape = requests.Session()  # one kept-alive connection for every scrape
    baseline = open_connections(stack, scrape)  # counts the scrape's own connection
    s = connect(stack, timeout=3)
    try:
        s.sendall(b"POST /products HTTP/1.1\r\nHost: t\r\nContent-Length: 9999999\r\n\r\n")
        reply = read_until_closed(s)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        time.sleep(0.5)
        assert open_connections(stack, scrape) == baseline + 1  # lingering, held by the client
        deadline = time.monotonic() + 8
        while open_connections(stack, scrape) > baseline and time.monotonic() < deadline:
            time.sleep(0.25)
        assert open_connections(stack, scrape) == baseline, "the lingering connection stayed"
    finally:
        s.close()
        scrape.close()

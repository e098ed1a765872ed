"""HTTPS: --tls-cert and --tls-key make the listener speak TLS. HTTP/1.1 is offered by ALPN
always, h2 only with --http2. Certificate and key errors stop the start with one line and exit
2. What guards an HTTP/1 connection in clear guards it over TLS too: the head limit (431 read by
the client), the 413 with its lingering close, the framing checks on the decrypted head,
request ids, and the Host/Origin policy with https origins."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, Stack, free_port, send_while_a_request_waits, uniq_sku, wait_until

CURL_TIMEOUT = 15


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki():
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, and bad files."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing (make deps-test installs it)")
    d = Path(tempfile.mkdtemp(prefix="catalogd-tls-"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=catalogd test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
            "other.pem", "-days", "2", "-subj", "/CN=other", cwd=d)
    (d / "garbage.pem").write_text("this is not a PEM file\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tls_args(pki, *more):
    return ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"), *more]


@pytest.fixture
def tls_factory(pki):
    made = []

    def make(*more):
        s = Stack("tls", tls_args(pki, *more), ca_file=pki / "ca.pem")
        made.append(s)
        s.start()
        return s
    yield make
    for s in made:
        s.stop()


def curl(pki, *args):
    """Runs curl against the test CA; returns (http_version, status, body, headers)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(pki / "ca.pem"),
                          "-D", "-", "-w", "\n%{http_version}", *args],
                         capture_output=True, timeout=CURL_TIMEOUT)
    assert out.returncode == 0, out.stderr
    text, _, version = out.stdout.decode().rpartition("\n")
    head, _, body = text.partition("\r\n\r\n")
    status = int(head.split("\r\n", 1)[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in head.split("\r\n")[1:])}
    return version, status, body, headers


def create_and_get(pki, stack, *flags):
    """Creates a product and reads it back with curl; returns the HTTP versions used."""
    sku = uniq_sku("TLS")
    body = json.dumps({"sku": sku, "name": "Over TLS", "price": 7.50, "stock": 3})
    v1, status, text, headers = curl(pki, *flags, "-X", "POST", "-H",
                                     "Content-Type: application/json", "-H",
                                     f"Origin: https://127.0.0.1:{stack.server.port}",
                                     "--data", body, stack.url("/products"))
    assert status == 201, text
    assert headers.get("x-request-id")
    product = json.loads(text)
    v2, status, text, headers = curl(pki, *flags, "-H", "X-Request-Id: tls-read-1",
                                     stack.url(f"/products/{product['id']}"))
    assert status == 200, text
    assert json.loads(text)["sku"] == sku
    assert headers["x-request-id"] == "tls-read-1"
    return v1, v2


def tls_connect(pki, stack, alpn=("http/1.1",), timeout=5.0):
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", stack.server.port), timeout=timeout)
    s = context.wrap_socket(raw, server_hostname="127.0.0.1")
    s.settimeout(timeout)
    return s


def read_until_closed(sock, deadline_s=5.0):
    sock.settimeout(deadline_s)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    except (ssl.SSLError, ConnectionResetError):
        return got  # the peer closed without close_notify after its answer


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 over TLS


def test_curl_over_https_http1_creates_and_reads(pki, tls_factory):
    stack = tls_factory()
    assert create_and_get(pki, stack, "--http1.1") == ("1.1", "1.1")
    assert "serving https://127.0.0.1:" in stack.server.stderr_tail(20000)


def test_without_http2_alpn_never_selects_h2(pki, tls_factory):
    stack = tls_factory()
    # curl offers h2 and http/1.1 by ALPN: the server picks http/1.1
    assert create_and_get(pki, stack, "--http2") == ("1.1", "1.1")
    s = tls_connect(pki, stack, alpn=("h2",))  # h2 alone: no protocol is agreed on
    try:
        assert s.selected_alpn_protocol() is None
    finally:
        s.close()


def test_plain_http_to_the_tls_port_fails_cleanly(pki, tls_factory):
    stack = tls_factory()
    s = socket.create_connection(("127.0.0.1", stack.server.port), timeout=5)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        reply = read_until_closed(s)
        assert time.monotonic() - started < 3
    finally:
        s.close()
    assert reply == b"", reply[:100]  # README: closed at once, with no answer
    assert stack.http.get(stack.url("/health"), timeout=5).status_code == 200


def test_head_over_the_limit_gets_431_over_tls(pki, tls_factory):
    stack = tls_factory()
    s = tls_connect(pki, stack)
    try:
        s.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\nX-Pad: "
                  .encode() + b"a" * 20000)
        started = time.monotonic()
        reply = read_until_closed(s)
        assert time.monotonic() - started < 2.5
    finally:
        s.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), reply[:300]
    assert b"x-request-id: " in head.lower()
    assert b"headers-too-large" in body, body
    assert stack.http.get(stack.url("/health"), timeout=5).status_code == 200


def test_body_over_the_limit_gets_413_over_tls(pki, tls_factory):
    stack = tls_factory()
    s = tls_connect(pki, stack)
    try:
        s.sendall(b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                  b"\r\nX-Request-Id: tls-big\r\nContent-Length: 10000000\r\n\r\n{\"sku\":")
        reply = read_until_closed(s)
    finally:
        s.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"x-request-id: tls-big" in head.lower()
    # a client that sends its whole large body first still reads the 413 (lingering close)
    big = b'{"sku":"HUGE","name":"' + b"a" * 1_100_000 + b'","price":"1.00","stock":1}'
    resp = stack.http.post(stack.url("/products"), data=big, timeout=10,
                           headers={"Content-Type": "application/json"})
    assert resp.status_code == 413, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_ambiguous_framing_is_refused_over_tls(pki, tls_factory):
    stack = tls_factory()
    s = tls_connect(pki, stack)
    try:
        s.sendall(f"POST /health HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\n"
                  "Content-Length: 5\r\nContent-Length: 64\r\n\r\nabcde"
                  f"POST /admin/rebuild HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\n"
                  "Content-Length: 0\r\n\r\n".encode())
        reply = read_until_closed(s)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b"ambiguous-request" in reply
    assert reply.count(b"HTTP/1.1 ") == 1, reply  # the smuggled request never ran


def test_a_request_pipelined_while_one_waits_is_answered_after_it_over_tls(pki, tls_factory):
    """As in clear (test_protocols.py): the waiting request's connection is polled but not read,
    here with TLS records arriving meanwhile."""
    stack = tls_factory()
    s = tls_connect(pki, stack, timeout=10.0)
    try:
        busy = send_while_a_request_waits(stack, s, lambda sock: sock.sendall(
            f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\n"
            "Connection: close\r\n\r\n".encode()))
        reply = read_until_closed(s, 8.0)
    finally:
        s.close()
    assert busy < 0.2, f"the server used {busy:.2f} s of CPU in 0.5 s while the request waited"
    codes = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]
    assert codes in ([200, 200], [503, 200]), reply[:800]


def test_host_and_origin_policy_over_tls(pki, tls_factory):
    stack = tls_factory()
    body = json.dumps({"sku": uniq_sku("TLSO"), "name": "x", "price": 1.00, "stock": 1})
    headers = {"Content-Type": "application/json"}
    r = stack.http.post(stack.url("/products"), data=body, timeout=5,
                        headers={**headers, "Origin": "https://evil.example"})
    assert r.status_code == 403, r.text
    r = stack.http.post(stack.url("/products"), data=body, timeout=5,
                        headers={**headers, "Host": "attacker.example"})
    assert r.status_code == 421, r.text
    r = stack.http.post(stack.url("/products"), data=body, timeout=5,
                        headers={**headers, "Origin": f"https://localhost:{stack.server.port}"})
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------------------------
# HTTP/2, only with --http2


def test_http2_flag_offers_h2(pki, tls_factory):
    stack = tls_factory("--http2")
    assert create_and_get(pki, stack, "--http2") == ("2", "2")
    assert create_and_get(pki, stack, "--http1.1") == ("1.1", "1.1")
    body = json.dumps({"sku": uniq_sku("TLS2"), "name": "x", "price": 1.00, "stock": 1})
    _, status, text, _ = curl(pki, "--http2", "-X", "POST", "-H", "Content-Type: application/json",
                              "-H", "Origin: https://evil.example", "--data", body,
                              stack.url("/products"))
    assert status == 403, text
    # a body over --max-body-bytes: h2o 2.2.5 resets the stream (no 413 over HTTP/2), and
    # nothing is created; the server serves on
    big = '{"sku":"H2BIG","name":"' + "a" * 100_000 + '","price":1,"stock":1}'
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--retry", "0", "--cacert",
                          str(pki / "ca.pem"), "--http2", "-o", "/dev/null", "-w",
                          "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                          "--data", big, stack.url("/products")],
                         capture_output=True, text=True, timeout=CURL_TIMEOUT)
    assert out.stdout.strip() in ("000", "413"), out
    assert curl(pki, "--http2", stack.url("/products/by-sku/H2BIG"))[1] == 404
    assert curl(pki, "--http2", stack.url("/health"))[:2] == ("2", 200)


# ---------------------------------------------------------------------------------------------
# start-up errors


def start_and_wait(args, timeout=10, env=None):
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="catalogd-tls-bad-"))
    try:
        out = subprocess.run([str(BIN), "serve", "--listen", f"127.0.0.1:{port}", "--db",
                              str(d / "c.db"), "--redis", "redis://127.0.0.1:1/0", *args],
                             capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, **(env or {})})
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out.returncode, out.stderr


@pytest.mark.parametrize("cert,key,names", [
    ("missing.pem", "server.key", "missing.pem"),
    ("server.pem", "missing.key", "missing.key"),
    ("garbage.pem", "server.key", "garbage.pem"),
    ("server.pem", "garbage.pem", "garbage.pem"),
    (".", "server.key", "--tls-cert"),  # a directory: unreadable as a file
    ("server.pem", "other.key", "does not match"),
    ("other.pem", "server.key", "does not match"),
])
def test_bad_certificate_or_key_exits_2_with_one_line(pki, cert, key, names):
    rc, err = start_and_wait(["--tls-cert", str(pki / cert), "--tls-key", str(pki / key)])
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert names in lines[0] and lines[0].startswith("catalogd: bad --tls-"), lines[0]


@pytest.mark.parametrize("flags", [
    ["--tls-cert", "server.pem"], ["--tls-key", "server.key"], ["--http2"]])
def test_tls_flags_go_together(pki, flags):
    args = [str(pki / f) if f.startswith("server") else f for f in flags]
    rc, err = start_and_wait(args)
    assert rc == 2, err
    assert err.startswith("catalogd: --"), err


# ---------------------------------------------------------------------------------------------
# HTTP/2 rapid reset (CVE-2023-44487): a budget of stream resets per connection


def h2_frame(kind, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
            + payload)


def h2_get(stream, path, authority):
    """A HEADERS frame (END_STREAM, END_HEADERS) for GET https://authority/path, in HPACK:
    :method GET and :scheme https indexed, :path and :authority literal, not indexed."""
    def literal(index, value):
        return bytes([index, len(value)]) + value
    block = b"\x82\x87" + literal(4, path) + literal(1, authority)
    return h2_frame(0x1, 0x5, stream, block)


def h2_connect(pki, stack):
    s = tls_connect(pki, stack, alpn=("h2",))
    assert s.selected_alpn_protocol() == "h2"
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0))  # preface, SETTINGS
    return s


def reset_pairs(stack, first_stream, count):
    authority = f"127.0.0.1:{stack.server.port}".encode()
    cancel = (8).to_bytes(4, "big")
    return b"".join(h2_get(first_stream + 2 * i, b"/health", authority)
                    + h2_frame(0x3, 0, first_stream + 2 * i, cancel) for i in range(count))


def frames_until(sock, predicate, deadline_s=5.0):
    """Reads frames until predicate(kind, flags, stream) holds (returns True) or the server
    closes the connection (returns False)."""
    buf = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            length = int.from_bytes(buf[:3], "big")
            if predicate(buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff):
                return True
            buf = buf[9 + length:]
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, ConnectionResetError):
            return False
        if not chunk:
            return False
        buf += chunk
    raise AssertionError("neither the awaited frame nor a close came in time")


def test_http2_rapid_reset_closes_the_connection(pki, tls_factory):
    stack = tls_factory("--http2")
    s = h2_connect(pki, stack)
    sent = 0
    try:
        for batch in range(40):  # up to 2,000 HEADERS + RST_STREAM pairs
            s.sendall(reset_pairs(stack, 1 + 100 * batch, 50))
            sent += 50
        closed = not frames_until(s, lambda kind, flags, stream: False, 5.0)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        closed = True
    finally:
        s.close()
    assert closed, f"{sent} resets and the connection is still open"
    wait_until(lambda: "rapid reset" in stack.server.stderr_tail(200000), 5,
               what="a log line for the rapid-reset close")
    # the server serves on, over HTTP/2 too
    assert curl(pki, "--http2", stack.url("/health"))[:2] == ("2", 200)


def test_http2_few_resets_keep_the_connection(pki, tls_factory):
    stack = tls_factory("--http2")
    s = h2_connect(pki, stack)
    try:
        s.sendall(reset_pairs(stack, 1, 50))  # within the budget (100 at once)
        authority = f"127.0.0.1:{stack.server.port}".encode()
        s.sendall(h2_get(101, b"/health", authority))
        assert frames_until(s, lambda kind, flags, stream: kind == 0x1 and stream == 101)
    finally:
        s.close()


def test_http2_answers_a_client_gives_no_window_for_are_cut_after_the_idle_timeout(
        pki, tls_factory):
    """A client that opens no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0) and asks for
    large answers, then sends nothing: h2o 2.2.5 times out only an HTTP/2 connection with no
    request in progress, so it held the connection and the answers buffered for it (about
    5.6 MB each at 100 pages of 1,000) for good."""
    stack = tls_factory("--http2", "--idle-timeout", "1")
    s = tls_connect(pki, stack, alpn=("h2",))
    try:
        no_window = (4).to_bytes(2, "big") + (0).to_bytes(4, "big")  # INITIAL_WINDOW_SIZE 0
        authority = f"127.0.0.1:{stack.server.port}".encode()
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0, no_window)
                  + b"".join(h2_get(1 + 2 * i, b"/openapi.json", authority) for i in range(8)))
        # The answers begin (HEADERS take no window), then wait on the window.
        assert frames_until(s, lambda kind, flags, stream: kind == 0x1 and stream == 15)
        started = time.monotonic()
        assert not frames_until(s, lambda kind, flags, stream: kind == 0x0 and stream != 0,
                                deadline_s=6), "a DATA frame came with no window open"
        assert time.monotonic() - started < 4, "closed, but late"
    finally:
        s.close()
    wait_until(lambda: "took no byte of its answer" in stack.server.stderr_tail(200000), 5,
               what="a log line for the cut")
    assert curl(pki, "--http2", stack.url("/health"))[:2] == ("2", 200)


def h2_bodies(sock, streams, deadline_s=5.0):
    """Reads frames until every stream of "streams" has ended; returns their DATA by stream."""
    bodies, ended, buf = {n: b"" for n in streams}, set(), b""
    end = time.monotonic() + deadline_s
    while ended != set(streams):
        assert time.monotonic() < end, f"streams {set(streams) - ended} never ended"
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            length, kind, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7fffffff
            if stream in bodies and kind == 0x0:
                bodies[stream] += buf[9:9 + length]
            if stream in bodies and kind in (0x0, 0x1) and flags & 0x1:
                ended.add(stream)
            buf = buf[9 + length:]
        if ended != set(streams):
            chunk = sock.recv(65536)
            assert chunk, "the connection closed"
            buf += chunk
    return bodies


def test_http2_header_lists_over_the_limit_get_431_however_compressed(pki, tls_factory):
    """--max-header-bytes counts an HTTP/2 request's header list decoded: 4,000 bytes sent once
    into HPACK's table, then named ten times by one byte each, made 40 KB of headers from a few
    bytes on the wire, and were answered 200 where HTTP/1.1 gets 431 at 16 KiB."""
    stack = tls_factory("--http2")
    s = h2_connect(pki, stack)
    try:
        authority = f"127.0.0.1:{stack.server.port}".encode()
        get = h2_get(1, b"/health", authority)[9:]  # the HEADERS block alone
        # x-big: 4,000 bytes, literal with incremental indexing: dynamic table entry 62
        big = b"\x40\x05x-big" + b"\x7f\xa1\x1e" + b"b" * 4000  # 4000 = 127 + 3873
        s.sendall(h2_frame(0x1, 0x5, 1, get + big)
                  + h2_frame(0x1, 0x5, 3, get + b"\xbe" * 10))  # entry 62, ten times
        bodies = h2_bodies(s, (1, 3))
    finally:
        s.close()
    assert bodies[1] == b'{"status":"ok"}', bodies[1]
    problem = json.loads(bodies[3])
    assert problem["status"] == 431 and problem["type"].endswith("headers-too-large"), problem
    assert curl(pki, "--http2", stack.url("/health"))[:2] == ("2", 200)


@pytest.mark.parametrize("env,says", [
    ({"CATALOGD_TLS_CERT": "server.pem"}, "--tls-key is missing"),
    ({"CATALOGD_TLS_KEY": "server.key"}, "--tls-cert is missing"),
    ({"CATALOGD_HTTP2": "1"}, "--http2 needs"),
    ({"CATALOGD_TLS_CERT": "server.pem", "CATALOGD_TLS_KEY": "other.key"}, "does not match"),
])
def test_tls_environment_variables(pki, env, says):
    env = {k: str(pki / v) if v.endswith((".pem", ".key")) else v for k, v in env.items()}
    rc, err = start_and_wait([], env=env)
    assert rc == 2 and says in err, err


def test_help_and_readme_name_the_tls_flags():
    out = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, timeout=10).stdout
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for flag, env in [("--tls-cert", "CATALOGD_TLS_CERT"), ("--tls-key", "CATALOGD_TLS_KEY"),
                      ("--http2", "CATALOGD_HTTP2")]:
        assert flag in out and env in out, out
        assert f"`{flag}" in readme and env in readme
    assert "CVE-2023-44487" in out


def open_connections(stack):
    text = stack.http.get(stack.url("/metrics"), timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("catalogd_open_connections "))
    return int(float(line.split()[1]))


def test_silent_or_failed_handshakes_are_closed_and_counted(pki, tls_factory):
    stack = tls_factory("--idle-timeout", "1")
    baseline = open_connections(stack)
    silent = socket.create_connection(("127.0.0.1", stack.server.port), timeout=5)
    try:
        started = time.monotonic()
        assert silent.recv(100) == b""  # no ClientHello: closed after --idle-timeout
        assert 0.8 <= time.monotonic() - started <= 3.5
    finally:
        silent.close()
    for _ in range(20):  # plain HTTP and untrusted clients: handshakes that fail
        s = socket.create_connection(("127.0.0.1", stack.server.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        read_until_closed(s)
        s.close()
        with pytest.raises(ssl.SSLError):
            context = ssl.create_default_context()  # the system store: our CA is not in it
            raw = socket.create_connection(("127.0.0.1", stack.server.port), timeout=5)
            try:
                context.wrap_socket(raw, server_hostname="127.0.0.1")
            finally:
                raw.close()
    wait_until(lambda: open_connections(stack) <= baseline, 5,
               what="every failed handshake's connection accounted for")


def send_with_the_handshake(pki, stack, alpn, payload):
    """Connects over TLS and sends "payload" in the same write as the client's Finished (one
    flight); returns (socket, TLS object, incoming BIO)."""
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.set_alpn_protocols([alpn])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    s = socket.create_connection(("127.0.0.1", stack.server.port), timeout=5)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(outgoing.read())
            chunk = s.recv(65536)
            assert chunk, "the server closed during the handshake"
            incoming.write(chunk)
    assert tls.selected_alpn_protocol() == alpn
    tls.write(payload)  # the Finished is still in "outgoing": both go in one write
    s.sendall(outgoing.read())
    return s, tls, incoming


def closed_within(s, deadline_s=5.0):
    s.settimeout(1)
    deadline = time.monotonic() + deadline_s
    got = b""
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return True, got
        except TimeoutError:
            continue
        if not chunk:
            return True, got
        got += chunk
    return False, got


def test_http2_resets_sent_with_the_handshake_are_counted(pki, tls_factory):
    """A client can put its frames right behind its TLS Finished: h2o would parse them as soon
    as the handshake ends, so they must be counted before that."""
    stack = tls_factory("--http2")
    s, _, _ = send_with_the_handshake(pki, stack, "h2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                      + h2_frame(0x4, 0, 0) + reset_pairs(stack, 1, 1000))
    try:
        closed, _ = closed_within(s)
    finally:
        s.close()
    assert closed, "1,000 resets sent with the handshake and the connection is still open"
    wait_until(lambda: "rapid reset" in stack.server.stderr_tail(200000), 5,
               what="a log line for the rapid-reset close")


def test_a_large_head_sent_with_the_handshake_gets_431(pki, tls_factory):
    stack = tls_factory()
    head = (f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\nX-Pad: ".encode()
            + b"a" * 30000)
    s, tls, incoming = send_with_the_handshake(pki, stack, "http/1.1", head)
    try:
        closed, raw = closed_within(s)
    finally:
        s.close()
    assert closed
    incoming.write(raw)
    reply = b""
    try:
        while True:
            chunk = tls.read(65536)
            if not chunk:
                break
            reply += chunk
    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
        pass
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]

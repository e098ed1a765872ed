"""Every protocol h2o can speak on the listener, not only the one catalogd means to serve: no
cleartext HTTP/2 (neither by prior knowledge nor by Upgrade: h2c), and HTTP/1 framing that a
proxy and catalogd cannot read differently (request smuggling). Raw sockets, so that nothing
in a client library tidies up the bytes on the wire."""
import re
import shutil
import subprocess

import pytest

from conftest import raw_connect, read_until_closed

# The client connection preface of RFC 9113 section 3.4, then an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect(stack, timeout=3.0):
    return raw_connect(stack.server.port, timeout)


def host(stack):
    return f"127.0.0.1:{stack.server.port}"


# ---------------------------------------------------------------------------------------------
# cleartext HTTP/2 is not offered


def test_http2_preface_gets_no_http2(stack):
    s = connect(stack)
    try:
        s.sendall(H2_PREFACE + H2_SETTINGS)
        reply = read_until_closed(s, 3.0)
    finally:
        s.close()
    # An HTTP/2 server answers the preface with its own SETTINGS frame (type 4 on stream 0).
    assert not (len(reply) >= 9 and reply[3] == 4 and reply[5:9] == b"\0\0\0\0"), reply[:64]
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]


def test_upgrade_h2c_is_ignored(stack):
    s = connect(stack)
    try:
        s.sendall((f"GET /health HTTP/1.1\r\nHost: {host(stack)}\r\n"
                   "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n").encode())
        s.settimeout(3)
        reply = s.recv(65536)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"101 Switching Protocols" not in reply


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
@pytest.mark.parametrize("flag", ["--http2-prior-knowledge", "--http2"])
def test_curl_http2_gets_no_http2(stack, flag):
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_version}", "--max-time",
                        "5", flag, stack.url("/health")], capture_output=True, text=True,
                       timeout=10)
    assert p.stdout.strip() != "2", (p.returncode, p.stdout, p.stderr)
    if flag == "--http2":  # the Upgrade is declined: the request is answered over HTTP/1.1
        assert p.returncode == 0 and p.stdout.strip() == "1.1", (p.returncode, p.stdout)


# ---------------------------------------------------------------------------------------------
# request smuggling: a request whose framing has two readings is refused, and nothing the
# client sent after it on that connection runs


@pytest.fixture(scope="module")
def framing_stack():
    """A private stack: before the fix, the smuggled requests below did run."""
    from conftest import Stack
    s = Stack("framing")
    try:
        s.start()
    except BaseException:
        s.stop()
        raise
    yield s
    s.stop()


def smuggled_create(stack, sku):
    body = ('{"sku":"%s","name":"Smuggled","price":1,"stock":1}' % sku).encode()
    return (f"POST /products HTTP/1.1\r\nHost: {host(stack)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def statuses(reply):
    """The status codes of the HTTP/1.1 responses in "reply", in order."""
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", reply)]


def send_raw(stack, data, deadline_s=5.0):
    s = connect(stack)
    try:
        s.sendall(data)
        return read_until_closed(s, deadline_s)
    finally:
        s.close()


def products_with_sku(stack, sku):
    from conftest import sql
    return sql(stack.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,))[0][0]


def assert_refused_alone(stack, reply, sku):
    assert statuses(reply) == [400], reply[:600]
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    assert b"x-request-id:" in head.lower(), head
    assert b"connection: close" in head.lower(), head
    assert b"ambiguous-request" in body, body
    assert products_with_sku(stack, sku) == 0, "the smuggled request ran"


def test_two_different_content_lengths_are_refused(framing_stack):
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    reply = send_raw(s, (f"POST /health HTTP/1.1\r\nHost: {host(s)}\r\nContent-Length: 5\r\n"
                         "Content-Length: 64\r\n\r\nabcde").encode() + smuggled_create(s, sku))
    assert_refused_alone(s, reply, sku)


@pytest.mark.parametrize("order", ["length-first", "encoding-first"])
def test_content_length_with_chunked_is_refused(framing_stack, order):
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    fields = ["Content-Length: 5", "Transfer-Encoding: chunked"]
    if order == "encoding-first":
        fields.reverse()
    reply = send_raw(s, (f"POST /health HTTP/1.1\r\nHost: {host(s)}\r\n" + "\r\n".join(fields)
                         + "\r\n\r\n0\r\n\r\n").encode() + smuggled_create(s, sku))
    assert_refused_alone(s, reply, sku)


def test_chunked_http10_is_refused(framing_stack):
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    body = ('{"sku":"%s","name":"Chunked","price":1,"stock":1}' % sku).encode()
    reply = send_raw(s, (f"POST /products HTTP/1.0\r\nHost: {host(s)}\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         f"{len(body):x}\r\n").encode() + body + b"\r\n0\r\n\r\n")
    assert_refused_alone(s, reply, sku)


@pytest.mark.parametrize("fields", [
    ["Host: {host}", "Host: other.example"],
    ["Host: {host}", "X-Folded: a", " Content-Length: 64"],
], ids=["two-hosts", "obs-fold"])
def test_ambiguous_headers_are_refused(framing_stack, fields):
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    head = "GET /health HTTP/1.1\r\n" + "\r\n".join(f.format(host=host(s)) for f in fields)
    reply = send_raw(s, (head + "\r\n\r\n").encode() + smuggled_create(s, sku))
    assert_refused_alone(s, reply, sku)


def test_unambiguous_pipelining_still_works(framing_stack):
    """Control: the same bytes with one reading are served, every request of them."""
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("PIPE")
    reply = send_raw(s, (f"POST /health HTTP/1.1\r\nHost: {host(s)}\r\nContent-Length: 5\r\n"
                         "Content-Length: 5\r\n\r\nabcde").encode() + smuggled_create(s, sku)
                     + f"GET /health HTTP/1.1\r\nHost: {host(s)}\r\nConnection: close\r\n\r\n"
                     .encode())
    assert statuses(reply) == [405, 201, 200], reply[:800]
    assert products_with_sku(s, sku) == 1

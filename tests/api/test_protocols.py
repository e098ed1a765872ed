"""Every protocol h2o can speak on the listener, not only the one catalogd means to serve: no
cleartext HTTP/2 (neither by prior knowledge nor by Upgrade: h2c), and HTTP/1 framing that a
proxy and catalogd cannot read differently (request smuggling). Raw sockets, so that nothing
in a client library tidies up the bytes on the wire."""
import json
import re
import shutil
import subprocess

import pytest
import requests

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
    # As README says: the upgrade declined, the connection the client offered to switch closes.
    assert b"\r\nconnection: close\r\n" in reply.lower(), reply[:300]


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


# ---------------------------------------------------------------------------------------------
# no Server header: it tells a client nothing it needs (and h2o formats it anew per response)


def test_responses_carry_no_server_header(stack):
    """Neither h2o's responses nor the 400 catalogd writes itself for a head h2o refuses."""
    reply = send_raw(stack, (f"GET /health HTTP/1.1\r\nHost: {host(stack)}\r\n\r\n"
                             f"GET /products/nope HTTP/1.1\r\nHost: {host(stack)}\r\n"
                             "Connection: close\r\n\r\n").encode())
    refused = send_raw(stack, b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
    assert statuses(reply) == [200, 404] and statuses(refused) == [400], (reply[:600], refused)
    heads = re.findall(rb"HTTP/1\.1 \d{3} .*?\r\n\r\n", reply + refused, re.S)
    assert len(heads) == 3, (reply[:600], refused)
    for head in heads:
        assert b"\r\nserver:" not in head.lower(), head


# ---------------------------------------------------------------------------------------------
# what h2o refuses itself is answered like every other error: problem+json with a detail,
# X-Request-Id, the connection closed, nothing sent after it run


def head_and_problem(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields, json.loads(body.decode()) if body else None


def assert_own_problem(stack, reply, status, slug, detail_part, sku):
    assert statuses(reply) == [status], reply[:600]
    line, fields, problem = head_and_problem(reply)
    assert fields.get("content-type") == "application/problem+json", (line, fields)
    assert fields.get("x-request-id"), fields
    assert fields.get("connection") == "close", fields
    assert problem["type"] == f"urn:catalogd:problem:{slug}", problem
    assert problem["status"] == status and problem["title"], problem
    assert detail_part in problem["detail"], problem
    assert products_with_sku(stack, sku) == 0, "a request sent after the refused one ran"
    return fields


def stock_request(stack, fields, body=b'{"delta":1}'):
    return (f"POST /products/{UNKNOWN_PRODUCT}/stock HTTP/1.1\r\nHost: {host(stack)}\r\n"
            "Content-Type: application/json\r\n" + "".join(f + "\r\n" for f in fields)
            + "\r\n").encode() + body


UNKNOWN_PRODUCT = "01900000-0000-7000-8000-000000000000"


@pytest.mark.parametrize("fields,detail", [
    (["Content-Length: 5", "Content-Length: 6"], "Content-Length headers with different values"),
    (["Content-Length: 5", "Transfer-Encoding: chunked"], "both Content-Length and Transfer"),
    (["Host: other.example"], "more than one Host header"),
    (["X-A: 1", " folded"], "folded onto a second line"),
], ids=["two-lengths", "length-and-encoding", "two-hosts", "folded"])
def test_an_ambiguous_head_is_answered_before_any_body_comes(framing_stack, fields, detail):
    """The 400 came only once the body a length promised had arrived: a client that sent the
    head alone got nothing until the idle timeout closed the connection."""
    import time
    s = framing_stack
    head = (f"POST /products HTTP/1.1\r\nHost: {host(s)}\r\nContent-Type: application/json\r\n"
            + "".join(f + "\r\n" for f in fields) + "\r\n").encode()
    started = time.monotonic()
    reply = send_raw(s, head, deadline_s=3.0)
    assert time.monotonic() - started < 2.0, reply[:300]
    assert statuses(reply) == [400], reply[:600]
    line, answer_fields, problem = head_and_problem(reply)
    assert answer_fields.get("content-type") == "application/problem+json", answer_fields
    assert answer_fields.get("x-request-id") and answer_fields.get("connection") == "close"
    assert problem["type"] == "urn:catalogd:problem:ambiguous-request", problem
    assert detail in problem["detail"], problem


@pytest.mark.parametrize("fields,body,detail", [
    (["Content-Length: 11, 11"], b'{"delta":1}', "Content-Length '11, 11' is not one decimal"),
    (["Content-Length: +11"], b'{"delta":1}', "Content-Length '+11' is not one decimal"),
    (["Content-Length: -1"], b'{"delta":1}', "Content-Length '-1'"),
    (["Content-Length: 99999999999999999999999"], b'{"delta":1}', "is not one decimal"),
    (["Transfer-Encoding: gzip, chunked"], b'b\r\n{"delta":1}\r\n0\r\n\r\n',
     "Transfer-Encoding 'gzip, chunked' is not supported"),
    (["Transfer-Encoding: chunked, chunked"], b'b\r\n{"delta":1}\r\n0\r\n\r\n',
     "Transfer-Encoding 'chunked, chunked'"),
    (["Transfer-Encoding: identity"], b'{"delta":1}', "Transfer-Encoding 'identity'"),
    (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
     b'b\r\n{"delta":1}\r\n0\r\n\r\n', "more than one Transfer-Encoding"),
    (["Transfer-Encoding: chunked"], b'ffffffffffffffffff1\r\n{"delta":1}\r\n0\r\n\r\n',
     "the chunked body is malformed"),
], ids=["length-list", "length-plus", "length-negative", "length-huge", "encoding-gzip",
        "encoding-list", "encoding-identity", "two-encodings", "chunk-size-overflow"])
def test_framing_h2o_cannot_read_is_our_400(framing_stack, fields, body, detail):
    """h2o answered these itself, text/plain ("broken content-length header", "unknown
    transfer-encoding", "broken chunked-encoding")."""
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    reply = send_raw(s, stock_request(s, fields, body) + smuggled_create(s, sku))
    assert_own_problem(s, reply, 400, "ambiguous-request", detail, sku)


def test_unknown_expectation_is_our_417(framing_stack):
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    reply = send_raw(s, stock_request(s, ["Expect: 200-ok", "Content-Length: 11"])
                     + smuggled_create(s, sku))
    assert_own_problem(s, reply, 417, "invalid-header", "Expect '200-ok'", sku)


MALFORMED_HEADS = {
    "space-before-colon": ("POST /health HTTP/1.1\r\nHost: {host}\r\nContent-Length : 5\r\n\r\n"
                           "abcde", "not a token", "Content-Length"),
    "escape-in-value": ("GET /health HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: a\x1b[31mb\r\n\r\n",
                        "control character in a header value", "X-Request-Id"),
    "nul-in-value": ("GET /health HTTP/1.1\r\nHost: {host}\r\nX-A: a\x00b\r\n\r\n",
                     "control character in a header value", "X-A"),
    "nul-in-name": ("GET /health HTTP/1.1\r\nHost: {host}\r\nX\x00A: 1\r\n\r\n", "not a token",
                    None),
    "no-colon": ("GET /health HTTP/1.1\r\nHost: {host}\r\nX-A\r\n\r\n", "without a colon", None),
    "http-2.0": ("GET /health HTTP/2.0\r\nHost: {host}\r\n\r\n", "request line", None),
    "http-0.9": ("GET /health HTTP/0.9\r\n\r\n", "request line", None),
    "bare-cr": ("GET /health HTTP/1.1\r\nHost: {host}\rX-A: 1\r\n\r\n", "CR", None),
}


@pytest.mark.parametrize("case", list(MALFORMED_HEADS))
def test_head_h2o_refuses_is_our_400(framing_stack, case):
    """h2o's parser refuses these heads, and h2o answered them with a fixed text/plain 400
    without X-Request-Id, which no filter sees: the guard answers them first."""
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    head, reason, field = MALFORMED_HEADS[case]
    reply = send_raw(s, head.format(host=host(s)).encode("latin-1") + smuggled_create(s, sku))
    assert_own_problem(s, reply, 400, "malformed-request", reason, sku)
    if field:
        assert f"header '{field}'" in head_and_problem(reply)[2]["detail"]


def test_malformed_head_keeps_a_sane_request_id_and_is_found_as_it_arrives(framing_stack):
    """The fault arrives in a later read than the start of the head; the client's own sane
    X-Request-Id, sent before it, is the response's."""
    import time
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    sock = connect(s)
    try:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host(s)}\r\nX-Request-Id: mine-42\r\n"
                     .encode())
        time.sleep(0.2)
        sock.sendall(b"X-Bad: \x07\r\n\r\n" + smuggled_create(s, sku))
        reply = read_until_closed(sock, 5.0)
    finally:
        sock.close()
    fields = assert_own_problem(s, reply, 400, "malformed-request", "control character", sku)
    assert fields["x-request-id"] == "mine-42"


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_malformed_head_pipelined_behind_requests_gets_no_h2o_400(framing_stack, ahead):
    """h2o parses bytes pipelined behind a request as soon as its response is written, before
    the guard sees them: the guard ends the connection after that response instead of letting
    h2o send its bare text 400. Behind two requests or more, the one before the malformed head
    was itself parsed from bytes h2o held, so the guard never saw its head either."""
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("SMUG")
    good = f"GET /health HTTP/1.1\r\nHost: {host(s)}\r\n\r\n" * ahead
    reply = send_raw(s, (good + f"GET /health HTTP/2.0\r\nHost: {host(s)}\r\n\r\n").encode()
                     + smuggled_create(s, sku))
    assert statuses(reply) == [200] * ahead, reply[:600]
    assert b"text/plain" not in reply and b"Bad Request" not in reply, reply[:600]
    assert reply.lower().count(b"connection: close") == 1, reply[:600]
    assert products_with_sku(s, sku) == 0


def test_an_absolute_form_target_is_served_as_its_path(framing_stack):
    """RFC 9112 3.2.2: a server must take "GET http://host/path" as well (what a client sends
    to a proxy). The target's host stands in for Host, and a write must name this server
    there; with no host, or with user info, the target is refused."""
    from conftest import uniq_sku
    s, sku = framing_stack, uniq_sku("ABS")
    body = json.dumps({"sku": sku, "name": "Absolute", "price": 1.5, "stock": 2})

    def create(target, host_header):
        return (f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n{body}").encode()

    reply = send_raw(s, create("http://evil.example/products", host(s)))
    assert statuses(reply) == [421], reply[:600]
    assert b"the request target's host 'evil.example'" in reply, reply[:600]
    assert products_with_sku(s, sku) == 0
    reply = send_raw(s, create(f"HTTP://{host(s)}/products", "evil.example"))
    assert statuses(reply) == [201], reply[:600]
    _, fields, view = head_and_problem(reply)
    assert fields["location"] == f"/products/{view['id']}", fields
    for target in (f"http://{host(s)}/products/{view['id']}", f"http://{host(s)}/products/"
                   f"by-sku/{sku}?x=1", f"https://localhost/products/{view['id']}"):
        reply = send_raw(s, f"GET {target} HTTP/1.1\r\nHost: {host(s)}\r\nConnection: close"
                         "\r\n\r\n".encode())
        assert statuses(reply) == [200] and sku.encode() in reply, (target, reply[:600])
    reply = send_raw(s, f"GET http://{host(s)} HTTP/1.1\r\nHost: {host(s)}\r\n"
                     "Connection: close\r\n\r\n".encode())
    assert statuses(reply) == [404], reply[:600]  # the path "/", which has no route
    for target in ("http:///health", f"http://me@{host(s)}/health"):
        reply = send_raw(s, f"GET {target} HTTP/1.1\r\nHost: {host(s)}\r\n"
                         "Connection: close\r\n\r\n".encode())
        assert statuses(reply) == [400], (target, reply[:600])
        _, fields, problem = head_and_problem(reply)
        assert fields["content-type"] == "application/problem+json", fields
        assert "absolute URI" in problem["detail"], problem


@pytest.mark.parametrize("request_text,slug,detail", [
    ("POST /products HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
     "Content-Length: 5\r\n\r\n[nope", "malformed-body", None),
    ("GET /catalog?limit=0 HTTP/1.1\r\nHost: {host}\r\n\r\n", "invalid-query", "limit"),
    ("POST /products/{id}/stock HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
     "If-Match: W/\"1\"\r\nContent-Length: 11\r\n\r\n{{\"delta\":1}}", "invalid-header", "If-Match"),
], ids=["bad-json", "bad-limit", "bad-if-match"])
def test_handler_400s_keep_their_own_problem(stack, request_text, slug, detail):
    """The error documents for h2o's 400 are on the fallback path only: the handlers' own
    400s keep their type and detail, and the connection stays open."""
    _, v = stack.create()
    reply = send_raw(stack, request_text.format(host=host(stack), id=v["id"]).encode()
                     + f"GET /health HTTP/1.1\r\nHost: {host(stack)}\r\nConnection: close\r\n\r\n"
                     .encode())
    assert statuses(reply) == [400, 200], reply[:800]
    first = reply.split(b"HTTP/1.1 200")[0]
    line, fields, problem = head_and_problem(first)
    assert fields.get("content-type") == "application/problem+json", fields
    assert problem["type"] == f"urn:catalogd:problem:{slug}", problem
    assert "framing" not in problem["detail"] and problem["detail"], problem
    if detail:
        assert detail in problem["detail"], problem


# ---------------------------------------------------------------------------------------------
# while a request waits for its answer (on Redis, on the writer), its connection stays polled
# but is not read (conn_guard_request_taken): what the client sends meanwhile is read, and
# answered, once that answer is out


def test_a_request_pipelined_while_one_waits_is_answered_after_it(fresh):
    from conftest import send_while_a_request_waits
    s = connect(fresh, timeout=10)
    try:
        busy = send_while_a_request_waits(fresh, s, lambda sock: sock.sendall(
            f"GET /health HTTP/1.1\r\nHost: {host(fresh)}\r\nConnection: close\r\n\r\n"
            .encode()))
        reply = read_until_closed(s, 8.0)
    finally:
        s.close()
    assert busy < 0.2, f"the server used {busy:.2f} s of CPU in 0.5 s while the request waited"
    assert statuses(reply) in ([200, 200], [503, 200]), reply[:800]
    assert reply.endswith(requests.get(fresh.url("/health"), timeout=5).content), reply[-300:]


def test_a_client_that_closes_while_its_request_waits_gets_its_answer(fresh):
    import socket
    from conftest import send_while_a_request_waits
    s = connect(fresh, timeout=10)
    try:
        busy = send_while_a_request_waits(fresh, s, lambda sock: sock.shutdown(socket.SHUT_WR))
        reply = read_until_closed(s, 8.0)
    finally:
        s.close()
    assert busy < 0.2, f"the server used {busy:.2f} s of CPU in 0.5 s while the request waited"
    assert statuses(reply) in ([200], [503]), reply[:800]
    assert requests.get(fresh.url("/health"), timeout=5).status_code == 200


def test_a_malformed_head_sent_while_a_request_waits_gets_a_problem(fresh):
    from conftest import send_while_a_request_waits
    s = connect(fresh, timeout=10)
    try:
        busy = send_while_a_request_waits(
            fresh, s, lambda sock: sock.sendall(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"))
        reply = read_until_closed(s, 8.0)
    finally:
        s.close()
    assert busy < 0.2, f"the server used {busy:.2f} s of CPU in 0.5 s while the request waited"
    assert statuses(reply) in ([200, 400], [503, 400]), reply[:800]
    assert b"application/problem+json" in reply.split(b"HTTP/1.1 400", 1)[1], reply[:1200]

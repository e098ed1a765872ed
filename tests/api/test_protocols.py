"""Every protocol h2o can speak on the listener, not only the one catalogd means to serve: no
cleartext HTTP/2 (neither by prior knowledge nor by Upgrade: h2c), and HTTP/1 framing that a
proxy and catalogd cannot read differently (request smuggling). Raw sockets, so that nothing
in a client library tidies up the bytes on the wire."""
import shutil
import socket
import subprocess
import time

import pytest

# The client connection preface of RFC 9113 section 3.4, then an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect(stack, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", stack.server.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_until_closed(sock, deadline_s=5.0):
    """Everything the server sends until it closes its side, or until the deadline."""
    got = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got


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

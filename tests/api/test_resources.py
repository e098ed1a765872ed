"""Resource bounds an attacker pushes on: the bytes of an unfinished request head (cut at
--max-header-bytes as they arrive, not after h2o has buffered 412 KiB of them), measured in
catalogd's own RSS; and file descriptors (the process's open-file limit, under prlimit).
Every load here is bounded in count and in time, and only against 127.0.0.1."""
import os
import re
import select
import shutil
import socket
import subprocess
import time

import pytest
import requests

from conftest import Server, Stack, wait_until


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def cpu_seconds(pid):
    """User + system CPU time of the process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def connect(port, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_until_closed(sock, deadline_s=5.0):
    got = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        got += chunk
    return got


# ---------------------------------------------------------------------------------------------
# an unfinished head is cut at --max-header-bytes


def endless_head(stack):
    return f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\nX-Pad: ".encode()


def test_an_unfinished_head_over_the_limit_gets_431_at_once(stack):
    s = connect(stack.server.port)
    try:
        s.sendall(endless_head(stack) + b"a" * 20000)  # no end of head, and more than 16 KiB
        started = time.monotonic()
        reply = read_until_closed(s, 5.0)
        took = time.monotonic() - started
    finally:
        s.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), reply[:300]
    assert took < 2.0, took  # not after the idle timeout
    assert b"content-type: application/problem+json" in head.lower(), head
    assert b"x-request-id: " in head.lower() and b"connection: close" in head.lower(), head
    assert b"16384 bytes" in body and b"headers-too-large" in body, body
    wait_until(lambda: "GET /health HTTP/1.1 431" in stack.server.stderr_tail(20000), 5,
               what="a log line for the cut head")


def test_heads_are_cut_on_every_request_of_a_connection(stack):
    """The bound holds after responses too (h2o starts reading anew for each request), for a
    head that arrives later and for one pipelined behind a request."""
    host = f"127.0.0.1:{stack.server.port}"
    ok = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    s = connect(stack.server.port)
    try:
        for _ in range(2):
            s.sendall(ok)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(endless_head(stack) + b"b" * 20000)
        assert read_until_closed(s).startswith(b"HTTP/1.1 431")
    finally:
        s.close()
    s = connect(stack.server.port)
    try:
        s.sendall(ok + endless_head(stack) + b"c" * 20000)
        reply = read_until_closed(s)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"HTTP/1.1 431" in reply, reply[:600]


def test_endless_heads_do_not_grow_memory(stack_factory):
    """300 connections each send 400 KB of one header line that never ends. h2o alone holds
    each until its own limit (412 KiB): about 150 MB in all. Cut at 16 KiB, they cost little."""
    if "ASAN_OPTIONS" in os.environ:
        pytest.skip("under AddressSanitizer, RSS counts its quarantine of freed memory")
    s = stack_factory("rss")
    pid = s.server.proc.pid
    n, per_connection = 300, 400_000
    assert requests.get(s.url("/health"), timeout=2).status_code == 200
    before = rss_kib(pid)
    socks, sent = [], {}
    deadline = time.monotonic() + 30
    try:
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", s.server.port), timeout=3)
            c.setblocking(False)
            socks.append(c)
            sent[c] = 0
        start = endless_head(s)
        chunk = b"a" * 65536
        while sent and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(sent), [], 0.5)
            for c in writable:
                data = start if sent[c] == 0 else chunk[:per_connection - sent[c]]
                try:
                    sent[c] += c.send(data)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # cut by the server
                    del sent[c]
                    continue
                if sent[c] >= per_connection:
                    del sent[c]
        time.sleep(1.0)
        after = rss_kib(pid)
    finally:
        for c in socks:
            c.close()
    grown_mib = (after - before) / 1024
    print(f"\n{n} connections x {per_connection} bytes of an endless header: RSS "
          f"{before / 1024:.1f} MiB -> {after / 1024:.1f} MiB (+{grown_mib:.1f} MiB)")
    assert grown_mib < 40, grown_mib
    assert requests.get(s.url("/health"), timeout=5).status_code == 200

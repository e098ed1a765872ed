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

from conftest import (Server, Stack, cpu_seconds, raw_connect, read_until_closed, wait_until,
                      write_lock)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))




# ---------------------------------------------------------------------------------------------
# an unfinished head is cut at --max-header-bytes


def endless_head(stack):
    return f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\nX-Pad: ".encode()


def test_an_unfinished_head_over_the_limit_gets_431_at_once(stack):
    s = raw_connect(stack.server.port)
    try:
        s.sendall(endless_head(stack).replace(b"X-Pad: ", b"X-Request-Id: cut-head-1\r\nX-Pad: ")
                  + b"a" * 20000)  # no end of head, and more than 16 KiB
        started = time.monotonic()
        reply = read_until_closed(s, 5.0)
        took = time.monotonic() - started
    finally:
        s.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), reply[:300]
    assert took < 2.0, took  # not after the idle timeout
    assert b"content-type: application/problem+json" in head.lower(), head
    assert b"x-request-id: cut-head-1" in head.lower(), head  # the client's, as always
    assert b"connection: close" in head.lower(), head
    assert b"16384 bytes" in body and b"headers-too-large" in body, body
    wait_until(lambda: "request GET /health 431" in stack.server.stderr_tail(20000), 5,
               what="a log line for the cut head")


def test_heads_are_cut_on_every_request_of_a_connection(stack):
    """The bound holds after responses too (h2o starts reading anew for each request), for a
    head that arrives later and for one pipelined behind a request."""
    host = f"127.0.0.1:{stack.server.port}"
    ok = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    s = raw_connect(stack.server.port)
    try:
        for _ in range(2):
            s.sendall(ok)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(endless_head(stack) + b"b" * 20000)
        assert read_until_closed(s).startswith(b"HTTP/1.1 431")
    finally:
        s.close()
    s = raw_connect(stack.server.port)
    try:
        s.sendall(ok + endless_head(stack) + b"c" * 20000)
        reply = read_until_closed(s)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"HTTP/1.1 431" in reply, reply[:600]


def test_requests_pipelined_too_far_ahead_close_the_connection_with_a_log_line(stack_factory):
    """At most twice --max-header-bytes + --max-body-bytes may be read ahead of the request
    being answered: past that the connection is closed (no request is left to answer with an
    error), one warning says why, and other connections are served as before."""
    s = stack_factory("ahead", extra_args=["--max-header-bytes", "1024",
                                           "--max-body-bytes", "1024"])
    ok = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{s.server.port}\r\n\r\n".encode()
    assert len(ok) * 1000 > 10 * 2 * (1024 + 1024)
    sock = raw_connect(s.server.port)
    try:
        sock.sendall(ok * 1000)
        reply = read_until_closed(sock, 5.0)
    finally:
        sock.close()
    assert reply.count(b"HTTP/1.1 200") < 1000, len(reply)
    wait_until(lambda: "ahead of the requests it waits on" in s.server.stderr_tail(20000), 5,
               what="a log line for the connection cut")
    assert "more than 4096 bytes" in s.server.stderr_tail(20000)
    assert requests.get(s.url("/health"), timeout=5).status_code == 200


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


# ---------------------------------------------------------------------------------------------
# file descriptors: --max-connections fits the open-file limit, and running out of descriptors
# makes catalogd wait, not spin


class LimitedServer(Server):
    """catalogd started under prlimit with an open-file limit of "nofile" (soft and hard)."""

    def __init__(self, *args, nofile, **kwargs):
        super().__init__(*args, **kwargs)
        self.nofile = nofile

    def command(self):
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}", *super().command()]


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def hold_connections(port, n, deadline_s=10.0):
    """Opens up to n connections (each waits in the kernel's backlog if it is not accepted);
    returns them."""
    held = []
    end = time.monotonic() + deadline_s
    for _ in range(n):
        if time.monotonic() > end:
            break
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    return held


def cpu_used_while(pid, seconds):
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def serving_server_pid(server):
    """The catalogd process (prlimit execs it, so the pid is the same)."""
    return server.proc.pid


@pytest.mark.skipif(not shutil.which("prlimit"), reason="prlimit (util-linux) is not installed")
def test_max_connections_is_clamped_to_the_open_file_limit():
    stack = Stack("nofile")
    stack.server = LimitedServer(stack.tmp, stack.redis.url, stack.db, nofile=256)
    try:
        stack.start()
        pid = serving_server_pid(stack.server)
        with open(f"/proc/{pid}/limits") as f:
            assert re.search(r"Max open files\s+256\s+256", f.read())
        held = hold_connections(stack.server.port, 400)
        try:
            assert len(held) == 400
            time.sleep(0.5)
            used = cpu_used_while(pid, 3.0)
            print(f"\n400 connections held under an open-file limit of 256: {used:.2f} CPU s "
                  f"in 3 s, {open_fds(pid)} descriptors open")
            assert used < 0.6, used
            assert open_fds(pid) < 256
            log = stack.server.stderr_tail(20000)
            assert "open-file limit" in log and "--max-connections" in log, log
        finally:
            for s in held:
                s.close()
        started = time.monotonic()
        assert requests.get(stack.url("/health"), timeout=5).status_code == 200
        assert time.monotonic() - started < 2
    finally:
        stack.stop()


@pytest.mark.skipif(not shutil.which("prlimit"), reason="prlimit (util-linux) is not installed")
def test_running_out_of_descriptors_pauses_accepting_instead_of_spinning(stack_factory):
    s = stack_factory("emfile")
    pid = s.server.proc.pid
    limit = open_fds(pid) + 16
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True,
                   timeout=10)
    held = hold_connections(s.server.port, 120)
    try:
        time.sleep(0.5)
        used = cpu_used_while(pid, 3.0)
        print(f"\n120 connections with {limit} descriptors allowed: {used:.2f} CPU s in 3 s")
        assert used < 0.6, used
    finally:
        for c in held:
            c.close()
    # descriptors free again: catalogd accepts again by itself
    wait_until(lambda: requests.get(s.url("/health"), timeout=2).status_code == 200, 10,
               what="a request served after the descriptors came back")
    assert "cannot accept" in s.server.stderr_tail(200000)


# ---------------------------------------------------------------------------------------------
# the writer's queue has a bound of its own (--max-queued-commands): without one, only
# --max-connections bounded it (a connection keeps its slot until its command is answered,
# even when its client is gone), about 16 KB a command


def scrape(stack, name):
    for line in requests.get(stack.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def fire_and_forget_create(stack, i):
    import json
    body = json.dumps({"sku": f"Q-{i}-{time.monotonic_ns()}", "name": "Queued", "price": 1,
                       "stock": 1}).encode()
    with socket.create_connection(("127.0.0.1", stack.server.port), timeout=2) as c:
        c.sendall(f"POST /products HTTP/1.1\r\nHost: 127.0.0.1:{stack.server.port}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode() + body)


def test_the_writer_queue_has_a_bound_with_a_503(stack_factory):
    s = stack_factory("queue", extra_args=["--max-queued-commands", "64",
                                           "--max-connections", "100000"])
    pid = s.server.proc.pid
    assert scrape(s, "catalogd_writer_queue_limit") == 64
    before = rss_kib(pid)
    with write_lock(s.db):  # the writer waits (SQLite: 2 s) per batch, then fails it
        refused = None
        deadline = time.monotonic() + 10
        i = 0
        while refused is None and time.monotonic() < deadline:
            for _ in range(200):  # clients that send a command and go away
                fire_and_forget_create(s, i)
                i += 1
            started = time.monotonic()
            r = requests.post(s.url("/products"), timeout=10, data='{"sku":"PROBE","name":"p",'
                              '"price":1,"stock":1}', headers={"Content-Type": "application/json"})
            if r.status_code == 503 and "write-queue-full" in r.text:
                refused = (r, time.monotonic() - started)
        assert refused, "no command was refused for a full queue"
        r, took = refused
        assert r.headers["Retry-After"] == "1" and took < 1.0, (r.headers, took)
        assert r.headers["Content-Type"] == "application/problem+json" and r.headers["X-Request-Id"]
        assert scrape(s, "catalogd_writer_queue_depth") <= 64
        grown_mib = (rss_kib(pid) - before) / 1024
        print(f"\n{i} commands sent and abandoned at a locked write model, queue bound 64: "
              f"RSS +{grown_mib:.1f} MiB, {open_fds(pid)} descriptors open")
        assert grown_mib < 20, grown_mib
    wait_until(lambda: scrape(s, "catalogd_writer_queue_depth") == 0, 15,
               what="the queue to drain once the write model is free")
    assert s.create()[0].status_code == 201

#!/usr/bin/env python3
"""sync_figures.py - the sync figures of issue 3, measured on this machine:

1. catch-up: a steady write load runs while Redis is away for OUTAGE seconds (frozen with
   SIGSTOP, then SIGCONT: an outage that keeps Redis' data), and again with Redis stopped and
   restarted empty (its data lost: the projector must rebuild); reported is the time from
   Redis' return until the read model holds every event committed before that moment.
2. rebuild of BIG_N products with `catalogd rebuild` (wall time), then
3. `catalogd verify` of the same (wall time).

Writes bench/results/sync.json; bench/report.py puts it into BENCHMARKS.md.
Usage: bench/sync_figures.py [--outage 30] [--rate 500] [--big-n 1000000]
Loopback only; every wait is bounded; it stops only the processes it started.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "build" / "catalogd"
PRELOAD_LUA = ROOT / "bench" / "lua" / "preload.lua"


def free_port():
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_until(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def http_json(url, method="GET", body=None, timeout=2.0):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


class Stack:
    """A private redis-server and catalogd in a temp dir."""

    def __init__(self, workdir, threads=2):
        self.dir = Path(workdir)
        self.redis_port = free_port()
        self.port = free_port()
        self.db = self.dir / "catalog.db"
        self.threads = threads
        self.redis = None
        self.server = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self):
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._redis_answers(), 10, "redis-server")

    def _redis_answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop_redis(self):
        if self.redis and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGCONT)
            self.redis.terminate()
            self.redis.wait(10)

    def start_server(self):
        self.server = subprocess.Popen(
            [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--db", str(self.db),
             "--redis", self.redis_url, "--threads", str(self.threads), "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "catalogd.stderr", "ab"))
        wait_until(lambda: http_json(self.base + "/ready")[0] == 200, 20, "catalogd /ready")

    def stop(self):
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.stop_redis()

    def projection(self):
        status, body = http_json(self.base + "/admin/projection")
        return body if status == 200 else None

    def cli(self, command, timeout):
        started = time.monotonic()
        p = subprocess.run([str(BIN), command, "--db", str(self.db), "--redis", self.redis_url],
                           capture_output=True, text=True, timeout=timeout)
        return time.monotonic() - started, p


class WriteLoad:
    """Creates products at about "rate" per second from a few threads until stopped."""

    def __init__(self, base, rate, threads=4):
        self.base, self.rate, self.threads = base, rate, threads
        self.stop_event = threading.Event()
        self.acknowledged = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.workers = []

    def _run(self, worker):
        interval = self.threads / self.rate
        n = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            n += 1
            status, _ = http_json(self.base + "/products", "POST",
                                  {"sku": f"L{worker}-{os.getpid()}-{n}", "name": "Load",
                                   "price": 1.5, "stock": 1}, timeout=5)
            with self.lock:
                if status == 201:
                    self.acknowledged += 1
                else:
                    self.errors += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def start(self):
        for w in range(self.threads):
            t = threading.Thread(target=self._run, args=(w,), daemon=True)
            t.start()
            self.workers.append(t)

    def stop(self):
        self.stop_event.set()
        for t in self.workers:
            t.join(10)


def converge_after_return(stack, outage, restore, label):
    """While a write load runs, takes Redis away for "outage" s, brings it back with
    "restore", and measures how long until every event committed before the return is in
    Redis."""
    time.sleep(2)
    away_at = time.monotonic()
    if label == "frozen":
        stack.redis.send_signal(signal.SIGSTOP)
    else:
        stack.stop_redis()
    time.sleep(outage)
    head_at_return = stack.projection()["head"]
    returned_at = time.monotonic()
    restore()

    def caught_up():
        p = stack.projection()
        return p and p["checkpoint"] >= head_at_return and p["state"] in ("live", "catching_up")
    wait_until(caught_up, 120, f"the read model to catch up ({label})")
    took = time.monotonic() - returned_at
    return {"outage_s": round(returned_at - away_at, 2), "converged_s": round(took, 3),
            "head_at_return": head_at_return}


def catch_up_figures(args, workdir):
    results = {}
    for label in ("frozen", "restarted_empty"):
        stack = Stack(Path(workdir) / label)
        stack.dir.mkdir()
        stack.start_redis()
        stack.start_server()
        load = WriteLoad(stack.base, args.rate)
        load.start()
        try:
            if label == "frozen":
                restore = lambda: stack.redis.send_signal(signal.SIGCONT)  # noqa: E731
            else:
                restore = stack.start_redis
            figure = converge_after_return(stack, args.outage, restore, label)
        finally:
            load.stop()
        wait_until(lambda: stack.projection()["lag_events"] == 0, 60, "lag 0")
        took, verify = stack.cli("verify", 300)
        figure.update({"write_rate": args.rate, "acknowledged": load.acknowledged,
                       "command_errors": load.errors, "verify_exit": verify.returncode})
        results[label] = figure
        print(f"catch-up ({label}): {figure}", flush=True)
        stack.stop()
    return results


def big_figures(args, workdir):
    stack = Stack(Path(workdir) / "big", threads=2)
    stack.dir.mkdir()
    stack.start_redis()
    stack.start_server()
    try:
        started = time.monotonic()
        ids_file = stack.dir / "ids.txt"
        wrk = subprocess.run(
            ["wrk", "-t1", "-c64", f"-d{args.preload_deadline}s", "--timeout", "30s",
             "-s", str(PRELOAD_LUA), stack.base, "--", str(args.big_n), "BIG", str(ids_file)],
            capture_output=True, text=True, timeout=args.preload_deadline + 60)
        preload_s = time.monotonic() - started
        products = stack.projection()["head"]
        print(f"preloaded {products} products in {preload_s:.1f} s "
              f"({products / preload_s:.0f}/s)", flush=True)
        wait_until(lambda: stack.projection()["lag_events"] == 0, 120, "lag 0 after preload")
        rebuild_s, rebuild = stack.cli("rebuild", 600)
        print(f"rebuild: {rebuild_s:.2f} s ({rebuild.stdout.strip()})", flush=True)
        switched = re.search(r"after ([0-9.]+) s", rebuild.stdout)
        dropped = re.search(r"dropped in ([0-9.]+) s", rebuild.stdout)
        verify_s, verify = stack.cli("verify", 600)
        print(f"verify: {verify_s:.2f} s ({verify.stdout.strip()[-200:]})", flush=True)
        redis_memory = None
        try:
            info = subprocess.run(["redis-cli", "-p", str(stack.redis_port), "INFO", "memory"],
                                  capture_output=True, text=True, timeout=10).stdout
            for line in info.splitlines():
                if line.startswith("used_memory:"):
                    redis_memory = int(line.split(":")[1])
        except (OSError, subprocess.SubprocessError):
            pass
        return {"products": products, "preload_s": round(preload_s, 1),
                "rebuild_s": round(rebuild_s, 2), "rebuild_exit": rebuild.returncode,
                "rebuild_switched_s": float(switched.group(1)) if switched else None,
                "rebuild_drop_s": float(dropped.group(1)) if dropped else None,
                "rebuild_includes_grace_s": 2,
                "verify_s": round(verify_s, 2), "verify_exit": verify.returncode,
                "redis_used_memory": redis_memory,
                "redis_bytes_per_product": round(redis_memory / products) if redis_memory else None,
                "wrk_tail": wrk.stdout.strip().splitlines()[-1:] if wrk.stdout else []}
    finally:
        stack.stop()


def measured_commit():
    """The commit whose build is measured, as report.py names the table's."""
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src",
                                "Makefile"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev or "?") + (" + uncommitted changes in src/ or Makefile" if dirty.strip() else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=30)
    parser.add_argument("--rate", type=float, default=500, help="creates per second")
    parser.add_argument("--big-n", type=int, default=1_000_000)
    parser.add_argument("--preload-deadline", type=int, default=900)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-catch-up", action="store_true")
    args = parser.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run make first")
    workdir = tempfile.mkdtemp(prefix="catalogd-sync-")
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "command": "bench/sync_figures.py " + " ".join(sys.argv[1:]),
               "catalogd": measured_commit()}
    try:
        if not args.skip_catch_up:
            results["catch_up"] = catch_up_figures(args, workdir)
        if not args.skip_big:
            results["big"] = big_figures(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = ROOT / "bench" / "results" / "sync.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The processes of a chaos run: one redis-server and one catalogd, private to the run, on
loopback ports, restarted on the same ports as the faults demand. In the PostgreSQL mode
(--backend postgresql): one private PostgreSQL server (a database of its own), one
redis-server and N catalogd instances, each on its own port with its own --instance-id, all
with the same --redis-prefix.

Built on the API tests' RedisProc, Server and PgServer (tests/api/conftest.py). Every process is
signalled through its Popen object only (so never a PID that has been reused), and stop_all()
stops each one the run started, by its PID, whatever happened.

Ports: each port is held for the whole run by a "guard" socket, bound but never listening,
with SO_REUSEADDR (and SO_REUSEPORT for catalogd's, which binds with SO_REUSEPORT). redis-server
and catalogd can still bind and listen there, but no other process's ordinary bind can take the
port while one of ours is down between a kill and its restart.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from conftest import BIN, PgServer, RedisProc, Server, free_port  # noqa: E402

HEALTH_DEADLINE = 15.0   # s for a started catalogd to answer /health
TERM_DEADLINE = 10.0     # s for SIGTERM to stop catalogd (contract: 5 s in flight + 2 s drain)


class InfraError(Exception):
    """The test's own machinery failed (not catalogd): the run proves nothing either way."""


def guard_port(port, reuseport):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    return s


def guarded_free_port(reuseport):
    for _ in range(50):
        port = free_port()
        try:
            return port, guard_port(port, reuseport)
        except OSError:
            continue
    raise InfraError("no free port could be guarded")


class ChaosRedis(RedisProc):
    def __init__(self, workdir):
        port, self.guard = guarded_free_port(reuseport=False)
        super().__init__(workdir, port)
        self.lock = threading.RLock()  # start / kill / restart
        self.expected_down = False
        self.closed = False  # set by Cluster.stop_all: nothing starts any more

    def start(self):
        last = None
        for _ in range(5):
            if self.closed:
                raise InfraError("the run is stopping")
            try:
                super().start()
                return
            except AssertionError as exc:  # exited or no PONG within the deadline
                last = exc
                self.kill()
                time.sleep(1.0)
        raise InfraError(f"redis-server would not start on port {self.port}: {last}")

    def signal(self, sig):
        """Signals the running redis-server, if any; returns its Popen (or None)."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(sig)  # Popen checks that this child has not been reaped
            return p
        return None

    def kill(self):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise InfraError(f"redis-server {p.pid} survived SIGKILL for 10 s") from None
        self.proc = None

    def stop(self):
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a frozen Redis would never act on SIGTERM
        super().stop()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Life:
    """One catalogd process: when it ran and how much memory it held."""

    def __init__(self, pid, t_start):
        self.pid = pid
        self.t_start = t_start
        self.t_end = None
        self.how_ended = None
        self.rss = []  # (t, kB)


class ChaosCatalogd(Server):
    def __init__(self, workdir, redis_url, db_path, on_violation, t0, name=None,
                 extra_args=()):
        super().__init__(workdir, redis_url, db_path, extra_args)
        self.name = name  # its --instance-id (PostgreSQL mode), None for the lone SQLite one
        self.port, self.guard = guarded_free_port(reuseport=True)
        # every life appends to one file
        self.stderr_path = self.dir / ("catalogd.stderr" if name is None
                                       else f"catalogd-{name}.stderr")
        self.stdout_name = "catalogd.stdout" if name is None else f"catalogd-{name}.stdout"
        self.on_start = None  # PostgreSQL mode: a context manager held while starting
        self.lock = threading.RLock()
        self.expected_down = True
        self.on_violation = on_violation
        self.t0 = t0
        self.lives = []
        self.life = None
        self.closed = False  # set by Cluster.stop_all: nothing starts any more

    def _tail_since(self, offset, n=3000):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self):
        """Starts catalogd and waits for /health. A catalogd that exits or does not answer is
        a violation (the contract: /health is 200 while the process runs). In the PostgreSQL
        mode it waits while PostgreSQL is stopped by a fault (on_start)."""
        with self.lock, (self.on_start or contextlib.nullcontext()):
            if self.closed:
                return False
            if not BIN.exists():
                raise InfraError(f"{BIN} does not exist (run make)")
            offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
            out = open(self.dir / self.stdout_name, "ab")
            err = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                         cwd=str(self.dir))
            out.close()
            err.close()
            self.life = Life(self.proc.pid, time.monotonic())
            self.lives.append(self.life)
            self.expected_down = False
            deadline = time.monotonic() + HEALTH_DEADLINE
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self._ended(f"exited at startup with {self.proc.returncode}")
                    self.on_violation("catalogd-startup",
                                      f"{self.label()} exited with {self.proc.returncode} at startup",
                                      self._tail_since(offset).splitlines()[-15:])
                    return False
                try:
                    if requests.get(self.base + "/health", timeout=1).status_code == 200:
                        return True
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            self.on_violation("catalogd-startup",
                              f"{self.label()} (pid {self.proc.pid}) did not answer /health within "
                              f"{HEALTH_DEADLINE:.0f} s of its start",
                              self._tail_since(offset).splitlines()[-15:])
            return False

    def _ended(self, how):
        if self.life is not None and self.life.t_end is None:
            self.life.t_end = time.monotonic()
            self.life.how_ended = how

    def kill9(self):
        with self.lock:
            self.expected_down = True
            p = self.proc
            if p is None:
                return None
            if p.poll() is None:
                p.kill()
            rc = p.wait(timeout=10)
            self._ended("SIGKILL")
            self.proc = None
            return rc

    def sigterm(self, why):
        """SIGTERM; the contract says it exits 0 within 5 s of in-flight work plus a 2 s drain.
        Returns (exit code, seconds); a hang or another exit code is a violation."""
        with self.lock:
            self.expected_down = True
            p = self.proc
            if p is None:
                return None, 0.0
            offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
            t = time.monotonic()
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=TERM_DEADLINE)
            except subprocess.TimeoutExpired:
                self.on_violation("sigterm-hang",
                                  f"{self.label()} (pid {p.pid}) still ran {TERM_DEADLINE:.0f} s after "
                                  f"SIGTERM ({why}); killed with SIGKILL",
                                  self._tail_since(offset).splitlines()[-10:])
                p.kill()
                rc = p.wait(timeout=10)
            dt = time.monotonic() - t
            if rc != 0 and rc != -signal.SIGKILL:
                self.on_violation("sigterm-exit-status",
                                  f"{self.label()} (pid {p.pid}) exited with {rc} after SIGTERM ({why}), "
                                  "not 0", self._tail_since(offset).splitlines()[-10:])
            self._ended(f"SIGTERM -> {rc}")
            self.proc = None
            return rc, dt

    def check_alive(self):
        """Called every second: a catalogd that exited without being told to is a violation;
        it is started again so that the run goes on."""
        with self.lock:
            p = self.proc
            if self.expected_down or p is None or p.poll() is None:
                return
            rc = p.returncode
            self._ended(f"exited by itself with {rc}")
            self.proc = None
            self.on_violation("catalogd-crashed",
                              f"{self.label()} (pid {p.pid}) exited by itself with {rc} "
                              f"(t={time.monotonic() - self.t0:.1f}s)",
                              self.stderr_tail(3000).splitlines()[-15:])
            self.start()

    def sample_rss(self):
        with self.lock:
            p, life = self.proc, self.life
        if p is None or life is None or life.t_end is not None:
            return
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        life.rss.append((time.monotonic(), int(line.split()[1])))
                        return
        except (OSError, ValueError):
            pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def label(self):
        return "catalogd" if self.name is None else f"catalogd {self.name}"

    def signal(self, sig):
        """Signals the running process, if any; returns its Popen (or None)."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            return p
        return None


class ChaosPg(PgServer):
    """The run's private PostgreSQL, on a guarded port, stopped and started by the faults."""

    def __init__(self):
        port, self.guard = guarded_free_port(reuseport=False)
        super().__init__(port)
        self.lock = threading.RLock()  # held while it is stopped, and by whatever needs it up
        self.closed = False

    def start(self):
        if self.closed:
            raise InfraError("the run is stopping")
        try:
            return super().start()
        except AssertionError as exc:
            raise InfraError(f"PostgreSQL would not start on port {self.port}: {exc}") from None


class Cluster:
    PREFIX = "catalogd"

    def __init__(self, workdir, on_violation, t0, backend="sqlite", instances=1):
        self.dir = Path(workdir)
        self.backend = backend
        self.redis = ChaosRedis(self.dir)
        self.pg = None
        if backend == "postgresql":
            self.pg = ChaosPg()
            self.db = None  # created in start()
            self.instances = []
            self.n_instances = instances
            self.on_violation, self.t0 = on_violation, t0
        else:
            self.db = self.dir / "catalog.db"
            self.instances = [ChaosCatalogd(self.dir, self.redis.url, self.db, on_violation,
                                            t0)]
        self.catalogd = self.instances[0] if self.instances else None
        self.children_lock = threading.Lock()
        self.children = []  # other processes the run starts (catalogd rebuild / verify)
        self.stop_event = threading.Event()
        self.monitor = threading.Thread(target=self._monitor, name="monitor", daemon=True)
        self.closed = False
        self.notes = []  # things that happened outside the plan (a Redis that died by itself)

    def base(self):
        return self.catalogd.base

    def targets(self):
        """(instance, base URL) of every instance expected up (all of them if none is)."""
        up = [c for c in self.instances if not c.expected_down]
        return [(c.name, c.base) for c in (up or self.instances)]

    def by_name(self, name):
        for c in self.instances:
            if c.name == name:
                return c
        return None

    @property
    def multi(self):
        return self.backend == "postgresql"

    def start(self):
        if self.pg is not None:
            self.pg.start()
            self.db = self.pg.create_database("chaos")
            self.instances = [
                ChaosCatalogd(self.dir, self.redis.url, self.db, self.on_violation, self.t0,
                              name=f"i{k}", extra_args=["--instance-id", f"i{k}",
                                                        "--redis-prefix", self.PREFIX])
                for k in range(self.n_instances)]
            self.catalogd = self.instances[0]
            for c in self.instances:
                c.on_start = self.pg.lock  # never started while PostgreSQL is stopped
        self.redis.start()
        for c in self.instances:
            if not c.start():
                raise InfraError(f"{c.label()} did not start on a fresh database and Redis:\n"
                                 + c.stderr_tail())
        self.monitor.start()

    def _monitor(self):
        while not self.stop_event.wait(1.0):
            try:
                for c in self.instances:
                    c.sample_rss()
                    c.check_alive()
                if not self.redis.expected_down and not self.redis.alive():
                    with self.redis.lock:
                        if not self.redis.expected_down and not self.redis.alive():
                            rc = self.redis.proc.returncode if self.redis.proc else None
                            self.notes.append(f"redis-server exited by itself ({rc}); "
                                              "started again")
                            self.redis.start()  # not catalogd's doing: just go on
            except Exception as exc:  # noqa: BLE001 - reported; the monitor must go on
                print(f"monitor: {exc!r}", file=sys.stderr)

    def redis_client(self, timeout=2.0):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout)

    def _spawn(self, args, stdout):
        with self.children_lock:
            if self.closed:
                raise InfraError("the run is stopping")
            extra = ["--redis-prefix", self.PREFIX] if self.pg is not None else []
            p = subprocess.Popen([str(BIN), *args, "--db", str(self.db), "--redis",
                                  self.redis.url, *extra], stdout=stdout,
                                 stderr=subprocess.STDOUT, cwd=str(self.dir))
            self.children.append(p)
        return p

    def cli(self, args, timeout):
        """Runs `catalogd <args> --db --redis` as a registered child; returns (rc, output)."""
        out_path = self.dir / f"cli-{time.monotonic_ns()}.out"
        with open(out_path, "wb") as out:
            p = self._spawn(args, out)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
            rc = None
        with self.children_lock:
            self.children.remove(p)
        text = out_path.read_text(errors="replace")
        out_path.unlink()
        return rc, text

    def spawn_cli(self, args):
        """Starts `catalogd <args> --db --redis` and returns its Popen (registered)."""
        return self._spawn(args, subprocess.DEVNULL)

    def reap(self, p, timeout):
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait(timeout=10)
        with self.children_lock:
            if p in self.children:
                self.children.remove(p)
        return rc

    def stop_all(self):
        """Stops every process the run started, by its PID; safe to call more than once."""
        self.closed = self.redis.closed = True
        for c in self.instances:
            c.closed = True
        self.stop_event.set()
        if self.monitor.is_alive():
            self.monitor.join(20)
        with self.children_lock:
            children = list(self.children)
        for p in children:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"child {p.pid} survived SIGKILL", file=sys.stderr)
        for c in self.instances:
            with c.lock:
                c.expected_down = True
                if c.proc is not None and c.proc.poll() is None:
                    c.proc.kill()  # SIGKILL ends a frozen (SIGSTOP) process too
                    c.proc.wait(timeout=10)
                c._ended("stopped at the end")
                c.proc = None
        with self.redis.lock:
            self.redis.expected_down = True
            self.redis.stop()
        for s in [self.redis.guard] + [c.guard for c in self.instances]:
            s.close()

    def stop_db(self):
        """PostgreSQL mode: stops the private PostgreSQL (by its PID) and removes its
        directory, after the analysis has read the write model."""
        if self.pg is None:
            return
        self.pg.closed = True
        try:
            self.pg.cleanup()
        finally:
            self.pg.guard.close()

    def pids(self):
        out = []
        if self.redis.proc is not None:
            out.append(self.redis.proc.pid)
        for c in self.instances:
            if c.proc is not None:
                out.append(c.proc.pid)
        return out


def env_note():
    return f"catalogd binary: {BIN}" + (" (CATALOGD_BIN)" if os.environ.get("CATALOGD_BIN")
                                         else "")

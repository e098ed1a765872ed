"""The fault schedule of a chaos run and the faults themselves.

The schedule (when, which fault, its parameters) is a pure function of the seed and the
duration. The driver starts each fault at its time in its own thread, so faults overlap:
Redis may be frozen while catalogd restarts, flushed during a rebuild, squeezed while a key
has the wrong type. Every fault is bounded in time and undoes itself; undo() at the end of the
run repeats whatever could not be undone yet (a restore refused while Redis was frozen or out
of memory). The schedule as it ran (start, end, what happened) is kept for the report.

Keys of the wrong type: the fault swaps a key of the current generation (a view set, the sku
index, the parked-queue index or the checkpoint) for a list, atomically, keeping the
original's DUMP in that list; a list is the wrong type for every one of them. The read model
has no key per product, so each of these is shared by every event: catalogd must stall the
projection (never skip an event) and answer queries 503, not wrong. "Back" restores that
exact original with RESTORE only if the list is still the one the fault put there and its
generation is still the current one (catalogd:gen-v2); otherwise it only deletes its own list,
if still there. A key another fault has broken is never broken again. So the test never
leaves a key of its own, and never puts back a value that something else has replaced
meanwhile.

A command sent to a frozen Redis runs when Redis thaws, even if the test stopped waiting for
its answer: a break or a squeeze whose answer was lost is undone as if it had run.
"""

import random
import signal
import subprocess
import threading
import time

import redis

PREFIX = "catalogd"
GEN_KEY = f"{PREFIX}:gen-v2"  # names the current generation (tests/api/conftest.py redis_gen)

# kind: weight. Roughly one fault every MEAN_GAP seconds.
KINDS = {
    "freeze_redis": 15,     # SIGSTOP, then SIGCONT after 0.2-3.5 s
    "restart_redis": 6,     # SIGKILL, 0-2 s down, started again empty on the same port
    "flushall": 6,
    "wrong_type": 16,       # a view set, the skus or parked hash or the checkpoint becomes a
                            # list for 0.3-5 s
    "squeeze_memory": 10,   # maxmemory = used memory (noeviction) for 0.5-4 s
    "kill_catalogd": 5,     # SIGKILL, 0-1.5 s down, started again (same db, same Redis)
    "term_catalogd": 4,     # SIGTERM (must exit 0 in time), 0-1.5 s down, started again
    "rebuild": 16,          # POST /admin/rebuild, 1-3 times in quick succession
    "cli_rebuild": 5,       # `catalogd rebuild`, sometimes killed with SIGKILL part-way
}
# The PostgreSQL mode (one PostgreSQL, one Redis, several instances): the Redis faults, each
# catalogd fault on an instance drawn from the seed, and the faults of the shape itself.
KINDS_PG = {
    "freeze_redis": 12,
    "restart_redis": 5,
    "flushall": 5,
    "wrong_type": 12,
    "squeeze_memory": 8,
    "kill_catalogd": 5,     # SIGKILL of any instance, 0-1.5 s down, started again
    "kill_projector": 5,    # SIGKILL of the projecting instance (/admin/projection), takeover
                            # timed (reported, not asserted), 0-1.5 s down, started again
    "stop_projector": 6,    # SIGSTOP of the projecting instance for 1-4 s, then SIGCONT
    "term_catalogd": 4,     # SIGTERM of any instance (must exit 0 in time), started again
    "pg_restart": 4,        # PostgreSQL fast shutdown, 0-3 s down, started again
    "pg_terminate": 6,      # pg_terminate_backend of every catalogd connection
    "rebuild": 10,          # POST /admin/rebuild on any instance, 1-3 times
    "rebuild_follower": 8,  # POST /admin/rebuild on an instance that does not project
    "cli_rebuild": 4,
    "kill_pubsub": 6,       # CLIENT KILL TYPE pubsub, every 20-200 ms for 0.2-2 s: the
                            # instances' bus subscriptions drop and miss messages
}
RESTARTS = ("kill_catalogd", "term_catalogd", "kill_projector")


def kinds_for(backend):
    return KINDS_PG if backend == "postgresql" else KINDS


MEAN_GAP = 2.5
FIRST_AT = 3.0       # s: let the clients create a few products first
QUIET_TAIL = 3.0     # s before the end of the run with no new fault
RESTARTS_UNTIL = 0.6  # catalogd is killed only in the first 60 % of the run, so that its last
                      # process lives long enough (72 s of 180) for its memory to be judged
UNDO_RETRY = 20.0    # s a fault keeps retrying its own undo before leaving it to undo()

# The list the fault puts in a key's place: MARK (as the scripts below spell it), the fault's
# token, the original's DUMP ("" if there was none) and its PTTL.
MARK = "chaos-wrong-type"
WRONG_TYPE = "list"
# The keys of the current generation it breaks, the view sets most often (every query and
# every event uses them). No key is a product's own: the layout has none.
TARGETS = ["in", "in", "in", "out", "out", "skus", "skus", "parked", "checkpoint"]

BREAK_LUA = """
if redis.call('TYPE', KEYS[1])['ok'] == 'list' and
   redis.call('LINDEX', KEYS[1], 0) == 'chaos-wrong-type' then return 'busy' end
local dump = redis.call('DUMP', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
redis.call('RPUSH', KEYS[2], 'chaos-wrong-type', ARGV[1], dump or '', pttl)
redis.call('RENAME', KEYS[2], KEYS[1])
if dump then return 'there' end
return 'absent'
"""
# The original's DUMP is kept in the list itself, so the key can be put back even when the
# answer to this script was lost (it may run after the client gave up on a frozen Redis).
# A key another fault has already broken is left alone: its DUMP would be that fault's list,
# and putting it "back" would leave a key of the wrong type behind for good.
# RPUSH on a fresh key first: if Redis refuses it (out of memory), nothing has changed yet.

RESTORE_LUA = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'list' or
   redis.call('LINDEX', KEYS[1], 0) ~= 'chaos-wrong-type' or
   redis.call('LINDEX', KEYS[1], 1) ~= ARGV[1] then return 'gone' end
local dump = redis.call('LINDEX', KEYS[1], 2)
if dump ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then
  local pttl = tonumber(redis.call('LINDEX', KEYS[1], 3))
  if pttl < 0 then pttl = 0 end
  redis.call('RESTORE', KEYS[1], pttl, dump, 'REPLACE')
  return 'restored'
end
redis.call('DEL', KEYS[1])
return 'deleted'
"""
# One write either way (RESTORE ... REPLACE, or DEL), so a refusal changes nothing.


def make_schedule(seed, duration, only=None, backend="sqlite"):
    """The faults of a run: [{"i", "at", "kind", "params"}]. "only": the kinds allowed (all
    by default); the times and the choices among the allowed kinds still come from the seed."""
    table = kinds_for(backend)
    rng = random.Random(f"{seed}/schedule" if backend == "sqlite" else f"{seed}/schedule/pg")
    kinds = sorted(k for k in table if only is None or k in only)
    if not kinds:
        return []
    weights = [table[k] for k in kinds]
    late = [k for k in kinds if k not in RESTARTS]
    out = []
    t = FIRST_AT
    while True:
        t += rng.expovariate(1.0 / MEAN_GAP)
        if t > duration - QUIET_TAIL:
            break
        kind = rng.choices(kinds, weights)[0]
        if kind in RESTARTS and t > RESTARTS_UNTIL * duration:
            if not late:
                continue
            kind = rng.choice(late)
        p = {}
        if kind == "freeze_redis":
            p["seconds"] = round(rng.uniform(0.2, 3.5), 2)
        elif kind == "restart_redis":
            p["down"] = round(rng.uniform(0.0, 2.0), 2)
        elif kind == "wrong_type":
            p["target"] = rng.choice(TARGETS)
            p["seconds"] = round(rng.uniform(0.3, 5.0), 2)
        elif kind == "squeeze_memory":
            p["seconds"] = round(rng.uniform(0.5, 4.0), 2)
        elif kind in RESTARTS:
            p["down"] = round(rng.uniform(0.0, 1.5), 2)
        elif kind == "stop_projector":
            p["seconds"] = round(rng.uniform(1.0, 4.0), 2)
        elif kind == "pg_restart":
            p["down"] = round(rng.uniform(0.0, 3.0), 2)
        elif kind == "kill_pubsub":
            p["seconds"] = round(rng.uniform(0.2, 2.0), 2)
            p["every"] = round(rng.uniform(0.02, 0.2), 3)
        elif kind in ("rebuild", "rebuild_follower"):
            p["gaps"] = [round(rng.uniform(0.0, 0.8), 2) for _ in range(rng.randint(1, 3))]
        elif kind == "cli_rebuild":
            p["kill_after"] = round(rng.uniform(0.02, 1.0), 2) if rng.random() < 0.5 else None
        out.append({"i": len(out), "at": round(t, 3), "kind": kind, "params": p})
    return out


class FaultDriver:
    def __init__(self, schedule, cluster, knowledge, history, t0, seed):
        self.schedule = schedule
        self.cluster = cluster
        self.knowledge = knowledge
        self.history = history
        self.t0 = t0
        self.seed = seed
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self.workers = []
        self.lock = threading.Lock()
        self.log = []            # the schedule as it ran: dicts with start, end, notes
        self.broken = {}         # token -> (key, gen): keys that may have the wrong type
        self.frozen = set()      # Popen objects of redis-servers we sent SIGSTOP
        self.errors = []         # exceptions in fault threads (test bugs, reported)
        self.takeovers = []      # s from a kill of the projecting instance to its successor

    # -- driving

    def start(self):
        self.thread.start()

    def _run(self):
        for entry in self.schedule:
            delay = self.t0 + entry["at"] - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                return
            if self.stop_event.is_set():
                return
            rec = {"i": entry["i"], "kind": entry["kind"], "params": entry["params"],
                   "at": entry["at"], "start": None, "end": None, "notes": []}
            with self.lock:
                self.log.append(rec)
            w = threading.Thread(target=self._one, args=(entry, rec), daemon=True,
                                 name=f"fault-{entry['i']}")
            self.workers.append(w)
            w.start()

    def _one(self, entry, rec):
        rng = random.Random(f"{self.seed}/fault/{entry['i']}")
        rec["start"] = time.monotonic() - self.t0
        try:
            getattr(self, "do_" + entry["kind"])(entry["params"], rec, rng)
        except Exception as exc:  # noqa: BLE001 - a test bug: reported, never hidden
            rec["notes"].append(f"ERROR {exc!r}")
            self.errors.append(f"fault {entry['i']} {entry['kind']}: {exc!r}")
        rec["end"] = time.monotonic() - self.t0

    def note(self, rec, text):
        rec["notes"].append(f"t={time.monotonic() - self.t0:.2f}s {text}")

    def stop(self, timeout):
        """No new faults; waits for the running ones to finish (each undoes itself)."""
        self.stop_event.set()
        self.thread.join(5)
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        return [w.name for w in self.workers if w.is_alive()]

    def sleep(self, seconds):
        """A fault's own wait. Not cut short by stop(): a fault always runs its course."""
        time.sleep(seconds)

    # -- Redis process faults

    def do_freeze_redis(self, p, rec, rng):
        r = self.cluster.redis
        with r.lock:
            proc = r.signal(signal.SIGSTOP)
            if proc is not None:
                with self.lock:
                    self.frozen.add(proc)
        if proc is None:
            self.note(rec, "Redis not running: nothing to freeze")
            return
        self.note(rec, f"SIGSTOP redis-server {proc.pid}")
        self.sleep(p["seconds"])
        self._thaw(proc)
        self.note(rec, f"SIGCONT redis-server {proc.pid}")

    def _thaw(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        with self.lock:
            self.frozen.discard(proc)

    def do_restart_redis(self, p, rec, rng):
        r = self.cluster.redis
        with r.lock:
            r.expected_down = True
            old = r.proc.pid if r.proc else None
            r.kill()
            self.note(rec, f"SIGKILL redis-server {old}")
            self.sleep(p["down"])
            r.start()
            r.expected_down = False
            self.note(rec, f"redis-server {r.proc.pid} started empty on the same port")

    # -- Redis data faults

    def _client(self):
        return self.cluster.redis_client(timeout=2.0)

    def do_flushall(self, p, rec, rng):
        c = self._client()
        try:
            c.flushall()
            self.note(rec, "FLUSHALL")
        except redis.ResponseError as exc:
            self.note(rec, f"FLUSHALL refused ({exc})")
        except redis.RedisError as exc:
            self.note(rec, f"FLUSHALL sent, no answer ({exc}): it runs whenever Redis does")
        finally:
            c.close()

    def do_wrong_type(self, p, rec, rng):
        c = self._client()
        token = f"{self.seed}-{rec['i']}"
        try:
            try:
                gen = c.get(GEN_KEY)
            except redis.RedisError as exc:
                self.note(rec, f"skipped: could not read the generation ({exc})")
                return
            if gen is None:
                self.note(rec, "skipped: no current generation")
                return
            gen = gen.decode()
            key = f"{PREFIX}:g{gen}:{p['target']}"
            if key in self.broken_keys():
                self.note(rec, f"skipped: {key} is already broken by another fault")
                return
            with self.lock:  # before sending: the script may run even if its answer is lost
                self.broken[token] = (key, gen)
            try:
                was = c.eval(BREAK_LUA, 2, key, f"chaos-tmp:{token}", token).decode()
            except redis.ResponseError as exc:  # refused (out of memory): nothing changed
                with self.lock:
                    self.broken.pop(token, None)
                self.note(rec, f"skipped: Redis refused to break {key} ({exc})")
                return
            except redis.RedisError as exc:
                self.note(rec, f"{key}: break sent, no answer ({exc}); put back as if it ran")
                was = None
            if was == "busy":
                with self.lock:
                    self.broken.pop(token, None)
                self.note(rec, f"skipped: {key} is already broken by another fault")
                return
            if was is not None:
                self.note(rec, f"{key} is now a {WRONG_TYPE} (was {was})")
        finally:
            c.close()
        self.sleep(p["seconds"])
        self._put_back(token, rec, UNDO_RETRY)

    def _put_back(self, token, rec, patience):
        """Restores (or deletes) one broken key; retries for "patience" seconds."""
        deadline = time.monotonic() + patience
        last = None
        while True:
            with self.lock:
                item = self.broken.get(token)
            if item is None:
                return True
            key, gen = item
            c = self._client()
            try:
                res = c.eval(RESTORE_LUA, 2, key, GEN_KEY, token, gen)
                with self.lock:
                    self.broken.pop(token, None)
                self.note(rec, f"{key}: {res.decode()}")
                return True
            except redis.RedisError as exc:
                last = exc
            finally:
                c.close()
            if time.monotonic() >= deadline:
                self.note(rec, f"{key}: could not put back yet ({last}); left to the end")
                return False
            time.sleep(0.3)

    def do_squeeze_memory(self, p, rec, rng):
        c = self._client()
        try:
            used = c.info("memory")["used_memory"]
            c.config_set("maxmemory-policy", "noeviction")
            c.config_set("maxmemory", used)
            self.note(rec, f"maxmemory {used} (noeviction)")
        except redis.RedisError as exc:
            # a CONFIG SET sent to a frozen Redis still runs when it thaws: undo it regardless
            self.note(rec, f"squeeze failed or unanswered ({exc}); reset afterwards anyway")
        finally:
            c.close()
        self.sleep(p["seconds"])
        if self._unsqueeze(UNDO_RETRY):
            self.note(rec, "maxmemory 0")
        else:
            self.note(rec, "could not reset maxmemory yet; left to the end")

    def _unsqueeze(self, patience):
        deadline = time.monotonic() + patience
        while True:
            c = self._client()
            try:
                c.config_set("maxmemory", 0)
                return True
            except redis.RedisError:
                pass
            finally:
                c.close()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.3)

    # -- catalogd faults

    def _pick_instance(self, rng, among=None):
        """An instance drawn from the fault's rng (the lone one in the SQLite mode)."""
        among = self.cluster.instances if among is None else among
        if not among:
            return None
        return among[0] if len(among) == 1 else rng.choice(among)

    def projecting(self, rec=None):
        """The instance that projects, as the live instances name it (/admin/projection
        projecting_instance, the first that answers), or None."""
        import requests
        for c in self.cluster.instances:
            if c.expected_down:
                continue
            try:
                self.history.count_other()
                who = requests.get(c.base + "/admin/projection", timeout=1).json() \
                    .get("projecting_instance")
            except (requests.RequestException, ValueError):
                continue
            inst = self.cluster.by_name(who)
            if inst is not None:
                if rec is not None:
                    self.note(rec, f"{c.name} says {who} projects")
                return inst
        return None

    def _restart(self, cat, rec):
        ok = cat.start()
        self.note(rec, f"{cat.label()} {cat.proc.pid if cat.proc else '?'} started"
                  + ("" if ok else " (not healthy: see violations)"))

    def do_kill_catalogd(self, p, rec, rng):
        cat = self._pick_instance(rng)
        with cat.lock:
            pid = cat.proc.pid if cat.proc else None
            cat.kill9()
            self.note(rec, f"SIGKILL {cat.label()} {pid}")
            self.sleep(p["down"])
            self._restart(cat, rec)

    def do_term_catalogd(self, p, rec, rng):
        cat = self._pick_instance(rng)
        with cat.lock:
            pid = cat.proc.pid if cat.proc else None
            rc, dt = cat.sigterm(f"fault {rec['i']}")
            self.note(rec, f"SIGTERM {cat.label()} {pid}: exit {rc} after {dt:.2f}s")
            self.sleep(p["down"])
            self._restart(cat, rec)

    def do_kill_projector(self, p, rec, rng):
        cat = self.projecting(rec)
        if cat is None:
            self.note(rec, "skipped: no instance names a projecting instance")
            return
        with cat.lock:
            if cat.proc is None or cat.proc.poll() is not None:
                self.note(rec, f"skipped: {cat.name} is not running")
                return
            pid = cat.proc.pid
            cat.kill9()
            t_kill = time.monotonic()
            self.note(rec, f"SIGKILL of the projecting instance {cat.name} ({pid})")
            took = self._takeover(cat, t_kill)
            with self.lock:
                self.takeovers.append(took)
            self.note(rec, "takeover: " + (f"{took:.2f} s" if took is not None
                                           else "none seen within 10 s"))
            self.sleep(p["down"])
            self._restart(cat, rec)

    def _takeover(self, victim, t_kill):
        """Seconds from the kill until a surviving instance says it projects itself
        (reported, never asserted: other faults may be running), or None after 10 s."""
        import requests
        while time.monotonic() - t_kill < 10.0:
            for c in self.cluster.instances:
                if c is victim or c.expected_down:
                    continue
                try:
                    self.history.count_other()
                    pr = requests.get(c.base + "/admin/projection", timeout=1).json()
                except (requests.RequestException, ValueError):
                    continue
                if pr.get("projecting_instance") == c.name and pr.get("epoch"):
                    return time.monotonic() - t_kill
            time.sleep(0.05)
        return None

    def do_stop_projector(self, p, rec, rng):
        cat = self.projecting(rec)
        if cat is None:
            self.note(rec, "skipped: no instance names a projecting instance")
            return
        with cat.lock:  # no kill nor SIGTERM of a frozen process meanwhile
            proc = cat.signal(signal.SIGSTOP)
            if proc is None:
                self.note(rec, f"skipped: {cat.name} is not running")
                return
            self.note(rec, f"SIGSTOP of the projecting instance {cat.name} ({proc.pid})")
            try:
                self.sleep(p["seconds"])
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
            self.note(rec, f"SIGCONT {cat.name} ({proc.pid})")

    def do_kill_pubsub(self, p, rec, rng):
        """Pub/sub is fire-and-forget: a subscriber that reconnects has missed what was
        published meanwhile. The instances must only ever answer "pending" for that."""
        end = time.monotonic() + p["seconds"]
        killed = tries = 0
        while time.monotonic() < end:
            c = self._client()
            try:
                killed += int(c.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
            except redis.RedisError:
                pass
            finally:
                c.close()
            tries += 1
            time.sleep(p["every"])
        self.note(rec, f"{killed} pub/sub connections killed in {tries} rounds")

    # -- PostgreSQL faults

    def do_pg_restart(self, p, rec, rng):
        pg = self.cluster.pg
        with pg.lock:  # no catalogd starts while it is stopped (cluster.py, on_start)
            pid = pg.proc.pid if pg.proc else None
            t = time.monotonic()
            pg.stop(signal.SIGINT)  # "fast" shutdown
            self.note(rec, f"PostgreSQL {pid} stopped (fast) in {time.monotonic() - t:.2f}s")
            self.sleep(p["down"])
            pg.start()
            self.note(rec, f"PostgreSQL {pg.proc.pid} started again")

    def do_pg_terminate(self, p, rec, rng):
        pg = self.cluster.pg
        with pg.lock:
            try:
                n = self.cluster.db.terminate_backends()
                self.note(rec, f"pg_terminate_backend of {n} catalogd connections")
            except Exception as exc:  # noqa: BLE001 - psycopg2 errors: PostgreSQL too busy
                self.note(rec, f"pg_terminate_backend failed: {exc!r}")

    def _post_rebuilds(self, cat, p, rec):
        import requests
        for gap in p["gaps"]:
            self.sleep(gap)
            where = "" if cat.name is None else f" on {cat.name}"
            try:
                self.history.count_other()
                r = requests.post(cat.base + "/admin/rebuild", timeout=5)
                self.note(rec, f"POST /admin/rebuild{where} -> {r.status_code}")
            except requests.RequestException as exc:
                self.note(rec, f"POST /admin/rebuild{where} -> {type(exc).__name__}")

    def do_rebuild(self, p, rec, rng):
        self._post_rebuilds(self._pick_instance(rng), p, rec)

    def do_rebuild_follower(self, p, rec, rng):
        leader = self.projecting(rec)
        others = [c for c in self.cluster.instances if c is not leader and not c.expected_down]
        cat = self._pick_instance(rng, others)
        if cat is None:
            self.note(rec, "skipped: no other instance runs")
            return
        self._post_rebuilds(cat, p, rec)

    def do_cli_rebuild(self, p, rec, rng):
        proc = self.cluster.spawn_cli(["rebuild"])
        self.note(rec, f"catalogd rebuild started (pid {proc.pid})")
        if p["kill_after"] is not None:
            try:
                rc = proc.wait(timeout=p["kill_after"])
                self.cluster.reap(proc, 1)
                self.note(rec, f"catalogd rebuild exited {rc} before the kill")
                return
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = self.cluster.reap(proc, 10)
                self.note(rec, f"catalogd rebuild killed with SIGKILL part-way ({rc})")
                return
        rc = self.cluster.reap(proc, 60)
        self.note(rec, f"catalogd rebuild exited {rc}")

    def broken_keys(self):
        """The keys the test has given the wrong type and not yet put back."""
        with self.lock:
            return {item[0] for item in self.broken.values()}

    # -- the end

    def undo(self, patience=20.0):
        """Thaws Redis, resets maxmemory and puts back every broken key. Returns what could
        not be undone (an infrastructure problem)."""
        left = []
        with self.lock:
            frozen = list(self.frozen)
        for proc in frozen:
            self._thaw(proc)
        self.cluster.redis.signal(signal.SIGCONT)
        if not self._unsqueeze(patience):
            left.append("maxmemory could not be reset")
        with self.lock:
            tokens = list(self.broken)
        for token in tokens:
            rec = {"notes": []}
            if not self._put_back(token, rec, patience):
                left.append(f"broken key {self.broken.get(token, ('?',))[0]} not put back")
        if not left:
            left += self.strays()
        return left

    def strays(self):
        """Keys of the test's own left in Redis: a bug of the test, which would have made
        catalogd look guilty. Reported and removed."""
        c = self._client()
        found = []
        try:
            for i, key in enumerate(c.scan_iter(match="*", count=1000)):
                if i > 2_000_000:
                    break
                if key.startswith(b"chaos-tmp:") or (
                        c.type(key) == WRONG_TYPE.encode() and c.lindex(key, 0) == MARK.encode()):
                    found.append(key.decode(errors="replace"))
                    c.delete(key)
        except redis.RedisError as exc:
            return [f"could not look for keys the test left behind: {exc}"]
        finally:
            c.close()
        return [f"the test left its key {k} in Redis (a bug of the test)" for k in found]

    def render_log(self):
        lines = []
        with self.lock:
            log = list(self.log)
        for rec in log:
            start = "not started" if rec["start"] is None else f"{rec['start']:.2f}s"
            end = "-" if rec["end"] is None else f"{rec['end']:.2f}s"
            lines.append(f"#{rec['i']:<3} at {rec['at']:7.2f}s ran {start}..{end} "
                         f"{rec['kind']} {rec['params']}")
            lines += [f"       {n}" for n in rec["notes"]]
        return lines

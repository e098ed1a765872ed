#!/usr/bin/env python3
"""catalogd chaos test: randomized, overlapping faults under a colliding random workload.

    make chaos                      # 180 s, a random seed (printed)
    make chaos DURATION=600         # longer
    make chaos SEED=1234            # the same fault schedule and client choices again

While a few clients send every command and query over ten SKUs, a fault driver freezes and
thaws Redis, restarts it empty, FLUSHALLs it, gives read-model keys the wrong type and puts
them back, squeezes its memory, kills catalogd with SIGKILL or SIGTERM and restarts it, and
starts rebuilds (POST /admin/rebuild and `catalogd rebuild`, sometimes killed part-way), at
moments drawn from the seed, overlapping. What must hold (see history.py for the details):

  (a) no read returns a product older than a version some command had already answered with
      `Projection: applied` before the read began, or a product whose DELETE was answered
      applied; a product answered applied (and not since sent a DELETE) is never a 404, by id,
      by SKU, nor missing from a catalog page whose id range covers it;
  (b) every 2xx command is in the write model (its event, its view, its row);
  and, once the faults stop: catalogd verify exits 0 and the API serves exactly what SQLite
  holds, within 60 s; Redis holds one generation's keys only, within 30 s; no event stays
  parked; catalogd never crashed, exited 0 on every SIGTERM, kept its log bounded and its
  memory flat.

PostgreSQL mode (make chaos BACKEND=postgresql INSTANCES=3; --backend postgresql --instances
3): one private PostgreSQL, one Redis and N instances (their own ports and --instance-id), each
request sent to an instance drawn at random, so read-your-writes is checked on every instance.
On top of the Redis faults: kill -9 of any instance and of the projecting one, SIGSTOP of the
projecting one for 1-4 s, SIGTERM of any, PostgreSQL stopped (fast) and started again,
pg_terminate_backend of every catalogd connection, rebuilds asked of an instance that does
not project. Also checked: a 503 carries Retry-After and changes nothing (no event in the log
that only a refused command could have written), every instance serves what PostgreSQL holds,
and at the end the instances agree on one projecting instance whose epoch Redis holds.

Exit status: 0 all held, 1 violations (each printed with its context), 2 the test's own
machinery failed. Every process the run starts is stopped by its PID at the end.
"""

import argparse
import collections
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cluster import Cluster, InfraError, env_note  # noqa: E402
from conftest import row_text, sql  # noqa: E402  (tests/api, via cluster)
from faults import GEN_KEY, PREFIX, FaultDriver, kinds_for, make_schedule  # noqa: E402
from history import Checker, History, Read, Violation, parse_events  # noqa: E402
from workload import SKUS, Client, Knowledge  # noqa: E402

CLIENTS = 4
CONVERGE_WITHIN = 60.0     # s after the faults stop: verify exit 0 and the API == SQLite
ONE_GENERATION_WITHIN = 30.0  # at the end, and during the run: a generation that is not the
                              # current one and keeps keys that long is leaked (a rebuild of
                              # this small catalog takes milliseconds; an old one is dropped 2 s
                              # after the switch)
LEAK_SCAN_EVERY = 5.0
PARKED_WITHIN = 40.0       # parked events are retried with a backoff of at most 30 s
LOG_LINES_PER_S = 10       # log lines beyond one per request, per second of run
LOG_LINES_SLACK = 500
RSS_MIN_LIFE = 45.0        # s: a process's memory is judged only over a life this long
RSS_WARM = (10.0, 20.0)    # s of life: the baseline is the largest RSS in this window
RSS_GROWTH_KB = 16 * 1024  # allowed growth past the baseline, plus half the baseline
RSS_CAP_KB = 300 * 1024
PRODUCT_COLUMNS = "id, sku, name, price_cents, stock, version, created_at, updated_at"


class Run:
    def __init__(self, seed, duration, clients, keep, only=None, backend="sqlite",
                 instances=1):
        self.seed = seed
        self.backend = backend
        self.n_instances = instances
        self.only = only
        self.duration = duration
        self.n_clients = clients
        self.keep = keep
        self.t0 = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix=f"catalogd-chaos-{seed}-"))
        self.violations = []
        self.vlock = threading.Lock()
        self.infra = []
        self.notes = []
        self.history = History(self.t0)
        self.knowledge = Knowledge()
        self.bad_views = []
        self.cluster = Cluster(self.dir, self.violation, self.t0, backend, instances)
        self.schedule = make_schedule(seed, duration, only, backend)
        self.driver = None
        self.watcher = None
        self.clients = []
        self.stop_clients = threading.Event()
        self.run_seconds = 0.0

    def violation(self, kind, what, context=()):
        with self.vlock:
            self.violations.append(Violation(kind, what, list(context)))

    def t(self):
        return time.monotonic() - self.t0

    def rerun(self):
        faults = "" if self.only is None else f" FAULTS={','.join(sorted(self.only)) or 'none'}"
        shape = "" if self.backend == "sqlite" else \
            f" BACKEND={self.backend} INSTANCES={self.n_instances}"
        return f"make chaos{shape} SEED={self.seed} DURATION={self.duration:g}{faults}"

    def say(self, text):
        print(f"[chaos t={self.t():6.1f}s] {text}", flush=True)

    # -- the run

    def run(self):
        self.say(f"seed {self.seed}, {self.duration:.0f} s, {len(self.schedule)} faults planned, "
                 f"{self.n_clients} clients; {env_note()}")
        self.say(f"reproduce with: {self.rerun()}")
        self.cluster.start()
        if self.cluster.multi:
            self.say(f"PostgreSQL on 127.0.0.1:{self.cluster.pg.port}, redis-server on "
                     f"127.0.0.1:{self.cluster.redis.port}, catalogd instances "
                     + ", ".join(f"{c.name} on 127.0.0.1:{c.port}"
                                 for c in self.cluster.instances))
        else:
            self.say(f"redis-server on 127.0.0.1:{self.cluster.redis.port}, catalogd on "
                     f"127.0.0.1:{self.cluster.catalogd.port}")
        self.clients = [Client(k, self.seed, self.history, self.knowledge,
                               self.cluster.targets, self.stop_clients, self.bad_views)
                        for k in range(self.n_clients)]
        for c in self.clients:
            c.start()
        self.driver = FaultDriver(self.schedule, self.cluster, self.knowledge, self.history,
                                  self.t0, self.seed)
        self.driver.start()
        self.watcher = threading.Thread(target=self.watch_generations, name="generations",
                                        daemon=True)
        self.watcher.start()
        end = self.t0 + self.duration
        while time.monotonic() < end:
            time.sleep(min(30.0, max(0.0, end - time.monotonic())))
            self.progress()
        self.run_seconds = self.t()

        self.say("faults stop; waiting for the running ones to undo themselves")
        stuck = self.driver.stop(timeout=120)
        if stuck:
            self.infra.append(f"fault threads still running after 120 s: {stuck}")
        self.stop_clients.set()
        for c in self.clients + [self.watcher]:
            c.join(15)
        alive = [c.name for c in self.clients + [self.watcher] if c.is_alive()]
        if alive:
            self.infra.append(f"client threads still running 15 s after stop: {alive}")
        self.infra += self.driver.undo()
        self.infra += self.driver.errors
        self.ensure_running()
        self.end_checks()

    def watch_generations(self):
        """During the run: keys of a generation other than the current one, seen in every
        scan for ONE_GENERATION_WITHIN seconds, are a leak. A scan that fails (Redis frozen or
        down) proves nothing either way; a generation whose keys vanish (dropped, or Redis
        wiped) starts afresh."""
        first_seen = {}
        reported = set()
        while not self.stop_clients.wait(LEAK_SCAN_EVERY):
            try:
                gen, stray, sample = self.generations(exclude=self.driver.broken_keys())
            except Exception:  # noqa: BLE001 - redis errors: no evidence this time
                continue
            now = time.monotonic()
            for g in list(first_seen):
                if g not in stray:
                    del first_seen[g]
            for g, n in stray.items():
                first_seen.setdefault(g, (now, n, sample))
                t_first, n_first, sample_first = first_seen[g]
                if now - t_first >= ONE_GENERATION_WITHIN and (g, t_first) not in reported:
                    reported.add((g, t_first))
                    self.violation("generation-leak",
                                   f"keys of generation {g} stayed in Redis for "
                                   f"{now - t_first:.0f} s (from t={t_first - self.t0:.1f}s) "
                                   f"while generation {gen} was the current one: {n} keys",
                                   [f"e.g. {k}" for k in sample if f":g{g}:" in k]
                                   + self.faults_around(t_first - self.t0, before=10.0))

    def progress(self):
        h = self.history
        with h.lock:
            cmds, reads = list(h.cmds), len(h.reads)
        ok = sum(1 for c in cmds if c.outcome == "ok")
        applied = sum(1 for c in cmds if c.applied)
        faults = len(self.driver.log) if self.driver else 0
        with self.vlock:
            v = len(self.violations)
        self.say(f"{len(cmds)} commands ({ok} 2xx, {applied} applied), {reads} reads, "
                 f"{faults} faults so far, {v} violations noticed by the harness so far")

    def ensure_running(self):
        pg = self.cluster.pg
        if pg is not None:
            with pg.lock:
                if not pg.running:
                    pg.start()
        r = self.cluster.redis
        with r.lock:
            if not r.alive():
                r.start()
            r.expected_down = False
        for cat in self.cluster.instances:
            with cat.lock:
                if not cat.alive():
                    cat.start()

    # -- after the faults

    def final_client(self, inst=None):
        inst = inst or self.cluster.catalogd
        c = Client(99, self.seed, self.history, self.knowledge,
                   lambda: [(inst.name, inst.base)], self.stop_clients, self.bad_views)
        c.phase = "final"
        import requests
        c.session = requests.Session()
        return c

    def api_differences(self, client, deadline):
        """Reads everything through the API (recorded, phase "final") and compares it with
        SQLite. Returns a list of differences; gives up at the deadline."""
        rows = sql(self.cluster.db, f"SELECT {PRODUCT_COLUMNS} FROM products")
        expected = {row[0]: row_text(row) for row in rows}
        by_sku = {row[1]: row[0] for row in rows}
        diffs = []
        late = ["the API was too slow to be read whole before the deadline"]
        for pid in sorted(set(expected) | set(self.knowledge.ids())):
            if time.monotonic() > deadline:
                return diffs + late
            read, r = client.read(Read(client.k, "id", f"/products/{pid}", target=pid))
            got = "no answer" if r is None else f"{r.status_code} {r.text[:160]}"
            if pid in expected:
                if r is None or r.status_code != 200 or r.text != expected[pid]:
                    diffs.append(f"GET /products/{pid}: {got}; SQLite has "
                                 f"{expected[pid][:160]}")
            elif r is None or r.status_code != 404:
                diffs.append(f"GET /products/{pid}: {got}; not in SQLite")
        for sku in sorted(set(SKUS) | set(by_sku)):
            if time.monotonic() > deadline:
                return diffs + late
            read, r = client.read(Read(client.k, "sku", f"/products/by-sku/{sku}", target=sku))
            got = "no answer" if r is None else f"{r.status_code} {r.text[:160]}"
            owner = by_sku.get(sku)
            if owner is not None:
                if r is None or r.status_code != 200 or r.text != expected[owner]:
                    diffs.append(f"GET /products/by-sku/{sku}: {got}; SQLite: {owner}")
            elif r is None or r.status_code != 404:
                diffs.append(f"GET /products/by-sku/{sku}: {got}; no such sku in SQLite")
        versions = {row[0]: row[5] for row in rows}
        for in_stock in (False, True):
            items = client.op_walk(in_stock=in_stock, limit=7)
            want = sorted(row[0] for row in rows if not in_stock or row[4] > 0)
            name = "/catalog" + ("?in_stock=true" if in_stock else "")
            if items is None:
                diffs.append(f"walking {name}: a page failed")
                continue
            got_ids = [i[0] for i in items]
            if got_ids != want:
                missing = sorted(set(want) - set(got_ids))
                extra = sorted(set(got_ids) - set(want))
                diffs.append(f"walking {name}: {len(got_ids)} ids, SQLite {len(want)}; "
                             f"missing {missing[:5]}, extra {extra[:5]}, "
                             f"in order: {got_ids == sorted(got_ids)}")
            stale = [(i[0], i[1], versions.get(i[0])) for i in items
                     if i[0] in versions and i[1] != versions[i[0]]]
            if stale:
                diffs.append(f"walking {name}: versions differ from SQLite (id, served, "
                             f"SQLite): {stale[:5]}")
        return diffs

    def end_checks(self):
        # 1. convergence: verify exit 0 and the API serves exactly SQLite
        self.say("checking that the read model converges")
        clients = [(inst, self.final_client(inst)) for inst in self.cluster.instances]
        t_start = time.monotonic()
        deadline = t_start + CONVERGE_WITHIN
        attempts = 0
        while True:
            attempts += 1
            rc, out = self.cluster.cli(["verify"], timeout=30)
            diffs = []
            for inst, client in clients:
                where = "" if inst.name is None else f"instance {inst.name}: "
                diffs += [where + d for d in self.api_differences(client, deadline + 30)]
            if rc == 0 and not diffs:
                self.notes.append(f"converged {time.monotonic() - t_start:.1f} s after the "
                                  f"faults stopped ({attempts} attempts)")
                break
            if time.monotonic() >= deadline:
                ctx = [f"catalogd verify exit {rc}:"] + (out or "").splitlines()[:15]
                ctx += ["API differences from SQLite:"] + diffs[:15]
                if len(diffs) > 15:
                    ctx.append(f"... {len(diffs) - 15} more")
                self.violation("no-convergence",
                               f"the read model did not converge within {CONVERGE_WITHIN:.0f} s "
                               f"after the faults stopped (verify exit {rc}, {len(diffs)} API "
                               "differences)", ctx)
                if rc == 0 and diffs:
                    self.violation("verify-missed-differences",
                                   "catalogd verify exited 0 while the API served something "
                                   "other than the write model", diffs[:10])
                break
            time.sleep(1.0)
        for _, client in clients:
            client.session.close()

        # 2. Redis holds one generation's keys only
        self.say("checking that Redis holds one generation")
        deadline = time.monotonic() + ONE_GENERATION_WITHIN
        while True:
            try:
                gen, stray, sample = self.generations()
            except redis.RedisError as exc:
                gen, stray, sample = None, {}, [f"Redis did not answer: {exc}"]
            if gen is not None and not stray:
                break
            if time.monotonic() >= deadline:
                self.violation("generation-leak",
                               f"{ONE_GENERATION_WITHIN:.0f} s after the faults stopped, Redis "
                               f"holds keys of generations other than the current one ({gen}): "
                               + ", ".join(f"g{g}: {n} keys" for g, n in sorted(stray.items())),
                               [f"e.g. {k}" for k in sample])
                break
            time.sleep(1.0)

        # 3. no event stays parked
        deadline = time.monotonic() + PARKED_WITHIN
        while True:
            try:
                state = self.parked_state()
            except redis.RedisError as exc:
                state = f"Redis did not answer: {exc}"
            if state is None:
                break
            if time.monotonic() >= deadline:
                self.violation("parked-events-left", state)
                break
            time.sleep(1.0)

        # 3b. several instances: they agree on the one that projects, and Redis holds its epoch
        if self.cluster.multi:
            self.check_one_projector()

        # 4. the last catalogd (every instance) stops cleanly
        for cat in self.cluster.instances:
            cat.sigterm("end of the run")

        # 5. the log stayed bounded, the memory flat
        self.check_log()
        self.check_rss()

    def generations(self, exclude=()):
        c = self.cluster.redis_client(timeout=5)
        try:
            gen = c.get(GEN_KEY)
            gen = gen.decode() if gen is not None else None
            counts = collections.Counter()
            sample = []
            pat = re.compile(rf"^{PREFIX}:g(\d+):".encode())
            for i, key in enumerate(c.scan_iter(match=f"{PREFIX}:g*", count=1000)):
                if i > 2_000_000:
                    break
                m = pat.match(key)
                if m and m.group(1).decode() != gen and key.decode(errors="replace") \
                        not in exclude:
                    counts[m.group(1).decode()] += 1
                    if sum(1 for k in sample if f":g{m.group(1).decode()}:" in k) < 3:
                        sample.append(key.decode(errors="replace"))
            return gen, dict(counts), sample[:8]
        finally:
            c.close()

    def parked_state(self):
        """None when nothing is parked, else a description."""
        import requests
        c = self.cluster.redis_client(timeout=5)
        try:
            gen = c.get(GEN_KEY)
            if gen is None:
                return f"{GEN_KEY} is missing"
            base = f"{PREFIX}:g{gen.decode()}:parked"
            hlen = c.hlen(base)
            lists = sum(1 for _ in c.scan_iter(match=base + ":*", count=1000))
        finally:
            c.close()
        reported = {}
        for inst in self.cluster.instances:
            try:
                self.history.count_other()
                proj = requests.get(inst.base + "/admin/projection", timeout=5).json()
            except (requests.RequestException, ValueError) as exc:
                return f"/admin/projection of {inst.label()} did not answer: {exc!r}"
            reported[inst.name or "catalogd"] = proj.get("parked_events")
        if hlen == 0 and lists == 0 and set(reported.values()) == {0}:
            return None
        if not self.cluster.multi:
            reported = reported["catalogd"]
        return (f"{PARKED_WITHIN:.0f} s after convergence: {hlen} products in {base}, {lists} "
                f"parked lists, /admin/projection parked_events {reported}")

    def check_one_projector(self, within=10.0):
        """Every instance names the same projecting instance, that one says it projects with
        an epoch, and Redis' fencing epoch and PostgreSQL's projector_leader agree with it."""
        import requests
        deadline = time.monotonic() + within
        while True:
            seen, problem = {}, None
            for inst in self.cluster.instances:
                try:
                    self.history.count_other()
                    seen[inst.name] = requests.get(inst.base + "/admin/projection",
                                                   timeout=5).json()
                except (requests.RequestException, ValueError) as exc:
                    seen[inst.name] = {"error": repr(exc)}
            who = {pr.get("projecting_instance") for pr in seen.values()}
            try:
                c = self.cluster.redis_client(timeout=5)
                try:
                    redis_epoch = c.get(f"{PREFIX}:projector-epoch")
                finally:
                    c.close()
                # the fence: the epoch, then ":" and the term's random part
                redis_epoch = None if redis_epoch is None else redis_epoch.decode().split(":")[0]
                [(pg_epoch, pg_who)] = sql(self.cluster.db,
                                           "SELECT epoch, instance_id FROM projector_leader")
            except Exception as exc:  # noqa: BLE001 - reported as the problem
                redis_epoch = pg_epoch = pg_who = None
                problem = f"could not read the epochs: {exc!r}"
            if problem is None:
                if len(who) != 1 or None in who or "" in who:
                    problem = f"the instances name different projecting instances: {who}"
                else:
                    [name] = who
                    own = seen.get(name, {})
                    if own.get("epoch") in (None, 0):
                        problem = f"{name} is named but reports no epoch: {own}"
                    elif str(own.get("epoch")) != str(redis_epoch) or \
                            str(pg_epoch) != str(redis_epoch) or pg_who != name:
                        problem = (f"{name} reports epoch {own.get('epoch')}, Redis holds "
                                   f"{redis_epoch}, PostgreSQL's projector_leader says epoch "
                                   f"{pg_epoch} of {pg_who!r}")
            if problem is None:
                self.notes.append(f"at the end {name} projects, epoch {redis_epoch}")
                return
            if time.monotonic() >= deadline:
                self.violation("projector-disagreement",
                               f"{within:.0f} s after convergence: {problem}",
                               [f"{n}: {pr}" for n, pr in seen.items()])
                return
            time.sleep(0.5)

    def check_log(self):
        lines = []
        for inst in self.cluster.instances:
            try:
                lines += inst.stderr_path.read_bytes().decode(errors="replace").splitlines()
            except OSError:
                pass
        if not lines:
            return
        n = len(self.cluster.instances)
        requests_sent = self.history.requests_sent()
        other = [ln for ln in lines if " request " not in ln]
        allowed = requests_sent + n * (LOG_LINES_PER_S * self.run_seconds + LOG_LINES_SLACK)
        self.notes.append(f"catalogd log: {len(lines)} lines ({len(other)} not per-request) "
                          f"for {requests_sent} requests sent")
        if len(lines) > allowed:
            common = collections.Counter(re.sub(r"^\S+ ", "", re.sub(r"\d+", "N", ln))
                                         for ln in other).most_common(5)
            self.violation("log-unbounded",
                           f"catalogd wrote {len(lines)} log lines in a {self.run_seconds:.0f} s "
                           f"run; at most {allowed:.0f} expected (one per request sent plus "
                           f"{LOG_LINES_PER_S}/s per instance)",
                           [f"{n} x {text[:150]}" for text, n in common])

    def check_rss(self):
        judged = []
        for life in [lf for inst in self.cluster.instances for lf in inst.lives]:
            if not life.rss:
                continue
            peak = max(kb for _, kb in life.rss)
            if peak > RSS_CAP_KB:
                self.violation("rss", f"catalogd pid {life.pid} reached {peak} kB of RSS")
            end = life.t_end or time.monotonic()
            if end - life.t_start < RSS_MIN_LIFE:
                continue
            warm = [kb for t, kb in life.rss if RSS_WARM[0] <= t - life.t_start <= RSS_WARM[1]]
            later = [(t, kb) for t, kb in life.rss if t - life.t_start > RSS_WARM[1]]
            if not warm or not later:
                continue
            base = max(warm)
            top_t, top = max(later, key=lambda x: x[1])
            judged.append(f"pid {life.pid}: {base} kB at {RSS_WARM[1]:.0f} s, at most {top} kB "
                          f"over {end - life.t_start:.0f} s")
            if top - base > RSS_GROWTH_KB + base // 2:
                self.violation("rss-growth",
                               f"catalogd pid {life.pid} grew from {base} kB (at "
                               f"{RSS_WARM[1]:.0f} s of its life) to {top} kB (at "
                               f"{top_t - life.t_start:.0f} s) while living "
                               f"{end - life.t_start:.0f} s")
        lives = [lf for inst in self.cluster.instances for lf in inst.lives]
        self.notes.append(f"catalogd RSS judged over {len(judged)} of {len(lives)} processes "
                          f"(those living {RSS_MIN_LIFE:.0f} s or more): " + "; ".join(judged))
        if not judged:
            self.notes.append("catalogd memory NOT judged: no process lived long enough "
                              "(runs of 120 s or more always have one)")

    # -- analysis

    def save_pg_tables(self):
        """PostgreSQL mode: the write model's tables as text in the run's directory (kept when
        the run fails), since the server and its data go away with the run."""
        try:
            for table, cols in (("products", PRODUCT_COLUMNS),
                                ("events", "seq, product_id, type, version, payload, "
                                           "recorded_at"),
                                ("projector_leader", "epoch, instance_id, since, heartbeat")):
                rows = sql(self.cluster.db, f"SELECT {cols} FROM {table} ORDER BY 1")
                (self.dir / f"pg-{table}.txt").write_text(
                    "".join("\t".join(str(v) for v in row) + "\n" for row in rows))
        except Exception as exc:  # noqa: BLE001 - only a convenience
            self.notes.append(f"could not save the PostgreSQL tables: {exc!r}")

    def analyse(self):
        db = self.cluster.db
        events = parse_events(sql(db, "SELECT product_id, version, type, payload FROM events"))
        rows = dict(sql(db, "SELECT id, version FROM products"))
        with self.history.lock:
            cmds, reads = list(self.history.cmds), list(self.history.reads)
        checker = Checker(cmds, reads, self.t0)
        found = checker.check_reads() + checker.check_write_model(events, rows) \
            + checker.check_commands()
        if self.cluster.multi:
            found += checker.check_refusals(
                sql(db, "SELECT product_id, version, type, payload FROM events ORDER BY seq"))
        for v in found:
            if v.t is not None and self.driver is not None:
                v.context += self.faults_around(v.t - self.t0)
        for where, view, problems in self.bad_views:
            found.append(Violation("malformed-view", f"{where} returned a malformed view: "
                                   + "; ".join(problems), [f"{view!r:.300}"]))
        with self.vlock:
            self.violations += found
        return cmds, reads

    def faults_around(self, t, before=2.0):
        """The faults that ran from "before" seconds before t until t (run-relative)."""
        out = []
        with self.driver.lock:
            log = [dict(rec, notes=list(rec["notes"])) for rec in self.driver.log]
        for rec in log:
            if rec["start"] is None or rec["start"] > t:
                continue
            end = rec["end"] if rec["end"] is not None else float("inf")
            if end < t - before:
                continue
            notes = "; ".join(n for n in rec["notes"])[:300]
            out.append(f"fault #{rec['i']} {rec['kind']} ran {rec['start']:.2f}s.."
                       f"{end:.2f}s: {notes}")
        return out or [f"no fault ran in the {before:.0f} s before this read"]

    def stats(self, cmds, reads):
        lines = []
        by = collections.Counter((c.kind, c.status if c.status is not None else c.error)
                                 for c in cmds)
        applied = sum(1 for c in cmds if c.applied)
        lines.append(f"commands: {len(cmds)}, {applied} answered Projection: applied; "
                     + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(by.items(), key=str)))
        rb = collections.Counter((r.kind, r.status if r.status is not None else r.error)
                                 for r in reads)
        lines.append(f"reads: {len(reads)}; "
                     + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(rb.items(), key=str)))
        fk = collections.Counter(rec["kind"] for rec in (self.driver.log if self.driver else []))
        lines.append("faults run: " + ", ".join(f"{k} {n}" for k, n in sorted(fk.items())))
        if self.cluster.multi:
            per = collections.Counter(c.instance for c in cmds)
            lines.append("commands per instance: " + ", ".join(f"{k} {n}" for k, n in
                                                                sorted(per.items(), key=str)))
            took = self.driver.takeovers if self.driver else []
            if took:
                lines.append("takeover after kill -9 of the projecting instance (s, not "
                             "asserted): " + ", ".join("none in 10 s" if t is None
                                                       else f"{t:.2f}" for t in took))
        return lines

    def report(self, cmds, reads):
        out = []
        out.append(f"catalogd chaos test, seed {self.seed}, {self.duration:g} s "
                   f"(ran {self.t():.0f} s in all)")
        out.append(f"reproduce: {self.rerun()}")
        out += self.stats(cmds, reads)
        out += self.notes + self.cluster.notes
        groups = collections.OrderedDict()
        for v in self.violations:
            groups.setdefault(v.kind, []).append(v)
        if self.infra:
            out.append("")
            out.append("THE TEST'S OWN MACHINERY FAILED (not a finding about catalogd):")
            out += [f"  {x}" for x in self.infra]
        if groups:
            out.append("")
            out.append(f"FAILED: {len(self.violations)} violations of {len(groups)} kinds: "
                       + ", ".join(f"{k} x{len(vs)}" for k, vs in groups.items()))
            for kind, vs in groups.items():
                out.append("")
                out.append(f"== {kind}: {len(vs)} ==")
                for v in vs[:5]:
                    out.append(v.render())
                if len(vs) > 5:
                    out.append(f"... and {len(vs) - 5} more (all in the report file)")
        if groups or self.infra:
            out.append("")
            out.append("fault schedule as it ran (times from the start of the run):")
            out += ["  " + ln for ln in self.driver.render_log()] if self.driver else []
        else:
            out.append("")
            out.append("PASSED: every check held")
        return out




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of faults (180)")
    ap.add_argument("--seed", type=int, default=None, help="reproduce a run (default: random)")
    ap.add_argument("--clients", type=int, default=CLIENTS, help=f"client threads ({CLIENTS})")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                    help="the write model: one catalogd on SQLite (default), or a private "
                         "PostgreSQL with --instances catalogd instances")
    ap.add_argument("--instances", type=int, default=None,
                    help="catalogd instances (PostgreSQL only; default 3)")
    ap.add_argument("--faults", default=None,
                    help="only these fault kinds, comma-separated, or none (default: all of "
                         "the backend's kinds; see faults.py KINDS and KINDS_PG)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run's directory (db, logs, report) even when it passes")
    args = ap.parse_args(argv)
    if args.duration < 10:
        ap.error("--duration must be at least 10 seconds")
    if args.backend == "sqlite" and args.instances not in (None, 1):
        ap.error("--instances needs --backend postgresql (SQLite serves one instance)")
    instances = 1 if args.backend == "sqlite" else (args.instances or 3)
    if instances < 1 or instances > 8:
        ap.error("--instances must be 1 to 8")
    kinds = kinds_for(args.backend)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    only = None
    if args.faults is not None:
        only = set() if args.faults == "none" else set(args.faults.split(","))
        unknown = only - set(kinds)
        if unknown:
            ap.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(sorted(kinds))}")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    run = Run(seed, args.duration, args.clients, args.keep, only, args.backend, instances)
    status = 0
    cmds = reads = []
    try:
        try:
            try:
                run.run()
            finally:
                run.cluster.stop_all()  # whatever happened: every process, by its PID
            if run.cluster.pg is not None:
                run.save_pg_tables()
            cmds, reads = run.analyse()
        finally:
            run.cluster.stop_db()  # PostgreSQL mode: after the analysis read it
    except InfraError as exc:
        run.infra.append(str(exc))
    except BaseException as exc:  # noqa: BLE001 - still report what was seen, then re-raise
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            print(f"[chaos] interrupted ({exc!r}); every process stopped; the run's "
                  f"directory is kept: {run.dir}", flush=True)
            raise
        run.infra.append(f"the test crashed: {exc!r}")
        import traceback
        traceback.print_exc()
    if run.infra:
        status = 2
    elif run.violations:
        status = 1
    lines = run.report(cmds, reads)
    report_path = run.dir / "report.txt"
    full = list(lines)
    if run.violations:
        full += ["", "ALL VIOLATIONS:"] + [v.render() for v in run.violations]
    report_path.write_text("\n".join(full) + "\n")
    print("\n".join(lines), flush=True)
    if status == 0 and not args.keep:
        shutil.rmtree(run.dir, ignore_errors=True)
    else:
        print(f"\nthe run's directory (catalog.db, catalogd.stderr, redis log, report.txt with "
              f"every violation) is kept: {run.dir}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

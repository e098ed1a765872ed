"""What a chaos run saw, and the invariants it must satisfy.

Every command and every query the clients send is recorded with the test process's monotonic
time just before it was sent (t_send) and just after its whole answer arrived (t_recv). Both
are conservative for the checks below: a command's answer really arrived before its t_recv,
and a read really began after its t_send.

The checks run over the whole history once the run is over (so they cover every read, from
the first to the last); they are pure functions of the records, unit-tested in
test_checker.py.

Outcomes: a 2xx is "ok", a 4xx is "fail" (the command changed nothing: 404, 409, 412, 422 are
decided by the single writer before anything is written), anything else (5xx, a timeout, a
connection error) is "unknown": the command may or may not have committed, now or later.
Unknown outcomes never count as violations, and every check treats them as "may have happened".
"""

import bisect
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Optional

UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

EVENT_TYPE = {"create": "ProductCreated", "patch": "ProductUpdated", "stock": "StockAdjusted",
              "delete": "ProductDeleted"}


def outcome_of(status):
    if status is not None and 200 <= status < 300:
        return "ok"
    if status is not None and 400 <= status < 500:
        return "fail"
    return "unknown"


@dataclass
class Cmd:
    """One command as sent and as answered."""
    client: int
    kind: str                       # create | patch | delete | stock
    method: str
    path: str
    body: Optional[str]
    pid: Optional[str] = None       # the product (for a create: from its answer)
    sku: Optional[str] = None       # a create's sku
    if_match: Optional[int] = None
    key: Optional[str] = None       # Idempotency-Key
    stock_set: Optional[int] = None  # a PATCH's "stock"
    delta: Optional[int] = None      # a stock adjustment's delta
    retry_of: Optional[int] = None   # n of the command this one retries with the same key
    n: int = -1
    t_send: float = 0.0
    t_recv: float = 0.0
    status: Optional[int] = None
    projection: Optional[str] = None
    replayed: bool = False
    version: Optional[int] = None   # from the ETag of a 2xx
    view: Optional[dict] = None     # the body of a 200/201
    text: str = ""
    error: Optional[str] = None
    instance: Optional[str] = None     # the instance it was sent to (PostgreSQL mode)
    retry_after: Optional[str] = None  # the Retry-After header of the answer
    problem_type: Optional[str] = None  # a 5xx problem's "type"

    @property
    def outcome(self):
        return outcome_of(self.status)

    @property
    def applied(self):
        return self.outcome == "ok" and self.projection == "applied"

    @property
    def stock_after(self):
        return None if self.view is None else self.view.get("stock")

    @property
    def could_zero_stock(self):
        """Whether this command, if it happened, may have left the stock at 0."""
        if self.kind == "delete":
            return True
        if self.kind == "patch":
            return self.stock_set == 0
        if self.kind == "stock":
            return self.delta is not None and self.delta < 0
        return False

    def describe(self, t0):
        head = f"#{self.n} client {self.client} {self.method} {self.path}"
        if self.body:
            head += f" {self.body}"
        if self.if_match is not None:
            head += f" If-Match:{self.if_match}"
        if self.key:
            head += f" Idempotency-Key:{self.key}"
        ans = (f"{self.status}" if self.status is not None else f"no answer ({self.error})")
        if self.version is not None:
            ans += f" version {self.version}"
        if self.projection:
            ans += f" Projection: {self.projection}"
        if self.replayed:
            ans += " (replayed)"
        on = f" on {self.instance}" if self.instance else ""
        return (f"{head}{on} -> {ans}, sent t={self.t_send - t0:.3f}s, "
                f"answered t={self.t_recv - t0:.3f}s")


@dataclass
class Read:
    """One query. items: what it returned, as (id, version, stock, sku) per view."""
    client: int
    kind: str                       # id | sku | page
    path: str
    target: Optional[str] = None    # the id or the sku asked for
    in_stock: bool = False          # a page of ?in_stock=true
    after: Optional[str] = None     # a page: ids > after (None: from the start)
    upto: Optional[str] = None      # a page: ids <= upto (None: to the end, no Link next)
    inm: Optional[int] = None       # If-None-Match version sent (GET /products/{id})
    phase: str = "run"              # run | final
    n: int = -1
    t_send: float = 0.0
    t_recv: float = 0.0
    status: Optional[int] = None
    items: list = field(default_factory=list)
    total: Optional[int] = None
    error: Optional[str] = None
    instance: Optional[str] = None  # the instance it was sent to (PostgreSQL mode)

    def describe(self, t0):
        ans = f"{self.status}" if self.status is not None else f"no answer ({self.error})"
        if self.kind == "page":
            ans += (f", {len(self.items)} views, range ({self.after or '-inf'}, "
                    f"{self.upto or '+inf'}]")
        elif self.items:
            pid, version, stock, sku = self.items[0]
            ans += f" id {pid} version {version}"
        on = f" on {self.instance}" if self.instance else ""
        return (f"read #{self.n} ({self.phase}) client {self.client} GET {self.path}{on} -> "
                f"{ans}, sent t={self.t_send - t0:.3f}s, answered t={self.t_recv - t0:.3f}s")


@dataclass
class Violation:
    kind: str
    what: str
    context: list = field(default_factory=list)  # lines
    t: Optional[float] = None  # when the read that shows it began (monotonic), if any

    def render(self):
        return "\n".join([f"[{self.kind}] {self.what}"] + [f"    {c}" for c in self.context])


class History:
    """Thread-safe record of every command and read of the run."""

    def __init__(self, t0):
        self.t0 = t0
        self.lock = threading.Lock()
        self.cmds = []
        self.reads = []
        self.other_requests = 0  # /health, /admin/rebuild, ...: for the log-size bound

    def add_cmd(self, cmd):
        with self.lock:
            cmd.n = len(self.cmds)
            self.cmds.append(cmd)
        return cmd

    def add_read(self, read):
        with self.lock:
            read.n = len(self.reads)
            self.reads.append(read)
        return read

    def count_other(self, n=1):
        with self.lock:
            self.other_requests += n

    def requests_sent(self):
        with self.lock:
            return len(self.cmds) + len(self.reads) + self.other_requests


def view_problems(view):
    """What is wrong with a view on its face (the contract's §2), as a list of strings."""
    out = []
    if not isinstance(view, dict):
        return [f"not a JSON object: {view!r:.200}"]
    pid = view.get("id")
    if not isinstance(pid, str) or not UUID7_RE.match(pid):
        out.append(f"id {pid!r} is not a UUIDv7")
    stock = view.get("stock")
    if not isinstance(stock, int) or isinstance(stock, bool) or stock < 0:
        out.append(f"stock {stock!r} is not an integer >= 0")
    elif view.get("available") is not (stock > 0):
        out.append(f"available {view.get('available')!r} with stock {stock}")
    version = view.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        out.append(f"version {version!r} is not an integer >= 1")
    return out


# ---------------------------------------------------------------------------------------------
# the checker


class _Product:
    """What the commands' answers say about one product."""

    def __init__(self, pid):
        self.pid = pid
        self.sku = None
        self.applied = []          # (t_recv, version, stock, cmd): 2xx applied, not deletes
        self.applied_t = []
        self.best = []             # best[i]: the applied ack of highest version in applied[:i+1]
        self.created = None        # the first 201 (any Projection)
        self.del_applied = None    # the first DELETE answered 2xx applied (by t_recv)
        self.del_possible_t = None  # earliest t_send of a DELETE that may have happened
        self.changes = []          # (t_send, cmd): PATCH / stock commands that may have happened

    def finish(self):
        self.applied.sort(key=lambda a: a[0])
        self.applied_t = [a[0] for a in self.applied]
        best = None
        for a in self.applied:
            if best is None or a[1] > best[1]:
                best = a
            self.best.append(best)
        self.changes.sort(key=lambda c: c[0])

    def floor(self, rs):
        """The applied ack of highest version answered before rs, or None."""
        i = bisect.bisect_left(self.applied_t, rs)
        return self.best[i - 1] if i > 0 else None

    def deleted_applied_before(self, rs):
        return self.del_applied is not None and self.del_applied.t_recv < rs

    def must_be_visible(self, rs, re_, need_stock=False):
        """The ack that makes this product required in a read [rs, re_], or None: it was
        answered applied (at some version) before rs, and no DELETE of it was sent before re_.
        With need_stock (an ?in_stock=true page) the product must also surely have stock > 0
        at every version it may have had during the read: the highest applied version had
        stock > 0 and nothing that may have come after it may have left 0."""
        a = self.floor(rs)
        if a is None:
            return None
        if self.del_possible_t is not None and self.del_possible_t < re_:
            return None
        if not need_stock:
            return a
        if a[2] is None or a[2] <= 0:
            return None
        for t_send, cmd in self.changes:
            if t_send >= re_:
                break
            if cmd.outcome == "ok" and cmd.version is not None and cmd.version <= a[1]:
                continue  # before the floor's version: already reflected in it
            if cmd.outcome == "ok" and cmd.stock_after == 0:
                return None
            if cmd.outcome == "unknown" and cmd.could_zero_stock:
                return None
        return a


class Checker:
    def __init__(self, cmds, reads, t0):
        self.cmds = cmds
        self.reads = reads
        self.t0 = t0
        self.products = {}
        self.by_sku = {}
        for c in cmds:
            self._index(c)
        for p in self.products.values():
            p.finish()
        self.sorted_ids = sorted(p.pid for p in self.products.values() if p.applied)

    def _product(self, pid):
        p = self.products.get(pid)
        if p is None:
            p = self.products[pid] = _Product(pid)
        return p

    def _index(self, c):
        if c.pid is None:
            return  # a create without an answer: nobody knows its id
        p = self._product(c.pid)
        if c.kind == "create" and c.outcome == "ok":
            if p.created is None or c.t_recv < p.created.t_recv:
                p.created = c
            p.sku = c.view.get("sku") if c.view else c.sku
            self.by_sku.setdefault(p.sku, set()).add(c.pid)
        if c.kind == "delete":
            if c.outcome in ("ok", "unknown"):
                if p.del_possible_t is None or c.t_send < p.del_possible_t:
                    p.del_possible_t = c.t_send
            if c.applied and (p.del_applied is None or c.t_recv < p.del_applied.t_recv):
                p.del_applied = c
            return
        if c.kind in ("patch", "stock") and c.outcome in ("ok", "unknown"):
            p.changes.append((c.t_send, c))
        if c.applied and c.version is not None:
            p.applied.append((c.t_recv, c.version, c.stock_after, c))

    # -- (a) reads never older than an applied answer, never missing an applied product

    def check_reads(self):
        out = []
        for r in self.reads:
            if r.status is None:
                continue
            found = []
            if r.kind == "id":
                found = self._check_by_id(r)
            elif r.kind == "sku":
                found = self._check_by_sku(r)
            elif r.kind == "page" and r.status == 200:
                found = self._check_page(r)
            for v in found:
                v.t = r.t_send
            out += found
        return out

    def _ack_line(self, a):
        return "acknowledged: " + a[3].describe(self.t0)

    def _check_seen(self, r, pid, version, where):
        """A view of pid at version, returned by read r."""
        p = self.products.get(pid)
        if p is None:
            return []
        if p.deleted_applied_before(r.t_send):
            return [Violation("deleted-product-returned",
                              f"{where} returned product {pid} (version {version}) after its "
                              f"DELETE was answered Projection: applied",
                              ["read: " + r.describe(self.t0),
                               "delete: " + p.del_applied.describe(self.t0)])]
        a = p.floor(r.t_send)
        if a is not None and version < a[1]:
            return [Violation("stale-read",
                              f"{where} returned product {pid} at version {version}, older than "
                              f"version {a[1]} answered Projection: applied "
                              f"{r.t_send - a[0]:.3f}s before the read began",
                              ["read: " + r.describe(self.t0), self._ack_line(a)])]
        return []

    def _check_by_id(self, r):
        out = []
        if r.status in (200, 304):
            for pid, version, _stock, _sku in r.items:
                if pid != r.target:
                    out.append(Violation("wrong-product", f"GET /products/{r.target} returned "
                                         f"product {pid}", ["read: " + r.describe(self.t0)]))
                elif version is not None:
                    out += self._check_seen(r, pid, version, "GET /products/{id}")
        elif r.status == 404:
            p = self.products.get(r.target)
            a = p.must_be_visible(r.t_send, r.t_recv) if p else None
            if a is not None:
                out.append(Violation("missing-product",
                                     f"GET /products/{r.target} answered 404 though the product "
                                     f"was answered Projection: applied at version {a[1]} before "
                                     "the read began and no DELETE of it had been sent",
                                     ["read: " + r.describe(self.t0), self._ack_line(a)]))
        return out

    def _sku_owner(self, sku, rs, re_):
        for pid in sorted(self.by_sku.get(sku, ())):
            a = self.products[pid].must_be_visible(rs, re_)
            if a is not None:
                return pid, a
        return None, None

    def _check_by_sku(self, r):
        out = []
        owner, a = self._sku_owner(r.target, r.t_send, r.t_recv)
        if r.status == 200:
            for pid, version, _stock, sku in r.items:
                if sku != r.target:
                    out.append(Violation("wrong-product", f"GET /products/by-sku/{r.target} "
                                         f"returned product {pid} with sku {sku}",
                                         ["read: " + r.describe(self.t0)]))
                    continue
                out += self._check_seen(r, pid, version, "GET /products/by-sku/{sku}")
                if owner is not None and pid != owner:
                    out.append(Violation(
                        "sku-points-elsewhere",
                        f"GET /products/by-sku/{r.target} returned product {pid}, but product "
                        f"{owner} holds that sku: it was answered Projection: applied at version "
                        f"{a[1]} before the read began and no DELETE of it had been sent",
                        ["read: " + r.describe(self.t0), self._ack_line(a)]))
        elif r.status == 404 and owner is not None:
            out.append(Violation(
                "missing-product",
                f"GET /products/by-sku/{r.target} answered 404 though product {owner} holds that "
                f"sku: answered Projection: applied at version {a[1]} before the read began and "
                "no DELETE of it had been sent",
                ["read: " + r.describe(self.t0), self._ack_line(a)]))
        return out

    def _check_page(self, r):
        out = []
        where = "GET " + r.path
        seen = set()
        for pid, version, _stock, _sku in r.items:
            seen.add(pid)
            if (r.after is not None and pid <= r.after) or (r.upto is not None and pid > r.upto):
                out.append(Violation("page-out-of-range",
                                     f"{where} returned product {pid} outside the page's range",
                                     ["read: " + r.describe(self.t0)]))
            out += self._check_seen(r, pid, version, where)
        lo = 0 if r.after is None else bisect.bisect_right(self.sorted_ids, r.after)
        hi = len(self.sorted_ids) if r.upto is None else bisect.bisect_right(self.sorted_ids,
                                                                              r.upto)
        for pid in self.sorted_ids[lo:hi]:
            if pid in seen:
                continue
            a = self.products[pid].must_be_visible(r.t_send, r.t_recv, need_stock=r.in_stock)
            if a is not None:
                why = " with stock > 0 (and nothing sent since that could have made it 0)" \
                    if r.in_stock else ""
                out.append(Violation(
                    "missing-from-page",
                    f"{where} left out product {pid}, which lies in the page's id range and was "
                    f"answered Projection: applied at version {a[1]}{why} before the read began; "
                    "no DELETE of it had been sent",
                    ["read: " + r.describe(self.t0), self._ack_line(a)]))
        return out

    # -- (b) every 2xx command is in the write model

    def check_write_model(self, events, rows):
        """events: {(product_id, version): (type, payload)}; rows: {id: version}."""
        out = []
        for c in self.cmds:
            if c.outcome != "ok" or c.pid is None or c.version is None:
                continue
            ev = events.get((c.pid, c.version))
            if ev is None:
                out.append(Violation("acknowledged-not-in-log",
                                     f"no event for product {c.pid} version {c.version} in the "
                                     "events table, though a command was answered 2xx for it",
                                     ["command: " + c.describe(self.t0)]))
                continue
            if ev[0] != EVENT_TYPE[c.kind]:
                out.append(Violation("acknowledged-differs-from-log",
                                     f"the event for product {c.pid} version {c.version} is a "
                                     f"{ev[0]}, the command was a {c.kind}",
                                     ["command: " + c.describe(self.t0)]))
            elif c.kind != "delete" and ev[1] != c.text:
                out.append(Violation("acknowledged-differs-from-log",
                                     f"the event for product {c.pid} version {c.version} carries "
                                     "another view than the command's answer",
                                     ["command: " + c.describe(self.t0),
                                      f"answer: {c.text[:300]}", f"event:  {ev[1][:300]}"]))
            p = self.products.get(c.pid)
            maybe_deleted = p is not None and p.del_possible_t is not None
            if c.pid not in rows and not maybe_deleted:
                out.append(Violation("acknowledged-not-in-write-model",
                                     f"product {c.pid} is not in the products table, though "
                                     f"it was answered {c.status} and no DELETE of it was sent",
                                     ["command: " + c.describe(self.t0)]))
            elif c.pid in rows and c.kind != "delete" and rows[c.pid] < c.version:
                out.append(Violation("acknowledged-not-in-write-model",
                                     f"product {c.pid} is at version {rows[c.pid]} in the "
                                     f"products table, though version {c.version} was answered",
                                     ["command: " + c.describe(self.t0)]))
        return out

    # -- the write side's own answers

    def check_commands(self):
        out = []
        # a command answered 404 for a product that surely existed
        for c in self.cmds:
            if c.status != 404 or c.replayed or c.pid is None or c.kind == "create":
                continue
            p = self.products.get(c.pid)
            if p is None or p.created is None or p.created.t_recv >= c.t_send:
                continue
            if p.del_possible_t is not None and p.del_possible_t < c.t_recv:
                continue
            out.append(Violation("command-404-for-existing-product",
                                 f"{c.method} {c.path} answered 404 though product {c.pid} was "
                                 "created (201) before it was sent and no DELETE of it was sent",
                                 ["command: " + c.describe(self.t0),
                                  "create: " + p.created.describe(self.t0)]))
        # Idempotency-Key: executed at most once; a replay is the first answer again
        by_key = {}
        for c in self.cmds:
            if c.key:
                by_key.setdefault(c.key, []).append(c)
        for key, cs in by_key.items():
            executed = [c for c in cs if c.outcome == "ok" and not c.replayed]
            if len(executed) > 1:
                out.append(Violation("idempotency-key-executed-twice",
                                     f"Idempotency-Key {key} was answered 2xx without "
                                     f"Idempotent-Replayed {len(executed)} times",
                                     ["command: " + c.describe(self.t0) for c in executed]))
            for c in cs:
                if not c.replayed:
                    continue
                firsts = [f for f in executed if (f.method, f.path, f.body) ==
                          (c.method, c.path, c.body)]
                if firsts and (firsts[0].status, firsts[0].text) != (c.status, c.text):
                    out.append(Violation("idempotent-replay-differs",
                                         f"the replay for Idempotency-Key {key} differs from "
                                         "the first answer",
                                         ["first: " + firsts[0].describe(self.t0),
                                          f"       {firsts[0].text[:300]}",
                                          "replay: " + c.describe(self.t0),
                                          f"        {c.text[:300]}"]))
        return out


    # -- PostgreSQL mode: a refusal changes nothing

    def check_refusals(self, log):
        """A 503 says the write model could not take the command: it must carry Retry-After
        and change nothing. log: [(product_id, version, type, payload)] of every event.
        Every event that no 2xx answer accounts for must be explained by a command whose
        outcome nobody knows (no answer, a 500, ...): one explained only by commands that were
        answered 503 (or 4xx) is a refused command that ran after all."""
        out = []
        for c in self.cmds:
            if c.status == 503 and not (c.retry_after or "").isdigit():
                out.append(Violation("503-without-retry-after",
                                     f"a command was answered 503 with Retry-After "
                                     f"{c.retry_after!r}", ["command: " + c.describe(self.t0)]))
        acked = {(c.pid, c.version) for c in self.cmds
                 if c.outcome == "ok" and c.version is not None}
        by_pid, creates = {}, {}
        for c in self.cmds:
            if c.kind == "create":
                creates.setdefault(c.sku, []).append(c)
            elif c.pid is not None:
                by_pid.setdefault(c.pid, []).append(c)
        for pid, version, typ, payload in log:
            if (pid, version) in acked:
                continue
            kind = {v: k for k, v in EVENT_TYPE.items()}.get(typ)
            view = view_of(payload) if typ != "ProductDeleted" else None
            if typ == "ProductCreated":
                cands = [c for c in creates.get((view or {}).get("sku"), ())
                         if _body_matches(c.body, view)]
            else:
                cands = [c for c in by_pid.get(pid, ()) if c.kind == kind and
                         (kind != "patch" or _body_matches(c.body, view))]
            if any(c.outcome == "unknown" and c.status != 503 for c in cands):
                continue  # no answer, or a 500: it may have run
            if any(c.outcome == "ok" for c in cands):
                continue  # a 2xx at another version (a replay): checked elsewhere
            refused = [c for c in cands if c.status is not None]
            if refused:
                out.append(Violation(
                    "refused-command-changed-write-model",
                    f"event {typ} for product {pid} version {version} is in the log, but every "
                    f"command that could have written it was answered "
                    f"{sorted({c.status for c in refused})}",
                    [f"event payload: {payload[:300]}"]
                    + ["command: " + c.describe(self.t0) for c in refused[:5]]))
            elif kind is not None:
                out.append(Violation(
                    "event-without-command",
                    f"event {typ} for product {pid} version {version} is in the log, but no "
                    "command the clients sent could have written it",
                    [f"event payload: {payload[:300]}"]))
        return out


def _body_matches(body, view):
    """Whether a create's or PATCH's JSON body agrees with the view an event carries."""
    import decimal
    if view is None or body is None:
        return False
    try:
        b = json.loads(body, parse_float=decimal.Decimal)
        v = json.loads(json.dumps(view), parse_float=decimal.Decimal)
    except ValueError:
        return False
    for k, want in b.items():
        got = v.get(k)
        if k == "price":
            if got is None or decimal.Decimal(str(got)) != want:
                return False
        elif got != want:
            return False
    return True


def parse_events(rows):
    """SQLite rows (product_id, version, type, payload) -> {(id, version): (type, payload)}."""
    return {(pid, version): (typ, payload) for pid, version, typ, payload in rows}


def view_of(text):
    try:
        v = json.loads(text)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None

"""The clients of a chaos run: a few threads issuing a random mix of every command and query
over a small set of SKUs, so that they collide (duplicate creates, deletes then re-creates,
stock driven to zero, stale If-Match, Idempotency-Key retries), each recorded in the History.

Each client draws its choices from its own random.Random seeded from the run's seed; what it
targets also depends on what the server answered, so a rerun with the same seed makes the same
kinds of choices, not the same requests.
"""

import base64
import json
import random
import threading
import time
import uuid
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from history import Cmd, Read, view_of, view_problems

SKUS = [f"CH-{k}" for k in range(10)]
NAMES = ["Widget", "Gadget", "Caneca azul", "Teclado ABNT2 ç", "Cabo USB-C 2 m", "Mouse"]
JSON_CT = {"Content-Type": "application/json"}
TIMEOUT = (2.0, 5.0)  # connect, read: a command answers within ~2 s even on a locked db
MAX_PAGES = 40

OPS = [  # (name, weight)
    ("create", 14), ("patch", 15), ("stock", 15), ("delete", 7), ("get_id", 18),
    ("get_sku", 12), ("walk", 8), ("reuse_key", 1),
]


def decode_cursor(cursor):
    """The id a catalog cursor stands for (an id's 16 bytes in unpadded base64url, see
    src/domain/cursor.c), or None. The test needs it to know which id range a page covered."""
    if not isinstance(cursor, str) or len(cursor) != 22:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "==")
    except (ValueError, TypeError):
        return None
    if len(raw) != 16:
        return None
    return str(uuid.UUID(bytes=raw))


class Knowledge:
    """What the clients know of the catalog, to pick targets (never used for checking)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.products = {}  # id -> {"sku", "version", "stock", "gone"}
        self.order = []     # ids in the order they were learnt

    def learn(self, view):
        if not isinstance(view, dict) or not isinstance(view.get("id"), str):
            return
        with self.lock:
            p = self.products.get(view["id"])
            if p is None:
                p = self.products[view["id"]] = {"sku": view.get("sku"), "version": 0,
                                                 "stock": 0, "gone": False}
                self.order.append(view["id"])
            if isinstance(view.get("version"), int) and view["version"] >= p["version"]:
                p["version"] = view["version"]
                p["stock"] = view.get("stock", 0)

    def learn_id(self, pid, sku=None):
        with self.lock:
            if pid not in self.products:
                self.products[pid] = {"sku": sku, "version": 0, "stock": 0, "gone": False}
                self.order.append(pid)

    def gone(self, pid):
        with self.lock:
            if pid in self.products:
                self.products[pid]["gone"] = True

    def pick(self, rng, live_bias=0.85):
        """A product id (mostly one believed live, sometimes a recent gone one), or None."""
        with self.lock:
            live = [pid for pid in self.order if not self.products[pid]["gone"]]
            recent = self.order[-30:]
            if live and (rng.random() < live_bias or not recent):
                return rng.choice(live)
            return rng.choice(recent) if recent else None

    def get(self, pid):
        with self.lock:
            p = self.products.get(pid)
            return dict(p) if p else None

    def ids(self):
        with self.lock:
            return list(self.order)


class Client(threading.Thread):
    def __init__(self, k, seed, history, knowledge, targets_fn, stop_event, seen_bad_views):
        """targets_fn() -> [(instance name or None, base URL)]: each request goes to one of
        them, drawn at random (the PostgreSQL mode's several instances)."""
        super().__init__(name=f"client-{k}", daemon=True)
        self.k = k
        self.rng = random.Random(f"{seed}/client/{k}")
        self.route_rng = random.Random(f"{seed}/client/{k}/route")  # apart: the SQLite
        self.targets_fn = targets_fn  # mode's choices stay what they were
        self.history = history
        self.knowledge = knowledge
        self.stop_event = stop_event
        self.bad_views = seen_bad_views   # list shared with the runner: (where, view, problems)
        self.session = None
        self.retries = []    # (due, Cmd): a command to send again with the same key
        self.used_keys = []  # (key, Cmd)
        self.key_no = 0
        self.phase = "run"

    # -- plumbing

    def _route(self, record):
        """The base URL of the instance this request goes to (noted in the record)."""
        targets = self.targets_fn()
        name, base = targets[0] if len(targets) == 1 else self.route_rng.choice(targets)
        record.instance = name
        return base

    def _send(self, record, method, path, **kw):
        kw.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self._route(record) + path, **kw)

    def _view_seen(self, where, view):
        problems = view_problems(view)
        if problems:
            self.bad_views.append((where, view, problems))
        self.knowledge.learn(view)

    def _new_key(self):
        self.key_no += 1
        return f"chaos-{self.k}-{self.key_no}-{self.rng.randrange(1 << 30):x}"

    def command(self, cmd):
        headers = dict(JSON_CT) if cmd.body is not None else {}
        if cmd.if_match is not None:
            headers["If-Match"] = f'"{cmd.if_match}"'
        if cmd.key:
            headers["Idempotency-Key"] = cmd.key
        cmd.t_send = time.monotonic()
        try:
            r = self._send(cmd, cmd.method, cmd.path, data=cmd.body, headers=headers)
            cmd.t_recv = time.monotonic()
            cmd.status = r.status_code
            cmd.text = r.text
            cmd.projection = r.headers.get("Projection")
            cmd.replayed = r.headers.get("Idempotent-Replayed") == "true"
            cmd.retry_after = r.headers.get("Retry-After")
            if r.status_code >= 500:
                cmd.problem_type = (view_of(r.text) or {}).get("type")
            etag = r.headers.get("ETag", "")
            if 200 <= r.status_code < 300 and etag.startswith('"') and etag[1:-1].isdigit():
                cmd.version = int(etag[1:-1])
            if r.status_code in (200, 201):
                cmd.view = view_of(r.text)
                if cmd.view is not None:
                    self._view_seen(f"{cmd.method} {cmd.path}", cmd.view)
                    if cmd.kind == "create":
                        cmd.pid = cmd.view.get("id")
            if r.status_code == 409 and cmd.kind == "create":
                existing = (view_of(r.text) or {}).get("existing_id")
                if isinstance(existing, str):
                    self.knowledge.learn_id(existing, cmd.sku)
            if cmd.kind == "delete" and r.status_code in (204, 404) and cmd.pid:
                self.knowledge.gone(cmd.pid)
        except requests.RequestException as exc:
            cmd.t_recv = time.monotonic()
            cmd.error = type(exc).__name__
        self.history.add_cmd(cmd)
        if cmd.key:
            self.used_keys.append((cmd.key, cmd))
            del self.used_keys[:-20]
            p = 0.7 if cmd.outcome == "unknown" else 0.12
            if cmd.retry_of is None and self.rng.random() < p:
                self.retries.append((time.monotonic() + self.rng.uniform(0.05, 1.0), cmd))
        if cmd.outcome == "unknown":
            time.sleep(self.rng.uniform(0.05, 0.2))  # the server is down or refusing: back off
        return cmd

    def read(self, read, headers=None):
        read.phase = self.phase
        read.t_send = time.monotonic()
        try:
            r = self._send(read, "GET", read.path, headers=headers or {})
            read.t_recv = time.monotonic()
            read.status = r.status_code
            if r.status_code == 200:
                self._parse_read(read, r)
            elif r.status_code == 304 and read.inm is not None:
                read.items = [(read.target, read.inm, None, None)]
            return read, r
        except requests.RequestException as exc:
            read.t_recv = time.monotonic()
            read.error = type(exc).__name__
            return read, None
        finally:
            self.history.add_read(read)
            if read.status is None:
                time.sleep(self.rng.uniform(0.05, 0.2))

    def _parse_read(self, read, r):
        try:
            body = r.json()
        except ValueError:
            self.bad_views.append((f"GET {read.path}", r.text[:300], ["not JSON"]))
            return
        views = body if read.kind == "page" else [body]
        if not isinstance(views, list):
            self.bad_views.append((f"GET {read.path}", r.text[:300], ["not a JSON array"]))
            return
        for v in views:
            self._view_seen(f"GET {read.path}", v)
            if isinstance(v, dict):
                read.items.append((v.get("id"), v.get("version"), v.get("stock"), v.get("sku")))
        if read.kind == "page":
            total = r.headers.get("X-Total-Count")
            read.total = int(total) if total and total.isdigit() else None

    # -- commands

    def _price(self):
        cents = self.rng.randrange(0, 100000)
        return f"{cents // 100}.{cents % 100:02d}"  # a JSON number with two decimals, exactly

    def _product_body(self, sku):
        stock = self.rng.choice([0, 0, 1, 2, 3, 5, 8])
        return (f'{{"sku":{json.dumps(sku)},"name":{json.dumps(self.rng.choice(NAMES))},'
                f'"price":{self._price()},"stock":{stock}}}')

    def _if_match(self, pid):
        if self.rng.random() >= 0.25:
            return None
        p = self.knowledge.get(pid) or {}
        v = max(1, p.get("version") or 1)
        if self.rng.random() < 0.2:
            v = max(1, v + self.rng.choice([-1, 1]))
        return v

    def _key(self):
        return self._new_key() if self.rng.random() < 0.35 else None

    def op_create(self):
        sku = self.rng.choice(SKUS)
        cmd = self.command(Cmd(self.k, "create", "POST", "/products", self._product_body(sku),
                               sku=sku, key=self._key()))
        self._probe(cmd)

    def op_patch(self):
        pid = self.knowledge.pick(self.rng)
        if pid is None:
            return self.op_create()
        fields = {}
        while not fields:
            if self.rng.random() < 0.5:
                fields["name"] = json.dumps(self.rng.choice(NAMES) + f" {self.rng.randrange(100)}")
            if self.rng.random() < 0.4:
                fields["price"] = self._price()
            if self.rng.random() < 0.5:
                fields["stock"] = str(self.rng.choice([0, 0, 1, 2, 4, 7]))
        body = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
        cmd = self.command(Cmd(self.k, "patch", "PATCH", f"/products/{pid}", body, pid=pid,
                               if_match=self._if_match(pid), key=self._key(),
                               stock_set=int(fields["stock"]) if "stock" in fields else None))
        self._probe(cmd)

    def op_stock(self):
        pid = self.knowledge.pick(self.rng)
        if pid is None:
            return self.op_create()
        stock = (self.knowledge.get(pid) or {}).get("stock") or 0
        if stock > 0 and self.rng.random() < 0.3:
            delta = -stock  # to zero exactly
        else:
            delta = self.rng.choice([-3, -2, -1, -1, 1, 2, 3, 5])
        cmd = self.command(Cmd(self.k, "stock", "POST", f"/products/{pid}/stock",
                               json.dumps({"delta": delta}), pid=pid,
                               if_match=self._if_match(pid), key=self._key(), delta=delta))
        self._probe(cmd)

    def op_delete(self):
        pid = self.knowledge.pick(self.rng, live_bias=0.95)
        if pid is None:
            return self.op_create()
        cmd = self.command(Cmd(self.k, "delete", "DELETE", f"/products/{pid}", None, pid=pid,
                               if_match=self._if_match(pid), key=self._key()))
        self._probe(cmd)

    def op_reuse_key(self):
        """The same Idempotency-Key with another request: must never run it."""
        if not self.used_keys:
            return
        key, old = self.rng.choice(self.used_keys)
        pid = self.knowledge.pick(self.rng) or old.pid
        if pid is None:
            return
        delta = self.rng.choice([1, 2])  # +10: never the body the key was first used with
        self.command(Cmd(self.k, "stock", "POST", f"/products/{pid}/stock",
                         json.dumps({"delta": delta + 10}), pid=pid, key=key, delta=delta + 10,
                         retry_of=old.n))

    def retry(self, old):
        """The same request again, with the same Idempotency-Key."""
        self.command(Cmd(self.k, old.kind, old.method, old.path, old.body, pid=old.pid,
                         sku=old.sku, if_match=old.if_match, key=old.key,
                         stock_set=old.stock_set, delta=old.delta, retry_of=old.n))

    # -- queries

    def op_get_id(self, pid=None):
        pid = pid or self.knowledge.pick(self.rng, live_bias=0.8)
        if pid is None:
            return
        headers, inm = {}, None
        p = self.knowledge.get(pid) or {}
        if p.get("version") and self.rng.random() < 0.2:
            inm = p["version"]
            headers["If-None-Match"] = f'"{inm}"'
        self.read(Read(self.k, "id", f"/products/{pid}", target=pid, inm=inm), headers)

    def op_get_sku(self, sku=None):
        sku = sku or self.rng.choice(SKUS)
        self.read(Read(self.k, "sku", f"/products/by-sku/{sku}", target=sku))

    def op_walk(self, in_stock=None, limit=None):
        """Walks the catalog by its Link headers, one Read per page. Returns the items of the
        whole walk, or None when a page failed."""
        if in_stock is None:
            in_stock = self.rng.random() < 0.4
        limit = limit or self.rng.choice([2, 3, 4, 5, 7])
        path = f"/catalog?limit={limit}" + ("&in_stock=true" if in_stock else "")
        after = None
        items = []
        for _ in range(MAX_PAGES):
            read, r = self.read(Read(self.k, "page", path, in_stock=in_stock, after=after))
            if r is None or r.status_code != 200:
                return None
            items += read.items
            nxt = r.links.get("next", {}).get("url")
            if not nxt:
                return items  # the last page: it covered every id above "after"
            cursor = parse_qs(urlsplit(nxt).query).get("cursor", [None])[0]
            upto = decode_cursor(cursor)
            if upto is None:
                self.bad_views.append((f"GET {path}", nxt, ["Link cursor the test cannot read"]))
                read.kind = "page-unreadable"
                return None
            read.upto = upto
            after = upto
            u = urlsplit(urljoin("http://x/", nxt))
            path = u.path + ("?" + u.query if u.query else "")
        return None

    def _probe(self, cmd):
        """Read your write: right after a 2xx, read the product back on a random path."""
        if cmd.outcome != "ok" or cmd.pid is None or self.rng.random() >= 0.5:
            return
        x = self.rng.random()
        if x < 0.5:
            self.op_get_id(cmd.pid)
        elif x < 0.8:
            sku = (cmd.view or {}).get("sku") or (self.knowledge.get(cmd.pid) or {}).get("sku")
            if sku:
                self.op_get_sku(sku)
        else:
            self.op_walk(in_stock=bool((cmd.view or {}).get("stock")), limit=5)

    # -- the loop

    def run(self):
        self.session = requests.Session()
        names = [n for n, _ in OPS]
        weights = [w for _, w in OPS]
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                due = [x for x in self.retries if x[0] <= now]
                if due:
                    self.retries.remove(due[0])
                    self.retry(due[0][1])
                else:
                    getattr(self, "op_" + self.rng.choices(names, weights)[0])()
                self.stop_event.wait(self.rng.uniform(0.01, 0.04))
        finally:
            self.session.close()

"""Black-box API test fixtures for catalogd.

Every test runs against a real write model and a real redis-server that these fixtures start
themselves, on free loopback ports, in a temporary directory. They never touch a Redis or a
PostgreSQL they did not start. Every wait is bounded, so a broken server fails a test instead
of hanging it.

The write model is a SQLite file in the stack's directory by default. With
CATALOGD_TEST_BACKEND=postgresql, every Stack gets a fresh database of one private PostgreSQL
server (PgServer, started on first use and stopped at the end of the session), and the helpers
that read the write model (sql(), row_counts(), write_lock(), ...) work on either. Tests about
the SQLite file itself carry @pytest.mark.sqlite_only(reason=...) and are skipped, with that
reason, on PostgreSQL.
"""

import atexit
import contextlib
import datetime
import decimal
import json
import os
import pwd
import re
import secrets
import shutil
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CATALOGD_BIN") or ROOT / "build" / "catalogd")
PREFIX = "catalogd"
START_DEADLINE = 10.0  # seconds for redis-server or catalogd to become ready
CLI_TIMEOUT = 30.0

# The write model of every Stack: "sqlite" (a file, the default) or "postgresql".
BACKEND = os.environ.get("CATALOGD_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"CATALOGD_TEST_BACKEND={BACKEND!r}: expected sqlite or postgresql")
# The SQLite schema version this build migrates a file to (PRAGMA user_version): its last step.
SQLITE_SCHEMA_VERSION = 5

# The name of the write model's check in /ready (CONTRACT.md section 6).
WRITE_MODEL_CHECK = BACKEND
# Debian's PostgreSQL 15 server binaries (initdb, postgres, pg_dump, pg_restore).
PG_BIN = Path(os.environ.get("CATALOGD_PG_BIN") or "/usr/lib/postgresql/15/bin")
PG_SUPERUSER = "catalogd_test"
PG_APP = "catalogd-tests"  # application_name of the tests' own connections

UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VIEW_KEYS = ["id", "sku", "name", "price", "stock", "available", "desc", "version",
             "created_at", "updated_at"]

VIEW_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": VIEW_KEYS,
    "properties": {
        "id": {"type": "string", "pattern": UUID7_RE.pattern},
        "sku": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"},
        "name": {"type": "string", "minLength": 1},
        "price": {"type": "number", "minimum": 0, "maximum": 999999999.99},
        "stock": {"type": "integer", "minimum": 0, "maximum": 2147483647},
        "available": {"type": "boolean"},
        "desc": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "created_at": {"type": "string", "pattern": TS_RE.pattern},
        "updated_at": {"type": "string", "pattern": TS_RE.pattern},
    },
}

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "title": {"type": "string", "minLength": 1},
        "status": {"type": "integer"},
        "detail": {"type": "string", "minLength": 1},
    },
}

_LIVE_STACKS = []


# ---------------------------------------------------------------------------------------------
# small helpers


def raw_connect(port, timeout=3.0):
    """A plain TCP connection to catalogd, for requests a client library would not send."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_until_closed(sock, deadline_s=5.0):
    """Everything the server sends until it closes its side (or resets), or until the deadline."""
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


_PORTS_HANDED_OUT = set()


def free_port():
    """A free port below the kernel's ephemeral range (32768+), so that the outgoing
    connections of this and other processes cannot take it between now and the bind; and
    never one handed out before in this run: two servers given ports a moment apart, before
    either binds, must not get the same one (a catalogd of the TLS tests once found its port
    taken a moment after it was chosen; two picks of one port is the cause this rules out)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in _PORTS_HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port in 20000-31999")


def uniq_sku(prefix="T"):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - remembered for the failure message
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def sql(db, query, args=()):
    """Runs one query on the write model ("db": a SQLite path or a PgDatabase), read-only.
    Placeholders are "?" on both backends. Returns a list of tuples, with values as SQLite
    would give them (bytes for blobs, text for timestamps and JSON)."""
    if isinstance(db, PgDatabase):
        return db.query(query, args)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def sql_write(db, query, args=()):
    """Runs one statement that changes the write model behind catalogd's back (to plant a
    foreign row, say), committed at once. Placeholders are "?" on both backends."""
    if isinstance(db, PgDatabase):
        db.query(query, args, read_only=False)
        return
    conn = sqlite3.connect(str(db), timeout=10)
    try:
        conn.execute(query, args)
        conn.commit()
    finally:
        conn.close()


def sql_typeof(column):
    """An SQL expression naming the storage type of "column" ("integer" on SQLite, "bigint" or
    "integer" on PostgreSQL); see is_integer_type."""
    return f"pg_typeof({column})::text" if BACKEND == "postgresql" else f"typeof({column})"


def is_integer_type(name):
    return name in ("integer", "bigint", "smallint")


@contextlib.contextmanager
def write_lock(db):
    """Holds the write model's write lock from another connection while the block runs:
    catalogd's writes wait on it and the commands answer 503 write-model-unavailable once
    catalogd gives up waiting. SQLite: BEGIN EXCLUSIVE (readers go on, in WAL mode).
    PostgreSQL, the same over the whole database: every table of the schema locked IN
    EXCLUSIVE MODE, which plain SELECTs pass and INSERT/UPDATE/DELETE wait on.
    LOCK TABLE takes the tables one by one, so a catalogd transaction already holding one of
    them while it waits on another is a deadlock, which PostgreSQL breaks by failing one
    side; when it fails ours, catalogd's transaction has gone on and we take them again."""
    if isinstance(db, PgDatabase):
        from psycopg2.errors import DeadlockDetected
        conn = db.connect()
        try:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("SELECT quote_ident(tablename) FROM pg_tables "
                            "WHERE schemaname = current_schema() ORDER BY tablename")
                tables = [t for (t,) in cur.fetchall()]
                assert "events" in tables, f"no catalogd tables in {db!r}: {tables}"
                for _ in range(10):
                    try:
                        cur.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
                        break
                    except DeadlockDetected:
                        conn.rollback()
                else:
                    raise AssertionError(f"no exclusive lock on {db!r} after 10 deadlocks")
            yield
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()
        return
    con = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        try:
            con.execute("ROLLBACK")
        finally:
            con.close()


def db_backup(db, dest):
    """Copies the whole write model ("db") to the file "dest", consistently, while catalogd
    may be running (SQLite's online backup; pg_dump)."""
    if isinstance(db, PgDatabase):
        db.dump(dest)
        return
    src, dst = sqlite3.connect(str(db)), sqlite3.connect(str(dest))
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def db_restore(db, src):
    """Replaces the write model ("db") by a copy db_backup made: the operator restoring last
    night's backup. catalogd must not be running."""
    if isinstance(db, PgDatabase):
        db.restore(src)
        return
    db = Path(db)
    for suffix in ("-wal", "-shm"):
        (db.parent / (db.name + suffix)).unlink(missing_ok=True)
    shutil.copy(src, db)


def append_unreadable_event(db, product_id, version, payload="not a view"):
    """Appends to the write model's log, behind catalogd's back, an event of "product_id" at
    "version" whose payload is not a valid view (a "poison" entry, as a foreign writer or a
    damaged disk would leave): the projector parks it in its product's sku queue and every
    later event of that sku waits behind it. The seq is given (PostgreSQL's has no default;
    its writer then takes the next one after the log's head). Returns the row's seq."""
    sql_write(db, "INSERT INTO events (seq, product_id, type, version, payload, recorded_at) "
                  "SELECT COALESCE(MAX(seq), 0) + 1, ?, 'ProductUpdated', ?, ?, "
                  "'2026-11-30T00:00:00.000Z' FROM events", (product_id, version, payload))
    rows = sql(db, "SELECT MAX(seq) FROM events WHERE product_id = ? AND payload = ?",
               (product_id, payload))
    assert rows and rows[0][0] is not None, rows
    return rows[0][0]


def repair_event(db, seq, payload):
    """Makes the log entry "seq" valid again: its payload becomes "payload" (a view of the
    entry's product at the entry's version). The projector re-reads a parked event from the
    write model on each retry, so the repair heals it."""
    sql_write(db, "UPDATE events SET payload = ? WHERE seq = ?", (payload, seq))


def row_counts(db_path):
    return (sql(db_path, "SELECT COUNT(*) FROM products")[0][0],
            sql(db_path, "SELECT COUNT(*) FROM events")[0][0])


def redis_gen(r):
    gen = r.get(f"{PREFIX}:gen-v2")
    return None if gen is None else gen.decode()


def view_range(product_id):
    """The ZRANGEBYLEX bounds of one product's views in a view set (every view starts with
    {"id":"<id>", so its members sort by id)."""
    head = ('{"id":"%s"' % product_id).encode()
    return b"[" + head, b"(" + head + b"\xff"


def stored_views(r, base, product_id):
    """{set name: [raw view, ...]} of one product in generation base's two view sets."""
    low, high = view_range(product_id)
    return {name: r.zrangebylex(f"{base}:{name}", low, high) for name in ("in", "out")}


def delete_views(r, base, product_id):
    """Removes a product's views from both sets, as a fault would; returns how many."""
    low, high = view_range(product_id)
    return sum(r.zremrangebylex(f"{base}:{name}", low, high) for name in ("in", "out"))


def sku_owner(r, sku):
    """The id the current generation's sku index names for "sku", or None."""
    owner = r.hget(f"{PREFIX}:g{redis_gen(r)}:skus", sku)
    return None if owner is None else owner.decode()


def all_views(r, base):
    """Every member of generation base's two view sets (raw), in id order per set."""
    return {name: r.zrange(f"{base}:{name}", 0, -1) for name in ("in", "out")}


def redis_view(r, product_id):
    """Reads everything the read model holds about one product, in the documented layout:
    its view is a member of the in-stock set ("in") or the out-of-stock one ("out")."""
    gen = redis_gen(r)
    assert gen is not None, "catalogd:gen-v2 is missing"
    assert re.fullmatch(r"\d+", gen), f"catalogd:gen-v2 is not an integer string: {gen!r}"
    base = f"{PREFIX}:g{gen}"
    found = stored_views(r, base, product_id)
    members = found["in"] + found["out"]
    assert len(members) <= 1, f"more than one view of {product_id}: {members!r}"
    raw = members[0] if members else None
    view = json.loads(raw) if raw is not None else None
    sku_id = None
    if view is not None:
        v = r.hget(f"{base}:skus", view["sku"])
        sku_id = None if v is None else v.decode()
    cp = r.get(f"{base}:checkpoint")
    return {
        "gen": gen,
        "raw": raw,
        "view": view,
        "sku_id": sku_id,
        "all_score": 0 if raw is not None else None,  # in one of the two sets
        "in_stock_score": 0 if found["in"] else None,
        "checkpoint": None if cp is None else cp.decode(),
    }


def cli(args, timeout=CLI_TIMEOUT):
    """Runs build/catalogd with the given arguments; returns the CompletedProcess."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT))


def media_type(resp):
    return resp.headers.get("Content-Type")


def assert_problem(resp, status):
    """Asserts an RFC 9457 problem response with the given status; returns the parsed body."""
    import jsonschema

    assert resp.status_code == status, (resp.status_code, resp.headers, resp.text)
    assert media_type(resp) == "application/problem+json", (resp.headers, resp.text)
    assert resp.headers.get("X-Request-Id"), resp.headers
    body = resp.json()
    jsonschema.validate(body, PROBLEM_SCHEMA)
    assert body["status"] == status, body
    return body


def expected_view_text(view):
    """The exact bytes the server must produce for a view (key order, no spaces)."""
    def s(x):
        return json.dumps(x, ensure_ascii=False)
    return ("{" + f'"id":{s(view["id"])},"sku":{s(view["sku"])},"name":{s(view["name"])},'
            f'"price":{view["price_text"]},"stock":{view["stock"]},'
            f'"available":{"true" if view["stock"] > 0 else "false"},'
            f'"desc":{s(view["name"] + " - $" + view["price_text"])},'
            f'"version":{view["version"]},"created_at":{s(view["created_at"])},'
            f'"updated_at":{s(view["updated_at"])}' + "}")


def row_text(row):
    """The exact view text the read model must serve for one SQLite products row."""
    pid, sku, name, cents, stock, version, created_at, updated_at = row
    return expected_view_text({"id": pid, "sku": sku, "name": name,
                               "price_text": f"{cents // 100}.{cents % 100:02d}",
                               "stock": stock, "version": version,
                               "created_at": created_at, "updated_at": updated_at})


def cpu_seconds(pid):
    """User + system CPU a process has used so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_while_a_request_waits(stack, sock, meanwhile, watch_s=0.5):
    """Sends a GET of a product on "sock" (a keep-alive connection to "stack") with Redis
    frozen, so that it waits for its answer; then "meanwhile(sock)" (more bytes, a half-close).
    Returns the server's CPU seconds over "watch_s" after that, while the request still waits
    (a server that polls the connection without reading what came would spin). Redis thaws
    before this returns; the GET is then answered 200, or 503 when Redis' timeout came first."""
    _, view = stack.create()
    pid, redis_pid = stack.server.proc.pid, stack.redis.proc.pid
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        sock.sendall(f"GET /products/{view['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        time.sleep(0.2)
        meanwhile(sock)
        cpu0 = cpu_seconds(pid)
        time.sleep(watch_s)
        return cpu_seconds(pid) - cpu0
    finally:
        os.kill(redis_pid, signal.SIGCONT)


def assert_degraded_without_spinning(s):
    """With Redis refusing catalogd: commands still commit (201, Projection: pending), reads of
    the view answer 503, and catalogd retries with backoff instead of spinning on the CPU."""
    created = s.post_raw("/products", product_body(uniq_sku()))
    assert created.status_code == 201 and created.headers["Projection"] == "pending"
    assert s.get(f"/products/{created.json()['id']}").status_code == 503
    cpu0 = cpu_seconds(s.server.proc.pid)
    time.sleep(2)
    assert cpu_seconds(s.server.proc.pid) - cpu0 < 0.3
    return created


def product_body(sku, name="Item", price="7.50", stock=2):
    return ('{"sku":' + json.dumps(sku) + ',"name":' + json.dumps(name) + ',"price":'
            + str(price) + ',"stock":' + str(stock) + "}")


def bulk_create(base, n, workers=8, prefix="BULK", in_stock_only=False):
    """Creates n products with `workers` clients (a third of them out of stock, unless
    "in_stock_only"); returns their 201 responses."""
    from concurrent.futures import ThreadPoolExecutor

    def chunk(k):
        with requests.Session() as s:
            return [s.post(base + "/products",
                           data=product_body(uniq_sku(prefix),
                                             stock=i % 3 + 1 if in_stock_only else i % 3),
                           headers={"Content-Type": "application/json"}, timeout=10)
                    for i in range(k, n, workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        resps = [r for part in pool.map(chunk, range(workers)) for r in part]
    bad = [r for r in resps if r.status_code != 201]
    assert not bad, (bad[0].status_code, bad[0].text)
    return resps


def plant_old_layout(stack):
    """Generation 1 of the layout before views became set members: a view key, its sku key
    and the two id indexes, named by catalogd:gen, for a product the write model lacks."""
    ghost = "01a22e1c-66c4-7000-98ec-8a2b1f9c2b81"
    view = {"id": ghost, "sku": "OLD-1", "name": "old", "price": 1.0, "stock": 1,
            "available": True, "desc": "old - $1.00", "version": 1,
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"}
    r = stack.r
    r.set(f"{PREFIX}:gen", 1)
    r.set(f"{PREFIX}:gen-counter", 1)
    r.hset(f"{PREFIX}:generations", "1", 0)
    r.set(f"{PREFIX}:g1:checkpoint", 0)
    r.set(f"{PREFIX}:g1:p:{ghost}", json.dumps(view))
    r.set(f"{PREFIX}:g1:sku:OLD-1", ghost)
    r.zadd(f"{PREFIX}:g1:all", {ghost: 0})
    r.zadd(f"{PREFIX}:g1:in_stock", {ghost: 0})


def catalog_pages(stack, limit, in_stock=False):
    """Every page of the catalog through the Link headers: [(views, X-Total-Count)]."""
    url = stack.url(f"/catalog?limit={limit}" + ("&in_stock=true" if in_stock else ""))
    pages = []
    for _ in range(1000):
        r = stack.http.get(url, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        pages.append((r.json(), int(r.headers["X-Total-Count"])))
        link = r.headers.get("Link")
        if not link:
            return pages
        url = stack.url(link[1:link.index(">")])
    raise AssertionError("the catalog's pages never end")


def projection_of(stack):
    r = requests.get(stack.url("/admin/projection"), timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def verify_output(stack):
    """Runs catalogd verify; returns (exit code, its output)."""
    v = stack.cli("verify")
    return v.returncode, v.stdout + v.stderr


def generation_numbers(r):
    """The generation numbers that have keys in Redis."""
    found = set()
    for key in r.scan_iter(f"{PREFIX}:g*", count=1000):
        m = re.match(rf"{PREFIX}:g(\d+):", key.decode())
        if m:
            found.add(int(m.group(1)))
    return found


# ---------------------------------------------------------------------------------------------
# processes


class RedisProc:
    def __init__(self, workdir, port=None, extra_args=(), password=None, tls=None):
        self.dir = Path(workdir)
        self.port = port or free_port()
        self.proc = None
        self.log = self.dir / f"redis-{self.port}.log"
        self.extra_args = list(extra_args)
        self.password = password  # of the default user, for the tests' own client
        # TLS only (extra_args give the server its --tls-* files): redis-py's ssl_* keywords
        # for the tests' own client; the port is then --tls-port, and --port is 0.
        self.tls = tls

    @property
    def url(self):
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _client(self, timeout):
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_timeout=timeout,
                           socket_connect_timeout=timeout, password=self.password,
                           **(self.tls or {}))

    def client(self):
        return self._client(5)

    def start(self):
        assert shutil.which("redis-server"), "redis-server is not on PATH"
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["redis-server", *(["--port", "0", "--tls-port"] if self.tls else ["--port"]),
             str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
             *self.extra_args],
            stdout=logf, stderr=subprocess.STDOUT, cwd=str(self.dir))
        logf.close()

        def pong():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log.read_text()[-2000:]}")
            c = self._client(0.5)
            try:
                return c.ping()
            finally:
                c.close()
        wait_until(pong, START_DEADLINE, what=f"redis-server on port {self.port}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


class PgServer:
    """A private PostgreSQL server for the tests: Debian's PostgreSQL 15, initdb'd into a temp
    dir, password auth (scram-sha-256) for one superuser, listening on 127.0.0.1 and a free
    port, its unix socket inside the temp dir, fsync off (test speed; never for benchmarks).

    PostgreSQL refuses to run as root: as root (CI), initdb and postgres run as the `postgres`
    user that Debian's package creates (the child process drops to it before exec, so the PID
    we hold is the postmaster's own); otherwise as the current user. Stopped by that PID only,
    never a server these tests did not start."""

    def __init__(self, port=None):
        for tool in ("initdb", "postgres"):
            if not (PG_BIN / tool).exists():
                pytest.fail(f"{PG_BIN / tool} does not exist (Debian: apt-get install postgresql)")
        self.port = port or free_port()
        self.user = PG_SUPERUSER
        self.password = secrets.token_hex(16)
        self.dir = Path(tempfile.mkdtemp(prefix="catalogd-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self.proc = None
        self._ids = None  # (uid, gid) to run as, when we are root
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._ids = (pw.pw_uid, pw.pw_gid)
        self.sock.mkdir()
        os.chmod(self.dir, 0o700)
        if self._ids:
            for p in (self.dir, self.sock):
                os.chown(p, *self._ids)
        self._initdb()

    def _as_user(self):
        if not self._ids:
            return {}
        return {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}

    def _initdb(self):
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self._ids:
            os.chown(pwfile, *self._ids)
        try:
            p = subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.user,
                 f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                 "--no-locale", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, timeout=120, cwd=str(self.dir),
                **self._as_user())
        finally:
            pwfile.unlink(missing_ok=True)
        if p.returncode != 0:
            raise AssertionError(f"initdb failed ({p.returncode}):\n{p.stdout}{p.stderr}")

    def uri(self, dbname, user=None, password=None):
        """The libpq URI of "dbname" on this server (the superuser's, unless told)."""
        user = user or self.user
        password = self.password if password is None else password
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname="postgres", timeout=5, **kw):
        """A psycopg2 connection of the tests (autocommit), marked with application_name
        PG_APP so that terminate_backends() never takes the tests' own."""
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                password=self.password, dbname=dbname, connect_timeout=timeout,
                                application_name=PG_APP, **kw)
        conn.autocommit = True
        return conn

    def admin(self, query, args=()):
        """Runs one statement on the "postgres" database; returns its rows (or None)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Starts the postmaster (again, after stop(): same data, port and password) and waits
        until it accepts a password login over TCP."""
        assert not self.running, "PostgreSQL is already running"
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sock}",
             "-c", "fsync=off", "-c", "max_connections=200", "-c", "logging_collector=off"],
            stdout=logf, stderr=subprocess.STDOUT, cwd=str(self.dir), **self._as_user())
        logf.close()

        def accepts():
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited with {self.proc.returncode}:\n"
                                     + self.log_tail())
            self.connect(timeout=1).close()
            return True
        wait_until(accepts, 30, interval=0.1, what=f"PostgreSQL on port {self.port}")
        return self

    def log_tail(self, n=4000):
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def stop(self, mode=signal.SIGINT):
        """Stops the postmaster by its PID; SIGINT is PostgreSQL's "fast" shutdown (clients
        disconnected, a clean checkpoint). Escalates to SIGQUIT, then SIGKILL, if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(mode)
            for sig, wait in ((None, 30), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
                if sig is not None:
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.proc = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, prefix="catalog"):
        """A new, empty database; returns its PgDatabase."""
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        self.admin(f'CREATE DATABASE "{name}"')
        return PgDatabase(self, name)

    def terminate_backends(self, dbname):
        """pg_terminate_backend of every client connection to "dbname" but the tests' own;
        returns how many were terminated."""
        rows = self.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid() "
                          "AND backend_type = 'client backend' "
                          "AND coalesce(application_name, '') <> %s", (dbname, PG_APP))
        return sum(1 for (ok,) in rows if ok)


def _from_pg(value):
    """A value from psycopg2 as SQLite would return it to the tests."""
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, datetime.datetime):
        value = value.astimezone(datetime.timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    return value


class PgDatabase:
    """One database of a PgServer: the write model of one Stack (or of a cluster of
    instances). str() is its URI, so it goes wherever a --db path went."""

    def __init__(self, server, name):
        self.server = server
        self.name = name

    @property
    def uri(self):
        return self.server.uri(self.name)

    def __str__(self):
        return self.uri

    def __repr__(self):
        return f"PgDatabase({self.name!r} on :{self.server.port})"

    def connect(self, read_only=False, timeout=5):
        kw = {"options": "-c default_transaction_read_only=on"} if read_only else {}
        return self.server.connect(self.name, timeout=timeout, **kw)

    def query(self, query, args=(), read_only=True):
        """Runs one statement written with SQLite's "?" placeholders; returns its rows (as
        SQLite would give them), or [] for a statement without a result."""
        conn = self.connect(read_only=read_only)
        try:
            with conn.cursor() as cur:
                cur.execute(query.replace("%", "%%").replace("?", "%s"), tuple(args))
                if cur.description is None:
                    return []
                return [tuple(_from_pg(v) for v in row) for row in cur.fetchall()]
        finally:
            conn.close()

    def terminate_backends(self):
        return self.server.terminate_backends(self.name)

    def dump(self, dest):
        p = subprocess.run([str(PG_BIN / "pg_dump"), "--format=custom", f"--file={dest}",
                            f"--dbname={self.uri}"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"pg_dump failed: {p.stderr}"

    def restore(self, src):
        """Replaces this database by a dump() of it (nobody may be connected)."""
        self.drop()
        self.server.admin(f'CREATE DATABASE "{self.name}"')
        p = subprocess.run([str(PG_BIN / "pg_restore"), "--no-owner", "--exit-on-error",
                            f"--dbname={self.uri}", str(src)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"pg_restore failed: {p.stderr}"

    def drop(self):
        self.server.admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


_PG_SERVER = None
_PG_LOCK = threading.Lock()


def pg_server():
    """The session's PostgreSQL server, started on first use (stopped at the end of the
    session, by pytest_sessionfinish or, failing that, at exit)."""
    global _PG_SERVER
    with _PG_LOCK:
        if _PG_SERVER is None:
            server = PgServer()
            atexit.register(server.cleanup)
            try:
                server.start()
            except BaseException:
                server.cleanup()
                raise
            _PG_SERVER = server
        return _PG_SERVER


def new_write_model(workdir):
    """The write model of a new Stack: a SQLite path in "workdir", or a fresh database of the
    session's PostgreSQL server, after CATALOGD_TEST_BACKEND."""
    if BACKEND == "postgresql":
        return pg_server().create_database()
    return Path(workdir) / "catalog.db"


class Server:
    def __init__(self, workdir, redis_url, db_path, extra_args=(), ca_file=None):
        self.dir = Path(workdir)
        self.port = free_port()
        self.redis_url = redis_url
        self.db = db_path if isinstance(db_path, PgDatabase) else Path(db_path)
        self.extra_args = list(extra_args)
        self.ca_file = ca_file  # given with --tls-cert: the CA that signed it (HTTPS)
        self.proc = None
        self.stderr_path = self.dir / f"catalogd-{self.port}.stderr"

    @property
    def base(self):
        scheme = "https" if "--tls-cert" in self.extra_args else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self):
        return str(self.ca_file) if self.ca_file else True

    def command(self):
        return [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--db", str(self.db),
                "--redis", self.redis_url, "--threads", "2", *self.extra_args]

    def stderr_tail(self, n=6000):
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no stderr file)"

    def start(self):
        if not BIN.exists():
            pytest.fail(f"{BIN} does not exist (run `make -C {ROOT} all`)")
        out = open(self.dir / f"catalogd-{self.port}.stdout", "ab")
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err, cwd=str(self.dir))
        out.close()
        err.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"catalogd exited with {self.proc.returncode}:\n"
                                     + self.stderr_tail())
            h = requests.get(self.base + "/health", timeout=1, verify=self.verify)
            if h.status_code != 200:
                return False
            r = requests.get(self.base + "/ready", timeout=1, verify=self.verify)
            return r.status_code == 200
        try:
            wait_until(ready, START_DEADLINE, what="catalogd /health and /ready")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- catalogd stderr ---\n{self.stderr_tail()}") from None

    def stop(self, timeout=5):
        """Terminates the server; returns its exit code."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(timeout=5)
        self.proc = None
        return rc


class Stack:
    """A redis-server plus a catalogd server, both private to the tests, in one tmp dir."""

    def __init__(self, name="stack", extra_args=(), ca_file=None):
        self.name = name
        self.tmp = Path(tempfile.mkdtemp(prefix="catalogd-api-"))
        self.db = new_write_model(self.tmp)
        self.redis = RedisProc(self.tmp)
        self.server = Server(self.tmp, self.redis.url, self.db, extra_args, ca_file)
        self.http = requests.Session()
        self.http.verify = self.server.verify
        if ca_file:  # else REQUESTS_CA_BUNDLE, when set, would win over the session's CA
            self.http.trust_env = False
        self._r = None

    # -- lifecycle
    def start(self, before_server=None):
        """Starts Redis, runs before_server(self) if given (to prepare Redis), then catalogd."""
        _LIVE_STACKS.append(self)
        self.redis.start()
        if before_server:
            before_server(self)
        self.server.start()
        return self

    def stop(self):
        self.http.close()
        if self._r is not None:
            self._r.close()
        try:
            self.server.stop()
        finally:
            self.redis.stop()
            if self in _LIVE_STACKS:
                _LIVE_STACKS.remove(self)
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(self.db, PgDatabase) and self.db.server.running:
                self.db.drop()

    # -- accessors
    @property
    def base(self):
        return self.server.base

    @property
    def redis_url(self):
        return self.redis.url

    @property
    def r(self):
        if self._r is None:
            self._r = self.redis.client()
        return self._r

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.http.get(self.base + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        return self.http.request(method, self.base + path, **kw)

    def post_raw(self, path, body, content_type="application/json", headers=None, **kw):
        h = dict(headers or {})
        if content_type is not None:
            h["Content-Type"] = content_type
        if isinstance(body, str):
            body = body.encode()
        kw.setdefault("timeout", 10)
        return self.http.post(self.base + path, data=body, headers=h, **kw)

    def create(self, sku=None, name="Widget", price="19.99", stock=5, expect=201):
        """POSTs a product (price is the literal JSON text); returns (response, view dict).
        The view dict also carries "price_text", the two-decimal text of the price."""
        sku = sku or uniq_sku()
        body = ('{"sku":' + json.dumps(sku) + ',"name":' + json.dumps(name)
                + ',"price":' + str(price) + ',"stock":' + str(stock) + "}")
        resp = self.post_raw("/products", body)
        assert resp.status_code == expect, (resp.status_code, resp.headers, resp.text)
        if expect != 201:
            return resp, None
        view = resp.json()
        m = re.search(r'"price":([0-9]+\.[0-9]{2}),', resp.text)
        assert m, resp.text
        view["price_text"] = m.group(1)
        view["raw"] = resp.text
        return resp, view

    def counts(self):
        return row_counts(self.db)

    def cli(self, subcommand, *extra, timeout=CLI_TIMEOUT):
        return cli([subcommand, "--db", str(self.db), "--redis", self.redis_url, *extra],
                   timeout=timeout)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def stack():
    """One shared redis + catalogd pair for ordinary tests (use unique SKUs)."""
    s = Stack("shared")
    try:
        s.start()
    except BaseException:
        s.stop()
        raise
    yield s
    s.stop()


@pytest.fixture
def stack_factory():
    """Makes fresh, private stacks (empty catalog; safe to stop/restart Redis)."""
    made = []

    def make(name="fresh", extra_args=(), before_server=None):
        s = Stack(name, extra_args)
        made.append(s)
        s.start(before_server)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def fresh(stack_factory):
    return stack_factory()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only(reason): about the SQLite file itself (locking it, its file "
        "system, its schema history); skipped with that reason when CATALOGD_TEST_BACKEND="
        "postgresql")
    config.addinivalue_line(
        "markers", "multi_instance: several catalogd instances on one PostgreSQL and one Redis "
        "(`make multi-instance`; always PostgreSQL)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = item.get_closest_marker("sqlite_only")
        if mark is None:
            continue
        reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
        assert reason, f"{item.nodeid}: sqlite_only needs a reason"
        if BACKEND != "sqlite":
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


def pytest_sessionfinish(session, exitstatus):
    if _PG_SERVER is not None:
        _PG_SERVER.cleanup()


def pytest_report_header(config):
    return f"catalogd write model: {BACKEND} (CATALOGD_TEST_BACKEND)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in list(_LIVE_STACKS):
            if s.server is not None:
                rep.sections.append((f"catalogd stderr ({s.name}, :{s.server.port})",
                                     s.server.stderr_tail()))

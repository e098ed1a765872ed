"""What Idempotency-Keys cost the write model: a command that changed nothing and cannot
change anything on a retry (a 404: ids are never reused) stores nothing; a key is stored as
its SHA-256, so its length does not matter; the table has a bound (--max-idempotency-keys)
with a clear 503 when reached, and its size is in /metrics; a version-1 database is upgraded
in place, its keys kept, and a version-4 one moves its stored answers to rows appended in
order (SQLite). The replay semantics themselves are in test_commands.py."""
import hashlib
import json
import os
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (SQLITE_SCHEMA_VERSION, PgDatabase, Stack, assert_problem, product_body, sql,
                      uniq_sku)

JSON_CT = {"Content-Type": "application/json"}


def long_key(i, length=255):
    return f"k{i}-{uuid.uuid4().hex}".ljust(length, "x")


def key_table_bytes(db):
    """Bytes of the pages the key table and its indexes use (SQLite: dbstat, which sees the WAL
    too; PostgreSQL: the table with its indexes and TOAST)."""
    if isinstance(db, PgDatabase):
        return sql(db, "SELECT pg_total_relation_size('idempotency_keys')")[0][0]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN "
                            "('idempotency_keys', 'idempotency_keys_by_key', "
                            "'idempotency_keys_age')").fetchone()[0]
    finally:
        conn.close()


def key_count(db):
    return sql(db, "SELECT COUNT(*) FROM idempotency_keys")[0][0]


def db_bytes(db):
    """Bytes the write model takes on disk (SQLite: the file and its WAL)."""
    if isinstance(db, PgDatabase):
        return sql(db, "SELECT pg_database_size(current_database())")[0][0]
    return sum(os.path.getsize(p) for p in (str(db), f"{db}-wal") if os.path.exists(p))


def in_parallel(base, requests_to_send, workers=8):
    """Sends (method, path, body, key) tuples over `workers` kept-alive connections; returns
    the status codes."""
    def run(part):
        with requests.Session() as session:
            return [session.request(m, base + p, data=b, timeout=10,
                                    headers={**JSON_CT, "Idempotency-Key": k}).status_code
                    for m, p, b, k in part]
    parts = [requests_to_send[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [code for codes in pool.map(run, parts) for code in codes]


@pytest.fixture
def quick(stack_factory):
    """A private stack with fsync per batch off: these tests send thousands of commands."""
    return stack_factory("keys", extra_args=["--durability", "normal"])


def test_404_commands_store_no_key(quick):
    n = 3000
    keys_before, bytes_before = key_count(quick.db), db_bytes(quick.db)
    started = time.monotonic()
    todo = [("DELETE", f"/products/{uuid.uuid4()}", None, long_key(i)) for i in range(n)]
    codes = in_parallel(quick.base, todo)
    assert codes == [404] * n, sorted(set(codes))
    grown = db_bytes(quick.db) - bytes_before
    print(f"\n{n} DELETEs of unknown ids with 255-character keys in "
          f"{time.monotonic() - started:.1f} s: keys {keys_before} -> {key_count(quick.db)}, "
          f"database +{grown} bytes")
    assert key_count(quick.db) == keys_before
    assert grown < 256 * 1024, grown


def test_key_length_does_not_change_what_a_key_costs(quick):
    _, view = quick.create(stock=1)
    path, body = f"/products/{view['id']}/stock", '{"delta":-5}'  # 409, stored and replayed
    n = 600
    growth = {}
    for length in (8, 255):
        before = key_table_bytes(quick.db)
        codes = in_parallel(quick.base, [("POST", path, body, long_key(i, length))
                                         for i in range(n)])
        assert codes == [409] * n, sorted(set(codes))
        growth[length] = key_table_bytes(quick.db) - before
    print(f"\nkey table growth for {n} stored refusals: 8-character keys {growth[8]} bytes "
          f"({growth[8] / n:.0f} per key), 255-character keys {growth[255]} bytes "
          f"({growth[255] / n:.0f} per key)")
    # B-tree pages fill unevenly, so "the same" allows some slack; keys stored whole cost
    # twice their length more (table and index): about 2.2 times as much here.
    assert growth[255] <= growth[8] * 1.25 + 16384, growth
    assert growth[255] / n < 600, growth
    rows = sql(quick.db, "SELECT length(key_sha256), length(fingerprint) FROM idempotency_keys "
                         "GROUP BY 1, 2")
    assert rows == [(32, 32)], rows


def scrape(stack, name):
    for line in requests.get(stack.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_the_key_table_has_a_bound_with_a_clear_503(stack_factory):
    s = stack_factory("bound", extra_args=["--max-idempotency-keys", "20"])
    assert scrape(s, "catalogd_idempotency_keys_limit") == 20
    firsts = []
    for i in range(20):
        key = f"bound-{i}"
        body = json.dumps({"sku": uniq_sku("B"), "name": "Bound", "price": 1, "stock": 1})
        r = s.post_raw("/products", body, headers={"Idempotency-Key": key})
        assert r.status_code == 201, r.text
        firsts.append((key, body, r))
    assert scrape(s, "catalogd_idempotency_keys") == 20
    counts = s.counts()
    sku = uniq_sku("OVER")
    r = s.post_raw("/products", json.dumps({"sku": sku, "name": "Over", "price": 1, "stock": 1}),
                   headers={"Idempotency-Key": "one-too-many"})
    problem = assert_problem(r, 503)
    assert problem["type"] == "urn:catalogd:problem:idempotency-keys-full", problem
    assert "--max-idempotency-keys" in problem["detail"], problem
    assert r.headers.get("Retry-After") == "60", r.headers
    assert s.counts() == counts, "the refused command ran"
    assert sql(s.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(0,)]
    # keys already stored still replay, and commands without a key still run
    key, body, first = firsts[0]
    again = s.post_raw("/products", body, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    s.create()
    assert scrape(s, "catalogd_idempotency_keys") == 20
    assert key_count(s.db) == 20


# ---------------------------------------------------------------------------------------------
# a database of schema version 1 is upgraded in place

V1_SCHEMA = """
CREATE TABLE products (id TEXT PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents BETWEEN 0 AND 99999999999),
  stock INTEGER NOT NULL CHECK (stock BETWEEN 0 AND 2147483647),
  version INTEGER NOT NULL CHECK (version >= 1), created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, product_id TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN
    ('ProductCreated','ProductUpdated','StockAdjusted','ProductDeleted')),
  version INTEGER NOT NULL, payload TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
  status INTEGER NOT NULL, location TEXT NOT NULL, etag TEXT NOT NULL,
  content_type TEXT NOT NULL, body BLOB NOT NULL, created_at_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);
CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at_ms INTEGER NOT NULL);
PRAGMA user_version=1;
"""


@pytest.mark.sqlite_only(reason="migrates a SQLite file of schema version 1 (PRAGMA "
                                  "user_version); no PostgreSQL catalog predates version 2")
def test_a_version_1_database_is_upgraded_in_place_keeping_its_keys():
    s = Stack("v1")
    try:
        pid = "01a22251-dd91-7000-8f9f-c3d82b98a444"
        path, body = f"/products/{pid}/stock", '{"delta":-5}'
        fingerprint = hashlib.sha256(f"POST\n{path}\n{body}".encode()).hexdigest()
        stored = (b'{"type":"urn:catalogd:problem:insufficient-stock","title":"Not enough stock",'
                  b'"status":409,"detail":"stock is 1, a delta of -5 would make it negative",'
                  b'"current_stock":1}')
        key = "legacy-" + "k" * 240
        conn = sqlite3.connect(str(s.db))
        conn.executescript(V1_SCHEMA)
        now_ms = int(time.time() * 1000)
        conn.execute("INSERT INTO idempotency_keys VALUES (?, ?, 409, '', '', "
                     "'application/problem+json', ?, ?)", (key, fingerprint, stored, now_ms))
        conn.execute("INSERT INTO idempotency_keys VALUES ('not-ours', 'zz', 200, '', '', '', "
                     "x'', ?)", (now_ms,))
        conn.commit()
        conn.close()
        s.start()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        columns = [row[1] for row in sql(s.db, "PRAGMA table_info(idempotency_keys)")]
        assert "key" not in columns and "key_sha256" in columns, columns
        assert sql(s.db, "SELECT key_sha256, length(fingerprint) FROM idempotency_keys") == [
            (hashlib.sha256(key.encode()).digest(), 32)]
        assert_answers_appended_and_found_by_key(s.db)
        again = s.post_raw(path, body, headers={"Idempotency-Key": key})
        assert again.status_code == 409, again.text
        assert again.headers.get("Idempotent-Replayed") == "true", again.headers
        assert again.content == stored
        other = s.post_raw(path, '{"delta":-6}', headers={"Idempotency-Key": key})
        assert assert_problem(other, 422)["type"].endswith("idempotency-key-reused")
        # a second start finds the latest version and changes nothing
        s.server.stop()
        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        assert s.post_raw(path, body, headers={"Idempotency-Key": key}).content == stored
    finally:
        s.stop()


def assert_answers_appended_and_found_by_key(db):
    """The layout of schema version 5: stored answers in a rowid table, rows appended in the
    order they come, and a unique index of the keys' SHA-256 to find them."""
    (table,) = sql(db, "SELECT sql FROM sqlite_master WHERE name = 'idempotency_keys'")[0]
    assert "WITHOUT ROWID" not in table.upper(), table
    indexes = {name: unique for _, name, unique, *_ in
               sql(db, "PRAGMA index_list(idempotency_keys)")}
    assert indexes.get("idempotency_keys_by_key") == 1, indexes
    assert [row[2] for row in sql(db, "PRAGMA index_info(idempotency_keys_by_key)")] == [
        "key_sha256"]
    assert "idempotency_keys_age" in indexes, indexes


def go_back_to_answers_keyed_by_hash(db):
    """What a database of schema version 4 holds: the stored answers in a WITHOUT ROWID table
    whose primary key is the key's SHA-256, the rows kept as they are."""
    conn = sqlite3.connect(str(db))
    conn.executescript("""
        CREATE TABLE idempotency_keys_v4 (
          key_sha256 BLOB PRIMARY KEY CHECK (length(key_sha256) = 32),
          fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
          status INTEGER NOT NULL, location TEXT NOT NULL, etag TEXT NOT NULL,
          content_type TEXT NOT NULL, body BLOB NOT NULL, created_at_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO idempotency_keys_v4 SELECT key_sha256, fingerprint, status, location, etag,
          content_type, body, created_at_ms FROM idempotency_keys;
        DROP TABLE idempotency_keys;
        ALTER TABLE idempotency_keys_v4 RENAME TO idempotency_keys;
        CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);
        PRAGMA user_version=4;
    """)
    conn.close()


@pytest.mark.sqlite_only(reason="rebuilds a SQLite file's key table as schema version 4 (PRAGMA "
                                  "user_version); PostgreSQL keeps its rows in a heap already")
def test_a_version_4_database_keeps_its_stored_answers_in_the_new_layout():
    """Schema version 5 moved the stored answers out of a B-tree keyed by the key's hash, where
    each new row went to a random page, into rows appended in order. Every stored answer still
    replays, byte for byte, and a key stored before is still refused with another request."""
    s = Stack("v4keys")
    try:
        s.start()
        answers = {}
        for i in range(40):
            key = f"v4-{i}-{uuid.uuid4().hex}"
            body = json.dumps({"sku": uniq_sku("V4"), "name": "Kept", "price": 1, "stock": 2})
            r = s.post_raw("/products", body, headers={"Idempotency-Key": key})
            assert r.status_code == 201, r.text
            answers[key] = (body, r.content)
        s.server.stop()
        go_back_to_answers_keyed_by_hash(s.db)
        rows_before = sql(s.db, "SELECT * FROM idempotency_keys ORDER BY key_sha256")
        assert len(rows_before) == 40

        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        assert_answers_appended_and_found_by_key(s.db)
        assert sql(s.db, "SELECT * FROM idempotency_keys ORDER BY key_sha256") == rows_before
        for key, (body, content) in answers.items():
            again = s.post_raw("/products", body, headers={"Idempotency-Key": key})
            assert again.status_code == 201 and again.content == content, again.text
            assert again.headers.get("Idempotent-Replayed") == "true", again.headers
        key = next(iter(answers))
        other = s.post_raw("/products", product_body(uniq_sku("V4")),
                           headers={"Idempotency-Key": key})
        assert assert_problem(other, 422)["type"].endswith("idempotency-key-reused")
        assert key_count(s.db) == 40
        # a new key is stored after them and replays too
        body = product_body(uniq_sku("V4"))
        first = s.post_raw("/products", body, headers={"Idempotency-Key": "after-the-upgrade"})
        assert first.status_code == 201, first.text
        assert s.post_raw("/products", body,
                          headers={"Idempotency-Key": "after-the-upgrade"}).content == first.content
        assert sql(s.db, "SELECT key_sha256 FROM idempotency_keys ORDER BY rowid DESC LIMIT 1") == [
            (hashlib.sha256(b"after-the-upgrade").digest(),)]
    finally:
        s.stop()


@pytest.mark.sqlite_only(reason="writes PRAGMA user_version into a SQLite file; the "
                                  "PostgreSQL schema-version table is the store's own, not "
                                  "in the contract")
def test_a_database_newer_than_the_binary_is_refused(tmp_path):
    import subprocess

    from conftest import BIN, free_port
    db = tmp_path / "newer.db"
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    p = subprocess.run([str(BIN), "serve", "--db", str(db), "--listen",
                        f"127.0.0.1:{free_port()}", "--redis",
                        f"redis://127.0.0.1:{free_port()}/0"],
                       capture_output=True, text=True, timeout=10, cwd=tmp_path)
    assert p.returncode != 0
    assert "schema version 99" in p.stderr, p.stderr

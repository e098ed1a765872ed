"""The SQLite event log's schema steps.

Step 3: its type check written as comparisons instead of an IN list (SQLite built a temporary
B-tree of the list on every insert). A database of version 2 is upgraded in place: every event
kept with its seq, the AUTOINCREMENT high-water mark kept (no seq handed out twice), the same
types accepted and refused, the read model still equal.

Step 4: every event's nonce, which tells it from an event that takes its seq again after a
backup is restored. The events already there have none, and Redis names the one at its
checkpoint as the build before wrote it: the upgrade needs no rebuild."""
import re
import sqlite3
import threading
import time

import pytest

from conftest import (BACKEND, PREFIX, SQLITE_SCHEMA_VERSION, Stack, product_body, redis_gen, sql,
                      sql_write, uniq_sku, verify_output, wait_until)

EVENT_COLUMNS = "seq, product_id, type, version, payload, recorded_at"

OLD_CHECK = ("CHECK (type IN ('ProductCreated','ProductUpdated','StockAdjusted',"
             "'ProductDeleted'))")


def downgrade_event_log_to_version_2(db, high_water):
    """Rebuilds the events table as version 2 made it (the IN list), rows and seqs kept, and
    sets its AUTOINCREMENT mark to `high_water`, above every seq, as after lost events."""
    conn = sqlite3.connect(str(db), timeout=10)
    try:
        conn.executescript(f"""
BEGIN;
CREATE TABLE events_old (seq INTEGER PRIMARY KEY AUTOINCREMENT, product_id TEXT NOT NULL,
  type TEXT NOT NULL {OLD_CHECK},
  version INTEGER NOT NULL, payload TEXT NOT NULL, recorded_at TEXT NOT NULL);
INSERT INTO events_old SELECT {EVENT_COLUMNS} FROM events;
DROP TABLE events;
ALTER TABLE events_old RENAME TO events;
UPDATE sqlite_sequence SET seq = {high_water} WHERE name = 'events';
PRAGMA user_version=2;
COMMIT;
""")
    finally:
        conn.close()


def events_table_sql(db):
    return sql(db, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'")[0][0]


@pytest.mark.sqlite_only(reason="rebuilds a SQLite file's events table as schema version 2 "
                                  "(PRAGMA user_version); the PostgreSQL schema is its own")
def test_a_version_2_event_log_is_upgraded_keeping_every_event_and_seq():
    s = Stack("v2")
    try:
        s.start()
        made = [s.create(stock=3)[1] for _ in range(5)]
        assert s.post_raw(f"/products/{made[0]['id']}/stock", '{"delta":2}').status_code == 200
        s.server.stop()
        events_before = sql(s.db, f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq")
        assert len(events_before) == 6, events_before
        downgrade_event_log_to_version_2(s.db, high_water=1000)
        assert OLD_CHECK in events_table_sql(s.db)

        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        schema = events_table_sql(s.db)
        assert " IN " not in schema.upper() and "type = 'ProductDeleted'" in schema, schema
        assert sql(s.db, f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq") == events_before
        assert sql(s.db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'") == [(1000,)]
        assert sql(s.db, "SELECT count(*) FROM sqlite_sequence WHERE name = 'events_v3'") == [(0,)]

        # the next event continues above the mark, not above the last row
        later = s.create()[1]
        assert sql(s.db, "SELECT seq, product_id FROM events ORDER BY seq DESC LIMIT 1") == [
            (1001, later["id"])]
        for view in made + [later]:
            assert s.get(f"/products/{view['id']}").status_code == 200
        # the same rule: the four types in, anything else out
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            sql_write(s.db, "INSERT INTO events (product_id, type, version, payload, recorded_at)"
                            " VALUES (?, 'ProductRenamed', 1, '{}', 'now')", (later["id"],))
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed"):
            sql_write(s.db, "INSERT INTO events (product_id, type, version, payload, recorded_at)"
                            " VALUES (?, NULL, 1, '{}', 'now')", (later["id"],))
        wait_until(lambda: verify_output(s)[0] == 0, 30, interval=0.5,
                   what="verify to exit 0 after the upgrade")

        # a second start finds the latest version and changes nothing
        s.server.stop()
        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        assert events_table_sql(s.db) == schema
        assert sql(s.db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'") == [(1001,)]
    finally:
        s.stop()


@pytest.mark.sqlite_only(reason="holds the write lock of a SQLite file of schema version 2 "
                                  "while catalogd starts on it")
def test_a_start_waits_out_another_process_migrating():
    """Step 3 copies the whole event log (about 6 s per million events). Defect: a second
    instance started meanwhile waited for the write lock only as long as any write does (2 s),
    then exited ("begin a schema migration: database is locked"). Here another process holds
    the lock for 3 s, as one migrating a large log would; the start waits it out, then
    migrates."""
    s = Stack("wait")
    try:
        s.start()
        made = s.create()[1]
        s.server.stop()
        downgrade_event_log_to_version_2(s.db, high_water=1)
        holder = sqlite3.connect(str(s.db), isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(3.0, holder.execute, ("ROLLBACK",))
        release.start()
        try:
            s.server.start()  # fails if catalogd exited
        finally:
            release.join()
            holder.close()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        assert s.get(f"/products/{made['id']}").status_code == 200
        assert s.create()[0].headers.get("Projection") == "applied"
    finally:
        s.stop()


@pytest.mark.sqlite_only(reason="drops a column of a SQLite file's events table and sets its "
                                  "PRAGMA user_version; PostgreSQL's step is the same ALTER")
def test_a_version_3_event_log_takes_nonces_with_no_rebuild():
    """Step 4 adds every event's nonce. The events of a version 3 database have none, and its
    Redis names the event at the checkpoint as a build of then wrote it, "<id> <version>
    <recorded_at>": the upgraded catalogd must find that the log's event (no rebuild, the same
    generation), and every event after it has its own nonce, named in Redis whole."""
    s = Stack("v3")
    try:
        s.start()
        made = [s.create(stock=3)[1] for _ in range(3)]
        assert s.post_raw(f"/products/{made[0]['id']}/stock", '{"delta":2}').status_code == 200
        gen = redis_gen(s.r)
        checkpoint_event = f"{PREFIX}:g{gen}:checkpoint-event"
        s.server.stop()
        # what a version 3 database and its Redis hold: no nonces anywhere
        sql_write(s.db, "ALTER TABLE events DROP COLUMN nonce")
        sql_write(s.db, "PRAGMA user_version=3")
        named = s.r.get(checkpoint_event).decode()
        s.r.set(checkpoint_event, named.rsplit(" ", 1)[0])
        events_before = sql(s.db, f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq")

        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(SQLITE_SCHEMA_VERSION,)]
        assert sql(s.db, "SELECT nonce FROM events") == [("",)] * len(events_before)
        later = s.create()
        assert later[0].headers.get("Projection") == "applied"
        assert redis_gen(s.r) == gen, "the upgrade rebuilt the read model"
        (nonce,), = sql(s.db, "SELECT nonce FROM events ORDER BY seq DESC LIMIT 1")
        assert re.fullmatch(r"[0-9a-f]{16}", nonce), nonce
        assert s.r.get(checkpoint_event).decode().endswith(f" {nonce}")
        for view in made + [later[1]]:
            assert s.get(f"/products/{view['id']}").status_code == 200
        assert verify_output(s)[0] == 0
        assert redis_gen(s.r) == gen
    finally:
        s.stop()


def schema_version(db):
    if BACKEND == "postgresql":
        return sql(db, "SELECT max(version) FROM schema_version")[0][0]
    return sql(db, "PRAGMA user_version")[0][0]


def go_back_to_before_nonces(db):
    """What restoring, under a running catalogd, a backup taken before the upgrade to nonces
    does to the schema: no events.nonce, and the version of then."""
    sql_write(db, "ALTER TABLE events DROP COLUMN nonce")
    if BACKEND == "postgresql":
        sql_write(db, "DELETE FROM schema_version WHERE version = 3")
    else:
        sql_write(db, "PRAGMA user_version=3")


def test_a_schema_gone_back_under_a_running_catalogd_is_migrated_again():
    """Found by a hostile review: a backup from before the upgrade, restored under a running
    catalogd, brought back a schema without events.nonce. Migrations ran once per process, so
    every command failed (503) until a restart. The writer now checks the schema each idle
    second and after a failed batch, and migrates it again: commands sent at once may fail
    for that moment; then every one is written, and the read model is equal."""
    s = Stack("back")
    try:
        s.start()
        made = [s.create()[1]["id"]]
        latest = schema_version(s.db)

        go_back_to_before_nonces(s.db)  # commands right after it: under load
        answers = []

        def create_applied():
            r = s.post_raw("/products", product_body(uniq_sku("BACK")))
            answers.append(r.status_code)
            if r.status_code == 201:
                made.append(r.json()["id"])
            return r.status_code == 201 and r.headers.get("Projection") == "applied"
        wait_until(create_applied, 10, interval=0.1, what="a create applied again")
        assert set(answers) <= {201, 503}, answers
        assert schema_version(s.db) == latest

        go_back_to_before_nonces(s.db)  # no command: the idle check finds it
        wait_until(lambda: schema_version(s.db) == latest, 5, interval=0.1,
                   what="the schema migrated again with no command")
        r = s.post_raw("/products", product_body(uniq_sku("BACK")))
        assert r.status_code == 201 and r.headers.get("Projection") == "applied", r.text
        made.append(r.json()["id"])
        for pid in made:
            assert s.get(f"/products/{pid}").status_code == 200, pid
        assert verify_output(s)[0] == 0
    finally:
        s.stop()


@pytest.mark.sqlite_only(reason="holds a SQLite file's write lock from another process")
def test_a_schema_gone_back_while_the_file_is_locked_answers_commands_in_bounded_time():
    """Found by a hostile review of the test above: the check after a failed batch ran before
    the batch was answered, and its migration waited for the lock as a start does (10 min),
    so commands sent while another process held the file answered 503 only when it let go.
    The batch is answered first now, and a running writer's migration waits a second."""
    s = Stack("back-locked")
    try:
        s.start()
        s.create()
        go_back_to_before_nonces(s.db)
        holder = sqlite3.connect(str(s.db), isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        try:
            for _ in range(3):
                sent = time.monotonic()
                r = s.post_raw("/products", product_body(uniq_sku("LOCKED")))
                assert r.status_code == 503, r.text
                assert time.monotonic() - sent < 6, "a command waited for the lock's holder"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_until(lambda: s.post_raw("/products", product_body(uniq_sku("FREED"))).status_code
                   == 201, 10, interval=0.2, what="a create once the lock is let go")
        assert schema_version(s.db) == SQLITE_SCHEMA_VERSION
    finally:
        s.stop()

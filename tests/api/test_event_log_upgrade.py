"""The SQLite event log's schema step 3: its type check written as comparisons instead of an IN
list (SQLite built a temporary B-tree of the list on every insert). A database of version 2 is
upgraded in place: every event kept with its seq, the AUTOINCREMENT high-water mark kept (no
seq handed out twice), the same types accepted and refused, the read model still equal."""
import sqlite3
import threading

import pytest

from conftest import Stack, sql, sql_write, verify_output, wait_until

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
INSERT INTO events_old SELECT * FROM events;
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
        events_before = sql(s.db, "SELECT * FROM events ORDER BY seq")
        assert len(events_before) == 6, events_before
        downgrade_event_log_to_version_2(s.db, high_water=1000)
        assert OLD_CHECK in events_table_sql(s.db)

        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(3,)]
        schema = events_table_sql(s.db)
        assert " IN " not in schema.upper() and "type = 'ProductDeleted'" in schema, schema
        assert sql(s.db, "SELECT * FROM events ORDER BY seq") == events_before
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

        # a second start finds version 3 and changes nothing
        s.server.stop()
        s.server.start()
        assert sql(s.db, "PRAGMA user_version") == [(3,)]
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
        assert sql(s.db, "PRAGMA user_version") == [(3,)]
        assert s.get(f"/products/{made['id']}").status_code == 200
        assert s.create()[0].headers.get("Projection") == "applied"
    finally:
        s.stop()

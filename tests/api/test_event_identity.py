"""An event's identity across a backup restored in place (several instances, PostgreSQL).

Redis names the event at its checkpoint by a fingerprint, and the instances check it against
the log's event at that seq before a checkpoint answers for a command. A restored backup
hands the lost events' seqs out again, so the fingerprint must tell the lost event from the
one that takes its seq. It was "<product id> <version> <recorded_at in ms>": a change of a
product that survives the restore, lost, then made again at the same version in the same
millisecond (a clock set back or frozen, hosts' clocks apart), had the lost one's fingerprint.
The lost event's apply, in flight when Redis froze, then passed for the new one's: the new
command answered `applied` while every instance read the lost body (or, a create at the seq
below it, 404). Every event now carries a random nonce in its fingerprint.

The catalogd instances here read their wall clock through tests/support/frozen_clock.c: while
the test writes a time into a file, every command is recorded at that millisecond.
"""

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import pg_server
from test_multi_instance import (INSTANCES, Cluster, assert_everything_readable,
                                 assert_verify_ok, caught_up_with_a_backup, read_otherwise,
                                 restore_in_place, serving, wait_all_ready, wait_caught_up)

pytestmark = pytest.mark.multi_instance

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "support" / "frozen_clock.c"


@pytest.fixture
def frozen_clock_cluster(monkeypatch):
    """A cluster whose instances record commands at the time in `c.clock` while it holds one
    (write_text(str(ms))); "0" lets their clocks run."""
    def preload_the_shim(c):
        shim = c.tmp / "frozen_clock.so"
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(SHIM_SOURCE), "-ldl"],
                       check=True, capture_output=True, timeout=60)
        c.clock = c.tmp / "clock_ms"
        c.clock.write_text("0")
        monkeypatch.setenv("FROZEN_CLOCK_FILE", str(c.clock))
        monkeypatch.setenv("LD_PRELOAD", str(shim))
        # Under AddressSanitizer (make asan) the shim comes before its runtime: allowed.
        asan = os.environ.get("ASAN_OPTIONS")
        monkeypatch.setenv("ASAN_OPTIONS",
                           f"{asan}:verify_asan_link_order=0" if asan else
                           "verify_asan_link_order=0")
    yield from serving(Cluster(pg_server()), preload_the_shim)


def rename(c, product_id, name):
    """A command that renames `product_id` to `name`, sent to the instance it is given."""
    return lambda instance: c.send(instance, "PATCH", f"/products/{product_id}",
                                   json.dumps({"name": name}))


@pytest.mark.parametrize("variant,target", [
    ("patch", "another"),            # a follower proves the projecting instance's news
    ("patch", "projecting"),         # the projecting instance's own check of its batch
    ("create+patch", "projecting"),  # the event at the checkpoint agrees, the one below differs
])
def test_an_event_made_again_in_the_same_millisecond_after_a_restore_is_told_apart(
        frozen_clock_cluster, variant, target):
    """Each round: Redis frozen; on a follower, a rename of a product (with a create before it,
    in the create+patch variant) is committed and its apply sent, waiting in flight; the backup
    is restored in place; the same commands are made again, with another name, on `target`,
    recorded at the same millisecond (the clock frozen); Redis thaws. Every command that
    answers `applied` must read back as it answered on every instance. Before nonces, each
    variant failed within its 3 rounds: the rename `applied` and read with the lost name
    everywhere, or the create `applied` and read 404 everywhere."""
    c = frozen_clock_cluster
    product = c.create("a", stock=1000).json()["id"]
    answers, made = [], [product]
    for attempt in range(3):
        leader, follower, backup = caught_up_with_a_backup(c, f"same-ms-{attempt}")
        who = leader if target == "projecting" else next(
            n for n in INSTANCES if n not in (leader, follower))
        change = rename(c, product, f"lost-{attempt}")
        again = rename(c, product, f"made-again-{attempt}")
        c.clock.write_text(str(int(time.time() * 1000)))
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                c.redis.proc.send_signal(signal.SIGSTOP)
                try:
                    lost = ([pool.submit(c.create, follower)] if variant == "create+patch"
                            else []) + [pool.submit(change, follower)]
                    time.sleep(0.25)  # the projecting instance polls the log's head every 100 ms
                    restore_in_place(c.db, backup)
                    mine = []
                    if variant == "create+patch":
                        mine.append(pool.submit(c.create, who))
                        time.sleep(0.05)  # the create takes the lower seq
                    mine.append(pool.submit(again, who))
                    time.sleep(0.05)  # committed, and waiting for the apply
                finally:
                    c.redis.proc.send_signal(signal.SIGCONT)
                got = [f.result() for f in mine]
                lost = [f.result() for f in lost]
        finally:
            c.clock.write_text("0")
        assert all(r.status_code in (200, 201) for r in lost), [r.text for r in lost]
        # the attack's premise: the rename made again has the lost one's version and time
        assert (lost[-1].json()["version"], lost[-1].json()["updated_at"]) == (
            got[-1].json()["version"], got[-1].json()["updated_at"])
        for r in got:
            assert r.status_code in (200, 201), r.text
            answers.append(r.headers["Projection"])
            made.append(r.json()["id"])
            if answers[-1] == "applied":
                assert not read_otherwise(c, r), (attempt, r.request.method,
                                                  read_otherwise(c, r))
        wait_all_ready(c)
    print(f"\nanswers: {answers}")
    wait_caught_up(c, timeout=30)
    assert_everything_readable(c, sorted(set(made)))
    assert_verify_ok(c)

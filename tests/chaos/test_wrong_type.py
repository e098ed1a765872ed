"""The chaos test's wrong-type fault against a real redis-server: it swaps a key for a list
(the wrong type for every key it targets) and puts back exactly what was there, never stacks
on a key it already broke, and never puts back a value that something else replaced or that
belongs to a generation no longer current. Run by `make chaos` before the run itself."""

import sys
import tempfile
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import RedisProc  # noqa: E402
from faults import BREAK_LUA, GEN_KEY, MARK, RESTORE_LUA, TARGETS  # noqa: E402

KEY = "catalogd:g1:in"
GEN = GEN_KEY


@pytest.fixture(scope="module")
def r():
    with tempfile.TemporaryDirectory(prefix="catalogd-chaos-lua-") as d:
        proc = RedisProc(d)
        proc.start()
        c = proc.client()
        try:
            yield c
        finally:
            c.close()
            proc.stop()


@pytest.fixture(autouse=True)
def clean(r):
    r.flushall()
    r.set(GEN, "1")
    r.zadd(KEY, {"a": 0, "b": 0})


def break_key(r, token, key=KEY):
    return r.eval(BREAK_LUA, 2, key, f"chaos-tmp:{token}", token).decode()


def put_back(r, token, gen="1", key=KEY):
    return r.eval(RESTORE_LUA, 2, key, GEN, token, gen).decode()


def test_break_then_put_back_exactly(r):
    r.pexpire(KEY, 600000)
    assert break_key(r, "t1") == "there"
    assert r.type(KEY) == b"list" and not r.keys("chaos-tmp:*")
    assert put_back(r, "t1") == "restored"
    assert r.type(KEY) == b"zset" and r.zrange(KEY, 0, -1) == [b"a", b"b"]
    assert 0 < r.pttl(KEY) <= 600000


@pytest.mark.parametrize("target", sorted(set(TARGETS)))
def test_every_target_gets_the_wrong_type_and_comes_back(r, target):
    """Each key the fault targets (sorted sets, hashes, a string) becomes a list, which is
    none of their types, and comes back as it was."""
    key = f"catalogd:g1:{target}"
    if target in ("in", "out"):    # view sets
        r.zadd(key, {'{"id":"a","sku":"SKU-1"}': 0})
    elif target == "checkpoint":
        r.set(key, "42")
    else:                           # skus, parked
        r.hset(key, "SKU-1", "a")
    kind, before = r.type(key), r.dump(key)
    assert break_key(r, "t1", key) == "there"
    assert r.type(key) == b"list"
    assert put_back(r, "t1", key=key) == "restored"
    assert r.type(key) == kind and r.dump(key) == before


def test_put_back_needs_only_the_token(r):
    """The break's answer may be lost (a frozen Redis runs it later): the original is kept
    in the list, so the put-back does not depend on what the client received."""
    break_key(r, "t1")
    assert put_back(r, "t1") == "restored"
    assert r.zrange(KEY, 0, -1) == [b"a", b"b"]
    assert put_back(r, "t1") == "gone"  # a second put-back changes nothing


def test_never_stacks_on_its_own_list(r):
    assert break_key(r, "t1") == "there"
    assert break_key(r, "t2") == "busy"
    assert r.lrange(KEY, 0, 1) == [MARK.encode(), b"t1"]
    assert put_back(r, "t2") == "gone"
    assert put_back(r, "t1") == "restored"
    assert r.type(KEY) == b"zset"


def test_a_replaced_key_is_left_alone(r):
    break_key(r, "t1")
    r.set(KEY, "catalogd wrote this")  # SET replaces a key of any type
    assert put_back(r, "t1") == "gone"
    assert r.get(KEY) == b"catalogd wrote this"


def test_another_generation_only_loses_the_test_list(r):
    break_key(r, "t1")
    r.set(GEN, "2")
    assert put_back(r, "t1") == "deleted"
    assert r.exists(KEY) == 0


def test_an_absent_key_is_deleted_again(r):
    r.delete(KEY)
    assert break_key(r, "t1") == "absent"
    assert put_back(r, "t1") == "deleted"
    assert r.exists(KEY) == 0


def test_out_of_memory_changes_nothing(r):
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.ResponseError):
            break_key(r, "t1")
        assert r.type(KEY) == b"zset" and not r.keys("chaos-tmp:*")
    finally:
        r.config_set("maxmemory", 0)
    break_key(r, "t1")
    r.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.ResponseError):
            put_back(r, "t1")  # RESTORE refused: the list stays, to be retried
        assert r.lrange(KEY, 0, 1) == [MARK.encode(), b"t1"]
    finally:
        r.config_set("maxmemory", 0)
    assert put_back(r, "t1") == "restored"

"""Events Redis refuses. For one product (a key of the wrong type): its event and its later
events are parked in order, the other products go on, /admin/projection and /metrics show
the parked events, the command says Projection: pending, and once the cause is gone the
parked events apply by themselves. For everything (out of memory): nothing is skipped, the
lag grows, and the backlog applies once Redis takes writes again."""
import json
import time

from conftest import wait_until

JSON = {"Content-Type": "application/json"}


def view_key(stack, product_id):
    return f"catalogd:g{int(stack.r.get('catalogd:gen'))}:p:{product_id}"


def patch(stack, product_id, body):
    return stack.request("PATCH", f"/products/{product_id}", data=json.dumps(body), headers=JSON)


def projection(stack):
    return stack.get("/admin/projection").json()


def metric(stack, name):
    for line in stack.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_one_refused_product_is_parked_and_the_rest_go_on(fresh):
    _, a = fresh.create(name="A")
    _, b = fresh.create(name="B")
    key = view_key(fresh, a["id"])
    fresh.r.delete(key)
    fresh.r.hset(key, "wrong", "type")  # every write of A's view now fails with WRONGTYPE

    first = patch(fresh, a["id"], {"name": "A2"})
    assert first.status_code == 200
    assert first.headers["Projection"] == "pending", first.headers
    second = patch(fresh, a["id"], {"name": "A3"})  # parked behind the first, in order
    assert second.status_code == 200 and second.headers["Projection"] == "pending"
    other = patch(fresh, b["id"], {"name": "B2"})
    assert other.status_code == 200 and other.headers["Projection"] == "applied"
    assert fresh.get(f"/products/{b['id']}").json()["name"] == "B2"

    state = projection(fresh)
    assert state["parked_events"] == 2, state
    assert state["lag_events"] == 0, state  # parked events are behind the checkpoint
    assert "WRONGTYPE" in state["last_error"], state
    assert metric(fresh, "catalogd_projection_parked_events") == 2
    assert fresh.r.type(key) == b"hash"  # never skipped or overwritten behind our back

    fresh.r.delete(key)  # the cause goes away: the parked events apply, oldest first
    wait_until(lambda: projection(fresh)["parked_events"] == 0, 40, interval=0.1,
               what="the parked events to apply")
    view = fresh.get(f"/products/{a['id']}")
    assert view.status_code == 200 and view.json()["name"] == "A3" and view.json()["version"] == 3
    assert metric(fresh, "catalogd_projection_parked_events") == 0
    assert fresh.cli("verify").returncode == 0


def test_redis_refusing_all_writes_skips_nothing(fresh):
    _, a = fresh.create(name="Before")
    fresh.r.config_set("maxmemory", "1")
    fresh.r.config_set("maxmemory-policy", "noeviction")
    try:
        refused = []
        for i in range(5):
            r = patch(fresh, a["id"], {"name": f"During {i}"})
            assert r.status_code == 200, r.text  # SQLite takes the command regardless
            refused.append(r.headers["Projection"])
        assert refused == ["pending"] * 5
        wait_until(lambda: projection(fresh)["lag_events"] == 5, 5, what="the lag to show")
        time.sleep(1.0)
        state = projection(fresh)
        assert state["lag_events"] == 5 and state["parked_events"] == 0, state
        assert "OOM" in state["last_error"], state
    finally:
        fresh.r.config_set("maxmemory", "0")
    wait_until(lambda: projection(fresh)["lag_events"] == 0, 10, what="the backlog to apply")
    view = fresh.get(f"/products/{a['id']}").json()
    assert view["name"] == "During 4" and view["version"] == 6
    assert fresh.cli("verify").returncode == 0

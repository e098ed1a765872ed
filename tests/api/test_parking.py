"""Events the projector cannot apply. For one product (an entry of the log that is not a
valid event): it and the product's later events are parked in order, the other products go
on, /admin/projection and /metrics show the parked events, the command says Projection:
pending, and once the entry is repaired in the write model the parked events apply by
themselves. For everything (Redis out of memory): nothing is skipped, the lag grows, and the
backlog applies once Redis takes writes again.

The read model has no key per product, so a key of the wrong type can no longer refuse one
product's events: a shared key of the wrong type stalls the whole projection instead. An
unreadable entry of the log is what parks one product's events now."""
import json
import time

from conftest import (PREFIX, append_unreadable_event, catalog_pages, redis_gen, redis_view,
                      repair_event, sql, sql_write, wait_until)

JSON = {"Content-Type": "application/json"}


def patch(stack, product_id, body):
    return stack.request("PATCH", f"/products/{product_id}", data=json.dumps(body), headers=JSON)


def projection(stack):
    return stack.get("/admin/projection").json()


def metric(stack, name):
    for line in stack.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def wait_parked(stack, count, what):
    """Waits until "count" events are parked: up to 10 s for events to park, 40 s for parked
    ones to apply (their retries back off up to 30 s)."""
    wait_until(lambda: projection(stack)["parked_events"] == count, 40 if count == 0 else 10,
               interval=0.1 if count == 0 else 0.05, what=what)


def parked_queue(stack, queue):
    """The seqs parked in one queue of the current generation, oldest first."""
    key = f"{PREFIX}:g{redis_gen(stack.r)}:parked:{queue}"
    return [int(seq) for seq in stack.r.lrange(key, 0, -1)]


def test_one_refused_product_is_parked_and_the_rest_go_on(fresh):
    _, a = fresh.create(name="A")
    _, b = fresh.create(name="B")
    updated = patch(fresh, a["id"], {"name": "A1"})
    assert updated.headers["Projection"] == "applied"
    # A garbled copy of A's update (version 2) lands in the log: it cannot be applied
    poison = append_unreadable_event(fresh.db, a["id"], 2)

    first = patch(fresh, a["id"], {"name": "A2"})  # parked behind the unreadable entry
    assert first.status_code == 200
    assert first.headers["Projection"] == "pending", first.headers
    second = patch(fresh, a["id"], {"name": "A3"})  # and behind the first, in order
    assert second.status_code == 200 and second.headers["Projection"] == "pending"
    other = patch(fresh, b["id"], {"name": "B2"})
    assert other.status_code == 200 and other.headers["Projection"] == "applied"
    assert fresh.get(f"/products/{b['id']}").json()["name"] == "B2"

    state = projection(fresh)
    assert state["parked_events"] == 3, state
    assert state["lag_events"] == 0, state  # parked events are behind the checkpoint
    assert "not a valid event" in state["last_error"], state
    assert metric(fresh, "catalogd_projection_parked_events") == 3
    queue = parked_queue(fresh, a["sku"])
    assert len(queue) == 3 and queue[0] == poison and queue == sorted(queue), queue
    assert redis_view(fresh.r, a["id"])["view"]["version"] == 2  # nothing of A skipped ahead

    # the entry is repaired in the write model: the parked events apply, oldest first
    repair_event(fresh.db, poison, updated.text)
    wait_parked(fresh, 0, "the parked events to apply")
    view = fresh.get(f"/products/{a['id']}")
    assert view.status_code == 200 and view.json()["name"] == "A3" and view.json()["version"] == 4
    assert metric(fresh, "catalogd_projection_parked_events") == 0
    assert parked_queue(fresh, a["sku"]) == []
    assert fresh.cli("verify").returncode == 0


def test_a_view_in_another_tools_form_is_parked_not_stored(fresh):
    """An entry written by another tool whose payload is a valid view but not in catalogd's own
    form (json.dumps puts a space after each colon): stored as a member, it would sort where
    no id's range finds it, and a catalog page would refuse it. It is parked like any entry
    that is not an event: the product keeps its view, the catalog is served, and once the
    entry is repaired the parked events apply."""
    _, first = fresh.create(stock=1)
    _, a = fresh.create(stock=1)
    _, later = fresh.create(stock=1)
    updated = patch(fresh, a["id"], {"name": "A1"})
    assert updated.headers["Projection"] == "applied"
    # the same update once more in the log, as another tool writes it
    foreign = append_unreadable_event(fresh.db, a["id"], 2, payload=json.dumps(updated.json()))

    after = patch(fresh, a["id"], {"stock": 3})  # behind the foreign entry
    assert after.status_code == 200 and after.headers["Projection"] == "pending", after.headers
    # "pending" may come before the batch is parked: the foreign entry's recorded_at is days
    # old, so the projector counts as not keeping up and the command does not wait for it
    wait_parked(fresh, 2, "both events to be parked")
    by_id = fresh.get(f"/products/{a['id']}")
    assert by_id.status_code == 200 and by_id.text == updated.text, by_id.text
    assert fresh.get(f"/products/by-sku/{a['sku']}").text == updated.text
    for views, _ in catalog_pages(fresh, 2):
        assert all(v["version"] == 2 for v in views if v["id"] == a["id"])
    assert fresh.cli("verify").returncode == 1  # the entry is parked: the model is behind

    # repaired in catalogd's own form, both apply
    repair_event(fresh.db, foreign, updated.text)
    wait_parked(fresh, 0, "the parked events to apply")
    assert fresh.get(f"/products/{a['id']}").json()["stock"] == 3
    listed = [v["id"] for views, _ in catalog_pages(fresh, 2) for v in views]
    assert listed == [first["id"], a["id"], later["id"]]
    assert fresh.cli("verify").returncode == 0


def test_an_unreadable_entry_deleted_from_the_log_lets_its_queue_go_on(fresh):
    """The operator deletes the unreadable entry rather than repairing it: the log no longer
    says what the write model holds, so the projector rebuilds the read model from the write
    model. It stayed parked for good, "not in the log", and every later command of the
    product answered pending."""
    _, a = fresh.create(stock=1)
    updated = patch(fresh, a["id"], {"name": "A1"})
    assert updated.headers["Projection"] == "applied"
    poison = append_unreadable_event(fresh.db, a["id"], 2)
    for name in ("A2", "A3"):
        assert patch(fresh, a["id"], {"name": name}).headers["Projection"] == "pending"
    wait_parked(fresh, 3, "the entry and both events to be parked")
    generation = redis_gen(fresh.r)

    sql_write(fresh.db, "DELETE FROM events WHERE seq = ?", (poison,))
    wait_parked(fresh, 0, "the queue to go on")
    view = fresh.get(f"/products/{a['id']}")
    assert view.status_code == 200 and view.json()["name"] == "A3", view.text
    assert redis_gen(fresh.r) != generation
    assert patch(fresh, a["id"], {"name": "A4"}).headers["Projection"] == "applied"
    assert fresh.cli("verify").returncode == 0
    assert "no longer in the event log" in fresh.server.stderr_path.read_text(errors="replace")


def test_a_valid_parked_event_deleted_from_the_log_leaves_nothing_behind(fresh):
    """A product's delete, parked behind an unreadable entry of its sku, then deleted from the
    log by hand (and the entry with it): taking each off its queue and going on would keep
    the deleted product's view for good. The rebuild from the write model drops it."""
    _, a = fresh.create(stock=1)
    poison = append_unreadable_event(fresh.db, a["id"], 2)
    assert patch(fresh, a["id"], {"name": "A2"}).headers["Projection"] == "pending"
    assert fresh.request("DELETE", f"/products/{a['id']}").status_code == 204
    _, later = fresh.create(stock=1)  # so that the delete is not the log's last event
    wait_parked(fresh, 3, "the entry, the update and the delete to be parked")
    deleted, = sql(fresh.db, "SELECT seq FROM events WHERE product_id = ? AND type = "
                             "'ProductDeleted'", (a["id"],))
    sql_write(fresh.db, "DELETE FROM events WHERE seq IN (?, ?)", (deleted[0], poison))
    wait_parked(fresh, 0, "the queue to go on")
    assert fresh.get(f"/products/{a['id']}").status_code == 404
    assert fresh.get(f"/products/by-sku/{a['sku']}").status_code == 404
    listed = [v["id"] for views, _ in catalog_pages(fresh, 100) for v in views]
    assert listed == [later["id"]]
    assert fresh.cli("verify").returncode == 0


def test_a_parked_list_written_by_hand_in_the_next_generation_is_not_a_queue(fresh):
    """A list under the next generation's parked-queue name, written before it is built,
    holding the seq of a deleted product's create: an event parked later in that queue went
    behind it, and the unpark pass applied that create, bringing the product back for good.
    A list without its count is not a queue: parking starts it afresh."""
    _, gone = fresh.create(stock=1)
    assert fresh.request("DELETE", f"/products/{gone['id']}").status_code == 204
    _, b = fresh.create(stock=1)
    create_seq, = sql(fresh.db, "SELECT seq FROM events WHERE product_id = ? AND type = "
                                "'ProductCreated'", (gone["id"],))
    following = int(redis_gen(fresh.r)) + 1
    fresh.r.rpush(f"{PREFIX}:g{following}:parked:{b['sku']}", create_seq[0])
    assert fresh.cli("rebuild").returncode == 0
    assert redis_gen(fresh.r) == str(following)

    poison = append_unreadable_event(fresh.db, b["id"], 1)  # a copy of its create, garbled
    assert patch(fresh, b["id"], {"name": "B2"}).headers["Projection"] == "pending"
    wait_parked(fresh, 2, "the entry and the update to be parked")
    assert parked_queue(fresh, b["sku"])[0] == poison
    repair_event(fresh.db, poison, b["raw"])
    wait_parked(fresh, 0, "the parked events to apply")
    assert fresh.get(f"/products/{gone['id']}").status_code == 404
    assert fresh.get(f"/products/{b['id']}").json()["name"] == "B2"
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

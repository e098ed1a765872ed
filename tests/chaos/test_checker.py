"""The chaos test's checker on made-up histories: it flags what breaks the invariants and
nothing else (unknown outcomes, reads that began before an answer, products out of a page's
range, stock that may have reached zero). Run by `make chaos` before the run itself."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import Checker, Cmd, Read  # noqa: E402
from workload import decode_cursor  # noqa: E402

A = "01a22cc8-3109-7000-ba3b-10a80b92378a"
B = "01a22cc8-3109-7000-ba3b-10a80b92378b"
C = "01a22cc8-3109-7000-ba3b-10a80b92378c"


def view(pid, version, stock=1, sku="S1"):
    return {"id": pid, "sku": sku, "name": "n", "price": 1.0, "stock": stock,
            "available": stock > 0, "version": version}


def create(pid, t, status=201, projection="applied", stock=1, sku="S1"):
    return Cmd(0, "create", "POST", "/products", "{}", pid=pid, sku=sku, t_send=t - 0.01,
               t_recv=t, status=status, projection=projection, version=1,
               view=view(pid, 1, stock, sku), text=f"v1-{pid}")


def change(pid, kind, version, t, status=200, projection="applied", stock=1, **kw):
    ok = status is not None and 200 <= status < 300
    return Cmd(0, kind, "PATCH" if kind == "patch" else "POST", f"/products/{pid}", "{}",
               pid=pid, t_send=t - 0.01, t_recv=t, status=status,
               projection=projection if ok else None, version=version if ok else None,
               view=view(pid, version, stock) if ok else None, text=f"v{version}-{pid}", **kw)


def delete(pid, version, t, status=204, projection="applied"):
    ok = status is not None and 200 <= status < 300
    return Cmd(0, "delete", "DELETE", f"/products/{pid}", None, pid=pid, t_send=t - 0.01,
               t_recv=t, status=status, projection=projection if ok else None,
               version=version if ok else None)


def by_id(pid, t, status=200, version=1, dur=0.01):
    items = [(pid, version, 1, "S1")] if status == 200 else []
    return Read(0, "id", f"/products/{pid}", target=pid, t_send=t, t_recv=t + dur,
                status=status, items=items)


def by_sku(sku, t, status=200, pid=None, version=1):
    items = [(pid, version, 1, sku)] if status == 200 else []
    return Read(0, "sku", f"/products/by-sku/{sku}", target=sku, t_send=t, t_recv=t + 0.01,
                status=status, items=items)


def page(t, items, after=None, upto=None, in_stock=False):
    return Read(0, "page", "/catalog", in_stock=in_stock, after=after, upto=upto, t_send=t,
                t_recv=t + 0.01, status=200, items=[(p, v, 1, "S1") for p, v in items])


def kinds(cmds, reads):
    c = Checker(cmds, reads, 0.0)
    return sorted(v.kind for v in c.check_reads() + c.check_commands())


def test_stale_read_only_after_the_applied_answer():
    cmds = [create(A, 1.0), change(A, "patch", 2, 2.0)]
    assert kinds(cmds, [by_id(A, 2.5, version=1)]) == ["stale-read"]
    assert kinds(cmds, [by_id(A, 1.995, version=1)]) == []  # began before the answer
    assert kinds(cmds, [by_id(A, 2.5, version=2), by_id(A, 2.6, version=3)]) == []


def test_pending_and_unknown_answers_promise_nothing():
    cmds = [create(A, 1.0), change(A, "patch", 2, 2.0, projection="pending"),
            change(A, "patch", 3, 3.0, status=503), change(A, "patch", 4, 4.0, status=None)]
    assert kinds(cmds, [by_id(A, 5.0, version=1)]) == []


def test_a_replay_promises_nothing_about_projection():
    c = change(A, "patch", 2, 2.0, projection=None, key="k")
    c.replayed = True
    assert kinds([create(A, 1.0), c], [by_id(A, 3.0, version=1)]) == []


def test_404_for_an_applied_product():
    cmds = [create(A, 1.0)]
    assert kinds(cmds, [by_id(A, 2.0, status=404)]) == ["missing-product"]
    assert kinds(cmds, [by_id(A, 0.5, status=404)]) == []
    assert kinds([create(A, 1.0, projection="pending")], [by_id(A, 2.0, status=404)]) == []
    # a DELETE sent before the read ended, whatever its outcome, may explain the 404
    for status in (204, 503, None):
        d = delete(A, 2, 2.005, status=status, projection="pending")
        assert kinds(cmds + [d], [by_id(A, 2.0, status=404)]) == [], status
    # ... but not one that was refused, or sent after the read
    assert kinds(cmds + [delete(A, 2, 1.5, status=412)], [by_id(A, 2.0, status=404)]) \
        == ["missing-product"]
    assert kinds(cmds + [delete(A, 2, 3.0)], [by_id(A, 2.0, status=404)]) == ["missing-product"]


def test_deleted_product_returned():
    cmds = [create(A, 1.0), delete(A, 2, 2.0)]
    assert kinds(cmds, [by_id(A, 2.5)]) == ["deleted-product-returned"]
    assert kinds(cmds, [by_id(A, 1.5)]) == []
    assert kinds([create(A, 1.0), delete(A, 2, 2.0, projection="pending")], [by_id(A, 2.5)]) \
        == []


def test_by_sku_owner():
    cmds = [create(A, 1.0, sku="S1")]
    assert kinds(cmds, [by_sku("S1", 2.0, status=404)]) == ["missing-product"]
    assert kinds(cmds, [by_sku("S1", 2.0, pid=A)]) == []
    # a product we know nothing applied about holds the sku in the read model
    assert kinds(cmds, [by_sku("S1", 2.0, pid=B)]) == ["sku-points-elsewhere"]
    # A deleted, B created with the sku since, both answered pending: any answer is fine
    cmds2 = cmds + [delete(A, 2, 1.5, projection="pending"),
                    create(B, 1.8, sku="S1", projection="pending")]
    for r in (by_sku("S1", 2.0, pid=A), by_sku("S1", 2.0, pid=B), by_sku("S1", 2.0, status=404)):
        assert kinds(cmds2, [r]) == []
    # B's create answered applied: B holds the sku now, A's view is gone with it
    cmds3 = cmds + [delete(A, 2, 1.5, projection="pending"), create(B, 1.8, sku="S1")]
    assert kinds(cmds3, [by_sku("S1", 2.0, pid=B)]) == []
    assert kinds(cmds3, [by_sku("S1", 2.0, pid=A)]) == ["sku-points-elsewhere"]
    assert kinds(cmds3, [by_sku("S1", 2.0, status=404)]) == ["missing-product"]


def test_page_completeness_within_its_range():
    cmds = [create(A, 1.0), create(B, 1.0), create(C, 1.0)]
    assert kinds(cmds, [page(2.0, [(A, 1), (C, 1)])]) == ["missing-from-page"]
    assert kinds(cmds, [page(2.0, [(A, 1)], upto=A)]) == []              # B, C: later pages
    assert kinds(cmds, [page(2.0, [(C, 1)], after=B)]) == []             # A, B: earlier pages
    assert kinds(cmds, [page(2.0, [(A, 1), (C, 1)], upto=C)]) == ["missing-from-page"]
    assert kinds(cmds, [page(0.5, [])]) == []                            # before any answer
    assert kinds(cmds, [page(2.0, [(A, 1), (B, 1), (C, 1)], upto=B)]) == ["page-out-of-range"]


def test_in_stock_page_needs_stock_to_be_sure():
    base = [create(A, 1.0, stock=2)]
    assert kinds(base, [page(2.0, [], in_stock=True)]) == ["missing-from-page"]
    assert kinds([create(A, 1.0, stock=0)], [page(2.0, [], in_stock=True)]) == []
    # a later sell-out, answered or not, may have emptied it
    sold = change(A, "stock", 2, 1.5, stock=0, delta=-2, projection="pending")
    assert kinds(base + [sold], [page(2.0, [], in_stock=True)]) == []
    unknown = change(A, "stock", 2, 1.5, status=None, delta=-1)
    assert kinds(base + [unknown], [page(2.0, [], in_stock=True)]) == []
    unknown_patch = change(A, "patch", 2, 1.5, status=None, stock_set=0)
    assert kinds(base + [unknown_patch], [page(2.0, [], in_stock=True)]) == []
    # changes that cannot empty it, or were refused, leave it required
    up = change(A, "stock", 2, 1.5, status=None, delta=3)
    refused = change(A, "stock", 2, 1.6, status=409, delta=-5)
    rename = change(A, "patch", 2, 1.7, status=503)
    assert kinds(base + [up, refused, rename], [page(2.0, [], in_stock=True)]) \
        == ["missing-from-page"]


def test_write_model():
    c1, c2, d = create(A, 1.0), change(A, "patch", 2, 2.0), delete(A, 3, 3.0)
    events = {(A, 1): ("ProductCreated", "v1-" + A), (A, 2): ("ProductUpdated", "v2-" + A),
              (A, 3): ("ProductDeleted", "{}")}
    ch = Checker([c1, c2, d], [], 0.0)
    assert ch.check_write_model(events, {}) == []
    assert [v.kind for v in ch.check_write_model({k: v for k, v in events.items()
                                                  if k != (A, 2)}, {})] \
        == ["acknowledged-not-in-log"]
    bad = dict(events)
    bad[(A, 2)] = ("ProductUpdated", "something else")
    assert [v.kind for v in ch.check_write_model(bad, {})] == ["acknowledged-differs-from-log"]
    ch2 = Checker([c1, c2], [], 0.0)
    assert [v.kind for v in ch2.check_write_model(events, {})] == \
        ["acknowledged-not-in-write-model"] * 2
    assert [v.kind for v in ch2.check_write_model(events, {A: 1})] == \
        ["acknowledged-not-in-write-model"]
    assert ch2.check_write_model(events, {A: 2}) == []
    # unknown outcomes are never held against the write model
    assert Checker([change(A, "patch", 9, 2.0, status=None)], [], 0.0).check_write_model(
        {}, {}) == []


def test_idempotency_and_command_404():
    first = change(A, "patch", 2, 2.0, key="k")
    again = change(A, "patch", 3, 3.0, key="k")
    assert kinds([create(A, 1.0), first, again], []) == ["idempotency-key-executed-twice"]
    replay = change(A, "patch", 2, 3.0, key="k", projection=None)
    replay.replayed = True
    assert kinds([create(A, 1.0), first, replay], []) == []
    replay.text = "other"
    assert kinds([create(A, 1.0), first, replay], []) == ["idempotent-replay-differs"]
    gone = change(A, "stock", None, 2.0, status=404)
    assert kinds([create(A, 1.0), gone], []) == ["command-404-for-existing-product"]
    assert kinds([create(A, 1.0), delete(A, 2, 1.99, status=None), gone], []) == []


def test_cursor_is_the_id_of_the_last_product_of_the_page():
    # as handed out by catalogd for a page that ended with product A
    assert decode_cursor("AaIsyDEJcAC6OxCoC5I3ig") == A
    assert decode_cursor("short") is None
    assert decode_cursor(None) is None


# -- the PostgreSQL mode: a refusal changes nothing

def _patch_cmd(pid, status, body='{"name":"x"}', retry_after="1", t=1.0):
    return Cmd(0, "patch", "PATCH", f"/products/{pid}", body, pid=pid, t_send=t - 0.01,
               t_recv=t, status=status, retry_after=retry_after)


def test_an_event_only_a_503_could_have_written_is_flagged():
    cmds = [create(A, 1.0), _patch_cmd(A, 503)]
    log = [(A, 1, "ProductCreated", "{}"), (A, 2, "ProductUpdated", '{"id":"%s","name":"x",'
           '"price":1.00,"stock":1,"version":2}' % A)]
    found = Checker(cmds, [], 0.0).check_refusals(log)
    assert [v.kind for v in found] == ["refused-command-changed-write-model"]


def test_an_event_a_command_without_answer_may_have_written_is_not_flagged():
    cmds = [create(A, 1.0), _patch_cmd(A, 503), _patch_cmd(A, None, t=2.0)]
    log = [(A, 1, "ProductCreated", "{}"), (A, 2, "ProductUpdated", '{"id":"%s","name":"x",'
           '"price":1.00,"stock":1,"version":2}' % A)]
    assert Checker(cmds, [], 0.0).check_refusals(log) == []


def test_a_503_without_retry_after_is_flagged():
    found = Checker([_patch_cmd(A, 503, retry_after=None)], [], 0.0).check_refusals([])
    assert [v.kind for v in found] == ["503-without-retry-after"]

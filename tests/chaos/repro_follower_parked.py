#!/usr/bin/env python3
"""Reproduction (run for 12 s by tests/api/test_multi_instance.py): an instance that does not
project answered `Projection: applied` for an event the projector parked, when the pub/sub
news that named it parked was lost (a subscription dropped and came back in between).

Three instances on a private PostgreSQL and Redis. An unreadable entry of one product (a
garbled copy of its creation event, written into PostgreSQL's events table by hand) is
parked by the projector, and every later event of that product's sku waits behind it; then,
bounded in time and count, PATCHes of that product go to the instances that do not project
while another thread drops the pub/sub subscriptions (CLIENT KILL TYPE pubsub) now and then
and a third keeps the log moving with creates. The entry is never repaired, so within one
generation (a rebuild starts from the products table and would apply the product) no event
of that product can be applied: any 2xx answered `Projection: applied` for it is a false
answer.

    /usr/bin/python3 tests/chaos/repro_follower_parked.py [--seconds 20] [--seed 1]

Exit 1 when a false "applied" was seen, 0 otherwise."""

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from conftest import (PgServer, RedisProc, Server, append_unreadable_event, product_body,  # noqa
                      redis_gen, uniq_sku, wait_until)

JSON = {"Content-Type": "application/json"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-drop", action="store_true",
                    help="the control: the same without dropping the subscriptions")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="catalogd-repro-"))
    pg = PgServer()
    redis_proc = RedisProc(tmp)
    servers = {}
    stop = threading.Event()
    lies, answers = [], {"applied": 0, "pending": 0, "other": 0}
    try:
        pg.start()
        db = pg.create_database("repro")
        redis_proc.start()
        for name in ("a", "b", "c"):
            servers[name] = Server(tmp, redis_proc.url, db,
                                   ["--instance-id", name, "--redis-prefix", "catalogd"])
            servers[name].start()

        def leader():
            who = {requests.get(s.base + "/admin/projection", timeout=2).json()
                   .get("projecting_instance") for s in servers.values()}
            return who.pop() if len(who) == 1 else None
        lead = wait_until(leader, 15, what="one projecting instance")
        followers = [n for n in servers if n != lead]
        r = redis_proc.client()
        created = requests.post(servers[followers[0]].base + "/products",
                                data=product_body(uniq_sku("X")), headers=JSON, timeout=5)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        wait_until(lambda: requests.get(servers[lead].base + f"/products/{pid}",
                                        timeout=2).status_code == 200, 10, what="the view")
        gen = redis_gen(r)
        seq = append_unreadable_event(db, pid, 1)
        requests.post(servers[lead].base + "/products", data=product_body(uniq_sku("W")),
                      headers=JSON, timeout=5)  # wakes the projector, which parks the entry
        wait_until(lambda: requests.get(servers[lead].base + "/admin/projection", timeout=2)
                   .json()["parked_events"] >= 1, 10, what="the unreadable entry to be parked")
        print(f"leader {lead}; event {seq} of {pid} is unreadable and parked; "
              f"PATCHes go to {followers}")

        def churn():  # keeps batches, and so news, flowing
            with requests.Session() as s:
                for _ in range(5000):
                    if stop.is_set():
                        return
                    base = servers[rng.choice(list(servers))].base
                    try:
                        s.post(base + "/products", data=product_body(uniq_sku("C")),
                               headers=JSON, timeout=5)
                    except requests.RequestException:
                        pass

        def drop_bus():
            local = random.Random(args.seed + 1)
            c = redis_proc.client()
            for _ in range(2000):
                if stop.wait(local.uniform(0.03, 0.3)):
                    return
                c.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

        threads = [threading.Thread(target=churn, daemon=True)]
        if not args.no_drop:
            threads.append(threading.Thread(target=drop_bus, daemon=True))
        for t in threads:
            t.start()
        end = time.monotonic() + args.seconds
        with requests.Session() as s:
            for i in range(5000):
                if time.monotonic() >= end:
                    break
                name = rng.choice(followers)
                body = json.dumps({"name": f"n{i}"})
                before = redis_gen(r)
                resp = s.patch(servers[name].base + f"/products/{pid}", data=body,
                               headers=JSON, timeout=5)
                after = redis_gen(r)
                proj = resp.headers.get("Projection")
                answers[proj if proj in ("applied", "pending") else "other"] += 1
                if resp.status_code == 200 and proj == "applied" and before == after == gen:
                    lies.append((name, resp.headers.get("ETag"), time.monotonic()))
                    print(f"FALSE APPLIED: PATCH on {name} -> version "
                          f"{resp.headers.get('ETag')} Projection: applied while event {seq} "
                          f"is parked in generation {gen} (its later events wait behind it)")
    finally:
        stop.set()
        for srv in servers.values():
            srv.stop()
        redis_proc.stop()
        pg.cleanup()
    print(f"answers: {answers}; false 'applied': {len(lies)}")
    return 1 if lies else 0


if __name__ == "__main__":
    sys.exit(main())

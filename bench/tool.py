#!/usr/bin/python3
"""tool.py - the small helpers bench/run.sh needs (stdlib only, loopback only, bounded).

  tool.py freeport                        print a free TCP port on 127.0.0.1
  tool.py page BASE CURSORS_OUT [--limit 100] [--deadline 900]
        follow GET /catalog?limit=L through its Link: rel="next" headers; write each cursor
        the Link headers hand out (one per line); print a JSON summary (pages, items, the
        X-Total-Count, pages/s)
  tool.py stock BASE IDS_FILE             GET each product; print {"stocks": {...}, "min": m}
  tool.py batches BASE...                 the writer's batch-size histogram from GET /metrics
                                          as JSON (cumulative buckets), or {} if none; of
                                          several instances, the sum of theirs
  tool.py view_cache BASE                 the view cache's hits and misses from GET /metrics,
                                          as "HITS MISSES", or nothing if it has none
  tool.py snap --srv "PID..." --redis "PID..."  print a CPU snapshot (JSON) for `record`; the
                                          server is every PID given and all its descendants
  tool.py record --out F --wrk-log L --before SNAP_FILE --after SNAP_FILE --clk HZ key=value...
        append one JSON record for a measured wrk run: the wrk RESULT line, req/s, and the
        CPU figures from two snapshots
  tool.py h2load_result SUMMARY REQUEST_LOG
        print the RESULT line of an h2load run (as report.lua prints for wrk), for `record`
  tool.py pgbench_result SUMMARY LOG...
        print the RESULT line of a pgbench run (its -l per-transaction logs), for `record`
  tool.py takeover --survivor BASE --kill-pid PID --killed-id ID [--deadline 15]
        SIGKILL the projecting instance PID (one the caller started), then poll the survivor:
        print JSON with the seconds until /admin/projection names another projecting instance
        and until a create there answers Projection: applied
  tool.py append --out F key=value...     append one JSON record (numbers parsed as numbers)
  tool.py views_map BASE IDS_FILE MAP_OUT
        GET each product of IDS_FILE and write an nginx map from its path to its view, byte for
        byte: nginx serving the same views from memory (run.sh's nginx-views)
  tool.py fsync_latency DIR               append 16 KiB to a file in DIR and fdatasync it, 200
                                          times: print JSON {"median_ms", "p90_ms", "n"}
  tool.py redis_bytes PORT                where Redis's memory goes: MEMORY USAGE and TYPE of
                                          every key, summed by kind (see key_kind), as JSON
                                          {kind: {"keys": n, "bytes": b, "type": "string"}}
"""
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.parse


def loopback(base):
    u = urllib.parse.urlsplit(base)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("refusing non-loopback target %r" % base)
    return u.hostname, u.port or 80


def freeport():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def page(args):
    base, out = args[0], args[1]
    limit = int(opt(args, "--limit", "100"))
    deadline = time.monotonic() + float(opt(args, "--deadline", "900"))
    host, port = loopback(base)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    path = "/catalog?limit=%d" % limit
    pages = items = 0
    total = None
    cursors = []
    t0 = time.monotonic()
    while path and time.monotonic() < deadline:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit("GET %s -> %d %r" % (path, r.status, body[:200]))
        pages += 1
        items += body.count(b'"id":')
        if total is None and r.getheader("X-Total-Count"):
            total = int(r.getheader("X-Total-Count"))
        path = None
        m = re.search(r'<([^>]*)>\s*;\s*rel="next"', r.getheader("Link") or "")
        if m:
            path = m.group(1)
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            cursors.extend(q.get("cursor", []))
    el = time.monotonic() - t0
    with open(out, "w") as f:
        f.writelines(c + "\n" for c in cursors)
    print(json.dumps({"pages": pages, "items": items, "total_count": total,
                      "cursors": len(cursors), "complete": path is None,
                      "seconds": round(el, 2), "pages_per_s": round(pages / el, 1) if el else 0}))


def stock(args):
    host, port = loopback(args[0])
    conn = http.client.HTTPConnection(host, port, timeout=30)
    stocks = {}
    for line in open(args[1]):
        pid = line.strip()
        if not pid:
            continue
        conn.request("GET", "/products/" + pid)
        r = conn.getresponse()
        body = r.read()
        stocks[pid] = json.loads(body).get("stock") if r.status == 200 else "HTTP %d" % r.status
    nums = [v for v in stocks.values() if isinstance(v, int)]
    print(json.dumps({"stocks": stocks, "min": min(nums) if len(nums) == len(stocks) else None}))


def views_map(args):
    host, port = loopback(args[0])
    conn = http.client.HTTPConnection(host, port, timeout=30)
    with open(args[2], "w") as out:
        # nginx reads "$" in a value as a variable: a geo with one default value spells it
        out.write('geo $dollar { default "$"; }\nmap_hash_max_size 262144;\n'
                  'map_hash_bucket_size 128;\nmap $uri $view {\n')
        for line in open(args[1]):
            path = "/products/" + line.strip()
            conn.request("GET", path)
            r = conn.getresponse()
            view = r.read().decode()
            if r.status != 200 or "'" in view or "\\" in view:
                sys.exit("GET %s -> %d %r: not a view an nginx map can hold" % (
                    path, r.status, view[:200]))
            out.write("    %s '%s';\n" % (path, view.replace("$", "${dollar}")))
        out.write("}\n")


def fsync_latency(args):
    path = os.path.join(args[0], "fsync-latency.bin")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    took = []
    try:
        for _ in range(200):
            os.write(fd, b"x" * 16384)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - t0) * 1e3)
    finally:
        os.close(fd)
        os.unlink(path)
    took.sort()
    print(json.dumps({"median_ms": round(took[len(took) // 2], 3),
                      "p90_ms": round(took[len(took) * 9 // 10], 3), "n": len(took)}))


def metrics_text(base):
    """GET /metrics of a loopback server: its text, or "" when it has none."""
    host, port = loopback(base)
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    return body if r.status == 200 else ""


def batches(args):
    """The writer's batch-size histogram from GET /metrics (Prometheus text: a histogram whose
    name contains "batch"): {"metric", "le": {bound: cumulative count}, "sum", "count"}. Given
    several instances (catalogd on PostgreSQL), the sum of their histograms."""
    out = {}
    for base in args:
        for line in metrics_text(base).splitlines():
            m = re.match(r'(\w*batch\w*)_bucket\{le="([^"]+)"\}\s+(\d+)', line)
            if m:
                out["metric"] = m.group(1)
                le = out.setdefault("le", {})
                le[m.group(2)] = le.get(m.group(2), 0) + int(m.group(3))
                continue
            m = re.match(r"(\w*batch\w*)_(sum|count)\s+([\d.]+)", line)
            if m:
                out[m.group(2)] = out.get(m.group(2), 0) + float(m.group(3))
    print(json.dumps(out))


def view_cache(args):
    """catalogd_view_cache_hits_total and _misses_total from GET /metrics, as "HITS MISSES"."""
    found = dict(re.findall(r"^catalogd_view_cache_(hits|misses)_total (\d+)",
                            metrics_text(args[0]), re.M))
    if len(found) == 2:
        print(found["hits"], found["misses"])


def opt(args, name, default):
    return args[args.index(name) + 1] if name in args else default


def kv_pairs(args):
    rec = {}
    for a in args:
        if "=" not in a or a.startswith("--"):
            continue
        k, v = a.split("=", 1)
        try:
            rec[k] = json.loads(v)
        except ValueError:
            rec[k] = v
    return rec


def strip_opts(args, names):
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in names:
            skip = True
        else:
            out.append(a)
    return out


def proc_times():
    """{pid: (ppid, ticks, comm, reaped)} for every process now: utime+stime of all its
    threads, and cutime+cstime, the CPU of its children that ended and were reaped
    (PostgreSQL's backends end with their connection, before the snapshot after a run: the
    postmaster's cutime holds them)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                head, tail = f.read().rsplit(")", 1)
            fields = tail.split()
        except (OSError, ValueError):
            continue
        out[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]), head.split("(", 1)[-1],
                       int(fields[13]) + int(fields[14]))
    return out


def snap(args):
    """One snapshot for `record`: time, CPU ticks of the server (PID and its descendants), of
    Redis, of every other process, and the busy/all ticks of CPU0 and CPU1 (/proc/stat)."""
    roots = {int(x) for x in opt(args, "--srv", "").split()}
    redis = [int(x) for x in opt(args, "--redis", "").split()]
    procs = proc_times()
    tree, grew = set(roots), True
    while grew:
        kids = {p for p, (pp, _, _, _) in procs.items() if pp in tree and p not in tree}
        tree |= kids
        grew = bool(kids)
    me = {os.getpid(), os.getppid()}
    cpu = {}
    with open("/proc/stat") as f:
        for line in f:
            v = line.split()
            if v[0] in ("cpu0", "cpu1"):
                n = [int(x) for x in v[1:9]]
                busy = n[0] + n[1] + n[2] + n[5] + n[6] + n[7]
                cpu[v[0]] = (busy, busy + n[3] + n[4], n[7], n[4])  # busy, all, stolen, iowait
    print(json.dumps({
        "t": time.time(),
        # the server's reaped children count (its own, started during the run); not other
        # processes': a child of someone else's that ends mid-run would bring all its CPU
        "srv": sum(procs[p][1] + procs[p][3] for p in tree if p in procs),
        "redis": sum(procs[p][1] for p in redis if p in procs),
        "others": {str(p): [t, comm] for p, (_, t, comm, _) in procs.items()
                   if p not in tree and p not in redis and p not in me},
        "cpu": cpu}))


def record(args):
    out, log = opt(args, "--out", None), opt(args, "--wrk-log", None)
    with open(opt(args, "--before", None)) as f:
        before = json.load(f)
    with open(opt(args, "--after", None)) as f:
        after = json.load(f)
    hz = float(opt(args, "--clk", "100"))
    rec = kv_pairs(strip_opts(args, ("--out", "--wrk-log", "--before", "--after", "--clk")))
    res = None
    for line in open(log, errors="replace"):
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
    if res is None:
        rec["error"] = "no RESULT line in %s" % log
    else:
        wall = after["t"] - before["t"]
        srv, red = after["srv"] - before["srv"], after["redis"] - before["redis"]
        # other processes: CPU since the first snapshot (all of it for those born since);
        # processes that ended in between are missed, so this is a lower bound
        used = {}
        for p, (t, comm) in after["others"].items():
            used[comm] = used.get(comm, 0) + t - before["others"].get(p, [0])[0]
        others = sum(used.values())
        top = sorted(used.items(), key=lambda kv: -kv[1])[:3]
        c0b, c0a = (after["cpu"]["cpu0"][i] - before["cpu"]["cpu0"][i] for i in (0, 1))
        c1b, c1a = (after["cpu"]["cpu1"][i] - before["cpu"]["cpu1"][i] for i in (0, 1))
        c0s, c1s = (after["cpu"][c][2] - before["cpu"][c][2] for c in ("cpu0", "cpu1"))
        c1w = after["cpu"]["cpu1"][3] - before["cpu"]["cpu1"][3]
        n = res["requests"]
        st = res.pop("statuses")
        non2xx = (sum(v for k, v in st.items() if not 200 <= int(k) < 300)
                  if st else res["status_errors"])
        rec.update({
            "requests": n,
            "rps": round(n / (res["duration_us"] / 1e6), 1),
            "p50_ms": res["p50_us"] / 1000, "p90_ms": res["p90_us"] / 1000,
            "p99_ms": res["p99_us"] / 1000, "max_ms": res["max_us"] / 1000,
            "non2xx": non2xx, "statuses": st,
            "sock_errors": res["connect"] + res["read"] + res["write"] + res["timeout"],
            "bytes_per_resp": round(res["bytes"] / n) if n else 0,
            "server_cpu_us": round(srv / hz * 1e6 / n, 2) if n else None,
            "redis_cpu_us": round(red / hz * 1e6 / n, 2) if n else None,
            # /proc/stat's per-CPU figures are sampled at the tick: rough when a CPU is
            # partly idle, but they show wrk (CPU0) or the server core (CPU1) saturating
            "cpu0_busy_pct": round(100 * c0b / c0a, 1) if c0a else None,
            "cpu1_busy_pct": round(100 * c1b / c1a, 1) if c1a else None,
            # time the hypervisor ran someone else on our vCPU (counted in busy above): the
            # server and wrk wait for it, so a run with much of it is slow for no fault of theirs
            "cpu0_steal_pct": round(100 * c0s / c0a, 1) if c0a else None,
            "cpu1_steal_pct": round(100 * c1s / c1a, 1) if c1a else None,
            # idle with a disk write outstanding (not in busy): a command waiting on its fsync
            # while nothing else on the core had work
            "cpu1_iowait_pct": round(100 * c1w / c1a, 1) if c1a else None,
            # CPU used by every process that is neither this server nor its Redis (someone
            # else's test suite...), in % of one core: > 10 means a noisy run
            "other_cpu_pct": round(100 * others / hz / wall, 1) if wall > 0 else None,
            "other_top": ["%s %.0f%%" % (c, 100 * t / hz / wall) for c, t in top if t > 0],
            "wall_s": round(wall, 2),
        })
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if "error" in rec:
        print("    %-12s %-13s ERROR %s" % (rec.get("system"), rec.get("scenario"), rec["error"]))
    else:
        print("    %-12s %-13s %9.0f req/s  p50 %7.2f ms  p99 %8.2f ms  non2xx %-6d sockerr %-4d"
              " server %6.1f us/req  redis %5.1f us/req  cpu0 %3.0f%%  cpu1 %3.0f%%  others %3.0f%%"
              "  stolen %2.0f/%2.0f%%"
              % (rec.get("system"), rec.get("scenario"), rec["rps"], rec["p50_ms"], rec["p99_ms"],
                 rec["non2xx"], rec["sock_errors"], rec["server_cpu_us"], rec["redis_cpu_us"],
                 rec["cpu0_busy_pct"], rec["cpu1_busy_pct"], rec["other_cpu_pct"],
                 rec["cpu0_steal_pct"], rec["cpu1_steal_pct"]))


def h2load_result(args):
    """The RESULT line the wrk scripts print (report.lua), from h2load's summary (duration,
    failures, bytes) and its per-request log (start us, status, us to the end of the
    response; status -1 for a failed stream)."""
    summary, requests = open(args[0], errors="replace").read(), args[1]
    lat, statuses, failed = [], {}, 0
    if not os.path.exists(requests):
        return  # h2load did not run: record reports "no RESULT line"
    for line in open(requests):
        cols = line.split("\t")
        if len(cols) < 3:
            continue
        status, us = int(cols[1]), int(cols[2])
        if status < 0:
            failed += 1
            continue
        lat.append(us)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    lat.sort()
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0)
    took = re.search(r"finished in ([0-9.]+)(m?s)", summary)
    traffic = re.search(r"traffic: .*?\((\d+)\) total", summary)
    timeouts = re.search(r"(\d+) timeout", summary)
    if not took:
        return  # no summary: record reports "no RESULT line"
    print("RESULT " + json.dumps({
        "requests": len(lat), "statuses": statuses, "status_errors": 0,
        "duration_us": float(took.group(1)) * (1e3 if took.group(2) == "ms" else 1e6),
        "p50_us": pct(0.50), "p90_us": pct(0.90), "p99_us": pct(0.99), "max_us": pct(1.0),
        "bytes": int(traffic.group(1)) if traffic else 0,
        "connect": 0, "read": failed, "write": 0,
        "timeout": int(timeouts.group(1)) if timeouts else 0}))


def pgbench_result(args):
    """The RESULT line the wrk scripts print, from pgbench's summary and its -l logs (one line
    per transaction: client, transaction, latency us, script, epoch s, us)."""
    summary = open(args[0], errors="replace").read()
    lat = []
    for path in args[1:]:
        for line in open(path):
            cols = line.split()
            if len(cols) >= 6:
                lat.append(int(cols[2]))
    took = re.search(r"duration: (\d+) s", summary)
    failed = re.search(r"number of failed transactions: (\d+)", summary)
    if not took or not lat:
        return  # record reports "no RESULT line"
    lat.sort()
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))])
    print("RESULT " + json.dumps({
        "requests": len(lat), "statuses": {}, "status_errors": int(failed.group(1)) if failed else 0,
        "duration_us": int(took.group(1)) * 1e6, "p50_us": pct(0.50), "p90_us": pct(0.90),
        "p99_us": pct(0.99), "max_us": lat[-1], "bytes": 0,
        "connect": 0, "read": 0, "write": 0, "timeout": 0}))


def takeover(args):
    """Kill -9 the projecting instance, then time the takeover as seen from the survivor."""
    host, port = loopback(opt(args, "--survivor", None))
    killed_pid, killed_id = int(opt(args, "--kill-pid", "0")), opt(args, "--killed-id", "")
    deadline = float(opt(args, "--deadline", "15"))
    conn = http.client.HTTPConnection(host, port, timeout=5)

    def call(method, path, body=None):
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r, r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            return None, b""
    r, body = call("GET", "/admin/projection")
    before = json.loads(body) if r is not None and r.status == 200 else {}
    if before.get("projecting_instance") != killed_id:
        print(json.dumps({"error": "projecting_instance is %r, not %r" % (
            before.get("projecting_instance"), killed_id)}))
        return
    os.kill(killed_pid, 9)
    t0 = time.monotonic()
    elected = applied = None
    new_id = epoch = None
    n = 0
    while time.monotonic() - t0 < deadline and (elected is None or applied is None):
        if elected is None:
            r, body = call("GET", "/admin/projection")
            if r is not None and r.status == 200:
                p = json.loads(body)
                if p.get("projecting_instance") not in (None, "", killed_id):
                    elected = time.monotonic() - t0
                    new_id, epoch = p.get("projecting_instance"), p.get("epoch")
        if applied is None:
            n += 1
            r, _ = call("POST", "/products", json.dumps({
                "sku": "TAKEOVER-%d-%d" % (os.getpid(), n), "name": "Takeover probe",
                "price": 1.00, "stock": 1}))
            if r is not None and r.status == 201 and r.getheader("Projection") == "applied":
                applied = time.monotonic() - t0
        time.sleep(0.01)
    # The epoch once the new instance projects: when its name first shows, it may not have
    # put its term in Redis yet.
    r, body = call("GET", "/admin/projection")
    if applied is not None and r is not None and r.status == 200:
        epoch = json.loads(body).get("epoch")
    print(json.dumps({"elected_s": elected, "applied_s": applied, "new_instance": new_id,
                      "epoch_before": before.get("epoch"), "epoch_after": epoch,
                      "probes": n, "deadline_s": deadline}))


def append(args):
    out = opt(args, "--out", None)
    rec = kv_pairs(strip_opts(args, ("--out",)))
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")


def resp_command(*words):
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        w = w if isinstance(w, bytes) else str(w).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)


def resp_read(f):
    """One RESP2 reply from a buffered socket file: int, bytes, list or None."""
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    if kind == b"+":
        return rest
    raise RuntimeError("redis: %r" % line)


# Key segments that name a kind of key ("catalogd", "in_stock", "gen-counter"), as opposed to
# an item's id, SKU or number; and the kinds whose next segment always names one item (all
# that follows may hold ':', as a SKU may).
KIND_NAME = re.compile(r"^[a-z][a-z_-]*$")
PER_ITEM = ("p", "sku", "parked")


def key_kind(key):
    """The kind a Redis key belongs to, whatever the layout: a generation segment (g3) becomes
    g*, and the first segment that names an item rather than a kind, with all after it, becomes
    *: catalogd:g3:p:<id> -> catalogd:g*:p:*, catalogd:g3:skus -> catalogd:g*:skus."""
    kind = []
    for seg in key.split(":"):
        if re.match(r"^g\d+$", seg):
            kind.append("g*")
        elif KIND_NAME.match(seg) and not (kind and kind[-1] in PER_ITEM):
            kind.append(seg)
        else:
            kind.append("*")
            break
    return ":".join(kind)


def redis_bytes(args):
    port = int(args[0])
    deadline = time.monotonic() + 300
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = sock.makefile("rb")
    kinds = {}
    cursor = b"0"
    while time.monotonic() < deadline:
        sock.sendall(resp_command("SCAN", cursor, "COUNT", 1000))
        cursor, keys = resp_read(f)
        if keys:  # one pipelined MEMORY USAGE and TYPE per key of this page
            sock.sendall(b"".join(resp_command("MEMORY", "USAGE", k, "SAMPLES", 0) +
                                  resp_command("TYPE", k) for k in keys))
            for k in keys:
                used = resp_read(f) or 0
                kind = resp_read(f).decode()  # "none" if the key went away meanwhile
                entry = kinds.setdefault(key_kind(k.decode(errors="replace")),
                                         {"keys": 0, "bytes": 0, "type": kind})
                entry["keys"] += 1
                entry["bytes"] += used
                if kind not in entry["type"].split("+"):  # one kind, several types: say so
                    entry["type"] = "+".join(sorted(entry["type"].split("+") + [kind]))
        if cursor == b"0":
            break
    else:
        sys.exit("redis_bytes: the SCAN did not finish within 300 s")
    sock.close()
    print(json.dumps(kinds, sort_keys=True))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"freeport": lambda a: freeport(), "page": page, "stock": stock, "snap": snap,
     "batches": batches, "record": record, "append": append, "h2load_result": h2load_result,
     "redis_bytes": redis_bytes, "pgbench_result": pgbench_result,
     "takeover": takeover, "view_cache": view_cache, "views_map": views_map,
     "fsync_latency": fsync_latency}[cmd](args)


if __name__ == "__main__":
    main()

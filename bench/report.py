#!/usr/bin/python3
"""report.py RAW_JSONL RESULTS_DIR BENCHMARKS_MD - turn bench/run.sh's records into
RESULTS_DIR/latest.json, RESULTS_DIR/chart.png and BENCHMARKS.md, and print the medians.

Records (one JSON object a line, "type" says which): run (one measured wrk run), mem (RSS and
Redis memory at a phase), preload, paging, callgrind, stock_check, batches, redis_bytes (Redis
memory by key kind), two_cores_stock_check, memlat (ns per dependent memory load by
working-set size, bench/memlat.c). Runs of the systems "growth" (the big catalogd at each size
of the growth curve), "growth-window" (the big catalogd at its largest size, read
within the first step's products) and "two-cores", "nginx-two-cores" (nothing pinned) have tables
of their own, not in the results. Profiles are RESULTS_DIR/perf.<system>.<scenario>.{dso,sym}.txt. Medians and
min-max are over the repetitions. Stdlib, plus matplotlib for the chart (skipped if absent).
"""
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys

SCENARIOS = [
    ("get_by_id", "1. GET /products/{id}, random of the preloaded ids"),
    ("catalog_page", "2. GET /catalog?limit=100, random cursor"),
    ("create", "3. POST /products, unique SKUs, durability full"),
    ("stock", "4. POST /products/{id}/stock ±1 on 4 hot products"),
    ("mixed", "5. mixed: 95 % GET by id, 5 % POST"),
    ("pgbench", "6. pgbench -N on the same PostgreSQL (transactions/s)"),
]
SCEN_SHORT = {"get_by_id": "1. GET by id", "catalog_page": "2. catalog page",
              "create": "3. POST create", "stock": "4. stock ±1", "mixed": "5. mixed 95/5",
              "pgbench": "6. pgbench -N"}
SYSTEMS = ["catalogd", "catalogd-c64", "catalogd-c128", "catalogd-keyed", "https", "h2", "big",
           "pg", "pg-c64", "pg-c128", "pgbench", "seed", "nginx", "nginx-same-core", "nginx-views",
           "catalogd-fixed"]
LABEL = {"catalogd": "catalogd", "catalogd-c64": "catalogd, 64 connections",
         "catalogd-c128": "catalogd, 128 connections",
         "catalogd-keyed": "catalogd, an Idempotency-Key on every create",
         "https": "catalogd, HTTPS (HTTP/1.1, wrk)",
         "h2": "catalogd, HTTPS + HTTP/2 (h2load)", "big": "catalogd (big catalog)",
         "pg": "catalogd ×2 on PostgreSQL (server CPU: both + PostgreSQL)",
         "pg-c64": "catalogd ×2 on PostgreSQL, 64 connections",
         "pg-c128": "catalogd ×2 on PostgreSQL, 128 connections",
         "pgbench": "pgbench -N, same PostgreSQL (server CPU: PostgreSQL)",
         "seed": "seed (FastAPI rebuild)", "nginx": "nginx, fixed body (ceiling)",
         "nginx-same-core": "nginx, fixed body, wrk on CPU1 too",
         "nginx-views": "nginx, the same views from memory (a map)",
         "catalogd-fixed": "catalogd, GET /health (a fixed body: no Redis)",
         "growth": "catalogd, growing (growth curve)",
         "growth-window": "catalogd, largest size, reads within the first step's products",
         "two-cores": "catalogd --threads 2, unpinned",
         "nginx-two-cores": "nginx, 2 workers, fixed body, unpinned"}
SHORT = {"catalogd": "catalogd", "catalogd-c64": "catalogd c64", "catalogd-c128": "catalogd c128",
         "catalogd-keyed": "catalogd keyed",
         "https": "https", "h2": "https h2", "big": "catalogd big",
         "pg": "catalogd x2 pg", "pg-c64": "pg c64", "pg-c128": "pg c128",
         "pgbench": "pgbench -N", "seed": "seed", "nginx": "nginx",
         "nginx-same-core": "nginx 1 core", "nginx-views": "nginx views",
         "catalogd-fixed": "catalogd /health"}
COLOR = {"catalogd": "#1f77b4", "catalogd-c64": "#6baed6", "catalogd-c128": "#9ecae1",
         "catalogd-keyed": "#08519c",
         "https": "#2ca02c", "h2": "#98df8a", "big": "#17becf",
         "pg": "#9467bd", "pg-c64": "#a98fd0", "pg-c128": "#bfaee0",
         "pgbench": "#c5b0d5", "seed": "#d62728", "nginx": "#7f7f7f",
         "nginx-same-core": "#c7c7c7", "nginx-views": "#bcbd22", "catalogd-fixed": "#aec7e8"}
STATS = ["rps", "p50_ms", "p99_ms", "server_cpu_us", "redis_cpu_us"]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(repo):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    py = "/usr/bin/python3"
    # BENCH_REV names the measured commit when a report is rendered again later
    rev = os.environ.get("BENCH_REV") or sh("git -C %s rev-parse --short HEAD" % repo)
    dirty = sh("git -C %s status --porcelain -- src Makefile" % repo)
    return {
        "nproc": int(sh("nproc") or 0),
        "cpu": cpu,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo \"$PRETTY_NAME\""),
        "memory": sh("free -h | awk '/^Mem:/{print $2}'"),
        "l3_cache": sh("lscpu | sed -n 's/^L3 cache: *\\([0-9.]* [KMG]iB\\).*/\\1/p'"),
        "redis": sh("redis-server --version | sed -n 's/.*v=\\([^ ]*\\).*/\\1/p'"),
        "wrk": sh("dpkg-query -W -f='${Version}' wrk"),
        "nginx": sh("nginx -v 2>&1 | sed 's#.*/##'"),
        "python": sh(py + " -c 'import platform; print(platform.python_version())'"),
        "fastapi_uvicorn": sh(py + " -c 'import fastapi, uvicorn; "
                              "print(fastapi.__version__, uvicorn.__version__)'"),
        "valgrind": sh("valgrind --version"),
        "postgresql": sh("\"$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
                         "/postgres\" --version"),
        "catalogd": (rev + (" + uncommitted changes in src/ or Makefile" if dirty else "")),
    }


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def run_stats(rs):
    """Medians (min, max) of the runs rs, and their totals."""
    s = {"reps": len(rs), "products": rs[0].get("products")}
    for k in STATS:
        vals = [r[k] for r in rs if r.get(k) is not None]
        s[k] = {"median": med(vals), "min": min(vals) if vals else None,
                "max": max(vals) if vals else None}
    s["non2xx"] = sum(r["non2xx"] for r in rs)
    s["sock_errors"] = sum(r["sock_errors"] for r in rs)
    sts = {}
    for r in rs:
        for k, v in (r.get("statuses") or {}).items():
            sts[k] = sts.get(k, 0) + v
    s["statuses"] = sts
    s["bytes_per_resp"] = med([r["bytes_per_resp"] for r in rs])
    s["cpu0_busy_pct"] = med([r["cpu0_busy_pct"] for r in rs])
    s["cpu1_busy_pct"] = med([r["cpu1_busy_pct"] for r in rs])
    iowait = [r["cpu1_iowait_pct"] for r in rs if r.get("cpu1_iowait_pct") is not None]
    s["cpu1_iowait_pct"] = med(iowait) if iowait else None
    s["other_cpu_pct_max"] = max(r.get("other_cpu_pct") or 0 for r in rs)
    cached = [r for r in rs if r.get("view_cache_hits") is not None]
    asked = sum(r["requests"] for r in cached)
    s["view_cache_pct"] = (100.0 * sum(r["view_cache_hits"] for r in cached) / asked
                           if asked else None)
    return s


def view_cache_shares(rows):
    """"label X %" for each (label, run_stats) that knows its view cache's hits, or []."""
    return ["%s %s %%" % (label, fmt(st["view_cache_pct"], 1)) for label, st in rows
            if st.get("view_cache_pct") is not None]


def summarize(runs, systems=SYSTEMS):
    out = {}
    for scen, _ in SCENARIOS:
        for sysname in systems:
            rs = [r for r in runs if r["scenario"] == scen and r["system"] == sysname
                  and "error" not in r]
            if rs:
                out.setdefault(scen, {})[sysname] = run_stats(rs)
    return out


def median_ratios(hi, lo):
    """Per stat, the ratio of two run_stats' medians, hi / lo."""
    return {k: (hi[k]["median"] / lo[k]["median"]
                if lo[k]["median"] and hi[k]["median"] is not None else None) for k in STATS}


def growth(runs):
    """The growth curve: per scenario, the stats at each catalog size (ascending) and the
    ratios of the medians, largest size / smallest; with "window", the largest size read
    within the first size's products, and its ratios to the smallest size."""
    out = {}
    for scen, _ in SCENARIOS:
        rs = [r for r in runs if r["system"] == "growth" and r["scenario"] == scen
              and "error" not in r]
        sizes = sorted({r["products"] for r in rs})
        if not sizes:
            continue
        at = [dict(run_stats([r for r in rs if r["products"] == n]), products=n) for n in sizes]
        lo, hi = at[0], at[-1]
        out[scen] = {"sizes": at, "ratio": median_ratios(hi, lo),
                     "ratio_of": [hi["products"], lo["products"]]}
        ws = [r for r in runs if r["system"] == "growth-window" and r["scenario"] == scen
              and "error" not in r]
        if ws:
            window = dict(run_stats(ws), products=ws[0]["products"], window=lo["products"])
            out[scen]["window"] = window
            out[scen]["window_ratio"] = median_ratios(window, lo)
    return out


def per_rep_ratio(runs, scen, a, b, key="rps"):
    by = {}
    for r in runs:
        if r["scenario"] == scen and "error" not in r and r.get(key):
            by.setdefault(r["rep"], {})[r["system"]] = r[key]
    return [v[a] / v[b] for v in by.values() if a in v and b in v and v[b]]


def ratios(summary, runs):
    out = {}
    for scen, a, b in (("get_by_id", "catalogd", "seed"), ("get_by_id", "catalogd", "nginx"),
                       ("get_by_id", "catalogd-fixed", "nginx"),
                       ("get_by_id", "catalogd", "nginx-views"),
                       ("get_by_id", "nginx-views", "nginx"),
                       ("get_by_id", "https", "catalogd"), ("get_by_id", "h2", "catalogd"),
                       ("create", "catalogd", "seed"), ("create", "catalogd-keyed", "catalogd"),
                       ("catalog_page", "catalogd", "big"),
                       ("get_by_id", "pg", "catalogd"), ("create", "pg", "catalogd")):
        sa, sb = summary.get(scen, {}).get(a), summary.get(scen, {}).get(b)
        if not sa or not sb or not sb["rps"]["median"]:
            continue
        reps = per_rep_ratio(runs, scen, a, b)
        cpu_a = (sa["server_cpu_us"]["median"] or 0) + (sa["redis_cpu_us"]["median"] or 0)
        cpu_b = (sb["server_cpu_us"]["median"] or 0) + (sb["redis_cpu_us"]["median"] or 0)
        out["%s: %s/%s" % (scen, a, b)] = {
            "rps_ratio": sa["rps"]["median"] / sb["rps"]["median"],
            "rps_ratio_per_rep": [min(reps), max(reps)] if reps else None,
            "p99_ratio": (sa["p99_ms"]["median"] / sb["p99_ms"]["median"]
                          if sb["p99_ms"]["median"] else None),
            "cpu_per_req_ratio": cpu_a / cpu_b if cpu_b else None,
        }
    return out


def memory(recs):
    out = {}
    for sysname in SYSTEMS:
        ms = [r for r in recs if r["system"] == sysname and r.get("phase") in ("preload", "end")]
        if not ms:
            continue
        empty = [r["redis_used_memory"] for r in recs
                 if r["system"] == sysname and r.get("phase") == "empty"]
        base = med(empty) or 0
        end = [r for r in ms if r["phase"] == "end"] or ms
        per = [r["redis_used_memory"] / r["products"] for r in end if r.get("products")]
        net = [(r["redis_used_memory"] - base) / r["products"] for r in end if r.get("products")]
        pre = [r["redis_used_memory"] / r["products"] for r in ms
               if r["phase"] == "preload" and r.get("products")]
        out[sysname] = {
            "peak_rss_mib": max(r.get("vmhwm_kib") or 0 for r in ms) / 1024,
            "rss_end_mib": med([r.get("vmrss_kib") for r in end]) / 1024,
            "products_end": med([r.get("products") for r in end]),
            "redis_used_memory_end": med([r["redis_used_memory"] for r in end]),
            "redis_bytes_per_product": med(per),
            "redis_bytes_per_product_net_of_empty": med(net),
            "redis_bytes_per_product_after_preload": med(pre),
            "redis_empty_used_memory": base,
        }
    return out


def batch_hist(rec):
    """Per-bucket batch counts between two /metrics snapshots of the cumulative histogram."""
    def load(x):
        return json.loads(x) if isinstance(x, str) else (x or {})
    before, after = load(rec.get("before")), load(rec.get("after"))
    if not after.get("le"):
        return None
    bounds = sorted(after["le"], key=lambda b: float("inf") if b == "+Inf" else float(b))
    rows, prev_cum, prev_bound = [], 0, 0
    for b in bounds:
        cum = after["le"][b] - before.get("le", {}).get(b, 0)
        if b == "+Inf":
            label = "%d+" % (prev_bound + 1)
        else:
            hi = int(float(b))
            label = str(hi) if hi == prev_bound + 1 else "%d–%d" % (prev_bound + 1, hi)
            prev_bound = hi
        rows.append((label, cum - prev_cum))
        prev_cum = cum
    n = after.get("count", 0) - before.get("count", 0)
    cmds = after.get("sum", 0) - before.get("sum", 0)
    return {"rep": rec["rep"], "phase": rec["phase"], "buckets": rows, "batches": n,
            "commands": cmds, "mean": cmds / n if n else None}


def fmt(x, nd=0, unit=""):
    if x is None:
        return "–"
    if nd == 0:
        return "{:,.0f}{}".format(x, unit)
    return "{:,.{}f}{}".format(x, nd, unit)


def mmm(stat, nd=0):
    """median (min–max)"""
    if not stat or stat["median"] is None:
        return "–"
    if stat["min"] == stat["max"]:
        return fmt(stat["median"], nd)
    return "%s (%s–%s)" % (fmt(stat["median"], nd), fmt(stat["min"], nd), fmt(stat["max"], nd))


def ms(x):
    if x is None:
        return "–"
    return fmt(x, 2 if x < 10 else 1 if x < 100 else 0)


def ms_mmm(stat):
    if not stat or stat["median"] is None:
        return "–"
    if stat["min"] == stat["max"]:
        return ms(stat["median"])
    return "%s (%s–%s)" % (ms(stat["median"]), ms(stat["min"]), ms(stat["max"]))


def callgrind_top(path, n=6):
    """The n biggest self-Ir shares in a callgrind_annotate listing, by function; code without
    symbols (Debian's libjansson) is summed per library."""
    shares = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return []
    started = False
    for line in lines:
        if "file:function" in line:
            started = True
            continue
        m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)", line) if started else None
        if not m:
            if shares:
                break
            continue
        where = m.group(3)
        lib = re.search(r"\[([^\]]*)\]\s*$", where)
        fn = re.sub(r"\s*\[[^\]]*\]\s*$", "", where).rsplit(":", 1)[-1]
        if where.startswith("???") and lib:
            fn = os.path.basename(lib.group(1)).split(".so")[0] + " (no symbols)"
        shares[fn] = shares.get(fn, 0.0) + float(m.group(2))
    return sorted(shares.items(), key=lambda kv: -kv[1])[:n]


PERF_LINE = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+(\S+)(?:\s+\[[.k]\]\s+(.+?))?\s*$")


def perf_name(comm, dso):
    """Readable names: Debian's redis-server binary is redis-check-rdb under another name."""
    dso = {"[kernel.kallsyms]": "kernel", "redis-check-rdb": "redis-server"}.get(dso, dso)
    dso = re.sub(r"\.so[.0-9]*$", "", dso)
    return comm, dso


def perf_profile(resdir, system, scen):
    """Shares of CPU1 from one profiled run: by process, by process + library, top functions."""
    dso_path = os.path.join(resdir, "perf.%s.%s.dso.txt" % (system, scen))
    sym_path = os.path.join(resdir, "perf.%s.%s.sym.txt" % (system, scen))
    if not os.path.exists(dso_path):
        return None
    by_proc, by_lib, funcs = {}, [], []
    for line in open(dso_path, errors="replace"):
        m = PERF_LINE.match(line)
        if m and not line.startswith("#"):
            comm, lib = perf_name(m.group(2), m.group(3))
            pct = float(m.group(1))
            by_proc[comm] = by_proc.get(comm, 0.0) + pct
            by_lib.append((comm, lib, pct))
    if os.path.exists(sym_path):
        for line in open(sym_path, errors="replace"):
            m = PERF_LINE.match(line)
            if m and m.group(4) and not line.startswith("#"):
                comm, lib = perf_name(m.group(2), m.group(3))
                funcs.append((comm, lib, m.group(4), float(m.group(1))))
    return {"system": system, "scenario": scen,
            "by_process": sorted(by_proc.items(), key=lambda kv: -kv[1]),
            "by_library": by_lib, "functions": funcs}


def redis_bytes_table(recs):
    out = []
    for r in recs:
        kinds = r.get("kinds")
        if not isinstance(kinds, dict):  # tool.py redis_bytes failed (it said why)
            continue
        n = r["products"] or 1
        total = sum(k["bytes"] for k in kinds.values())
        out.append({"system": r["system"], "products": r["products"],
                     "used_memory": r["redis_used_memory"], "sum_memory_usage": total,
                     "kinds": sorted(((name, k["keys"], k["bytes"], k["bytes"] / n,
                                       k.get("type", "–"))
                                      for name, k in kinds.items()), key=lambda t: -t[2])})
    return out


def chart(summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "python3-matplotlib missing: no chart"
    scen = [s for s, _ in SCENARIOS if s in summary]
    systems = [s for s in SYSTEMS if any(s in summary[x] for x in scen)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    width = 0.8 / max(len(summary[x]) for x in scen)
    drawn = set()
    for ax, key, title in ((axes[0], "rps", "requests/s (median; whiskers: min–max)"),
                           (axes[1], "p99_ms", "p99 latency, ms (median; whiskers: min–max)")):
        lowest = None
        for j, sc in enumerate(scen):
            here = [x for x in systems if x in summary[sc] and summary[sc][x][key]["median"]]
            for i, sysname in enumerate(here):  # the bars of one scenario, centred on it
                st = summary[sc][sysname][key]
                x = j + (i - (len(here) - 1) / 2) * width
                label = None
                if (ax, sysname) not in drawn:
                    drawn.add((ax, sysname))
                    label = LABEL[sysname]
                ax.bar(x, st["median"], width, color=COLOR[sysname], label=label,
                       yerr=[[st["median"] - st["min"]], [st["max"] - st["median"]]], capsize=3)
                text = ("{:,.0f}".format(st["median"]) if key == "rps" else ms(st["median"]))
                ax.annotate(text, (x, st["max"]), textcoords="offset points", xytext=(0, 3),
                            ha="center", fontsize=7)
                lowest = min(lowest or st["min"], st["min"])
        ax.set_yscale("log")
        if lowest:
            ax.set_ylim(bottom=10 ** math.floor(math.log10(lowest)))
        ax.set_xticks(range(len(scen)))
        ax.set_xticklabels([SCEN_SHORT[s] for s in scen], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("catalogd vs the seed's FastAPI rebuild vs nginx (server + Redis on CPU1, "
                 "wrk -t1 on CPU0)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main():
    raw, resdir, md_path = sys.argv[1:4]
    repo = os.path.dirname(os.path.abspath(md_path))
    recs = [json.loads(line) for line in open(raw) if line.strip()]
    runs = [r for r in recs if r["type"] == "run"]
    errors = [r for r in runs if "error" in r]
    mems = [r for r in recs if r["type"] == "mem"]
    env = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_ENV", "").split() if "=" in kv)
    summary = summarize(runs)
    grow = growth(runs)
    two_cores = summarize(runs, ("two-cores", "nginx-two-cores"))
    rat = ratios(summary, runs)
    mem = memory(mems)
    preload = {}
    for r in recs:
        if r["type"] != "preload":
            continue
        done = preload.setdefault(r["system"], [])
        if done and done[-1]["rep"] == r["rep"]:  # the next step of a preload in steps (BIG)
            p = done[-1]
            p["created"] += r["created"]
            p["seconds"] += r["seconds"]
            p["rate"] = round(p["created"] / p["seconds"]) if p["seconds"] else p["rate"]
            p["steps"] = p.get("steps", 1) + 1
        else:
            done.append(dict(r))
    paging = [r for r in recs if r["type"] == "paging"]
    cg = [r for r in recs if r["type"] == "callgrind"]
    stock = [r for r in recs if r["type"] == "stock_check"]
    batches = [h for h in (batch_hist(r) for r in recs if r["type"] == "batches") if h]
    stock_note = os.environ.get("STOCK_NOTE", "")
    notes = []
    if stock_note:
        notes.append(stock_note)
    for r in errors:
        notes.append("run failed: rep %s %s %s: %s" % (r["rep"], r["system"], r["scenario"],
                                                        r["error"]))
    ng, ng1 = (summary.get("get_by_id", {}).get(k) for k in ("nginx", "nginx-same-core"))
    if ng and ng1 and ng["rps"]["median"] and ng1["rps"]["median"] > 1.3 * ng["rps"]["median"]:
        notes.append(
            "the cross-core hop sets the pace on this machine: nginx answers %s req/s with wrk on "
            "its own core (CPU1) but %s req/s with wrk on CPU0, the pinned setup, although its CPU "
            "per request hardly changes (%s vs %s µs). Absolute req/s in the pinned setup are "
            "bounded by that wake-up latency (vCPUs idle between requests: see CPU0/CPU1 busy); "
            "compare systems by their ratio to nginx and by CPU µs per request."
            % (fmt(ng1["rps"]["median"]), fmt(ng["rps"]["median"]),
               fmt(ng1["server_cpu_us"]["median"], 1), fmt(ng["server_cpu_us"]["median"], 1)))
    stolen = [r for r in runs
              if max(r.get("cpu0_steal_pct") or 0, r.get("cpu1_steal_pct") or 0) > 5]
    if stolen:
        notes.append("runs during which the hypervisor took more than 5 %% of a vCPU for others "
                     "(steal time in /proc/stat; their req/s suffer, CPU µs per request less): %s"
                     % "; ".join("rep %s %s %s (CPU0 %s %%, CPU1 %s %%)" % (
                         r["rep"], r["system"], r["scenario"], fmt(r.get("cpu0_steal_pct"), 1),
                         fmt(r.get("cpu1_steal_pct"), 1)) for r in stolen))
    noisy = [r for r in runs if (r.get("other_cpu_pct") or 0) > 10]
    for r in noisy:
        notes.append("noisy run: rep %s %s %s: other processes used %.0f %% of a core "
                     "meanwhile (%s)" % (r["rep"], r["system"], r["scenario"], r["other_cpu_pct"],
                                        ", ".join(r.get("other_top") or [])))
    if not batches:
        notes.append("batch-size histogram: GET /metrics has no *batch* histogram in this "
                     "build; skipped")
    mach = machine(repo)
    # BENCH_DATE keeps the date of the measurements when a report is rendered again later.
    date = os.environ.get("BENCH_DATE") or \
        datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    command = "%s %s" % (env_str(env), os.environ.get("BENCH_CMD", "bench/run.sh"))
    big_n = int(env.get("BIG_N", "1000000"))
    LABEL["big"] = "catalogd, %s products" % fmt(big_n)
    SHORT["big"] = "catalogd %s" % ("1M" if big_n == 1000000 else fmt(big_n))

    cg_out = []
    for r in cg:
        cg_out.append({"mode": r["mode"], "iterations": r["iterations"], "ir": r["ir"],
                       "ir_per_iteration": r["ir"] / r["iterations"],
                       "top_self": callgrind_top(os.path.join(resdir, "callgrind.%s.txt"
                                                              % r["mode"]))})
    profiles = [p for p in (perf_profile(resdir, sysname, scen) for sysname in ("catalogd", "big")
                            for scen, _ in SCENARIOS) if p]
    redis_bytes = redis_bytes_table([r for r in recs if r["type"] == "redis_bytes"])
    takeovers = []
    for r in recs:
        if r["type"] == "takeover":
            res = r["result"]
            if isinstance(res, str):
                try:
                    res = json.loads(res)
                except ValueError:
                    res = {"error": res}
            takeovers.append(dict(res, rep=r["rep"]))
    pg_note = os.environ.get("PG_NOTE", "")
    if pg_note:
        notes.append(pg_note)
    for t in takeovers:
        if t.get("error"):
            notes.append("takeover, rep %s: %s" % (t["rep"], t["error"]))
    memlat = next((r["ns_per_load"] for r in recs if r["type"] == "memlat"), None)
    fsync = next((r["summary"] for r in recs if r["type"] == "fsync_latency"), None)
    targets = evaluate(summary, rat, mem, stock, env, redis_bytes, takeovers, grow, batches,
                       memlat, fsync)

    latest = {"date": date, "command": command, "env": env, "machine": mach,
              "pinning": "server + Redis on CPU1 (taskset -c 1), wrk -t1 on CPU0 (taskset -c 0)",
              "summary": summary, "ratios": rat, "memory": mem,
              "preload": {k: [{"rate": r["rate"], "seconds": r["seconds"],
                               "created": r["created"], "conns": r["conns"],
                               "steps": r.get("steps", 1)} for r in v]
                          for k, v in preload.items()},
              "growth": grow, "two_cores": two_cores,
              "two_cores_stock_checks": [r for r in recs if r["type"] == "two_cores_stock_check"],
              "paging": [{"system": r["system"], "rep": r["rep"], **r["summary"]} for r in paging],
              "callgrind": cg_out, "stock_checks": stock, "batches": batches,
              "targets": targets, "profiles": profiles, "redis_bytes": redis_bytes,
              "takeovers": takeovers, "memlat": memlat, "fsync_latency": fsync,
              "notes": notes, "records": recs}
    with open(os.path.join(resdir, "latest.json"), "w") as f:
        json.dump(latest, f, indent=1)
    chart_err = chart(summary, os.path.join(resdir, "chart.png"))
    if chart_err:
        notes.append(chart_err)
    sync_path = os.path.join(resdir, "sync.json")
    if os.path.exists(sync_path):
        with open(sync_path) as f:
            latest["sync"] = json.load(f)
    md = render(latest, env, chart_err)
    with open(md_path, "w") as f:
        f.write(md)
    print_summary(latest)


def env_str(env):
    return " ".join("%s=%s" % kv for kv in env.items())


def size_text(n):
    """Bytes as the memlat sizes are: 32 KiB, 2 MiB, 512 MiB."""
    return "%d MiB" % (n >> 20) if n >= 1 << 20 else "%d KiB" % (n >> 10)


def memlat_curve(memlat):
    """bench/memlat.c's figures as a sentence, smallest working set first."""
    return ", ".join("%s ns within %s" % (fmt(ns, 1), size_text(int(size)))
                     for size, ns in sorted(memlat.items(), key=lambda kv: int(kv[0])))


def memlat_at(memlat, used):
    """(size, ns) of the smallest working set memlat measured that holds "used" bytes, or of
    the largest one."""
    sizes = sorted((int(k), v) for k, v in memlat.items())
    return next(((n, ns) for n, ns in sizes if n >= used), sizes[-1])


def page_dram_bound(extra_us, memlat, used, page_limit):
    """Redis's extra CPU per page at the big catalog, in dependent loads over a working set as
    big as the big Redis's memory."""
    if not memlat or not used or extra_us is None or extra_us <= 0:
        return ""
    size, ns = memlat_at(memlat, used)
    return ("; Redis's %s µs more per page is what %s dependent memory loads cost over a "
            "working set of %s here (%s ns each: bench/memlat.c, CPU1); a page walks %s "
            "views, each a skiplist node and its member's string: two allocations, and a "
            "dependent load to reach each"
            % (fmt(extra_us, 1), fmt(extra_us * 1000 / ns), size_text(size), fmt(ns),
               page_limit))


def page_growth_bound(grow):
    """What bounds a page's slowdown with the catalog's size, from the growth curve's window
    rows: the same big catalog read within the first step's products."""
    g = (grow or {}).get("catalog_page") or {}
    wn, sizes = g.get("window"), g.get("sizes") or []
    if not wn or not sizes or not wn["rps"]["median"] or not sizes[-1]["rps"]["median"]:
        return "; a page is one range read of each view set (profile)"
    lo, hi = sizes[0], sizes[-1]
    return ("; in the growth curve, against the %s-product catalog (Redis %s µs/page), the "
            "%s-product one is %s× slower over all of it (Redis %s µs) and %s× read only "
            "within its first %s products (Redis %s µs). What is left of the slowdown within "
            "those is the bigger catalog's structure (its sets' depth, log N); what goes "
            "beyond it is memory: a page's 100 views come from DRAM rather than the CPU's "
            "cache once the views outgrow it, whatever structure holds them"
            % (fmt(lo["products"]), fmt(lo["redis_cpu_us"]["median"], 1), fmt(hi["products"]),
               fmt(lo["rps"]["median"] / hi["rps"]["median"], 2),
               fmt(hi["redis_cpu_us"]["median"], 1),
               fmt(lo["rps"]["median"] / wn["rps"]["median"], 2), fmt(wn["window"]),
               fmt(wn["redis_cpu_us"]["median"], 1)))


def evaluate(summary, rat, mem, stock, env, redis_bytes=(), takeovers=(), grow=None,
             batches=(), memlat=None, fsync=None):
    """The issue's targets against the medians: what, target, measured, met (or None), and
    what bounds the figure (the CPU budget on CPU1, the ceiling nginx shows, the bytes)."""
    def m(scen, sysname, key):
        st = summary.get(scen, {}).get(sysname)
        return st[key]["median"] if st else None

    def cpu1(scen, sysname="catalogd"):
        if m(scen, sysname, "rps") is None:
            return None
        return (m(scen, sysname, "server_cpu_us") or 0) + (m(scen, sysname, "redis_cpu_us") or 0)

    def budget(scen, wanted_rps):
        """What one core's worth of CPU per request allows, against what the target needs;
        where the CPU would allow the target but the run fell short, what CPU1 did instead."""
        c = cpu1(scen)
        if not c:
            return ""
        text = ("CPU1 per request: server %s + Redis %s = %s µs, so one core serves at most "
                "~%s/s; the target needs ≤ %s µs (profile below)" % (
                    fmt(m(scen, "catalogd", "server_cpu_us"), 1),
                    fmt(m(scen, "catalogd", "redis_cpu_us"), 1), fmt(c, 1), fmt(1e6 / c),
                    fmt(1e6 / wanted_rps, 0)))
        rps = m(scen, "catalogd", "rps")
        st = summary.get(scen, {}).get("catalogd", {})
        busy, iowait = st.get("cpu1_busy_pct"), st.get("cpu1_iowait_pct")  # medians already
        nginx_busy = summary.get("get_by_id", {}).get("nginx", {}).get("cpu1_busy_pct")
        if 1e6 / c >= wanted_rps and rps is not None and rps < wanted_rps and busy is not None:
            text += ("; that budget is met, and the run reached %s of that rate with CPU1 %s %% "
                     "busy" % (fmt(rps * c / 1e6, 2, "×"), fmt(busy)))
            if rps:
                text += (" (%s µs of CPU1 per request, with the kernel's network and disk work "
                         "that no process is charged for)" % fmt(busy * 1e4 / rps, 1))
            if nginx_busy is not None:
                text += (": the pinned setup leaves CPU1 idle while requests cross to wrk's "
                         "core and back, as nginx's fixed body shows (CPU1 %s %% busy)"
                         % fmt(nginx_busy))
            if iowait is not None and iowait >= 2:
                text += ("; CPU1 was also %s %% idle waiting on the disk: a batch's fsync, which "
                         "nothing else on CPU1 had work to overlap" % fmt(iowait))
        return text

    def create_batch_split(family="catalogd", instances=1, wanted_rps=25000):
        """A create's CPU split into its own and its batch's share (the fsync, the projector's
        script, the wakes between threads and processes), fitted (least squares) over scenario
        3 from CONNS, 64 and 128 connections: CPU per create = own + per batch ÷ mean batch.
        "family" names the runs (catalogd, catalogd-c64...; pg, pg-c64...) and their phases
        of batch sizes; each of the "instances" batches what its share of connections sends."""
        runs, conns = [], int(env.get("CONNS", "32"))
        phase = "create" if family == "catalogd" else family + "-create"
        for sysname, phase_of, clients in ((family, phase, conns),
                                           (family + "-c64", phase + "-c64", 64),
                                           (family + "-c128", phase + "-c128", 128)):
            means = [b["mean"] for b in batches if b["phase"] == phase_of and b["mean"]]
            if cpu1("create", sysname) and means:
                runs.append((clients, sysname, med(means), cpu1("create", sysname)))
        if len(runs) < 2:
            return ""
        xs, ys = [1 / b for _, _, b, _ in runs], [c for _, _, _, c in runs]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if not sxx:
            return ""
        per_batch = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        own = my - per_batch * mx
        fitted_over = "; ".join(
            "%s connections: %s/s at %s µs, batches of %s" % (
                clients, fmt(m("create", sysname, "rps")), fmt(c, 1), fmt(b, 1))
            for clients, sysname, b, c in runs)
        if per_batch <= 0:  # fuller batches did not cost less: the noise hides the batch's share
            return ("; the CPU per create did not fall as batches grew (%s), so this run cannot "
                    "split it into a create's own share and its batch's: the runs' noise is "
                    "larger than the batch's share" % fitted_over)
        budget_us, most = 1e6 / wanted_rps, conns // instances
        text = ("; a create costs %s µs of its own plus %s µs per batch, shared by the batch's "
                "commands (fitted over %s); %s connections allow batches of at most %s%s, so "
                "no less than %s µs per create" % (
                    fmt(own, 1), fmt(per_batch), fitted_over, conns, most,
                    " in each of the %s instances" % instances if instances > 1 else "",
                    fmt(own + per_batch / most, 1)))
        if own < budget_us:
            text += (": %s µs needs batches of %s or more" % (
                fmt(budget_us, 0), fmt(per_batch / (budget_us - own))))
        else:
            text += ": a create's own share alone is over %s µs" % fmt(budget_us, 0)
        return text

    def closed_loop():
        """What a closed loop of CONNS connections allows when each batch of commands waits
        for its CPU on CPU1 and then for its fsync: CONNS ÷ (CONNS × CPU per create + fsync)."""
        c, conns = cpu1("create"), int(env.get("CONNS", "32"))
        if not c or not fsync or not fsync.get("median_ms"):
            return ""
        wave_us = conns * c + fsync["median_ms"] * 1e3
        need = (conns * 1e6 / 25000 - fsync["median_ms"] * 1e3) / conns
        text = ("; %s connections wait each for its answer, so a batch holds at most %s "
                "creates, and each batch takes their CPU on CPU1 (%s × %s µs) and then an fsync "
                "(median %s ms here: fsync latency, above): %s µs a batch, at most ~%s/s even "
                "with no idle gap on CPU1" % (
                    conns, conns, conns, fmt(c, 1), fmt(fsync["median_ms"], 3), fmt(wave_us),
                    fmt(conns * 1e6 / wave_us)))
        if c <= need:
            return text + "; that allows 25,000/s"
        return text + ("; 25,000/s from %s connections needs a create ≤ %s µs of CPU1, %s µs "
                       "less than now" % (conns, fmt(need, 1), fmt(c - need, 1)))

    def same_views():
        """nginx doing a GET by id's job (its map of the same views) beside its fixed body, by
        CPU per request: wrk sets the pace of these runs, so req/s compares them less well."""
        nv_cpu, ng_cpu = m("get_by_id", "nginx-views", "server_cpu_us"), m("get_by_id", "nginx",
                                                                           "server_cpu_us")
        cpu = cpu1("get_by_id")
        if not nv_cpu or not ng_cpu or not cpu:
            return ""
        n = fmt(int(env.get("N", 0)))
        text = ("; nginx itself, answering the same %s views from memory (a map), costs %s µs "
                "per request, %s µs over its fixed body, and catalogd's GET %s µs over it" % (
                    n, fmt(nv_cpu, 1), fmt(nv_cpu - ng_cpu, 1), fmt(cpu - ng_cpu, 1)))
        if cpu <= nv_cpu * 1.05:
            return text + (": serving one of %s views, not one fixed body, is what costs the "
                           "difference, for nginx as for catalogd" % n)
        return text + ": %s µs of it is catalogd's own" % fmt(cpu - nv_cpu, 1)

    def fixed_body_split():
        """The GET's distance to nginx, split by catalogd's own fixed answer (GET /health)."""
        fixed, ng_cpu = cpu1("get_by_id", "catalogd-fixed"), m("get_by_id", "nginx", "server_cpu_us")
        rf = rat.get("get_by_id: catalogd-fixed/nginx")
        if not fixed or not ng_cpu or not rf:
            return ""
        share = summary.get("get_by_id", {}).get("catalogd", {}).get("view_cache_pct")
        return ("; catalogd answering a fixed body itself (GET /health, no Redis) does %s "
                "nginx's req/s at %s µs per request, its HTTP layer alone, and a GET by id adds "
                "%s µs to that (%s). 0.9× needs a GET ≤ %s µs: %s µs over the fixed body, "
                "where it costs %s µs" % (
                    fmt(rf["rps_ratio"], 2, "×"), fmt(fixed, 1),
                    fmt(cpu1("get_by_id") - fixed, 1),
                    "the view cache answered %s %% of them: its lookup and copy, the larger "
                    "body, and the others' hop to Redis" % fmt(share, 1) if share is not None
                    else "the hop to Redis, read and write included",
                    fmt(ng_cpu / 0.9, 1), fmt(ng_cpu / 0.9 - fixed, 1),
                    fmt(cpu1("get_by_id") - fixed, 1)))

    t = []
    g = m("get_by_id", "catalogd", "rps")
    ng = m("get_by_id", "nginx", "rps")
    t.append(("GET /products/{id} req/s", "≥ 80,000", fmt(g), g is not None and g >= 80000,
              ("nginx returning a fixed body does %s req/s in the same pinned setup; "
               % fmt(ng) if ng else "") + budget("get_by_id", 80000)))
    r = rat.get("get_by_id: catalogd/nginx")
    t.append(("GET /products/{id} vs nginx's fixed body, same run (req/s ratio)", "≥ 0.9×",
              fmt(r["rps_ratio"], 2, "×") if r else "not measured",
              (r["rps_ratio"] >= 0.9) if r else None,
              ("server + Redis CPU per GET %s µs against nginx's %s µs (Redis' share %s µs)" % (
                   fmt(cpu1("get_by_id"), 1), fmt(m("get_by_id", "nginx", "server_cpu_us"), 1),
                   fmt(m("get_by_id", "catalogd", "redis_cpu_us"), 1))
               + fixed_body_split() + same_views() if r else "")))
    cpu = cpu1("get_by_id")
    t.append(("GET /products/{id} CPU µs/req, server + Redis", "≤ 12", fmt(cpu, 1),
              cpu is not None and cpu <= 12,
              ("nginx's fixed body costs %s µs; most of catalogd's is the kernel's (profile)"
               % fmt(m("get_by_id", "nginx", "server_cpu_us"), 1)
               if m("get_by_id", "nginx", "server_cpu_us") else "")
              + ("; nginx answering the same views from memory costs %s µs"
                 % fmt(m("get_by_id", "nginx-views", "server_cpu_us"), 1)
                 if m("get_by_id", "nginx-views", "server_cpu_us") else "")))
    r = rat.get("get_by_id: catalogd/seed")
    sd = m("get_by_id", "seed", "rps")
    t.append(("GET /products/{id} vs the seed, same run", "≥ 25×",
              fmt(r["rps_ratio"], 1, "×") if r else "not measured", (r["rps_ratio"] >= 25) if r else None,
              "the seed did %s req/s; nginx's fixed body is %s× the seed here" % (
                  fmt(sd), fmt(ng / sd, 1)) if sd and ng else ""))
    c = m("create", "catalogd", "rps")
    t.append(("POST /products (durable) req/s, 32 connections", "≥ 25,000", fmt(c),
              c is not None and c >= 25000,
              budget("create", 25000) + closed_loop() + create_batch_split()))
    p = m("create", "catalogd", "p99_ms")
    t.append(("POST /products p99", "≤ 10 ms", ms(p) + " ms" if p is not None else "–",
              p is not None and p <= 10))
    cp = m("catalog_page", "catalogd", "rps")
    t.append(("catalog pages of 100 per s", "≥ 10,000", fmt(cp), cp is not None and cp >= 10000,
              budget("catalog_page", 10000)))
    r = rat.get("catalog_page: catalogd/big")
    t.append(("catalog page with %s products vs %s: slowdown (req/s ratio)"
              % (fmt(int(env.get("BIG_N", "1000000"))), fmt(int(env.get("N", "10000")))), "≤ 1.15×",
              fmt(r["rps_ratio"], 2, "×") if r else "not measured (run with BIG=1)",
              (r["rps_ratio"] <= 1.15) if r else None,
              ("CPU per page, server: %s → %s µs, Redis: %s → %s µs" % (
                  fmt(m("catalog_page", "catalogd", "server_cpu_us"), 1),
                  fmt(m("catalog_page", "big", "server_cpu_us"), 1),
                  fmt(m("catalog_page", "catalogd", "redis_cpu_us"), 1),
                  fmt(m("catalog_page", "big", "redis_cpu_us"), 1))
               + page_dram_bound(
                   (m("catalog_page", "big", "redis_cpu_us") or 0)
                   - (m("catalog_page", "catalogd", "redis_cpu_us") or 0),
                   memlat, mem.get("big", {}).get("redis_used_memory_end"),
                   env.get("PAGE_LIMIT", "100"))
               + page_growth_bound(grow))
              if r else ""))
    s = m("stock", "catalogd", "rps")
    t.append(("stock adjustments, 4 hot products, req/s", "≥ 20,000", fmt(s) if s else "skipped",
              (s >= 20000) if s else None, budget("stock", 20000)))
    mins = [json.loads(x["result"])["min"] if isinstance(x["result"], str) else x["result"]["min"]
            for x in stock]
    t.append(("stock never oversold (min final stock in the views)", "≥ 0",
              ", ".join(str(x) for x in mins) if mins else "skipped",
              all(x is not None and x >= 0 for x in mins) if mins else None))
    peaks = [mem[k]["peak_rss_mib"] for k in ("catalogd", "big") if k in mem]
    pk = max(peaks) if peaks else None
    t.append(("catalogd peak RSS (VmHWM), any run", "≤ 64 MiB", fmt(pk, 1, " MiB"),
              pk is not None and pk <= 64))
    kinds = ""
    for rb in redis_bytes:
        if rb["system"] == "catalogd":
            kinds = "by key kind, per product: " + ", ".join(
                "%s %s B" % (name.split(":", 1)[-1], fmt(per)) for name, _, _, per, _ in rb["kinds"]
                if per >= 1) + " (Where Redis's memory goes, below)"
    for k in ("catalogd", "big"):
        if k in mem and mem[k]["redis_bytes_per_product"]:
            b = mem[k]["redis_bytes_per_product"]
            t.append(("Redis used_memory per product (%s products)" % fmt(mem[k]["products_end"]),
                      "≤ 600 B", fmt(b, 0, " B"), b <= 600, kinds if k == "catalogd" else ""))
    # issue 11: the PostgreSQL column
    if env.get("WITH_PG", "0") == "1":
        pc = m("create", "pg", "rps")
        pgb = m("pgbench", "pgbench", "rps")
        t.append(("PostgreSQL: POST /products (durable) req/s, two instances", "≥ 10,000",
                  fmt(pc), pc is not None and pc >= 10000,
                  ("pgbench -N (one small write transaction per commit) does %s/s on the same "
                   "server; " % fmt(pgb) if pgb else "") +
                  ("CPU1 per request, both instances and PostgreSQL: %s µs + Redis %s µs"
                   % (fmt(m("create", "pg", "server_cpu_us"), 1),
                      fmt(m("create", "pg", "redis_cpu_us"), 1)) if pc else "") +
                  create_batch_split("pg", instances=2, wanted_rps=10000)))
        r = rat.get("get_by_id: pg/catalogd")
        t.append(("PostgreSQL: GET /products/{id}, two instances vs SQLite mode (req/s ratio)",
                  "≥ 0.9× (unchanged: queries never touch PostgreSQL)",
                  fmt(r["rps_ratio"], 2, "×") if r else "–",
                  (r["rps_ratio"] >= 0.9) if r else None,
                  "CPU µs/req, server + Redis: %s + %s (two instances) vs %s + %s: instances "
                  "that share PostgreSQL keep no view cache (one instance's cache could hold a "
                  "view that another's projector changed), so each of their GETs reads Redis, "
                  "where one instance on SQLite answers most from memory" % (
                      fmt(m("get_by_id", "pg", "server_cpu_us"), 1),
                      fmt(m("get_by_id", "pg", "redis_cpu_us"), 1),
                      fmt(m("get_by_id", "catalogd", "server_cpu_us"), 1),
                      fmt(m("get_by_id", "catalogd", "redis_cpu_us"), 1)) if r else ""))
        el = [x.get("elected_s") for x in takeovers]
        ap = [x.get("applied_s") for x in takeovers]
        worst = (max(el) if el and None not in el else None)
        t.append(("PostgreSQL: takeover after kill -9 of the projecting instance (worst rep)",
                  "≤ 2 s (limit 5 s)", fmt(worst, 2, " s") if worst is not None else
                  ("not taken over within the deadline" if el else "–"),
                  (worst <= 2) if worst is not None else (False if el else None),
                  "first create answered Projection: applied on the survivor after %s" % (
                      ", ".join(fmt(x, 2, " s") if x is not None else "never" for x in ap))
                  if ap else ""))
    # a target whose figure was not measured (system or scenario left out) is neither met nor missed
    return [{"what": x[0], "target": x[1], "measured": x[2],
             "met": None if x[2] in ("–", "– ms") else x[3],
             "bound": x[4] if len(x) > 4 and not x[3] else ""} for x in t]


def render_header(L, env, chart_err, w):
    """The title, the date, the command and the machine."""
    mc = L["machine"]
    w("# catalogd benchmarks\n")
    w("Generated by `make bench` (bench/run.sh → bench/report.py) on %s. Raw records and "
      "the summary: `bench/results/latest.json`; chart: `bench/results/chart.png`.\n" % L["date"])
    w("**Command:** `%s`\n" % L["command"])
    w("**Machine:** %d CPUs (`nproc`), %s, L3 cache %s, %s RAM, %s, kernel %s. Redis %s, wrk %s, "
      "nginx %s, Python %s (FastAPI/uvicorn %s), %s. catalogd at %s.\n"
      % (mc["nproc"], mc["cpu"], mc.get("l3_cache") or "unknown", mc["memory"], mc["os"],
         mc["kernel"], mc["redis"], mc["wrk"],
         mc["nginx"], mc["python"], mc["fastapi_uvicorn"], mc["valgrind"], mc["catalogd"]))
    if L.get("memlat"):
        w("**Memory latency** (`bench/memlat.c` on CPU1: a random walk of dependent loads, "
          "4 KiB pages as Redis has them): %s.\n" % memlat_curve(L["memlat"]))
    if L.get("fsync_latency"):
        fs = L["fsync_latency"]
        w("**fsync latency** (`tool.py fsync_latency`: 16 KiB appended to a file beside the "
          "databases, then `fdatasync`, %s times): median %s ms, p90 %s ms. Every batch of "
          "commands waits for one before it is acknowledged.\n"
          % (fs["n"], fmt(fs["median_ms"], 3), fmt(fs["p90_ms"], 3)))
    w("**Pinning:** %s. Every system runs with its own fresh Redis (`--save \"\" "
      "--appendonly no`); catalogd as `catalogd serve --threads 1 --durability full "
      "--log-level warn`; the seed as its `make serve` (one uvicorn worker, uvloop + httptools, "
      "no access log) with SQLite in a temp dir; nginx with 1 worker answering `return 200` "
      "with a fixed %s-byte JSON body.\n" % (L["pinning"], os.environ.get("NGINX_BODY_LEN", "~250")))
    w("**Method:** each cell is the median over %s repetitions (min–max in brackets). In each "
      "repetition catalogd and the seed start fresh and get %s products preloaded (POSTs); the "
      "systems then take turns scenario by scenario, and the one going first rotates. Each "
      "measured run is `wrk -t1 -c%s -d%ss --latency` after a %s s warm-up with the same script. "
      "CPU µs/req = utime+stime of the process (all threads; nginx: master + worker) from "
      "`/proc/<pid>/stat` over the measured run ÷ completed requests; it leaves out softirq "
      "(loopback TCP) time, the same way for every system. non-2xx and socket errors are totals "
      "over all repetitions. CPU0/CPU1 busy comes from /proc/stat (tick-sampled, so rough when "
      "a CPU is partly idle): CPU0 near 100 %% means wrk, not the server, set the pace. Before "
      "each run the harness waits (up to %s s) for both CPUs to be idle; a run during which other "
      "processes used more than 10 %% of a core is listed under Notes (a lower bound: processes "
      "that start and end within a run are missed), and so is one during which the hypervisor "
      "gave more than 5 %% of a vCPU to other machines (steal time, which busy includes). "
      "*nginx, wrk on CPU1 too* is the only run not pinned as above: the same nginx, with wrk "
      "beside it on its core, to show what the hop between cores costs on this machine. "
      "*catalogd, GET /health* is the catalogd of "
      "the GET row answering its fixed health body (15 bytes), which takes neither Redis nor "
      "the store: its HTTP layer beside nginx's. *nginx, the same views from memory* is a "
      "second nginx, started in each repetition once catalogd is preloaded, answering each "
      "product's path with catalogd's own view of it, byte for byte, from a `map` of them "
      "(`tool.py views_map`; the `$` of a price is spelled with a variable, which nginx puts "
      "in as it answers): nginx doing a GET by id's job, a lookup among as many views, "
      "beside its fixed body.%s\n"
      % (env.get("REPS"), fmt(int(env.get("N", 0))), env.get("CONNS", "32"),
         env.get("DURATION"), env.get("WARMUP", "2"), env.get("QUIET_WAIT", "30"),
         (" *catalogd, 64 connections* and *128 connections* are the catalogd of scenario 3 "
          "creating from that many connections right after it (`wrk -t1 -c64`, `-c128`): its "
          "writer's batches fill up to that many commands (see Writer batch sizes)."
          if env.get("WITH_MORE_CONNS", "0") == "1" else "")
         + (" *catalogd, an Idempotency-Key on every create* is the same catalogd creating "
            "from %s connections once more, each create with a key of its own "
            "(`post_keyed.lua`): each answer is stored for a replay, in the command's "
            "transaction." % env.get("CONNS", "32")
            if env.get("WITH_KEYED", "0") == "1" else "")))
    if env.get("WITH_HTTPS", "0") == "1":
        w("**HTTPS rows:** after the cleartext scenarios, each repetition starts one more catalogd, "
          "with `--tls-cert --tls-key --http2` (a self-signed RSA-2048 certificate) "
          "and its own Redis, and preloads it likewise. *HTTPS (HTTP/1.1)* "
          "is the same wrk run over TLS. *HTTPS + HTTP/2* is `h2load -t1 -c%s -m%s -D%s` after a "
          "%s s warm-up, with %s stream(s) in flight per connection as wrk has one request; "
          "h2load takes the ids in turn rather than at random, and its per-request log "
          "(`--log-file`) gives the percentiles. Connections are opened once per run, so the "
          "rows show the cost of encrypting each request, not of handshakes.\n"
          % (env.get("CONNS", "32"), env.get("H2_STREAMS", "1"), env.get("DURATION"),
             env.get("WARMUP", "2"), env.get("H2_STREAMS", "1")))
    if env.get("WITH_PG", "0") == "1":
        w("**PostgreSQL rows (issue 11):** after the rows above, each repetition starts a private "
          "PostgreSQL %s (`fsync`, `synchronous_commit` and `full_page_writes` on: durable), one "
          "Redis and two catalogd instances on them (`--instance-id pg-1`, `pg-2`, `--threads 1`), "
          "all on CPU1, in a fresh database, and preloads %s products through the first. *catalogd "
          "×2 on PostgreSQL* is then measured through both instances at once: `wrk -t2 -c%s`, one "
          "wrk thread (on CPU0) per instance; its server CPU is both instances' and PostgreSQL's "
          "(every backend).%s *pgbench -N* is `pgbench -N -c%s -j1 -T%s` (scale %s) against the same "
          "server, one UPDATE and one INSERT per transaction, after a %s s warm-up: what one small "
          "durable transaction per commit costs here. Then the instance that projects is killed "
          "with SIGKILL and the other one is polled (every 10 ms) for a new `projecting_instance` "
          "in `/admin/projection` and for a create answered `Projection: applied`.\n"
          % (L["machine"].get("postgresql", ""), fmt(int(env.get("N", 0))), env.get("CONNS", "32"),
             " *64 connections* and *128 connections* are scenario 3 on the same instances right "
             "after it (`wrk -t2 -c64`, `-c128`): each instance's writer batches what its half of "
             "the connections sends (see Writer batch sizes, phases *pg-create*)."
             if env.get("WITH_MORE_CONNS", "0") == "1" else "",
             env.get("PGBENCH_CLIENTS", "8"), env.get("DURATION"), env.get("PGBENCH_SCALE", "10"),
             env.get("WARMUP", "2")))
    w("![req/s and p99 per scenario and system](bench/results/chart.png)\n" if not chart_err
      else "_%s_\n" % chart_err)


def render_results(L, env, chart_err, w):
    """Each scenario: req/s, latency and CPU per request, by system."""
    S = L["summary"]
    w("## Results\n")
    w("| scenario | system | req/s | p50 ms | p99 ms | server CPU µs/req | Redis CPU µs/req "
      "| non-2xx | sock err | bytes/resp | CPU0 (wrk) / CPU1 busy |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for scen, title in SCENARIOS:
        for sysname in SYSTEMS:
            st = S.get(scen, {}).get(sysname)
            if not st:
                continue
            label = LABEL[sysname]
            if scen == "catalog_page":
                label = "catalogd (%s products)" % fmt(st["products"])
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s %% |" % (
                title, label, mmm(st["rps"]), ms_mmm(st["p50_ms"]), ms_mmm(st["p99_ms"]),
                mmm(st["server_cpu_us"], 1), mmm(st["redis_cpu_us"], 1), fmt(st["non2xx"]),
                fmt(st["sock_errors"]), fmt(st["bytes_per_resp"]), fmt(st["cpu0_busy_pct"]),
                fmt(st["cpu1_busy_pct"])))
    skipped = [t for s, t in SCENARIOS if s not in S]
    if skipped:
        w("\nNot measured: %s.%s" % ("; ".join(skipped), (" " + L["notes"][0]) if
                                      os.environ.get("STOCK_NOTE") else ""))
    st = S.get("stock", {}).get("catalogd")
    if st:
        w("\nScenario 4 (−1 with %s %% odds, so the stock hovers near 0): statuses over all "
          "repetitions %s. A 409 is a refused −1 on a product at 0, which is the rule working, "
          "not an error; the stock check below is what matters."
          % (env.get("STOCK_DOWN_PCT", "55"),
             ", ".join("%s × %s" % (fmt(v), k) for k, v in sorted(st["statuses"].items()))))
    shares = view_cache_shares((LABEL[s], st) for s, st in S.get("get_by_id", {}).items())
    if shares:
        w("\nScenario 1 answered from catalogd's view cache (its hits ÷ requests, over all "
          "repetitions; the other GETs read Redis): %s. The cache holds every view read while "
          "it fits (`--view-cache-mb`, 16 MiB), and only one instance on SQLite keeps one."
          % "; ".join(shares))
    w("")


def render_ratios(L, env, chart_err, w):
    """The ratios between systems, from medians of the same run."""
    R = L["ratios"]
    w("## Ratios (medians of the same run)\n")
    w("| comparison | req/s ratio | per-repetition range | p99 ratio | CPU per request "
      "(server + Redis) ratio |")
    w("|---|---|---|---|---|")
    for k, r in R.items():
        w("| %s | %s | %s | %s | %s |" % (
            k.replace("catalogd/big", "catalogd %s products / %s products" % (
                fmt(int(env.get("N", "10000"))), fmt(int(env.get("BIG_N", "1000000"))))),
            fmt(r["rps_ratio"], 2, "×"),
            "%s–%s" % (fmt(r["rps_ratio_per_rep"][0], 2), fmt(r["rps_ratio_per_rep"][1], 2))
            if r["rps_ratio_per_rep"] else "–",
            fmt(r["p99_ratio"], 3, "×"), fmt(r["cpu_per_req_ratio"], 2, "×")))
    w("")


def cache_note(L):
    """The CPU's caches against the big Redis's memory, for the window rows."""
    big = L.get("memory", {}).get("big", {})
    used = big.get("redis_used_memory_end")
    caches = "the CPU's L3 cache is %s" % (L["machine"].get("l3_cache") or "unknown")
    if L.get("memlat"):
        caches = "a dependent memory load costs %s here" % memlat_curve(L["memlat"])
    return "%s; the big Redis holds %s" % (caches, fmt(used / 2 ** 20, 0, " MiB") if used
                                           else "unknown")


def render_growth(L, env, chart_err, w):
    """The growth curve: scenarios 1 and 2 at each size of the big catalogd (BIG=1)."""
    G = L.get("growth")
    if not G:
        return
    runs = sorted({st["reps"] for g in G.values() for st in g["sizes"]})
    sizes = sorted({st["products"] for g in G.values() for st in g["sizes"]})
    w("## Growth with the catalog's size\n")
    w("With BIG=1, before the repetitions, the big catalogd (pinned as above; the same one the "
      "big rows measure later) is preloaded in steps, %s products, and at each size scenarios 1 "
      "and 2 are measured as above, %s, taking turns: GET by id over every id preloaded so far, "
      "catalog pages from a random cursor of a paging done at that size. %s The ratio rows "
      "divide the largest size's figures by the smallest's.\n" % (
          " → ".join(fmt(n) for n in sizes),
          "%s runs each" % "–".join(str(n) for n in runs) if runs != [1] else "one run each",
          "Each cell is the median of its runs (min–max)." if runs != [1] else
          "One run per size and scenario: no medians."))
    w("| scenario | products | req/s | p50 ms | p99 ms | server CPU µs/req | Redis CPU µs/req "
      "| CPU0 (wrk) / CPU1 busy |")
    w("|---|---|---|---|---|---|---|---|")
    def stats_row(title, products, st):
        w("| %s | %s | %s | %s | %s | %s | %s | %s / %s %% |" % (
            title, products, mmm(st["rps"]), ms_mmm(st["p50_ms"]), ms_mmm(st["p99_ms"]),
            mmm(st["server_cpu_us"], 1), mmm(st["redis_cpu_us"], 1),
            fmt(st["cpu0_busy_pct"]), fmt(st["cpu1_busy_pct"])))

    def ratio_row(title, of, r):
        w("| %s | **ratio %s** | **%s** | %s | **%s** | **%s** | **%s** | |" % (
            title, of, fmt(r["rps"], 2, "×"), fmt(r["p50_ms"], 2, "×"), fmt(r["p99_ms"], 2, "×"),
            fmt(r["server_cpu_us"], 2, "×"), fmt(r["redis_cpu_us"], 2, "×")))

    for scen, title in SCENARIOS:
        g = G.get(scen)
        if not g:
            continue
        for st in g["sizes"]:
            stats_row(title, fmt(st["products"]), st)
        ratio_row(title, "%s / %s" % (fmt(g["ratio_of"][0]), fmt(g["ratio_of"][1])), g["ratio"])
        wn = g.get("window")
        if wn:
            stats_row(title, "%s, within the first %s" % (fmt(wn["products"]), fmt(wn["window"])),
                      wn)
            ratio_row(title, "%s within the first %s / %s" % (
                fmt(wn["products"]), fmt(wn["window"]), fmt(g["ratio_of"][1])), g["window_ratio"])
    g = G.get("get_by_id")
    shares = view_cache_shares(
        ("%s products" % fmt(st["products"]), st) for st in (g["sizes"] if g else []))
    if shares:
        w("\nGETs by id answered from the view cache (hits ÷ requests): %s. Its 16 MiB hold "
          "about 50,000 views: in a larger catalog, GETs spread over every product mostly miss "
          "it and read Redis; the rows *within the first* read a set small enough to be held."
          % "; ".join(shares))
    if any(g.get("window") for g in G.values()):
        wn = next(g["window"] for g in G.values() if g.get("window"))
        w("\nThe rows *within the first %s* read the %s-product catalog only within the %s "
          "products preloaded first (the first %s ids, the pages that cover them): the same "
          "sorted sets, as deep as with all %s, but a working set the size of the first step's. "
          "Where they cost what the smallest catalog costs, a bigger catalog costs nothing in "
          "its structure (O(log N) to find the first view) and what it costs over the whole "
          "catalog is memory: views read from DRAM instead of the CPU's caches (%s)."
          % (fmt(wn["window"]), fmt(wn["products"]), fmt(wn["window"]), fmt(wn["window"]),
             fmt(wn["products"]), cache_note(L)))
    w("")


def render_two_cores(L, env, chart_err, w):
    """Each catalogd scenario once more with both cores: --threads 2, nothing pinned."""
    T = L.get("two_cores")
    if not T:
        return
    S = L["summary"]
    w("## On both cores (--threads 2, unpinned)\n")
    w("After the repetitions, a fresh catalogd `serve --threads 2` and its own Redis, neither "
      "pinned, get %s products preloaded; then each scenario runs once (one run, not a median): "
      "`wrk -t2 -c%s -d%ss --latency` after a %s s warm-up, wrk not pinned either. The GET is also "
      "measured on nginx with `worker_processes 2`, not pinned, returning the fixed body. **wrk "
      "shares the two cores with the server and Redis, so these rows show how the design scales "
      "when it gets both cores, not its peak.** CPU µs/req as above (every thread of the server). "
      "The last columns compare with the pinned one-core rows of Results (medians).\n" % (
          fmt(int(env.get("N", 0))), env.get("CONNS", "32"), env.get("DURATION"),
          env.get("WARMUP", "2")))
    w("| scenario | system | req/s | p50 ms | p99 ms | server CPU µs/req | Redis CPU µs/req | "
      "server + Redis µs/req | CPU0 / CPU1 busy | one core, pinned: req/s | req/s, both cores "
      "/ one |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for scen, title in SCENARIOS:
        for sysname, pinned in (("two-cores", "catalogd"), ("nginx-two-cores", "nginx")):
            st = T.get(scen, {}).get(sysname)
            if not st:
                continue
            one = S.get(scen, {}).get(pinned)
            cpu = (st["server_cpu_us"]["median"] or 0) + (st["redis_cpu_us"]["median"] or 0)
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s %% | %s | %s |" % (
                title, LABEL[sysname], mmm(st["rps"]), ms_mmm(st["p50_ms"]), ms_mmm(st["p99_ms"]),
                mmm(st["server_cpu_us"], 1), mmm(st["redis_cpu_us"], 1), fmt(cpu, 1),
                fmt(st["cpu0_busy_pct"]), fmt(st["cpu1_busy_pct"]),
                fmt(one["rps"]["median"]) if one else "–",
                fmt(st["rps"]["median"] / one["rps"]["median"], 2, "×")
                if one and one["rps"]["median"] else "–"))
    for c in L.get("two_cores_stock_checks", []):
        res = json.loads(c["result"]) if isinstance(c["result"], str) else c["result"]
        w("\nStock check after scenario 4 on both cores: 4 hot products starting at stock %s, "
          "final stock in the views %s → %s." % (
              c["initial"], ", ".join(str(v) for v in res["stocks"].values()),
              "never oversold" if res["min"] is not None and res["min"] >= 0
              else "**OVERSOLD or unreadable**"))
    w("")


def render_targets(L, env, chart_err, w):
    """Each target: wanted, measured, met, and what bounds it."""
    w("## Targets (issues 5, 11 and 14)\n")
    w("| target | wanted | measured (median) | met | what bounds it |")
    w("|---|---|---|---|---|")
    for t in L["targets"]:
        w("| %s | %s | %s | %s | %s |" % (t["what"], t["target"], t["measured"],
                                           {True: "yes", False: "**no**", None: "–"}[t["met"]],
                                           t.get("bound", "")))
    w("")
    w("Each throughput target is a CPU budget: catalogd and its Redis share CPU1, so req/s can "
      "exceed neither 1 s ÷ (server + Redis CPU per request) nor what the machine's cross-core "
      "hop allows (nginx's row). The profiles below show where the budget goes. A GET spends "
      "most of it in the kernel: the loopback TCP of the client's connection, and of the Redis "
      "one when the view cache does not hold the view (read, writev, epoll); catalogd's own "
      "code and h2o are a small share. A catalog page spends it in reading two ranges of views out of "
      "Redis' sorted sets and in moving ~28 KB through two sockets. A command spends it in "
      "SQLite, the kernel (TCP, the WAL's writes and fsync) and Redis's Lua apply (a batch per "
      "script; per product a lookup of its view, the new view added to its set, the sku "
      "entry, its batch's last event only). Redis memory is mostly the views themselves: a ~270-byte JSON in a "
      "320-byte allocation, held as a member of a sorted set (its skiplist node and hash "
      "entry add ~80 B), and the skus hash adds ~100 B per product.\n")


def render_profiles(L, env, chart_err, w):
    """Where the time goes on the measured core (perf)."""
    if L.get("profiles"):
        w("## Where the time goes (perf)\n")
        w("In the last repetition each catalogd scenario ran once more (%s s, same wrk load, not "
          "in the tables above) under `perf record -C 1`: CPU1 runs catalogd and its Redis, so "
          "these are the shares of that core's busy time. *kernel* under catalogd or "
          "redis-server is mostly the loopback TCP stack (sending a segment on loopback also "
          "runs its receive path). Raw reports: `bench/results/perf.*.txt`.\n"
          % env.get("DURATION", "8"))
        w("| scenario | by process | by process and library (≥ 2 %) | top functions |")
        w("|---|---|---|---|")
        for p in L["profiles"]:
            label = dict(SCENARIOS)[p["scenario"]] + (
                " (%s)" % LABEL["big"] if p["system"] == "big" else "")
            procs = ", ".join("%s %.0f %%" % (c, v) for c, v in p["by_process"] if v >= 1)
            libs = ", ".join("%s: %s %.0f %%" % (c, lib, v)
                             for c, lib, v in p["by_library"] if v >= 2)
            funcs = ", ".join("%s %s %.1f %%" % (c, f, v) for c, _, f, v in p["functions"][:8])
            w("| %s | %s | %s | %s |" % (label, procs, libs, funcs))
        w("")


def render_memory(L, env, chart_err, w):
    """RSS and Redis memory, by key kind."""
    M = L["memory"]
    w("## Memory\n")
    w("| system | peak RSS (VmHWM) | RSS at end | products at end | Redis used_memory | "
      "per product | per product, net of an empty Redis | per product right after preload |")
    w("|---|---|---|---|---|---|---|---|")
    for k, m in M.items():
        w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            LABEL[k], fmt(m["peak_rss_mib"], 1, " MiB"), fmt(m["rss_end_mib"], 1, " MiB"),
            fmt(m["products_end"]), fmt(m["redis_used_memory_end"] / 1048576, 1, " MiB"),
            fmt(m["redis_bytes_per_product"], 0, " B"),
            fmt(m["redis_bytes_per_product_net_of_empty"], 0, " B"),
            fmt(m["redis_bytes_per_product_after_preload"], 0, " B")))
    w("\nPeak RSS is the largest VmHWM over the repetitions (it covers preload, every scenario and "
      "the POSTs); Redis figures are medians at the end of each repetition (products = "
      "catalogd's X-Total-Count, the seed's LLEN catalog).\n")

    for rb in sorted(L.get("redis_bytes", []), key=lambda rb: rb["products"]):
        w("Where Redis's memory goes (%s products, right after the preload): `MEMORY USAGE` of "
          "every key, summed by kind (a kind is the key with its generation as `g*` and an "
          "item's id, SKU or number, and all after it, as `*`; type from `TYPE`). The keys' sum is %s B per product of the %s B per product "
          "`used_memory` shows; the rest is the keyspace's hash table, the allocator's rounding "
          "and the empty server.\n" % (
              fmt(rb["products"]),
              fmt(rb["sum_memory_usage"] / max(rb["products"], 1)),
              fmt(rb["used_memory"] / max(rb["products"], 1))))
        w("| key kind | type | keys | bytes | per product |")
        w("|---|---|---|---|---|")
        for name, keys, nbytes, per, kind in rb["kinds"]:
            if nbytes >= 1024:
                w("| `%s` | %s | %s | %s | %s B |" % (name, kind, fmt(keys), fmt(nbytes), fmt(per)))
        w("")


def render_preload_and_paging(L, env, chart_err, w):
    """Preload rates and the catalog paging checks."""
    w("## Preload and paging\n")
    for k, v in L["preload"].items():
        rates = [x["rate"] for x in v]
        w("- preload %s: %s products per repetition at %s products/s median (%s–%s), "
          "wrk -t1 -c%s, one POST per product%s" % (
              LABEL[k], fmt(v[0]["created"]), fmt(med(rates)), fmt(min(rates)), fmt(max(rates)),
              v[0]["conns"], ", in %d steps (the growth curve; the rate leaves out the "
              "measurements between them)" % v[0]["steps"] if v[0].get("steps", 1) > 1 else ""))
    for p in L["paging"]:
        w("- paged %s (rep %s) through the Link headers: %s pages of %s, %s items, "
          "%s pages/s (one Python client)" % (
              LABEL[p["system"]], p["rep"], fmt(p["pages"]), env.get("PAGE_LIMIT", "100"),
              fmt(p["items"]), fmt(p["pages_per_s"])))
    w("")


def render_stock(L, env, chart_err, w):
    """The stock contention check (never oversold)."""
    w("## Stock contention check\n")
    if L["stock_checks"]:
        for s in L["stock_checks"]:
            res = json.loads(s["result"]) if isinstance(s["result"], str) else s["result"]
            w("- rep %s: 4 hot products starting at stock %s; final stock in the views: %s → %s"
              % (s["rep"], s["initial"], ", ".join(str(v) for v in res["stocks"].values()),
                 "never oversold" if res["min"] is not None and res["min"] >= 0
                 else "**OVERSOLD or unreadable**"))
    else:
        w("- skipped: %s" % (os.environ.get("STOCK_NOTE") or "not run"))
    w("")


def render_takeover(L, env, chart_err, w):
    """Issue 11: how long the projector's takeover took after kill -9."""
    if not L.get("takeovers"):
        return
    w("## Projector takeover (PostgreSQL, two instances)\n")
    w("| rep | killed → new projecting instance named | killed → first create answered "
      "`applied` on the survivor | new instance | epoch before → after |")
    w("|---|---|---|---|---|")
    for t in L["takeovers"]:
        if t.get("error"):
            w("| %s | – | – | %s | |" % (t["rep"], t["error"]))
            continue
        w("| %s | %s | %s | %s | %s → %s |" % (
            t["rep"], fmt(t.get("elected_s"), 3, " s") if t.get("elected_s") is not None
            else "not within %s s" % t.get("deadline_s"),
            fmt(t.get("applied_s"), 3, " s") if t.get("applied_s") is not None
            else "not within %s s" % t.get("deadline_s"),
            t.get("new_instance") or "–", t.get("epoch_before"), t.get("epoch_after")))
    w("")


def render_batches(L, env, chart_err, w):
    """The writer's batch sizes (group commit)."""
    w("## Writer batch sizes (group commit)\n")
    if L["batches"]:
        labels = [lb for lb, _ in L["batches"][0]["buckets"]]
        w("Commands per committed batch, from catalogd's `GET /metrics` "
          "(`catalogd_write_batch_size`), as the difference of two snapshots: *preload* is the "
          "preload (wrk -c%s), *create* is scenario 3 (warm-up + measured run, -c%s), "
          "*create-c64* and *create-c128* the same from 64 and 128 connections; *pg-create* "
          "and its -c64, -c128 are the same on PostgreSQL, the two instances' batches together."
          "\n"
          % (env.get("PRELOAD_CONNS", os.environ.get("PRELOAD_CONNS", "64")),
             env.get("CONNS", "32")))
        w("| phase | rep | %s | batches | commands | mean batch |" % " | ".join(labels))
        w("|---|---|%s---|---|---|" % ("---|" * len(labels)))
        for b in sorted(L["batches"], key=lambda b: (b["phase"] != "preload", b["phase"], b["rep"])):
            w("| %s | %s | %s | %s | %s | %s |" % (
                b["phase"], b["rep"], " | ".join(fmt(c) for _, c in b["buckets"]),
                fmt(b["batches"]), fmt(b["commands"]), fmt(b["mean"], 1)))
    else:
        w("- GET /metrics has no batch-size histogram in this build: skipped")
    w("")


def render_callgrind(L, env, chart_err, w):
    """Instructions per iteration of the hot paths."""
    w("## Instructions per iteration (callgrind)\n")
    w("`bench/hotpaths.c`, linked against `src/domain/*.c` (-O2 -g), run under `valgrind "
      "--tool=callgrind --toggle-collect=hot_<mode>`: only the measured loop counts. These "
      "counts do not depend on the machine's load; compare them across commits.\n")
    w("| path | iterations | instructions per iteration | where they go (self, top functions) |")
    w("|---|---|---|---|")
    names = {"create": "parse + validate + encode a create (product_parse_create, "
                       "product_apply_draft, view_encode)",
             "encode": "encode a view (view_encode)", "cursor": "decode a cursor (cursor_decode)"}
    for c in L["callgrind"]:
        w("| %s | %s | **%s** | %s |" % (names.get(c["mode"], c["mode"]), fmt(c["iterations"]),
                                          fmt(c["ir_per_iteration"]),
                                          ", ".join("%s %.0f %%" % t for t in c["top_self"])))
    w("")

    sync_section(w, L.get("sync"))


def render_notes(L, env, chart_err, w):
    """What the run noticed."""
    if L["notes"]:
        w("## Notes\n")
        for n in L["notes"]:
            w("- %s" % n)
        w("")


def render_reproduce(L, env, chart_err, w):
    """How to run it again."""
    w("## Reproduce\n")
    w("```\nmake bench                      # REPS=3 DURATION=8 WARMUP=2 N=10000 CONNS=32\n"
      "DURATION=2 REPS=1 make bench    # a quick check\n"
      "BIG=1 make bench                # adds catalog pages with 1,000,000 products "
      "(preloaded once, in steps: the growth curve)\n```\n")
    w("Other knobs: `bench/run.sh --help`. Needs root for the first run (installs wrk, "
      "nginx-light, python3-fastapi, python3-uvicorn, python3-matplotlib, ... when missing) "
      "and the seed at `../shared/peers/seed-fastapi` (WITH_SEED=0 skips it; WITH_NGINX=0 skips nginx; "
      "WITH_PG=0 skips the PostgreSQL column; WITH_GROWTH=0 the growth curve; WITH_TWO_CORES=0 "
      "the runs on both cores).")


def render(L, env, chart_err):
    """BENCHMARKS.md, section by section."""
    o = []
    for section in (render_header, render_results, render_ratios, render_growth,
                    render_two_cores, render_targets,
                    render_profiles, render_memory, render_preload_and_paging, render_stock,
                    render_takeover, render_batches, render_callgrind, render_notes, render_reproduce):
        section(L, env, chart_err, o.append)
    return "\n".join(o) + "\n"


def sync_section(w, sync):
    """Issue 3's figures, from bench/sync_figures.py (bench/results/sync.json), when present."""
    if not sync:
        return
    w("## Sync figures (issue 3)\n")
    w("From `%s` on %s%s (not pinned; a separate run from the table above).\n"
      % (sync.get("command", "bench/sync_figures.py"), sync.get("date", "?"),
         ", catalogd at %s" % sync["catalogd"] if sync.get("catalogd") else ""))
    catch_up = sync.get("catch_up", {})
    if catch_up:
        w("| Redis away | outage | write load | backlog when Redis returned (head seq) | "
          "converged after Redis returned | commands refused | verify |")
        w("|---|---|---|---|---|---|---|")
        labels = {"frozen": "frozen (SIGSTOP … SIGCONT), data kept",
                  "restarted_empty": "stopped, restarted empty (rebuild from SQLite)"}
        for key, f in catch_up.items():
            w("| %s | %.1f s | %d creates/s | %s | **%.3f s** (goal ≤ 2 s) | %d | exit %d |"
              % (labels.get(key, key), f["outage_s"], f["write_rate"], fmt(f["head_at_return"]),
                 f["converged_s"], f["command_errors"], f["verify_exit"]))
        w("")
    big = sync.get("big")
    if big:
        w("| large catalog | figure |")
        w("|---|---|")
        w("| products (preloaded over HTTP) | %s in %.0f s |" % (fmt(big["products"]),
                                                             big["preload_s"]))
        if big.get("rebuild_switched_s") is not None:
            w("| `catalogd rebuild`: built, caught up and switched | **%.2f s** (goal ≤ 15 s) |"
              % big["rebuild_switched_s"])
        if big.get("rebuild_drop_s") is not None:
            w("| then, after a %d s grace, old generation dropped (SCAN + UNLINK) | %.2f s |"
              % (big["rebuild_includes_grace_s"], big["rebuild_drop_s"]))
        w("| `catalogd rebuild` wall time, all of it | %.2f s, exit %d |"
          % (big["rebuild_s"], big["rebuild_exit"]))
        w("| `catalogd verify` wall time | **%.2f s**, exit %d |" % (big["verify_s"],
                                                                   big["verify_exit"]))
        if big.get("redis_bytes_per_product"):
            w("| Redis used_memory per product | %s B |" % fmt(big["redis_bytes_per_product"]))
        w("")


def print_summary(L):
    print("\n== medians over %s repetitions (min–max)" % L["env"].get("REPS"))
    print("%-13s %-13s %22s %20s %22s %10s %9s %7s" % ("scenario", "system", "req/s", "p50 ms",
                                                      "p99 ms", "srv µs/req", "redis µs", "non2xx"))
    for scen, _ in SCENARIOS:
        for sysname in SYSTEMS:
            st = L["summary"].get(scen, {}).get(sysname)
            if st:
                print("%-13s %-13s %22s %20s %22s %10s %9s %7s" % (
                    scen, SHORT[sysname], mmm(st["rps"]), ms_mmm(st["p50_ms"]),
                    ms_mmm(st["p99_ms"]), fmt(st["server_cpu_us"]["median"], 1),
                    fmt(st["redis_cpu_us"]["median"], 1), fmt(st["non2xx"])))
    print("\n== ratios")
    for k, r in L["ratios"].items():
        print("  %-32s req/s %s  CPU/req %s" % (k, fmt(r["rps_ratio"], 2, "×"),
                                                fmt(r["cpu_per_req_ratio"], 2, "×")))
    for scen, g in L.get("growth", {}).items():
        print("\n== growth, %s" % scen)
        for st in g["sizes"]:
            print("  %9s products %22s req/s  p99 %s ms  server %s µs  redis %s µs" % (
                fmt(st["products"]), mmm(st["rps"]), ms(st["p99_ms"]["median"]),
                fmt(st["server_cpu_us"]["median"], 1), fmt(st["redis_cpu_us"]["median"], 1)))
        print("  ratio %s/%s: req/s %s, p99 %s, server CPU %s, Redis CPU %s" % (
            fmt(g["ratio_of"][0]), fmt(g["ratio_of"][1]), fmt(g["ratio"]["rps"], 2, "×"),
            fmt(g["ratio"]["p99_ms"], 2, "×"), fmt(g["ratio"]["server_cpu_us"], 2, "×"),
            fmt(g["ratio"]["redis_cpu_us"], 2, "×")))
    if L.get("two_cores"):
        print("\n== both cores, unpinned (one run each)")
        for scen, _ in SCENARIOS:
            for sysname, st in L["two_cores"].get(scen, {}).items():
                print("  %-13s %-16s %9s req/s  server %s µs  redis %s µs" % (
                    scen, sysname, fmt(st["rps"]["median"]), fmt(st["server_cpu_us"]["median"], 1),
                    fmt(st["redis_cpu_us"]["median"], 1)))
    print("\n== memory")
    for k, m in L["memory"].items():
        print("  %-13s peak RSS %s MiB, Redis %s B/product (%s products)" % (
            SHORT[k], fmt(m["peak_rss_mib"], 1), fmt(m["redis_bytes_per_product"]),
            fmt(m["products_end"])))
    print("\n== callgrind (instructions per iteration)")
    for c in L["callgrind"]:
        print("  %-7s %s" % (c["mode"], fmt(c["ir_per_iteration"])))
    print("\n== targets")
    for t in L["targets"]:
        print("  %-4s %-62s %-10s %s" % ({True: "ok", False: "MISS", None: "-"}[t["met"]],
                                         t["what"], t["target"], t["measured"]))
    for n in L["notes"]:
        print("note: " + n)
    print("\nwrote BENCHMARKS.md, bench/results/latest.json, bench/results/chart.png")


if __name__ == "__main__":
    main()

"""make cluster (issue 11): scripts/cluster.sh starts PostgreSQL, Redis, three catalogd instances
and nginx; the seed's three curl commands work through nginx unchanged, requests reach more
than one instance, and Ctrl-C stops every process the script started.

Runs the script itself, with its directory in a temp dir and free ports (CLUSTER_VAR,
CLUSTER_PORT, CLUSTER_INSTANCE_PORTS, CLUSTER_PG_PORT), never on the defaults. Needs a
catalogd built with the PostgreSQL store, Debian's postgresql and nginx."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import BIN, ROOT, free_port, wait_until
from test_seed_readme import SEED_STEP1, SEED_STEP2, SEED_STEP3, run_curl

START_DEADLINE = 120.0  # initdb, then PostgreSQL, Redis, three instances and nginx, in turn
STOP_DEADLINE = 60.0  # nginx 5 s, each instance up to 10 s, Redis, PostgreSQL's fast shutdown


def pg_installed():
    return any(os.access(p, os.X_OK) for p in glob.glob("/usr/lib/postgresql/*/bin/postgres"))


pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") and pg_installed()),
    reason="make cluster needs Debian's nginx (nginx-light) and postgresql")


def proc_start_time(pid):
    """The start time of PID (clock ticks since boot), or None when there is no such process or
    it is a zombie: with the PID it names one process, even if the PID is reused later."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def descendants(root):
    """{pid: start time} of ROOT and every process below it, now."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        kids = {p for p, pp in parent.items() if pp in tree and p not in tree}
        tree |= kids
        grew = bool(kids)
    return {p: t for p in tree if (t := proc_start_time(p)) is not None}


def still_running(procs):
    return {p: t for p, t in procs.items() if proc_start_time(p) == t}


@pytest.fixture
def cluster(tmp_path):
    """The running cluster: its script's Popen, ports, var dir and output file. Stops it (by
    SIGINT to the script, then SIGKILL to any process of it left) whatever the test did."""
    ports = set()
    while len(ports) < 5:
        ports.add(free_port())
    port, pg_port, *instance_ports = sorted(ports)
    var = tmp_path / "var"
    out_path = tmp_path / "cluster.out"
    env = dict(os.environ, CLUSTER_VAR=str(var), CLUSTER_PORT=str(port),
               CLUSTER_INSTANCE_PORTS=" ".join(map(str, instance_ports)),
               CLUSTER_PG_PORT=str(pg_port), CLUSTER_LOG_LEVEL="info")
    out = open(out_path, "w")
    # A session of its own: its process group is what a terminal's Ctrl-C would reach. And
    # SIGINT handled as under a terminal: a test run started in the background by a shell
    # without job control ignores it, and bash cannot trap a signal ignored when it starts.
    script = subprocess.Popen([str(ROOT / "scripts" / "cluster.sh"), str(BIN)], cwd=tmp_path,
                              env=env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    c = type("Cluster", (), {})()
    c.script, c.port, c.instance_ports, c.pg_port = script, port, instance_ports, pg_port
    c.var, c.out_path, c.base = var, out_path, "http://localhost:%d" % port
    c.output = lambda: out_path.read_text(errors="replace")
    c.procs = {}
    try:
        deadline = time.monotonic() + START_DEADLINE
        while "cluster: ready." not in c.output():
            if script.poll() is not None:
                pytest.fail("cluster.sh exited %s before it was ready:\n%s"
                            % (script.returncode, c.output()))
            if time.monotonic() > deadline:
                pytest.fail("cluster.sh not ready within %.0f s:\n%s" % (START_DEADLINE, c.output()))
            c.procs.update(descendants(script.pid))
            time.sleep(0.2)
        c.procs.update(descendants(script.pid))
        yield c
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGINT)
            try:
                script.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                script.kill()
                script.wait(10)
        for pid in still_running(c.procs):  # only processes this test's script started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        out.close()
        # As root with a temp dir the postgres user cannot reach, the script put PostgreSQL's
        # data in a directory of its own under /var/tmp, which var/pg points to.
        pg_link = var / "pg"
        if pg_link.is_symlink():
            shutil.rmtree(Path(os.readlink(pg_link)).parent, ignore_errors=True)


def test_make_cluster_seed_curls_balancing_and_ctrl_c(cluster):
    # Every part the script announced is one of its processes: PostgreSQL (its postmaster and
    # backends), Redis, three catalogd, nginx (master and worker).
    catalogd = BIN.name[:15]  # a process's comm is its file name, cut at 15 bytes
    names = {open("/proc/%d/comm" % p).read().strip() for p in still_running(cluster.procs)}
    for name in ("postgres", "redis-server", catalogd, "nginx"):
        assert name in names, (name, names, cluster.output())
    catalogds = [p for p in still_running(cluster.procs)
                 if open("/proc/%d/comm" % p).read().strip() == catalogd]
    assert len(catalogds) == 3, cluster.output()

    # The seed's three curl commands, as its README writes them, through nginx.
    base = cluster.base
    out = run_curl(SEED_STEP1, base)
    view = json.loads(out)
    assert view["sku"] == "GAMER-PC-01" and view["stock"] == 5 and view["version"] == 1
    assert view["desc"] == "PC Gamer Ultra - $5000.00"
    assert '"price":5000.00,' in out
    out2 = run_curl(SEED_STEP2.replace("SEU_ID_AQUI", view["id"]), base)
    assert out2 == out
    out3 = run_curl(SEED_STEP3, base)
    assert out3 == "[" + out + "]"

    # Requests reach more than one instance: /admin/projection names the instance answering,
    # and all of them name the same projecting one.
    answered_by, projecting = set(), set()
    with requests.Session() as s:
        for _ in range(12):
            r = s.get(base + "/admin/projection", timeout=5)
            assert r.status_code == 200, r.text
            body = r.json()
            answered_by.add(body["instance_id"])
            projecting.add(body["projecting_instance"])
    assert len(answered_by) > 1, answered_by
    assert answered_by <= {"catalogd-1", "catalogd-2", "catalogd-3"}, answered_by
    assert len(projecting) == 1 and projecting <= {"catalogd-1", "catalogd-2", "catalogd-3"}, \
        projecting

    # ... and by the logs: each request id nginx passed on is in exactly one instance's log,
    # and nginx's access log names the instance it chose.
    rids = ["cluster-%s" % uuid.uuid4().hex for _ in range(9)]
    with requests.Session() as s:
        for rid in rids:
            r = s.get(base + "/products/" + view["id"], headers={"X-Request-Id": rid}, timeout=5)
            assert r.status_code == 200 and r.headers["X-Request-Id"] == rid
    logs = {}

    def every_rid_logged():
        logs.update({n: (cluster.var / ("catalogd-%d.log" % n)).read_text(errors="replace")
                     for n in (1, 2, 3)})
        return all(sum(rid in text for text in logs.values()) == 1 for rid in rids)
    wait_until(every_rid_logged, 5, what="every request id in one instance's log")
    served = {n for n, text in logs.items() if any(rid in text for rid in rids)}
    assert len(served) > 1, served
    access = (cluster.var / "nginx" / "access.log").read_text()
    upstreams = set(re.findall(r"upstream=127\.0\.0\.1:(\d+)", access))
    assert len(upstreams) > 1 and upstreams <= {str(p) for p in cluster.instance_ports}, upstreams

    # A write through nginx names Host as the client gave it; an Origin of another site is still
    # refused by the instance behind the proxy.
    r = requests.post(base + "/products", json={"sku": "CLUSTER-ORIGIN", "name": "x",
                                                "price": 1, "stock": 1},
                      headers={"Origin": "http://evil.example"}, timeout=5)
    assert r.status_code == 403, r.text

    # Ctrl-C: the script's process group gets SIGINT, as from a terminal; it stops everything.
    running = still_running(cluster.procs)
    os.killpg(cluster.script.pid, signal.SIGINT)
    assert cluster.script.wait(STOP_DEADLINE) == 0, cluster.output()
    wait_until(lambda: not still_running(running), 5, what="every process of the cluster gone")
    left = still_running(running)
    assert not left, (left, cluster.output())
    text = cluster.output()
    for part in ("nginx", "catalogd-1", "catalogd-2", "catalogd-3", "redis", "postgres"):
        assert re.search(r"stopped %s \(pid \d+\)" % part, text), text
    assert "SIGKILL" not in text, text  # each stopped by its own signal, none had to be killed
    # Nothing listens any more on the ports it used.
    for p in [cluster.port, cluster.pg_port, *cluster.instance_ports]:
        with pytest.raises(requests.ConnectionError):
            requests.get("http://127.0.0.1:%d/health" % p, timeout=2)

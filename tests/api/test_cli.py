"""The catalogd command line: --version, --help, bad flags and values, refusing open writes,
and a clean exit on SIGTERM."""

import os
import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import BACKEND, BIN, ROOT, cli, free_port


def test_version():
    p = cli(["--version"], timeout=10)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    assert out, "--version printed nothing on stdout"
    assert re.search(r"\d+\.\d+", out), out
    assert len(out.splitlines()) <= 3, out


def test_help():
    p = cli(["--help"], timeout=10)
    assert p.returncode == 0, p.stderr
    text = p.stdout
    for word in ("serve", "verify", "rebuild", "--listen", "--db", "--redis"):
        assert word in text, f"{word!r} missing from --help:\n{text}"


def _run_bad(args, tmp_path):
    """Runs catalogd with arguments that must be rejected before it serves anything."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    cmd = [str(BIN), *args]
    if args and args[0] == "serve":
        cmd += ["--db", str(tmp_path / "c.db"), "--redis", dead_redis]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd} did not exit within 10 s (it should reject its arguments)")


@pytest.mark.parametrize("args,needle", [
    (["serve", "--bogus"], "--bogus"),
    (["--bogus"], "--bogus"),
    (["frobnicate"], "frobnicate"),
    (["serve", "--threads", "abc"], "threads"),
    (["serve", "--durability", "maybe"], "durability"),
    (["serve", "--listen", "not-an-address"], "listen"),
    (["serve", "--listen", "not-an-address", "--api-token", "secret-token"], "listen"),
    (["serve", "--listen", "127.0.0.1:99999"], "listen"),
    # strtol's leniency: a space or a sign before the digits was taken
    (["serve", "--threads", " 2"], "threads"),
    (["serve", "--threads", "+2"], "threads"),
    (["serve", "--max-connections", " 5"], "max-connections"),
    (["serve", "--listen", "127.0.0.1: 8000"], "listen"),
    (["serve", "--redis-prefix", "a\x1bb"], "redis-prefix"),
    (["verify", "--db", ""], "--db"),
    (["rebuild", "--db", ":memory:"], "--db"),
])
def test_bad_arguments_exit_2_with_a_one_line_error(tmp_path, args, needle):
    p = _run_bad(args, tmp_path)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert lines and lines[0].strip(), "no error on stderr"
    assert needle in lines[0], lines[0]
    assert "Traceback" not in p.stderr and p.stdout == "", p.stdout


@pytest.mark.parametrize("db", ["", ":memory:"])
def test_serve_refuses_a_db_whose_writes_would_not_outlive_it(tmp_path, db):
    """--db "" gave SQLite a temporary database: catalogd served, answered 201 to creates, and
    lost them all at exit. (CATALOGD_DB="" is unset, as every empty variable: the default.)"""
    cmd = [str(BIN), "serve", "--listen", f"127.0.0.1:{free_port()}",
           "--redis", f"redis://127.0.0.1:{free_port()}/0", "--db", db]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"catalogd served with --db '{db}' (it should refuse it)")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.splitlines()[0].startswith("catalogd: bad --db:"), p.stderr


@pytest.mark.skipif(BACKEND != "sqlite", reason="instances share a PostgreSQL catalog")
def test_a_second_serve_of_one_sqlite_file_with_a_view_cache_is_refused(stack_factory):
    """A second serve on the same file started silently; its view cache, which only its own
    projector clears, answered version 1 for a product the first had taken to version 21,
    every PATCH answered Projection: applied. Several serve one file with no view cache at all
    (test_concurrency, test_sync_faults)."""
    s = stack_factory("claim")
    _, product = s.create()
    second = [str(BIN), "serve", "--listen", f"127.0.0.1:{free_port()}", "--db",
              os.path.relpath(s.db, s.tmp), "--redis", s.redis.url]
    try:
        p = subprocess.run(second, capture_output=True, text=True, timeout=10, cwd=s.tmp)
    except subprocess.TimeoutExpired:
        pytest.fail("a second catalogd served the same SQLite file")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert f"another catalogd serves {s.db}:" in p.stderr, p.stderr
    assert "--view-cache-mb 0" in p.stderr, p.stderr
    # Nor without a cache of its own: the first one's would miss its writes.
    p = subprocess.run(second + ["--view-cache-mb", "0"], capture_output=True, text=True,
                       timeout=10, cwd=s.tmp)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert s.get(f"/products/{product['id']}").status_code == 200  # the first serves on
    # Killed with -9, the first leaves no claim behind: a new one serves the file at once.
    s.server.proc.kill()
    s.server.proc.wait(timeout=5)
    s.server.proc = None
    s.server.start()
    assert s.get(f"/products/{product['id']}").status_code == 200
    # A server with a cache is refused beside servers without one too.
    s.server.stop()
    s.server.extra_args = ["--view-cache-mb", "0"]
    s.server.start()
    p = subprocess.run(second, capture_output=True, text=True, timeout=10, cwd=s.tmp)
    assert p.returncode == 1 and "with a view cache" not in p.stderr, p.stderr


def test_refuses_open_writes_on_a_public_address(tmp_path):
    p = _run_bad(["serve", "--listen", f"0.0.0.0:{free_port()}"], tmp_path)
    assert p.returncode != 0, p.stderr
    assert p.stderr.strip()


def test_sigterm_exits_0(stack_factory):
    s = stack_factory("sigterm")
    s.create()
    proc = s.server.proc
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=7)
    except subprocess.TimeoutExpired:
        pytest.fail("catalogd did not exit within 7 s of SIGTERM")
    assert rc == 0, s.server.stderr_tail()
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url("/health"), timeout=2)
    s.server.proc = None


def test_one_log_line_per_request(stack_factory):
    s = stack_factory("log")
    s.get("/health", headers={"X-Request-Id": "log-probe-1"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [ln for ln in s.server.stderr_tail(100000).splitlines() if "log-probe-1" in ln]
        if lines:
            break
        time.sleep(0.05)
    assert len(lines) == 1, s.server.stderr_tail()
    assert "GET" in lines[0] and "/health" in lines[0] and "200" in lines[0], lines[0]


def test_a_second_catalogd_on_a_port_in_use_exits_instead_of_sharing_it(stack_factory, tmp_path):
    """catalogd's loop threads share their port with SO_REUSEPORT; that must not let it join
    another process's listeners. A second catalogd started by mistake on a port in use, here
    with another database, would otherwise get a share of the first one's connections and
    writes without a word: it must stop at start, saying why."""
    s = stack_factory("port-owner")
    listen = f"127.0.0.1:{s.server.port}"
    rc, err = _serve_under([], tmp_path, listen)
    assert rc == 1, f"the second catalogd on {listen} exited with {rc}:\n{err}"
    assert f"cannot listen on {listen}" in err and "another process listens there" in err, err
    ids = {s.create()[1]["id"] for _ in range(10)}
    for product_id in ids:
        assert s.get(f"/products/{product_id}").status_code == 200


# ---------------------------------------------------------------------------------------------
# the loopback check decides on the address catalogd binds, not on the text of --listen


def _with_hosts(tmp_path, lines):
    """A command prefix that runs the rest in a private mount namespace where /etc/hosts is
    `lines`; None when this machine does not allow one."""
    import os
    import shutil
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n" + "".join(f"{l}\n" for l in lines))
    if not shutil.which("unshare"):
        return None
    prefix = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    probe = subprocess.run(prefix + ["sh", "-c", script, str(hosts), "getent", "hosts",
                                     "localhost"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return None
    return prefix + ["sh", "-c", script, str(hosts)]


def _serve_under(prefix, tmp_path, listen, wait_s=4.0):
    """Starts catalogd serve under `prefix`; returns (exit code or None if it kept serving,
    stderr)."""
    cmd = prefix + [str(BIN), "serve", "--listen", listen, "--db", str(tmp_path / "c.db"),
                    "--redis", f"redis://127.0.0.1:{free_port()}/0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        rc = proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        rc = None
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return rc, proc.stderr.read()


def test_a_name_that_resolves_to_every_interface_is_not_loopback(tmp_path):
    prefix = _with_hosts(tmp_path, ["0.0.0.0 127.attacker.test"])
    if prefix is None:
        pytest.skip("no private mount namespace for /etc/hosts here (unshare)")
    rc, err = _serve_under(prefix, tmp_path, f"127.attacker.test:{free_port()}")
    assert rc == 2, (rc, err[-2000:])
    assert "refusing" in err and "0.0.0.0" in err, err[-2000:]


def test_a_name_that_resolves_to_loopback_needs_no_token(tmp_path):
    prefix = _with_hosts(tmp_path, ["127.0.0.1 catalog.test"])
    if prefix is None:
        pytest.skip("no private mount namespace for /etc/hosts here (unshare)")
    rc, err = _serve_under(prefix, tmp_path, f"catalog.test:{free_port()}", wait_s=2.0)
    assert rc is None, (rc, err[-2000:])  # it served, until the test stopped it


def test_readme_configuration_table_has_every_flag():
    """The flag table in main.c is the one source: --help prints it, and the README's
    configuration table must have a row per flag with its environment variable and its
    default."""
    readme = (ROOT / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        m = re.match(r"^\| `--([a-z0-9-]+)", line)
        if m:
            rows[m.group(1)] = line
    text = cli(["--help"]).stdout
    helped = re.findall(r"^  --([a-z0-9-]+) +(CATALOGD_[A-Z0-9_]+)?.*?(?:\(([^()]*)\))?$", text, re.M)
    assert len(helped) == text.count("\n  --") and len(helped) > 15, helped
    for name, env, default in helped:
        assert name in rows, f"--{name} has no row in the README's configuration table"
        if env:
            assert f"`{env}" in rows[name], (name, env, rows[name])
        if default and not default.startswith("1-") and " " not in default:
            assert f"`{default}`" in rows[name], (name, default, rows[name])

"""Redis over TLS (issue 12): rediss:// on every connection catalogd makes (query loops,
projector, maintenance, verify, rebuild), the server's certificate verified against
--redis-ca-file, a client certificate for a Redis with tls-auth-clients yes. A certificate
catalogd cannot trust is reported like any Redis outage: /ready 503 naming redis and why,
commands 201 with Projection: pending, no crash. Certificates are made here with openssl."""
import subprocess

import pytest
import requests

from conftest import (RedisProc, Server, Stack, assert_degraded_without_spinning, product_body,
                      redis_gen, uniq_sku, wait_until)
from test_redis_auth import exercise, run_cli

PASSWORD = "tls-and-a-password"


def openssl(workdir, *args):
    subprocess.run(["openssl", *args], cwd=str(workdir), check=True, capture_output=True,
                   timeout=60)


def make_ca(workdir, name):
    openssl(workdir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj",
            f"/CN=catalogd test {name}")
    return workdir / f"{name}.crt"


def make_cert(workdir, ca, name, extension):
    """A certificate "name".crt (and .key) signed by "ca", with one X.509v3 "extension"."""
    (workdir / f"{name}.ext").write_text(extension + "\n")
    openssl(workdir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    openssl(workdir, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
            f"{ca}.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
            f"{name}.ext")
    return workdir / f"{name}.crt", workdir / f"{name}.key"


def tls_stack(name, server_ip="127.0.0.1", auth_clients=False, password=None,
              trusted_ca="ca", client_cert=False):
    """A stack whose Redis speaks TLS only, with a server certificate for "server_ip" signed by
    "ca"; catalogd trusts "trusted_ca" and shows a client certificate when "client_cert"."""
    s = Stack(name)
    ca = make_ca(s.tmp, "ca")
    other_ca = make_ca(s.tmp, "other-ca")
    server_cert, server_key = make_cert(s.tmp, "ca", "server", f"subjectAltName=IP:{server_ip}")
    client_crt, client_key = make_cert(s.tmp, "ca", "client", "extendedKeyUsage=clientAuth")
    args = ["--tls-cert-file", str(server_cert), "--tls-key-file", str(server_key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "yes" if auth_clients else "no"]
    if password:
        args += ["--requirepass", password]
    tls = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required",
           "ssl_certfile": str(client_crt), "ssl_keyfile": str(client_key)}
    s.redis = RedisProc(s.tmp, extra_args=args, password=password, tls=tls)
    url = f"rediss://{':' + password + '@' if password else ''}127.0.0.1:{s.redis.port}/0"
    flags = ["--redis-ca-file", str(ca if trusted_ca == "ca" else other_ca)]
    if client_cert:
        flags += ["--redis-cert", str(client_crt), "--redis-key", str(client_key)]
    s.server = Server(s.tmp, url, s.db, flags)
    s.cli_redis = url
    return s


def test_everything_works_over_tls_and_after_redis_restarts(stack_factory):
    s = tls_stack("tls")
    try:
        s.start()
        exercise(s)
        assert redis_gen(s.r) is not None  # the harness reads the same Redis, by TLS
        s.redis.stop()
        s.redis.start()
        wait_until(lambda: requests.get(s.url("/ready"), timeout=5).status_code == 200, 20,
                   what="catalogd to be ready again after Redis restarted")
        exercise(s)
    finally:
        s.stop()


def test_a_client_certificate_and_a_password_over_tls(stack_factory):
    s = tls_stack("tls-client-cert", auth_clients=True, password=PASSWORD, client_cert=True)
    try:
        s.start()
        exercise(s)
        assert PASSWORD not in s.server.stderr_tail(10**6)
    finally:
        s.stop()


def test_no_client_certificate_when_redis_wants_one_is_reported(stack_factory):
    s = tls_stack("tls-no-client-cert", auth_clients=True)
    try:
        s.redis.start()
        start_unready(s)
        # TLS 1.3: the refusal ("tlsv13 alert certificate required", or a reset when Redis
        # closed first) comes after the handshake, with the first reply, still while connecting
        wait_until(lambda: redis_reason_naming(s, "connecting to Redis"), 10,
                   interval=0.1, what="/ready to name Redis' failing connection")
        created = s.post_raw("/products", product_body(uniq_sku()))
        assert created.status_code == 201 and created.headers["Projection"] == "pending"
        assert s.server.proc.poll() is None
    finally:
        s.stop()


def start_unready(s):
    s.server.proc = subprocess.Popen(s.server.command(), stdout=subprocess.DEVNULL,
                                     stderr=open(s.server.stderr_path, "ab"), cwd=str(s.tmp))


def redis_reason_naming(s, text):
    """/ready's reason for failing Redis once it names "text". Until its projector is elected
    an instance on PostgreSQL knows only that queries fail: the first reason may be that."""
    r = requests.get(s.url("/ready"), timeout=5)
    why = r.status_code == 503 and r.json().get("reasons", {}).get("redis", "")
    return why if why and text in why else None


# Redis sends its CA along: an unknown CA reads "self-signed certificate in certificate chain".
@pytest.mark.parametrize("case, reason", [
    ("unknown-ca", "certificate verify failed"),
    ("wrong-address", "certificate verify failed: IP address mismatch"),
])
def test_a_certificate_catalogd_cannot_trust_is_reported_not_fatal(stack_factory, case, reason):
    if case == "unknown-ca":
        s = tls_stack("tls-unknown-ca", trusted_ca="other-ca")
    else:
        s = tls_stack("tls-wrong-address", server_ip="127.0.0.2")
    try:
        s.redis.start()
        start_unready(s)
        why = wait_until(lambda: redis_reason_naming(s, reason), 10, interval=0.1,
                         what="/ready to name the untrusted certificate")
        assert "certificate" in why, why
        assert_degraded_without_spinning(s)
        assert s.server.proc.poll() is None
        log = s.server.stderr_tail(10**6)
        assert reason in log, log[-2000:]
        assert log.count(reason) <= 4, log[-2000:]  # once per connection, not per retry
        verified = run_cli(s, "verify")
        assert verified.returncode != 0 and reason in verified.stderr, verified.stderr
    finally:
        s.stop()


@pytest.mark.parametrize("flag", ["--redis-ca-file", "--redis-cert", "--redis-key"])
def test_an_unusable_tls_file_stops_the_start_with_one_line(stack_factory, flag):
    s = tls_stack("tls-bad-file", client_cert=True)
    try:
        garbage = s.tmp / "garbage.pem"
        garbage.write_text("not a PEM file\n")
        args = list(s.server.extra_args)
        args[args.index(flag) + 1] = str(garbage)
        for bad in (str(garbage), str(s.tmp / "missing.pem")):
            args[args.index(flag) + 1] = bad
            done = subprocess.run([*s.server.command()[:-len(args)], *args], capture_output=True,
                                  text=True, timeout=30)
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and bad in lines[0], done.stderr
    finally:
        s.stop()

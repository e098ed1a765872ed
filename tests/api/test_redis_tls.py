"""Redis over TLS (issue 12): rediss:// on every connection catalogd makes (query loops,
projector, maintenance, verify, rebuild), the server's certificate verified against
--redis-ca-file, a client certificate for a Redis with tls-auth-clients yes. A certificate
catalogd cannot trust is reported like any Redis outage: /ready 503 naming redis and why,
commands 201 with Projection: pending, no crash. Certificates are made here with openssl."""
import socket
import subprocess
import threading

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
              trusted_ca="ca", client_cert=False, name_in_cn_only=None):
    """A stack whose Redis speaks TLS only, with a server certificate for "server_ip" signed by
    "ca"; catalogd trusts "trusted_ca" and shows a client certificate when "client_cert".
    With "name_in_cn_only", the certificate names that host in its Common Name and has no
    subjectAltName, and catalogd's URL names the host so."""
    s = Stack(name)
    ca = make_ca(s.tmp, "ca")
    other_ca = make_ca(s.tmp, "other-ca")
    if name_in_cn_only:
        server_cert, server_key = make_cert(s.tmp, "ca", name_in_cn_only,
                                            "basicConstraints=CA:FALSE")
    else:
        server_cert, server_key = make_cert(s.tmp, "ca", "server",
                                            f"subjectAltName=IP:{server_ip}")
    client_crt, client_key = make_cert(s.tmp, "ca", "client", "extendedKeyUsage=clientAuth")
    args = ["--tls-cert-file", str(server_cert), "--tls-key-file", str(server_key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "yes" if auth_clients else "no"]
    if password:
        args += ["--requirepass", password]
    tls = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required",
           "ssl_certfile": str(client_crt), "ssl_keyfile": str(client_key)}
    s.redis = RedisProc(s.tmp, extra_args=args, password=password, tls=tls)
    host = name_in_cn_only or "127.0.0.1"
    url = f"rediss://{':' + password + '@' if password else ''}{host}:{s.redis.port}/0"
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
    # README: a DNS name must be in the DNS subjectAltNames; OpenSSL fell back to the Common
    # Name of a certificate without any, and catalogd trusted it
    ("name-in-common-name-only", "certificate verify failed: hostname mismatch"),
])
def test_a_certificate_catalogd_cannot_trust_is_reported_not_fatal(stack_factory, case, reason):
    if case == "unknown-ca":
        s = tls_stack("tls-unknown-ca", trusted_ca="other-ca")
    elif case == "wrong-address":
        s = tls_stack("tls-wrong-address", server_ip="127.0.0.2")
    else:
        s = tls_stack("tls-cn-only", name_in_cn_only="localhost")
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


@pytest.mark.parametrize("flag", ["--redis-ca-file", "--redis-cert", "--redis-key"])
def test_a_tls_file_with_a_cleartext_redis_url_stops_the_start(stack_factory, flag):
    """A CA file given with redis:// (the second "s" forgotten) was ignored: catalogd spoke to
    Redis in cleartext, its password included, and said nothing."""
    s = tls_stack("tls-cleartext-url", client_cert=True)
    try:
        args = list(s.server.extra_args)
        kept = [flag, args[args.index(flag) + 1]]
        command = [*s.server.command()[:-len(args)], *kept]
        command[command.index(s.cli_redis)] = s.cli_redis.replace("rediss://", "redis://")
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done.stderr
        assert f"{flag} is for rediss://" in done.stderr.splitlines()[0], done.stderr
    finally:
        s.stop()


def test_a_redis_address_that_never_completes_a_handshake_is_named_so(stack_factory):
    """A listener that accepts and never answers (a cleartext Redis waits for a line the
    ClientHello never ends) was reported as "TLS error", the same words as any failure."""
    s = tls_stack("tls-silent")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []

    def hold_connections():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=hold_connections, daemon=True).start()
    try:
        url = f"rediss://127.0.0.1:{listener.getsockname()[1]}/0"
        s.server = Server(s.tmp, url, s.db, s.server.extra_args)
        start_unready(s)
        why = wait_until(lambda: redis_reason_naming(s, "in the TLS handshake"), 15,
                         interval=0.2, what="/ready to say the handshake got no answer")
        assert "did not answer in time" in why, why
        assert s.server.proc.poll() is None
    finally:
        listener.close()
        for conn in held:
            conn.close()
        s.stop()

"""openapi.json against the real server.

Self-contained on purpose (no conftest fixtures): this file starts its own redis-server and
catalogd on free loopback ports, makes real requests for every documented route and every
status it can trigger (503 by stopping its own Redis), and validates each response against the
document: the body against the schema for that path, method, status and media type (with $ref
resolved into components), and the documented headers (required ones present, every present one
matching its schema). It also checks that the document's paths are exactly the server's ROUTES
table, so the two cannot drift apart silently. Every wait has a deadline.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CATALOGD_BIN") or ROOT / "build" / "catalogd")
SPEC_PATH = ROOT / "openapi.json"
SERVER_C = ROOT / "src" / "http" / "server.c"
DOC_URI = "https://catalogd.invalid/openapi.json"  # a base URI for resolving the document's $refs
START_DEADLINE = 10.0  # seconds for redis-server or catalogd to come up
STATE_DEADLINE = 10.0  # seconds for the server to notice Redis going away or coming back
HTTP_TIMEOUT = 5.0
TOKEN = "s3cret-test-token"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

with open(SPEC_PATH, encoding="utf-8") as _f:
    SPEC = json.load(_f)

FORMAT_CHECKER = getattr(Draft202012Validator, "FORMAT_CHECKER", None) or getattr(
    jsonschema, "draft202012_format_checker", None)

# jsonschema >= 4.18 resolves $ref through the `referencing` library; older releases (Debian 12
# ships 4.10) only have RefResolver. Both resolve "#/components/..." against the whole document.
try:
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    _REGISTRY = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(SPEC))

    def validator_at(pointer):
        return Draft202012Validator({"$ref": DOC_URI + "#" + pointer}, registry=_REGISTRY,
                                    format_checker=FORMAT_CHECKER)
except ImportError:  # pragma: no cover - depends on the installed jsonschema
    from jsonschema import RefResolver

    def validator_at(pointer):
        resolver = RefResolver(base_uri=DOC_URI, referrer=SPEC, store={DOC_URI: SPEC})
        return Draft202012Validator({"$ref": DOC_URI + "#" + pointer}, resolver=resolver,
                                    format_checker=FORMAT_CHECKER)


# ---------------------------------------------------------------------------------------------
# the document


def esc(token):
    """One JSON Pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def at(pointer):
    """The object at a JSON Pointer into the document."""
    node = SPEC
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def deref(pointer):
    """Follows local $refs (responses, headers, parameters) to the object's own pointer."""
    for _ in range(10):
        node = at(pointer)
        if isinstance(node, dict) and "$ref" in node:
            assert node["$ref"].startswith("#/"), node
            pointer = node["$ref"][1:]
        else:
            return pointer, node
    raise AssertionError(f"$ref loop at {pointer}")


def all_refs(node, found=None):
    found = [] if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                all_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            all_refs(value, found)
    return found


def operations():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def server_routes():
    """(METHOD, pattern) from src/http/server.c's ROUTES table; patterns keep "{}"."""
    source = SERVER_C.read_text(encoding="utf-8")
    table = re.search(r"ROUTES\[\]\s*=\s*\{(.*?)\n\};", source, re.S)
    assert table, f"no ROUTES table in {SERVER_C}"
    routes = re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,', table.group(1))
    assert routes, "the ROUTES table parsed empty"
    return routes


def template_of(path):
    """/products/{id} -> /products/{}: the router's notation."""
    return re.sub(r"\{[^{}/]+\}", "{}", path)


# ---------------------------------------------------------------------------------------------
# checking responses against the document

CHECKED = set()  # (path, method, status) this module saw and validated


def check_header(name, header_pointer, resp):
    header_pointer, header = deref(header_pointer)
    value = resp.headers.get(name)
    if value is None:
        assert not header.get("required"), (
            f"documented required header {name} is missing: {resp.status_code} "
            f"{resp.request.method} {resp.request.url} {dict(resp.headers)}")
        return
    schema = header["schema"]
    instance = value
    if schema.get("type") == "integer":
        assert re.fullmatch(r"[0-9]+", value), f"{name}: {value!r} is not an integer"
        instance = int(value)
    errors = list(validator_at(header_pointer + "/schema").iter_errors(instance))
    assert not errors, f"header {name}: {value!r}: {[e.message for e in errors]}"


def check_response(resp, response_pointer):
    """Validates a response against the response object at response_pointer; returns the
    parsed body (or None when the response has no content)."""
    response_pointer, spec = deref(response_pointer)
    for name in spec.get("headers", {}):
        check_header(name, f"{response_pointer}/headers/{esc(name)}", resp)
    assert resp.headers.get("X-Request-Id"), "every response carries X-Request-Id"
    content = spec.get("content")
    if not content:
        assert resp.content == b"", f"no body documented, got {resp.content[:200]!r}"
        return None
    media = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    assert media in content, (f"{resp.status_code} {resp.request.method} {resp.request.url}: "
                              f"Content-Type {media!r} is not one of {sorted(content)}")
    body = json.loads(resp.content)
    schema_pointer = f"{response_pointer}/content/{esc(media)}/schema"
    errors = list(validator_at(schema_pointer).iter_errors(body))
    assert not errors, (f"{resp.status_code} {resp.request.method} {resp.request.url}: body "
                        f"{body!r} does not match {schema_pointer}: "
                        f"{[(list(e.absolute_path), e.message) for e in errors]}")
    return body


def check(resp, path, method, status):
    """Asserts the status, then validates the response against paths[path][method][status]."""
    assert resp.status_code == status, (f"{method.upper()} {resp.request.url}: expected "
                                        f"{status}, got {resp.status_code} {resp.text[:500]}")
    responses = SPEC["paths"][path][method]["responses"]
    assert str(status) in responses, f"{status} is not documented for {method.upper()} {path}"
    body = check_response(resp, f"/paths/{esc(path)}/{method}/responses/{status}")
    CHECKED.add((path, method, str(status)))
    return body


def check_component(resp, name, status):
    """For answers no single operation documents (unknown path, wrong method)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    return check_response(resp, f"/components/responses/{name}")


# ---------------------------------------------------------------------------------------------
# processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, OSError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


def stop_proc(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class Redis:
    def __init__(self, workdir):
        self.dir = workdir
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def start(self):
        assert shutil.which("redis-server"), "redis-server is not on PATH"
        with open(self.dir / f"redis-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=str(self.dir))

        def up():
            assert self.proc.poll() is None, f"redis-server exited ({self.proc.returncode})"
            return self.ping()
        wait_for(up, START_DEADLINE, f"redis-server on port {self.port}")

    def stop(self):
        stop_proc(self.proc)
        self.proc = None


class Catalogd:
    def __init__(self, workdir, redis_url, extra_args=()):
        self.dir = workdir
        self.port = free_port()
        self.db = workdir / f"catalog-{self.port}.db"
        self.redis_url = redis_url
        self.extra_args = list(extra_args)
        self.stderr = workdir / f"catalogd-{self.port}.stderr"
        self.proc = None
        self.http = requests.Session()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def tail(self):
        try:
            return self.stderr.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self):
        if not BIN.exists():
            pytest.fail(f"{BIN} does not exist (run `make -C {ROOT} all`)")
        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(
                [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--db", str(self.db),
                 "--redis", self.redis_url, "--threads", "2", *self.extra_args],
                stdout=subprocess.DEVNULL, stderr=err, cwd=str(self.dir))
        try:
            wait_for(self.is_ready, START_DEADLINE, "catalogd /ready")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- catalogd stderr ---\n{self.tail()}") from None

    def is_ready(self):
        assert self.proc.poll() is None, f"catalogd exited ({self.proc.returncode}):\n{self.tail()}"
        return requests.get(self.base + "/ready", timeout=1).status_code == 200

    def stop(self):
        self.http.close()
        stop_proc(self.proc)
        self.proc = None

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.get(self.base + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.request(method, self.base + path, **kw)

    def post_json(self, path, text, content_type="application/json", headers=None, **kw):
        h = dict(headers or {})
        if content_type is not None:
            h["Content-Type"] = content_type
        kw.setdefault("timeout", HTTP_TIMEOUT)
        data = text.encode() if isinstance(text, str) else text
        return self.http.post(self.base + path, data=data, headers=h, **kw)

    def create(self, sku=None, name="Widget", price="19.99", stock=5, headers=None):
        sku = sku or new_sku()
        return self.post_json("/products", '{"sku":%s,"name":%s,"price":%s,"stock":%s}' % (
            json.dumps(sku), json.dumps(name), price, stock), headers=headers)


class Stack:
    def __init__(self, extra_args=()):
        self.tmp = Path(tempfile.mkdtemp(prefix="catalogd-openapi-"))
        self.redis = Redis(self.tmp)
        self.server = Catalogd(self.tmp, self.redis.url, extra_args)

    def start(self):
        self.redis.start()
        self.server.start()
        return self

    def stop(self):
        try:
            self.server.stop()
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def new_sku(prefix="OA"):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="module")
def stack():
    """This module's own redis-server + catalogd (test_redis_down_then_back restarts Redis)."""
    s = Stack()
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def live(stack):
    return stack.server


@pytest.fixture(scope="module")
def guarded():
    """A second stack whose server runs with --api-token."""
    s = Stack(extra_args=("--api-token", TOKEN))
    try:
        s.start()
        yield s.server
    finally:
        s.stop()


# ---------------------------------------------------------------------------------------------
# the document itself


def test_document_is_openapi_3_1():
    assert SPEC["openapi"] == "3.1.0"
    assert SPEC["info"]["title"] and SPEC["info"]["version"]
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for ref in all_refs(SPEC):
        assert ref.startswith("#/"), f"only local $refs: {ref}"
        at(ref[1:])  # raises when the target does not exist
    operation_ids = [op["operationId"] for _, _, op in operations()]
    assert len(operation_ids) == len(set(operation_ids)), operation_ids
    for path, method, op in operations():
        assert op.get("responses"), (path, method)
        for status in op["responses"]:
            assert re.fullmatch(r"[1-5][0-9][0-9]", status), (path, method, status)
            _, response = deref(f"/paths/{esc(path)}/{method}/responses/{status}")
            assert response.get("description"), (path, method, status)
            assert "X-Request-Id" in response.get("headers", {}), (path, method, status)
        params = [deref(p["$ref"][1:])[1] if "$ref" in p else p
                  for p in op.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^{}/]+)\}", path)), (path, in_path)
        assert all(p["required"] for p in params if p["in"] == "path"), path
        for p in params:
            assert p["in"] in ("path", "query", "header", "cookie") and "schema" in p, p
        assert set(op.get("tags", [])) <= {t["name"] for t in SPEC["tags"]}, (path, method)
        for requirement in op.get("security", []):
            assert set(requirement) <= set(SPEC["components"]["securitySchemes"]), requirement
        body = op.get("requestBody")
        if body:
            assert body.get("content"), (path, method)
    for name, header in SPEC["components"]["headers"].items():
        assert "schema" in header and not {"name", "in"} & set(header), name
    for name, param in SPEC["components"]["parameters"].items():
        assert param.get("name") and param.get("in"), name


# Routes the server has whose documentation is still to be written. Explicit on purpose: a new
# route that is neither documented nor listed here fails the test below, and so does an entry
# here that is documented or no longer routed. Empty this set as the routes get documented.
NOT_YET_DOCUMENTED = {
    ("patch", "/products/{}"),
    ("delete", "/products/{}"),
    ("post", "/products/{}/stock"),
    ("get", "/admin/projection"),
    ("post", "/admin/rebuild"),
    ("get", "/metrics"),
}


def test_paths_are_exactly_the_server_routes():
    routes = {(method.lower(), pattern) for method, pattern in server_routes()}
    documented = {(method, template_of(path)) for path, method, _ in operations()}
    pending = NOT_YET_DOCUMENTED & routes
    assert documented == routes - pending, (
        f"only in openapi.json: {sorted(documented - routes)}; "
        f"only in server.c ROUTES: {sorted(routes - documented - pending)}")
    assert not NOT_YET_DOCUMENTED & documented, "documented now: drop from NOT_YET_DOCUMENTED"
    assert len({template_of(p) for p in SPEC["paths"]}) == len(SPEC["paths"])


# ---------------------------------------------------------------------------------------------
# POST /products


def test_create_201(live):
    sku = new_sku()
    resp = live.create(sku=sku, name="PC Gamer Ultra", price="5000.00", stock=5,
                       headers={"X-Request-Id": "openapi-create-1"})
    view = check(resp, "/products", "post", 201)
    assert resp.headers["X-Request-Id"] == "openapi-create-1"
    assert resp.headers["Location"] == f"/products/{view['id']}"
    assert resp.headers["ETag"] == '"1"'
    assert resp.headers["Projection"] == "applied"
    assert view["sku"] == sku and view["desc"] == "PC Gamer Ultra - $5000.00"
    assert '"price":5000.00,' in resp.text
    # Projection: applied means the very next query sees it (read-your-writes).
    got = live.get(resp.headers["Location"])
    assert check(got, "/products/{id}", "get", 200) == view


@pytest.mark.parametrize("body", [
    "{", "", "[1]", "null", '"x"', '{"sku":"A","sku":"B","name":"n","price":1,"stock":1}',
    '{"sku":"NAN-1","name":"n","price":NaN,"stock":1}',
    '{"sku":"INF-1","name":"n","price":Infinity,"stock":1}',
])
def test_create_400_not_one_object(live, body):
    problem = check(live.post_json("/products", body), "/products", "post", 400)
    assert problem["type"] == "urn:catalogd:problem:malformed-body"


def test_create_409_names_the_existing_id(live):
    sku = new_sku()
    first = check(live.create(sku=sku), "/products", "post", 201)
    problem = check(live.create(sku=sku, name="Other"), "/products", "post", 409)
    assert problem["existing_id"] == first["id"]


def test_create_413_over_64_kib(live):
    body = '{"sku":"BIG","name":"' + "a" * (64 * 1024) + '","price":1,"stock":1}'
    check(live.post_json("/products", body), "/products", "post", 413)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/jsonx",
                                          "application/x-www-form-urlencoded"])
def test_create_415(live, content_type):
    resp = live.post_json("/products", '{"sku":"CT","name":"n","price":1,"stock":1}',
                          content_type=content_type)
    check(resp, "/products", "post", 415)


def test_create_accepts_json_with_parameters(live):
    resp = live.create(headers={"Content-Type": "application/json; charset=utf-8"})
    check(resp, "/products", "post", 201)


def test_create_idempotency_key(live):
    body = '{"sku":%s,"name":"Once","price":2.5,"stock":1}' % json.dumps(new_sku("IDEM"))
    key = {"Idempotency-Key": "openapi-" + uuid.uuid4().hex}
    first = live.post_json("/products", body, headers=key)
    view = check(first, "/products", "post", 201)
    assert first.headers["Projection"] == "applied" and "Idempotent-Replayed" not in first.headers
    again = live.post_json("/products", body, headers=key)
    assert check(again, "/products", "post", 201) == view
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content and again.headers["Location"] == first.headers["Location"]
    other = live.post_json("/products", body.replace("Once", "Twice"), headers=key)
    assert check(other, "/products", "post", 422)["type"] == (
        "urn:catalogd:problem:idempotency-key-reused")
    # a refused command's answer is stored and replayed too
    dup_key = {"Idempotency-Key": "openapi-" + uuid.uuid4().hex}
    dup = live.post_json("/products", body, headers=dup_key)
    assert check(dup, "/products", "post", 409)["existing_id"] == view["id"]
    dup_again = live.post_json("/products", body, headers=dup_key)
    check(dup_again, "/products", "post", 409)
    assert dup_again.headers["Idempotent-Replayed"] == "true"
    for bad in ["has space", "k" * 256, "caf\u00e9"]:
        resp = live.post_json("/products", body, headers={"Idempotency-Key": bad.encode()})
        assert check(resp, "/products", "post", 400)["type"] == "urn:catalogd:problem:invalid-header"


def test_create_422_lists_every_failing_field(live):
    resp = live.post_json("/products",
                          '{"sku":"bad sku","name":"","price":"1","stock":-1,"colour":"red"}')
    problem = check(resp, "/products", "post", 422)
    assert [e["field"] for e in problem["errors"]] == ["sku", "name", "price", "stock", "colour"]
    problem = check(live.post_json("/products", "{}"), "/products", "post", 422)
    assert sorted(e["field"] for e in problem["errors"]) == ["name", "price", "sku", "stock"]


SKU64 = object()  # stands for a fresh 64-character SKU


def request_text(fields):
    """A create body: defaults, overridden by `fields` (raw JSON texts; None drops the key)."""
    values = {"sku": json.dumps(new_sku()), "name": '"Widget"', "price": "1.50", "stock": "3"}
    for key, text in fields.items():
        if text is None:
            values.pop(key, None)
        elif text is SKU64:
            values[key] = json.dumps(("S64-" + uuid.uuid4().hex * 2)[:64])
        else:
            values[key] = text
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in values.items()) + "}"


# Bodies the server must accept (201) or reject with 422, and CreateProduct must agree. Left out
# on purpose, as the schema cannot say them and its descriptions do: `"stock": 1.0` and `1e0`
# (JSON Schema counts them as integers; the server rejects them, no coercion) and a price with
# more than two decimals (`multipleOf: 0.01` misfires on binary floats, so it is not used).
REQUEST_CASES = [
    (201, {}),
    (201, {"price": "1e3"}),
    (201, {"price": "0"}),
    (201, {"price": "999999999.99"}),
    (201, {"price": "19.99"}),
    (201, {"stock": "0"}),
    (201, {"stock": "2147483647"}),
    (201, {"name": json.dumps("\t  Trimmed name\u00a0 ")}),
    (201, {"name": json.dumps("\u00e9" * 200)}),
    (201, {"name": json.dumps(" " + "n" * 200 + " ")}),
    (201, {"sku": SKU64}),
    (422, {"sku": '""'}),
    (422, {"sku": json.dumps("X" * 65)}),
    (422, {"sku": '"has space"'}),
    (422, {"sku": "12"}),
    (422, {"sku": None}),
    (422, {"name": '""'}),
    (422, {"name": '"   "'}),
    (422, {"name": json.dumps("n" * 201)}),
    (422, {"name": json.dumps("tab\tinside")}),
    (422, {"name": json.dumps("c1\u0085inside")}),
    (422, {"name": "null"}),
    (422, {"price": '"1.50"'}),
    (422, {"price": "-1"}),
    (422, {"price": "1000000000"}),
    (422, {"price": "true"}),
    (422, {"stock": "-1"}),
    (422, {"stock": "2147483648"}),
    (422, {"stock": "1.5"}),
    (422, {"stock": '"5"'}),
    (422, {"stock": None}),
    (422, {"extra": "1"}),
]


@pytest.mark.parametrize("expected,fields", REQUEST_CASES,
                         ids=[f"{s}-{i}" for i, (s, _) in enumerate(REQUEST_CASES)])
def test_request_schema_agrees_with_the_server(live, expected, fields):
    text = request_text(fields)
    valid = validator_at("/components/schemas/CreateProduct").is_valid(json.loads(text))
    resp = live.post_json("/products", text)
    check(resp, "/products", "post", expected)
    if expected == 201:
        assert valid, f"the server accepted {text[:150]} but CreateProduct rejects it"
    else:
        assert not valid, f"the server rejected {text[:150]} but CreateProduct accepts it"


# ---------------------------------------------------------------------------------------------
# GET /products/{id} and /products/by-sku/{sku}


def test_get_product_200_304_404(live):
    view = check(live.create(), "/products", "post", 201)
    path = f"/products/{view['id']}"
    resp = live.get(path)
    assert check(resp, "/products/{id}", "get", 200) == view
    assert resp.headers["ETag"] == '"1"'
    for tag in ['"1"', 'W/"1"', '"0", "1"', "*"]:
        check(live.get(path, headers={"If-None-Match": tag}), "/products/{id}", "get", 304)
    check(live.get(path, headers={"If-None-Match": '"2"'}), "/products/{id}", "get", 200)
    for pid in ["01900000-0000-7000-8000-000000000000", "not-a-uuid",
                "01900000000070008000000000000000"]:
        problem = check(live.get(f"/products/{pid}"), "/products/{id}", "get", 404)
        assert problem["type"] == "urn:catalogd:problem:not-found"


def test_get_by_sku_200_304_404(live):
    sku = new_sku()
    view = check(live.create(sku=sku), "/products", "post", 201)
    resp = live.get(f"/products/by-sku/{sku}")
    assert check(resp, "/products/by-sku/{sku}", "get", 200) == view
    check(live.get(f"/products/by-sku/{sku}", headers={"If-None-Match": resp.headers["ETag"]}),
          "/products/by-sku/{sku}", "get", 304)
    for missing in [new_sku("NOPE"), "bad%20sku", "x" * 65]:
        check(live.get(f"/products/by-sku/{missing}"), "/products/by-sku/{sku}", "get", 404)


# ---------------------------------------------------------------------------------------------
# GET /catalog


def walk_catalog(live, first_url, limit):
    """Follows Link headers from first_url; returns (every view, X-Total-Count of page 1)."""
    url, seen, total = first_url, [], None
    for _ in range(200):
        resp = live.get(url)
        page = check(resp, "/catalog", "get", 200)
        assert len(page) <= limit
        count = int(resp.headers["X-Total-Count"])
        total = count if total is None else total
        seen.extend(page)
        link = resp.headers.get("Link")
        if not link:
            return seen, total
        assert len(page) == limit, "a page with a next link is full"
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1)
    raise AssertionError("the catalog did not end within 200 pages")


def test_catalog_pages_link_and_total(live):
    for stock in (0, 1, 2):
        check(live.create(stock=stock), "/products", "post", 201)
    views, total = walk_catalog(live, "/catalog?limit=3", 3)
    assert len(views) == total >= 3
    assert len({v["id"] for v in views}) == len(views)
    assert [v["created_at"] for v in views] == sorted(v["created_at"] for v in views)
    in_stock, in_stock_total = walk_catalog(live, "/catalog?limit=2&in_stock=true", 2)
    assert len(in_stock) == in_stock_total == sum(1 for v in views if v["available"])
    assert all(v["available"] for v in in_stock)
    every, _ = walk_catalog(live, "/catalog?in_stock=false", 100)
    assert len(every) == min(total, 100)
    resp = live.get("/catalog?limit=1000")
    assert "Link" not in resp.headers or total > 1000
    check(resp, "/catalog", "get", 200)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "limit=", "limit=-1",
                                   "cursor=xx", "cursor=" + "A" * 23, "in_stock=yes",
                                   "in_stock=1"])
def test_catalog_400(live, query):
    problem = check(live.get(f"/catalog?{query}"), "/catalog", "get", 400)
    assert problem["type"] == "urn:catalogd:problem:invalid-query"


# ---------------------------------------------------------------------------------------------
# operations, unknown routes, wrong methods, request ids


def test_health_and_ready_200(live):
    assert check(live.get("/health"), "/health", "get", 200) == {"status": "ok"}
    ready = check(live.get("/ready"), "/ready", "get", 200)
    assert ready["status"] == "ready"
    assert set(ready["checks"].values()) == {"ok"}


@pytest.mark.parametrize("path", ["/nowhere", "/products/", "/products/by-sku/",
                                  "/catalog/x", "/"])
def test_unknown_path_404(live, path):
    problem = check_component(live.get(path), "NotFound", 404)
    assert problem["type"] == "urn:catalogd:problem:not-found"


@pytest.mark.parametrize("method,path", [
    ("GET", "/products"), ("PUT", "/products"), ("DELETE", "/catalog"), ("POST", "/health"),
    ("POST", "/ready"), ("POST", "/catalog"), ("OPTIONS", "/catalog"),
    ("PUT", "/products/01900000-0000-7000-8000-000000000000"),
    ("POST", "/products/by-sku/SKU-1"),
])
def test_wrong_method_405_with_allow(live, method, path):
    resp = live.request(method, path)
    check_component(resp, "MethodNotAllowed", 405)
    allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
    routed = {m for m, pattern in server_routes()
              if re.fullmatch(re.escape(pattern).replace(r"\{\}", "[^/]+"), path)}
    assert allowed == routed, (allowed, routed)


def test_request_id_echoed_or_replaced(live):
    assert live.get("/health", headers={"X-Request-Id": "abc-123"}).headers[
        "X-Request-Id"] == "abc-123"
    for bad in ["x" * 65, "has space"]:
        got = live.get("/health", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert got and got != bad
        assert re.fullmatch(r"[!-~]{1,64}", got)


# ---------------------------------------------------------------------------------------------
# --api-token


def test_create_401_without_the_token(guarded):
    resp = guarded.create()
    check(resp, "/products", "post", 401)
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    check(guarded.create(headers={"Authorization": "Bearer wrong"}), "/products", "post", 401)
    ok = guarded.create(headers={"Authorization": f"Bearer {TOKEN}"})
    view = check(ok, "/products", "post", 201)
    # queries never need the token
    check(guarded.get(f"/products/{view['id']}"), "/products/{id}", "get", 200)


# ---------------------------------------------------------------------------------------------
# Redis down: queries 503 with Retry-After, commands 201 with Projection: pending, /ready 503


def test_redis_down_then_back(stack):
    live = stack.server
    before = check(live.create(), "/products", "post", 201)
    sku = new_sku("DOWN")
    stack.redis.stop()
    try:
        wait_for(lambda: live.get("/catalog").status_code == 503, STATE_DEADLINE,
                 "queries to answer 503 once Redis is gone")
        for path, template in [(f"/products/{before['id']}", "/products/{id}"),
                               (f"/products/by-sku/{before['sku']}", "/products/by-sku/{sku}"),
                               ("/catalog", "/catalog")]:
            problem = check(live.get(path), template, "get", 503)
            assert problem["type"] == "urn:catalogd:problem:read-model-unavailable"
        assert check(live.get("/health"), "/health", "get", 200) == {"status": "ok"}
        created = live.create(sku=sku)
        pending = check(created, "/products", "post", 201)
        assert created.headers["Projection"] == "pending"
        body = check(live.get("/ready"), "/ready", "get", 503)
        assert body["type"] == "urn:catalogd:problem:not-ready"
        assert body["checks"]["redis"] == "failing" and "redis" in body["detail"]
        assert body["lag_events"] >= 1
        assert body["head"] - body["checkpoint"] == body["lag_events"]
    finally:
        stack.redis.start()  # same port, empty: the server reconnects by itself, no restart
    wait_for(live.is_ready, STATE_DEADLINE, "/ready to be 200 again after Redis came back")
    # the projector rebuilt the empty Redis from SQLite, including the pending product
    got = live.get(f"/products/by-sku/{sku}")
    assert check(got, "/products/by-sku/{sku}", "get", 200) == pending
    check(live.get("/ready"), "/ready", "get", 200)


# ---------------------------------------------------------------------------------------------
# documented by CONTRACT.md and openapi.json, not (yet) what the server does: strict xfails, so
# they turn into failures the day the server is fixed and the marker must go.


@pytest.mark.xfail(strict=True, reason="server deviation: request headers over 16 KiB are "
                   "accepted (200) instead of 431 problem+json (CONTRACT.md section 3)")
def test_headers_over_16_kib_431(live):
    resp = live.get("/health", headers={"X-Padding": "a" * (17 * 1024)})
    check(resp, "/health", "get", 431)


@pytest.mark.xfail(strict=True, reason="server deviation: a body over h2o's 1 MiB limit gets "
                   "h2o's own text/plain 413 without X-Request-Id, not problem+json")
def test_body_over_1_mib_413_problem(live):
    body = '{"sku":"HUGE","name":"' + "a" * (1024 * 1024 + 16) + '","price":1,"stock":1}'
    try:
        resp = live.post_json("/products", body)
    except requests.ConnectionError as exc:  # the server may close before reading it all
        raise AssertionError(f"connection dropped instead of a 413 problem: {exc!r}") from None
    check(resp, "/products", "post", 413)


# ---------------------------------------------------------------------------------------------
# every documented response was exercised (only meaningful when the whole file ran, in order)

NOT_TRIGGERABLE = {
    ("/products", "post", "503"): "needs SQLite to refuse writes",
    ("/health", "get", "503"): "only while draining after SIGTERM",
}


def test_every_documented_response_was_exercised(request):
    module = sys.modules[__name__]
    selected = {item.originalname for item in request.session.items
                if getattr(item, "module", None) is module}
    defined = {name for name, value in vars(module).items()
               if name.startswith("test_") and callable(value)}
    if selected != defined:
        pytest.skip("only checked when the whole file runs")
    documented = {(path, method, status) for path, method, op in operations()
                  for status in op["responses"]}
    untested = documented - CHECKED - set(NOT_TRIGGERABLE)
    untested = {u for u in untested if u[2] != "431"}  # see the strict xfail above
    assert not untested, f"documented but never exercised: {sorted(untested)}"

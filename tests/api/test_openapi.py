"""openapi.json against the real server.

Self-contained on purpose (no conftest fixtures): this file starts its own redis-server and
catalogd on free loopback ports, makes real requests for every documented route and every
status it can trigger, and validates each response against the document: the body against the
schema for that path, method, status and media type (with $ref resolved into components), and
the documented headers (required ones present, every present one matching its schema, and no
API header the response does not document). Faults are real: 503s by stopping its own Redis,
by holding SQLite's write lock from another connection (which also keeps a command in flight,
for 409 idempotency-key-in-use and for 503 shutting-down during a SIGTERM drain), 401 from a
second server run with --api-token, 431 from a 17 KiB header. It also checks that the
document's paths and operations are exactly the server's route table (src/http/routes.h) (and `security` exactly
the routes that need the token), and that GET /openapi.json serves this very file. Every wait
has a deadline.
"""

import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from jsonschema import Draft202012Validator

from conftest import Stack as ConftestStack
from conftest import WRITE_MODEL_CHECK, wait_until, write_lock

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CATALOGD_BIN") or ROOT / "build" / "catalogd")
SPEC_PATH = ROOT / "openapi.json"
ROUTES_H = ROOT / "src" / "http" / "routes.h"
DOC_URI = "https://catalogd.invalid/openapi.json"  # a base URI for resolving the document's $refs
STATE_DEADLINE = 10.0  # seconds for the server to notice Redis/SQLite going away or coming back
HTTP_TIMEOUT = 5.0
LOCKED_TIMEOUT = 15.0  # a command parked behind SQLite's write lock answers within ~2 s a batch
TOKEN = "s3cret-test-token"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"
JSON_CT = {"Content-Type": "application/json"}
# Headers with a meaning in this API: when a response carries one, its documentation must say so.
API_HEADERS = ("ETag", "Location", "Projection", "Idempotent-Replayed", "Retry-After",
               "WWW-Authenticate", "Allow", "Link", "X-Total-Count")

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
    """(METHOD, pattern, name, needs_token) from the server's route table, src/http/routes.h;
    patterns keep "{}"."""
    source = ROUTES_H.read_text(encoding="utf-8")
    table = re.search(r"#define CATALOGD_ROUTES\(ROUTE\)(.*?)\n\n", source, re.S)
    assert table, f"no CATALOGD_ROUTES table in {ROUTES_H}"
    routes = re.findall(r'ROUTE\(\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*\w+\s*,\s*"(\w+)"\s*,\s*([01])\s*\)',
                        table.group(1))
    assert routes, "the route table parsed empty"
    assert len(routes) == table.group(1).count('ROUTE("'), "a route entry did not parse"
    return [(m, p, n, t == "1") for m, p, n, t in routes]


def template_of(path):
    """/products/{id} -> /products/{}: the router's notation."""
    return re.sub(r"\{[^{}/]+\}", "{}", path)


def concrete(path, pid=UNKNOWN_ID, sku="SKU-1", tag="0123456789abcdef", asset="swagger-ui.css"):
    """A URL path for a documented path template."""
    return (path.replace("{id}", pid).replace("{sku}", sku).replace("{tag}", tag)
            .replace("{asset}", asset))


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


def check_response(resp, response_pointer, head=False):
    """Validates a response against the response object at response_pointer; returns the
    parsed body (JSON media types), the text (others), or None when there is no content.
    `head`: a HEAD response, checked for the headers and an empty body only."""
    response_pointer, spec = deref(response_pointer)
    where = f"{resp.status_code} {resp.request.method} {resp.request.url}"
    documented = {name.lower() for name in spec.get("headers", {})}
    for name in spec.get("headers", {}):
        check_header(name, f"{response_pointer}/headers/{esc(name)}", resp)
    for name in API_HEADERS:
        assert name not in resp.headers or name.lower() in documented, (
            f"{where}: header {name}: {resp.headers[name]!r} is not documented at "
            f"{response_pointer}")
    assert resp.headers.get("X-Request-Id"), "every response carries X-Request-Id"
    content = spec.get("content")
    if not content:
        assert resp.content == b"", f"{where}: no body documented, got {resp.content[:200]!r}"
        assert "Content-Type" not in resp.headers, f"{where}: a Content-Type without a body"
        return None
    media = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    assert media in content, f"{where}: Content-Type {media!r} is not one of {sorted(content)}"
    if head:
        assert resp.content == b"", f"{where}: a HEAD response with a body"
        return None
    if media == "application/json" or media.endswith("+json"):
        body = json.loads(resp.content)
    else:
        body = resp.content.decode("utf-8")
    schema_pointer = f"{response_pointer}/content/{esc(media)}/schema"
    errors = list(validator_at(schema_pointer).iter_errors(body))
    assert not errors, (f"{where}: body {str(body)[:2000]!r} does not match {schema_pointer}: "
                        f"{[(list(e.absolute_path), e.message[:300]) for e in errors]}")
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


def check_problem(resp, path, method, status, slug):
    """check(), plus the problem's type."""
    problem = check(resp, path, method, status)
    assert problem["type"] == f"urn:catalogd:problem:{slug}", problem
    assert problem["status"] == status, problem
    return problem


def check_component(resp, name, status):
    """For answers no single operation documents (unknown path, wrong method)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    return check_response(resp, f"/components/responses/{name}")


# ---------------------------------------------------------------------------------------------
# processes: conftest's Stack (its redis-server and catalogd), with this module's helpers


def wait_for(predicate, timeout, what, interval=0.05):
    return wait_until(predicate, timeout, interval=interval, what=what)


class Api:
    """The request helpers this module's tests use, on the server of a conftest stack."""

    def __init__(self, stack):
        self.stack = stack
        self.http = stack.http
        self.base = stack.base
        self.port = stack.server.port
        self.db = stack.db

    def is_ready(self):
        return requests.get(self.base + "/ready", timeout=1).status_code == 200

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.get(self.base + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.request(method, self.base + path, **kw)

    def send(self, method, path, text="", content_type="application/json", headers=None, **kw):
        """A request with a raw body (str or bytes) and, unless None, that Content-Type."""
        h = dict(headers or {})
        if content_type is not None:
            h.setdefault("Content-Type", content_type)
        kw.setdefault("timeout", HTTP_TIMEOUT)
        data = text.encode() if isinstance(text, str) else text
        return self.http.request(method, self.base + path, data=data, headers=h, **kw)

    def post_json(self, path, text, content_type="application/json", headers=None, **kw):
        return self.send("POST", path, text, content_type, headers, **kw)

    def create(self, sku=None, name="Widget", price="19.99", stock=5, headers=None):
        sku = sku or new_sku()
        return self.post_json("/products", create_text(sku, name, price, stock), headers=headers)

    def patch(self, pid, text, headers=None, **kw):
        return self.send("PATCH", f"/products/{pid}", text, headers=headers, **kw)

    def stock(self, pid, text, headers=None, **kw):
        return self.send("POST", f"/products/{pid}/stock", text, headers=headers, **kw)

    def delete(self, pid, headers=None, **kw):
        return self.send("DELETE", f"/products/{pid}", "", content_type=None, headers=headers,
                         **kw)


class Stack(ConftestStack):
    """conftest's redis-server + catalogd pair, with this module's request helpers as .api."""

    def __init__(self, extra_args=()):
        super().__init__("openapi", extra_args)
        self.api = None

    def start(self):
        super().start()
        self.api = Api(self)
        return self


def sqlite_write_lock(db):
    """Holds the write model's write lock from another connection (conftest.write_lock, on
    either backend): catalogd's writer then waits its lock timeout (2 s on SQLite) per batch
    and answers 503 write-model-unavailable."""
    return write_lock(db)


class Background:
    """One request on its own thread and connection (requests.Session is not thread-safe)."""

    def __init__(self, method, url, **kw):
        kw.setdefault("timeout", LOCKED_TIMEOUT)
        self.response = self.error = None
        self.thread = threading.Thread(target=self._run, args=(method, url, kw), daemon=True)
        self.thread.start()

    def _run(self, method, url, kw):
        try:
            self.response = requests.request(method, url, **kw)
        except Exception as exc:  # reported by result()
            self.error = exc

    def result(self):
        self.thread.join(LOCKED_TIMEOUT + 5)
        assert not self.thread.is_alive(), "a background request did not finish"
        assert self.error is None, f"background request failed: {self.error!r}"
        return self.response


def new_sku(prefix="OA"):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def new_key():
    return "openapi-" + uuid.uuid4().hex


def create_text(sku, name="Widget", price="19.99", stock=5):
    return '{"sku":%s,"name":%s,"price":%s,"stock":%s}' % (
        json.dumps(sku), json.dumps(name), price, stock)


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
    return stack.api


@pytest.fixture(scope="module")
def guarded():
    """A second stack whose server runs with --api-token."""
    s = Stack(extra_args=("--api-token", TOKEN))
    try:
        s.start()
        yield s.api
    finally:
        s.stop()


def created(live, **kw):
    """A new product's view (asserting the 201 against the document)."""
    return check(live.create(**kw), "/products", "post", 201)


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


def test_paths_are_exactly_the_server_routes():
    """No exceptions: every route of src/http/routes.h is documented, and nothing else is."""
    routes = {(method.lower(), pattern) for method, pattern, _, _ in server_routes()}
    documented = {(method, template_of(path)) for path, method, _ in operations()}
    assert documented == routes, (
        f"only in openapi.json: {sorted(documented - routes)}; "
        f"only in routes.h: {sorted(routes - documented)}")
    assert len({template_of(p) for p in SPEC["paths"]}) == len(SPEC["paths"])


def test_security_is_exactly_the_routes_that_need_the_token():
    needs_token = {(m.lower(), p) for m, p, _, token in server_routes() if token}
    secured = {(method, template_of(path)) for path, method, op in operations()
               if any(req for req in op.get("security", []))}
    assert secured == needs_token, (sorted(secured ^ needs_token))
    for path, method, op in operations():
        if op.get("security"):
            assert "401" in op["responses"], (path, method)
            assert {} in op["security"], "the token is optional: only with --api-token"
        else:
            assert "401" not in op["responses"], (path, method)


def test_examples_match_their_schemas():
    """Every `example` next to a schema (media types, schemas, parameters) is valid."""
    def walk(node, pointer):
        if isinstance(node, dict):
            if "example" in node:
                if "schema" in node:
                    target = pointer + "/schema"
                elif node.get("type") or "$ref" in node or "allOf" in node:
                    target = pointer
                else:
                    target = None
                if target:
                    errors = list(validator_at(target).iter_errors(node["example"]))
                    assert not errors, (pointer, [e.message for e in errors])
            for key, value in node.items():
                if key != "example":
                    walk(value, f"{pointer}/{esc(key)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{pointer}/{i}")
    walk(SPEC["paths"], "/paths")
    walk(SPEC["components"], "/components")


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


def test_commands_503_when_the_idempotency_keys_are_full():
    s = Stack(extra_args=("--max-idempotency-keys", "1"))
    try:
        s.start()
        live = s.api
        body = create_text(new_sku("FULL"))
        check(live.post_json("/products", body, headers={"Idempotency-Key": new_key()}),
              "/products", "post", 201)
        _, first = None, live.create()
        pid = first.json()["id"]
        for path, method, resp in [
                ("/products", "post", live.post_json("/products", create_text(new_sku("FULL")),
                                                     headers={"Idempotency-Key": new_key()})),
                ("/products/{id}", "patch", live.patch(pid, '{"name":"x"}',
                                                       headers={"Idempotency-Key": new_key()})),
                ("/products/{id}", "delete", live.delete(pid,
                                                         headers={"Idempotency-Key": new_key()})),
                ("/products/{id}/stock", "post", live.stock(pid, '{"delta":1}',
                                                            headers={"Idempotency-Key": new_key()}))]:
            check_problem(resp, path, method, 503, "idempotency-keys-full")
            assert resp.headers["Retry-After"] == "60"
    finally:
        s.stop()


def test_commands_503_when_the_writer_queue_is_full():
    s = Stack(extra_args=("--max-queued-commands", "1"))
    try:
        s.start()
        live = s.api
        with sqlite_write_lock(live.db):  # the writer takes one batch and waits on the lock
            first = Background("POST", live.base + "/products", data=create_text(new_sku("Q1")),
                               headers=JSON_CT)
            time.sleep(0.3)  # the first is the writer's batch now, waiting on the lock
            second = Background("POST", live.base + "/products", data=create_text(new_sku("Q2")),
                                headers=JSON_CT)
            wait_for(lambda: live.get("/metrics").text.count(
                "catalogd_writer_queue_depth 1") == 1, 5, "a queued command")
            resp = live.post_json("/products", create_text(new_sku("Q3")))
            check_problem(resp, "/products", "post", 503, "write-queue-full")
            assert resp.headers["Retry-After"] == "1"
        first.result()
        second.result()
    finally:
        s.stop()


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
                                   "in_stock=1", "limit=1&limit=2"])
def test_catalog_400(live, query):
    problem = check(live.get(f"/catalog?{query}"), "/catalog", "get", 400)
    assert problem["type"] == "urn:catalogd:problem:invalid-query"


# ---------------------------------------------------------------------------------------------
# PATCH /products/{id}

PATCH = ("/products/{id}", "patch")
DELETE = ("/products/{id}", "delete")
STOCK = ("/products/{id}/stock", "post")


def in_stock_ids(live):
    views, _ = walk_catalog(live, "/catalog?in_stock=true&limit=1000", 1000)
    return {v["id"] for v in views}


def test_patch_200_new_view_etag_and_in_stock_index(live):
    view = created(live, name="Before", price="10", stock=2)
    pid = view["id"]
    resp = live.patch(pid, '{"price":12.5,"stock":0,"name":"  After \\u00e9 "}',
                      headers={"If-Match": '"1"'})
    new = check(resp, *PATCH, 200)
    assert resp.headers["ETag"] == '"2"' and resp.headers["Projection"] == "applied"
    assert "Idempotent-Replayed" not in resp.headers
    assert new["version"] == 2 and new["price"] == 12.5 and new["stock"] == 0
    assert new["name"] == "After \u00e9" and new["desc"] == "After \u00e9 - $12.50"
    assert new["available"] is False
    assert (new["id"], new["sku"], new["created_at"]) == (pid, view["sku"], view["created_at"])
    assert new["updated_at"] >= view["updated_at"]
    assert '"price":12.50,' in resp.text
    # read-your-writes: the view and the in-stock index already changed
    got = live.get(f"/products/{pid}")
    assert check(got, "/products/{id}", "get", 200) == new and got.headers["ETag"] == '"2"'
    assert pid not in in_stock_ids(live)
    back = live.patch(pid, '{"stock":3}', headers={"If-Match": "*"})
    assert check(back, *PATCH, 200)["available"] is True and back.headers["ETag"] == '"3"'
    assert pid in in_stock_ids(live)


@pytest.mark.parametrize("op", ["patch", "delete", "stock"])
def test_if_match_mismatch_412_changes_nothing(live, op):
    view = created(live, stock=5)
    pid = view["id"]
    check(live.patch(pid, '{"name":"Second"}'), *PATCH, 200)  # now at version 2
    stale = {"If-Match": '"1"'}
    if op == "patch":
        resp, where = live.patch(pid, '{"name":"Third"}', headers=stale), PATCH
    elif op == "delete":
        resp, where = live.delete(pid, headers=stale), DELETE
    else:
        resp, where = live.stock(pid, '{"delta":-1}', headers=stale), STOCK
    problem = check_problem(resp, *where, 412, "version-mismatch")
    assert problem["current_version"] == 2
    now = check(live.get(f"/products/{pid}"), "/products/{id}", "get", 200)
    assert now["version"] == 2 and now["name"] == "Second" and now["stock"] == 5


IF_MATCH_CASES = [('"1"', True), ("*", True), ('W/"1"', False), ('"1", "2"', False),
                  ('"0"', False), ("1", False), ('"abc"', False), ('"-1"', False),
                  ('"01"', False)]


@pytest.mark.parametrize("value,accepted", IF_MATCH_CASES)
def test_if_match_schema_agrees_with_the_server(live, value, accepted):
    """The IfMatch parameter's schema accepts exactly what the server takes (a matching
    version or *: 200) and rejects what it answers 400 invalid-header."""
    pid = created(live)["id"]
    valid = validator_at("/components/parameters/IfMatch/schema").is_valid(value)
    assert valid == accepted, (value, valid)
    resp = live.patch(pid, '{"stock":1}', headers={"If-Match": value})
    if accepted:
        check(resp, *PATCH, 200)
    else:
        check_problem(resp, *PATCH, 400, "invalid-header")
        check_problem(live.delete(pid, headers={"If-Match": value}), *DELETE, 400,
                      "invalid-header")
        check_problem(live.stock(pid, '{"delta":1}', headers={"If-Match": value}), *STOCK, 400,
                      "invalid-header")


@pytest.mark.parametrize("pid", [UNKNOWN_ID, "not-a-uuid", UNKNOWN_ID.upper()])
def test_commands_on_a_missing_product_404(live, pid):
    check_problem(live.patch(pid, '{"name":"x"}'), *PATCH, 404, "not-found")
    check_problem(live.delete(pid), *DELETE, 404, "not-found")
    check_problem(live.stock(pid, '{"delta":1}'), *STOCK, 404, "not-found")


@pytest.mark.parametrize("body", ["{", "", "[1]", "null", '{"name":"a","name":"b"}',
                                  '{"price":NaN}'])
def test_patch_and_stock_400_not_one_object(live, body):
    pid = created(live)["id"]
    check_problem(live.patch(pid, body), *PATCH, 400, "malformed-body")
    check_problem(live.stock(pid, body), *STOCK, 400, "malformed-body")


def test_patch_and_stock_413_over_64_kib(live):
    pid = created(live)["id"]
    big = '{"name":"' + "a" * (64 * 1024) + '"}'
    check_problem(live.patch(pid, big), *PATCH, 413, "payload-too-large")
    check_problem(live.stock(pid, '{"delta":1,"x":"' + "a" * (64 * 1024) + '"}'), *STOCK, 413,
                  "payload-too-large")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/jsonx"])
def test_patch_and_stock_415(live, content_type):
    pid = created(live)["id"]
    check_problem(live.patch(pid, '{"name":"x"}', content_type=content_type), *PATCH, 415,
                  "unsupported-media-type")
    check_problem(live.stock(pid, '{"delta":1}', content_type=content_type), *STOCK, 415,
                  "unsupported-media-type")


def test_patch_422_lists_every_failing_field(live):
    pid = created(live)["id"]
    problem = check(live.patch(pid, '{"sku":"X","id":"y","version":3,"price":"1","colour":1}'),
                    *PATCH, 422)
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [
        ("sku", "is read-only"), ("id", "is read-only"), ("version", "is read-only"),
        ("price", "must be a number"), ("colour", "unknown field")]
    problem = check(live.patch(pid, "{}"), *PATCH, 422)
    assert [e["field"] for e in problem["errors"]] == ["(body)"]


# PATCH bodies the server must accept (200) or reject (422), and UpdateProduct must agree. Left
# out on purpose, as for CreateProduct: `"stock": 1.0` (JSON Schema counts it as an integer) and
# prices with more than two decimals.
PATCH_CASES = [
    (200, '{"name":"Renamed"}'),
    (200, '{"price":0}'),
    (200, '{"price":999999999.99}'),
    (200, '{"price":1e3}'),
    (200, '{"stock":0}'),
    (200, '{"stock":2147483647}'),
    (200, '{"name":"All","price":1.5,"stock":2}'),
    (422, "{}"),
    (422, '{"sku":"OTHER-SKU"}'),
    (422, '{"id":"%s"}' % UNKNOWN_ID),
    (422, '{"version":2}'),
    (422, '{"name":""}'),
    (422, '{"name":null}'),
    (422, '{"name":"ok","colour":"red"}'),
    (422, '{"price":"1.50"}'),
    (422, '{"price":-1}'),
    (422, '{"stock":-1}'),
    (422, '{"stock":1.5}'),
    (422, '{"stock":2147483648}'),
]


@pytest.fixture(scope="module")
def patch_target(live):
    return created(live)["id"]


@pytest.mark.parametrize("expected,text", PATCH_CASES,
                         ids=[f"{s}-{i}" for i, (s, _) in enumerate(PATCH_CASES)])
def test_update_schema_agrees_with_the_server(live, patch_target, expected, text):
    valid = validator_at("/components/schemas/UpdateProduct").is_valid(json.loads(text))
    check(live.patch(patch_target, text), *PATCH, expected)
    assert valid == (expected == 200), f"the server answered {expected} to {text}; schema: {valid}"


# ---------------------------------------------------------------------------------------------
# DELETE /products/{id}


def test_delete_204_then_gone_and_the_sku_free_again(live):
    sku = new_sku("DEL")
    view = created(live, sku=sku)
    pid = view["id"]
    resp = live.delete(pid, headers={"If-Match": '"1"'})
    assert check(resp, *DELETE, 204) is None
    assert resp.headers["ETag"] == '"2"', "the deletion carries version + 1"
    assert resp.headers["Projection"] == "applied"
    # read-your-writes: the view, the SKU entry and the index entries are gone
    check_problem(live.get(f"/products/{pid}"), "/products/{id}", "get", 404, "not-found")
    check(live.get(f"/products/by-sku/{sku}"), "/products/by-sku/{sku}", "get", 404)
    assert pid not in in_stock_ids(live)
    check_problem(live.delete(pid), *DELETE, 404, "not-found")
    again = created(live, sku=sku)
    assert again["id"] != pid and again["version"] == 1


def test_delete_400_bad_idempotency_key(live):
    pid = created(live)["id"]
    for bad in ["", "has space", "k" * 256]:
        check_problem(live.delete(pid, headers={"Idempotency-Key": bad}), *DELETE, 400,
                      "invalid-header")
    check(live.get(f"/products/{pid}"), "/products/{id}", "get", 200)


# ---------------------------------------------------------------------------------------------
# POST /products/{id}/stock


def test_stock_200_409_and_422_overflow(live):
    pid = created(live, stock=5)["id"]
    resp = live.stock(pid, '{"delta":-2}', headers={"If-Match": '"1"'})
    view = check(resp, *STOCK, 200)
    assert view["stock"] == 3 and view["version"] == 2 and view["available"] is True
    assert resp.headers["ETag"] == '"2"' and resp.headers["Projection"] == "applied"
    assert check(live.get(f"/products/{pid}"), "/products/{id}", "get", 200) == view
    problem = check_problem(live.stock(pid, '{"delta":-4}'), *STOCK, 409, "insufficient-stock")
    assert problem["current_stock"] == 3
    assert check(live.get(f"/products/{pid}"), "/products/{id}", "get", 200) == view
    zero = check(live.stock(pid, '{"delta":-3}'), *STOCK, 200)
    assert zero["stock"] == 0 and zero["available"] is False and pid not in in_stock_ids(live)
    full = created(live, stock=2147483647)["id"]
    problem = check_problem(live.stock(full, '{"delta":1}'), *STOCK, 422, "validation-failed")
    assert [e["field"] for e in problem["errors"]] == ["delta"]
    assert check(live.get(f"/products/{full}"), "/products/{id}", "get", 200)["version"] == 1


# (initial stock, body, status): the server's verdict, which StockAdjustment must share for
# every body it can judge. Left out on purpose: `1.0` (an integer to JSON Schema, rejected by the
# server) and the business refusals (409, 422 overflow), which depend on the stock.
DELTA_CASES = [
    (0, '{"delta":1}', 200),
    (5, '{"delta":-1}', 200),
    (5, '{"delta":-5}', 200),
    (0, '{"delta":2147483647}', 200),
    (2147483647, '{"delta":-2147483647}', 200),
    (5, '{"delta":0}', 422),
    (5, '{"delta":2147483648}', 422),
    (5, '{"delta":-2147483648}', 422),
    (5, '{"delta":99999999999999999999}', 422),
    (5, '{"delta":1.5}', 422),
    (5, '{"delta":"1"}', 422),
    (5, '{"delta":null}', 422),
    (5, '{"delta":true}', 422),
    (5, "{}", 422),
    (5, '{"delta":1,"reason":"restock"}', 422),
]


@pytest.mark.parametrize("stock,text,expected", DELTA_CASES,
                         ids=[f"{s}-{i}" for i, (_, _, s) in enumerate(DELTA_CASES)])
def test_stock_schema_agrees_with_the_server(live, stock, text, expected):
    pid = created(live, stock=stock)["id"]
    valid = validator_at("/components/schemas/StockAdjustment").is_valid(json.loads(text))
    check(live.stock(pid, text), *STOCK, expected)
    assert valid == (expected == 200), f"the server answered {expected} to {text}; schema: {valid}"


# ---------------------------------------------------------------------------------------------
# Idempotency-Key on PATCH, DELETE and stock: replays of successes and of refusals


def replayed(first, again, path, method):
    """`again` is the stored `first`: same status, body, ETag and Location, marked replayed,
    without Projection."""
    check(again, path, method, first.status_code)
    assert again.headers.get("Idempotent-Replayed") == "true", dict(again.headers)
    assert "Idempotent-Replayed" not in first.headers
    assert "Projection" not in again.headers
    assert again.content == first.content
    for name in ("ETag", "Location", "Content-Type"):
        assert again.headers.get(name) == first.headers.get(name), name


def test_command_replays_with_idempotent_replayed(live):
    pid = created(live, stock=2)["id"]
    cases = [
        (PATCH, lambda h: live.patch(pid, '{"name":"Keyed"}', headers=h), 200),
        (STOCK, lambda h: live.stock(pid, '{"delta":-1}', headers=h), 200),
        (STOCK, lambda h: live.stock(pid, '{"delta":-9}', headers=h), 409),
        (PATCH, lambda h: live.patch(pid, '{"name":"Stale"}', headers={"If-Match": '"1"', **h}),
         412),
        (PATCH, lambda h: live.patch(UNKNOWN_ID, '{"name":"x"}', headers=h), 404),
        (STOCK, lambda h: live.stock(UNKNOWN_ID, '{"delta":1}', headers=h), 404),
        (DELETE, lambda h: live.delete(UNKNOWN_ID, headers=h), 404),
        (DELETE, lambda h: live.delete(pid, headers=h), 204),
    ]
    for (path, method), send, status in cases:
        key = {"Idempotency-Key": new_key()}
        first = send(key)
        check(first, path, method, status)
        if status < 300:
            assert first.headers["Projection"] == "applied"
        if status == 404:  # not stored: ids are never reused, so a retry runs and finds nothing
            again = send(key)
            check(again, path, method, 404)
            assert "Idempotent-Replayed" not in again.headers
            continue
        replayed(first, send(key), path, method)
    # the delete happened once: a replay did not run it again, a fresh one finds nothing
    check_problem(live.delete(pid), *DELETE, 404, "not-found")


def test_command_key_reused_422(live):
    pid = created(live, stock=5)["id"]
    key = {"Idempotency-Key": new_key()}
    check(live.patch(pid, '{"name":"One"}', headers=key), *PATCH, 200)
    check_problem(live.patch(pid, '{"name":"Two"}', headers=key), *PATCH, 422,
                  "idempotency-key-reused")
    check_problem(live.stock(pid, '{"delta":1}', headers=key), *STOCK, 422,
                  "idempotency-key-reused")
    check_problem(live.delete(pid, headers=key), *DELETE, 422, "idempotency-key-reused")
    check_problem(live.create(headers=key), "/products", "post", 422, "idempotency-key-reused")
    view = check(live.get(f"/products/{pid}"), "/products/{id}", "get", 200)
    assert view["name"] == "One" and view["version"] == 2 and view["stock"] == 5


# ---------------------------------------------------------------------------------------------
# operations and admin


def scrape(live):
    resp = live.get("/metrics")
    text = check(resp, "/metrics", "get", 200)
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4"
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return types, samples


def test_health_and_ready_200(live):
    assert check(live.get("/health"), "/health", "get", 200) == {"status": "ok"}
    ready = check(live.get("/ready"), "/ready", "get", 200)
    assert ready["status"] == "ready"
    assert set(ready["checks"].values()) == {"ok"}


def test_metrics_200_prometheus_text(live):
    pid = created(live)["id"]
    check(live.patch(pid, '{"stock":9}'), *PATCH, 200)
    types, samples = scrape(live)
    for name, kind in {"catalogd_requests_total": "counter",
                       "catalogd_request_duration_seconds": "histogram",
                       "catalogd_projection_lag_events": "gauge",
                       "catalogd_projection_lag_seconds": "gauge",
                       "catalogd_projection_parked_events": "gauge",
                       "catalogd_redis_errors_total": "counter",
                       "catalogd_redis_reconnects_total": "counter",
                       "catalogd_write_batch_size": "histogram",
                       "catalogd_write_batch_fill_waits_total": "counter",
                       "catalogd_view_cache_hits_total": "counter",
                       "catalogd_view_cache_misses_total": "counter",
                       "catalogd_view_cache_bytes": "gauge"}.items():
        assert types.get(name) == kind, (name, types.get(name))
    assert samples['catalogd_requests_total{route="create_product",status="201"}'] >= 1
    assert samples['catalogd_requests_total{route="update_product",status="200"}'] >= 1
    routes = {name for _, _, name, _ in server_routes()} | {"unmatched"}
    labels = set(re.findall(r'\{route="([^"]+)"', "\n".join(samples)))
    assert labels and labels <= routes, labels - routes
    for key in ('catalogd_redis_errors_total{component="projector"}',
                'catalogd_redis_errors_total{component="queries"}',
                "catalogd_projection_lag_events", "catalogd_write_batch_size_count"):
        assert key in samples, key


def test_openapi_json_is_this_file(live):
    resp = live.get("/openapi.json")
    assert check(resp, "/openapi.json", "get", 200) == SPEC
    assert resp.content == SPEC_PATH.read_bytes(), (
        "GET /openapi.json is not the openapi.json in the repository: rebuild the binary "
        f"(make -C {ROOT} all), it links the file in")


def docs_tag(live, quoted=False):
    """The tag of the server's /docs assets: its page's ETag."""
    etag = live.get("/docs").headers["ETag"]
    return etag if quoted else etag.strip('"')


def test_docs_page_and_assets(live):
    """GET /docs: the page (no-cache, ETag, 304 on a match, a strict CSP) and every asset it
    names, immutable under the build's tag; any other tag or file is 404."""
    page = live.get("/docs")
    html = check(page, "/docs", "get", 200)
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    csp = page.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'"):
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    tag = docs_tag(live)
    etag = page.headers["ETag"]
    for given in (etag, f"W/{etag}", f'"x", {etag}', "*"):
        unchanged = live.get("/docs", headers={"If-None-Match": given})
        check(unchanged, "/docs", "get", 304)
        assert unchanged.headers["ETag"] == etag
    check(live.get("/docs", headers={"If-None-Match": '"0123456789abcdef"'}), "/docs", "get", 200)
    names = re.findall(r'(?:src|href)="(/docs/[^"]+)"', html)
    assert sorted(names) == sorted(f"/docs/{tag}/{name}" for name in (
        "swagger-ui.css", "swagger-ui-bundle.js", "catalogd-docs.js", "favicon-32x32.png"))
    types = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for name in names:
        resp = live.get(name)
        assert resp.status_code == 200, name
        media = resp.headers["Content-Type"].split(";")[0]
        assert media == types[os.path.splitext(name)[1]], (name, media)
        if media != "image/png":
            check(resp, "/docs/{tag}/{asset}", "get", 200)
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "ETag" not in resp.headers and len(resp.content) > 0
    assert live.get(f"/docs/{tag}/favicon-32x32.png").content[:8] == b"\x89PNG\r\n\x1a\n"
    for name, text in (("LICENSE", "Apache License"), ("NOTICE", "SmartBear"),
                       ("swagger-ui-bundle.js.LICENSE.txt", "MIT")):
        resp = live.get(f"/docs/{tag}/{name}")
        assert text in check(resp, "/docs/{tag}/{asset}", "get", 200), name
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    bundle = live.get(f"/docs/{tag}/swagger-ui-bundle.js").text
    assert "swagger-ui-bundle.js.LICENSE.txt" in bundle  # the bundle's pointer resolves here
    for missing in (f"/docs/{tag}/nope.js", f"/docs/{tag}/swagger-ui.css.map",
                    f"/docs/{tag}/index.html", f"/docs/{tag[:-1]}/swagger-ui.css",
                    f"/docs/{tag}x/swagger-ui.css", "/docs/0123456789abcdef/swagger-ui.css",
                    f"/docs/{tag}/SWAGGER-UI.CSS"):
        resp = live.get(missing)
        check_problem(resp, "/docs/{tag}/{asset}", "get", 404, "not-found")
        assert "immutable" not in resp.headers.get("Cache-Control", ""), missing
    for unrouted in ("/docs/", f"/docs/{tag}", f"/docs/{tag}/", f"/docs/{tag}/a/b"):
        check_component(live.get(unrouted), "NotFound", 404)


def test_admin_projection_200(live):
    status = check(live.get("/admin/projection"), "/admin/projection", "get", 200)
    assert status["state"] == "live" and status["lag_events"] == 0
    assert status["head"] == status["checkpoint"] and status["generation"] >= 1
    ready = check(live.get("/ready"), "/ready", "get", 200)
    for field in ("generation", "head", "state"):
        assert status[field] == ready[field], field


def test_admin_rebuild_202_then_409_while_it_runs(live):
    """A rebuild keeps running for its old generation's grace period (about 2 s) after the
    switch, so a second POST right after a 202 meets it (409) even on a small catalog. Should a
    rebuild ever finish first, that POST started the next one (202) and the loop tries again."""
    before = check(live.get("/admin/projection"), "/admin/projection", "get", 200)
    total = int(live.get("/catalog?limit=1").headers["X-Total-Count"])
    first = live.request("POST", "/admin/rebuild")
    accepted = check(first, "/admin/rebuild", "post", 202)
    assert accepted["status"] == "rebuilding" and first.headers["Location"] == "/admin/projection"
    for _ in range(5):
        again = live.request("POST", "/admin/rebuild")
        if again.status_code != 202:
            break
        check(again, "/admin/rebuild", "post", 202)
    check_problem(again, "/admin/rebuild", "post", 409, "rebuild-in-progress")
    during = check(live.get("/admin/projection"), "/admin/projection", "get", 200)
    assert during["rebuild"]["running"] is True
    # readers keep seeing the whole catalog while it runs
    assert int(live.get("/catalog?limit=1").headers["X-Total-Count"]) == total

    def done():
        status = check(live.get("/admin/projection"), "/admin/projection", "get", 200)
        return status if not status["rebuild"]["running"] else None
    after = wait_for(done, STATE_DEADLINE, "the rebuild to finish", interval=0.1)
    assert after["rebuild"]["last_error"] == "", after
    assert after["rebuild"]["runs"] > before["rebuild"]["runs"]
    assert after["rebuild"]["last_generation"] > before["generation"]
    assert after["rebuild"]["last_products"] == total
    assert after["generation"] == after["rebuild"]["last_generation"]
    assert int(live.get("/catalog?limit=1").headers["X-Total-Count"]) == total


# ---------------------------------------------------------------------------------------------
# HEAD, 431, unknown routes, wrong methods, request ids


def test_head_on_every_get_route(live):
    """HEAD answers what GET answers, without the body: same status, same headers."""
    view = created(live)
    pid, sku = view["id"], view["sku"]
    created(live)  # so that a one-item page has a next link
    targets = [
        (f"/products/{pid}", "/products/{id}", {}, 200),
        (f"/products/{pid}", "/products/{id}", {"If-None-Match": '"1"'}, 304),
        (f"/products/{UNKNOWN_ID}", "/products/{id}", {}, 404),
        (f"/products/by-sku/{sku}", "/products/by-sku/{sku}", {}, 200),
        ("/catalog?limit=1", "/catalog", {}, 200),
        ("/catalog?limit=0", "/catalog", {}, 400),
        ("/health", "/health", {}, 200),
        ("/ready", "/ready", {}, 200),
        ("/metrics", "/metrics", {}, 200),
        ("/openapi.json", "/openapi.json", {}, 200),
        ("/admin/projection", "/admin/projection", {}, 200),
        ("/docs", "/docs", {}, 200),
        ("/docs", "/docs", {"If-None-Match": docs_tag(live, quoted=True)}, 304),
        (f"/docs/{docs_tag(live)}/swagger-ui.css", "/docs/{tag}/{asset}", {}, 200),
        ("/docs/0123456789abcdef/swagger-ui.css", "/docs/{tag}/{asset}", {}, 404),
    ]
    assert {t for _, t, _, _ in targets} == {p for p, m, _ in operations() if m == "get"}
    volatile = {"date", "x-request-id", "content-length"}
    for url, template, headers, status in targets:
        got = live.get(url, headers=headers)
        head = live.request("HEAD", url, headers=headers)
        assert got.status_code == head.status_code == status, (url, got.status_code,
                                                              head.status_code)
        check_response(head, f"/paths/{esc(template)}/get/responses/{status}", head=True)
        same = {k.lower(): v for k, v in got.headers.items() if k.lower() not in volatile}
        assert {k.lower(): v for k, v in head.headers.items()
                if k.lower() not in volatile} == same, url
        if template not in ("/metrics", "/admin/projection", "/ready"):  # counters move
            assert head.headers.get("Content-Length") == got.headers.get("Content-Length"), url


OPERATION_BODIES = {
    ("/products", "post"): create_text("SKU-431"),
    ("/products/{id}", "patch"): '{"name":"x"}',
    ("/products/{id}/stock", "post"): '{"delta":1}',
}


@pytest.mark.parametrize("path,method", [(p, m) for p, m, _ in operations()],
                         ids=[f"{m}-{p}" for p, m, _ in operations()])
def test_headers_over_16_kib_431(live, path, method):
    resp = live.send(method.upper(), concrete(path), OPERATION_BODIES.get((path, method), ""),
                     headers={"X-Padding": "a" * (17 * 1024)})
    check_problem(resp, path, method, 431, "headers-too-large")
    assert resp.headers.get("Connection", "").lower() == "close"


def raw_response(live, method, path, head_lines, body=b""):
    """Sends a request written byte for byte (requests cannot send two Host headers) and
    returns the answer as a requests.Response, for check()."""
    import http.client
    import io

    class Replay(io.BytesIO):
        def makefile(self, *args, **kwargs):
            return self

    sock = socket.create_connection(("127.0.0.1", live.port), timeout=HTTP_TIMEOUT)
    try:
        sock.sendall(f"{method} {path} HTTP/1.1\r\n".encode()
                     + "".join(f"{line}\r\n" for line in head_lines).encode() + b"\r\n" + body)
        raw = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    finally:
        sock.close()
    parsed = http.client.HTTPResponse(Replay(raw), method=method)
    parsed.begin()
    resp = requests.models.Response()
    resp.status_code = parsed.status
    resp.headers = requests.structures.CaseInsensitiveDict(parsed.getheaders())
    resp._content = parsed.read()
    resp.url = live.base + path
    resp.request = requests.Request(method, resp.url).prepare()
    return resp


@pytest.mark.parametrize("path,method", [(p, m) for p, m, _ in operations()],
                         ids=[f"{m}-{p}" for p, m, _ in operations()])
def test_ambiguous_framing_400(live, path, method):
    host = f"127.0.0.1:{live.port}"
    resp = raw_response(live, method.upper(), concrete(path), [f"Host: {host}", f"Host: {host}"])
    check_problem(resp, path, method, 400, "ambiguous-request")
    assert resp.headers.get("Connection", "").lower() == "close"
    body = b"abcde"
    resp = raw_response(live, method.upper(), concrete(path),
                        [f"Host: {host}", "Content-Length: 5", "Transfer-Encoding: chunked"],
                        b"0\r\n\r\n")
    check_problem(resp, path, method, 400, "ambiguous-request")
    resp = raw_response(live, method.upper(), concrete(path),
                        [f"Host: {host}", "Content-Length: 5", "Content-Length: 6"], body)
    check_problem(resp, path, method, 400, "ambiguous-request")


WRITE_OPERATIONS = [(p, m) for p, m, _ in operations() if m != "get"]


@pytest.mark.parametrize("path,method", WRITE_OPERATIONS,
                         ids=[f"{m}-{p}" for p, m in WRITE_OPERATIONS])
def test_writes_from_another_host_421_or_origin_403(live, path, method):
    body = OPERATION_BODIES.get((path, method), "")
    resp = live.send(method.upper(), concrete(path), body,
                     headers={"Host": f"attacker.example:{live.port}"})
    check_problem(resp, path, method, 421, "misdirected-request")
    resp = live.send(method.upper(), concrete(path), body,
                     headers={"Origin": "https://evil.example"})
    check_problem(resp, path, method, 403, "cross-origin-request")


@pytest.mark.parametrize("content_type,body,status,slug", [
    ("text/plain", "x", 415, "unsupported-media-type"),
    ("application/x-www-form-urlencoded", "a=1", 415, "unsupported-media-type"),
    (None, "x", 415, "unsupported-media-type"),
    ("application/json", "[]", 400, "malformed-body"),
    ("application/json", "{", 400, "malformed-body"),
])
def test_admin_rebuild_body_415_400(live, content_type, body, status, slug):
    resp = live.send("POST", "/admin/rebuild", body, content_type=content_type)
    check_problem(resp, "/admin/rebuild", "post", status, slug)


def test_headers_just_under_16_kib_pass(live):
    check(live.get("/health", headers={"X-Padding": "a" * (15 * 1024)}), "/health", "get", 200)
    check_component(live.get("/nowhere", headers={"X-Padding": "a" * (17 * 1024)}),
                    "HeadersTooLarge", 431)


@pytest.mark.parametrize("path", ["/nowhere", "/products/", "/products/by-sku/",
                                  "/catalog/x", "/", "/admin", "/admin/", "/metrics/x",
                                  f"/products/{UNKNOWN_ID}/stock/x"])
def test_unknown_path_404(live, path):
    problem = check_component(live.get(path), "NotFound", 404)
    assert problem["type"] == "urn:catalogd:problem:not-found"


@pytest.mark.parametrize("method,path", [
    ("GET", "/products"), ("PUT", "/products"), ("DELETE", "/catalog"), ("POST", "/health"),
    ("POST", "/ready"), ("POST", "/catalog"), ("OPTIONS", "/catalog"),
    ("PUT", f"/products/{UNKNOWN_ID}"), ("POST", f"/products/{UNKNOWN_ID}"),
    ("POST", "/products/by-sku/SKU-1"), ("GET", f"/products/{UNKNOWN_ID}/stock"),
    ("PATCH", f"/products/{UNKNOWN_ID}/stock"), ("GET", "/admin/rebuild"),
    ("POST", "/admin/projection"), ("POST", "/metrics"), ("PUT", "/openapi.json"),
    ("POST", "/docs"), ("DELETE", "/docs/0123456789abcdef/swagger-ui.css"), ("HEAD", "/products"),
])
def test_wrong_method_405_with_allow(live, method, path):
    resp = live.request(method, path)
    if method == "HEAD":
        assert resp.status_code == 405 and resp.content == b"" and resp.headers["Allow"]
    else:
        check_component(resp, "MethodNotAllowed", 405)
    allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
    routed = {m for m, pattern, _, _ in server_routes()
              if re.fullmatch(re.escape(pattern).replace(r"\{\}", "[^/]+"), path)}
    if "GET" in routed:
        routed.add("HEAD")  # the server answers HEAD wherever it answers GET
    assert allowed == routed, (allowed, routed)
    documented = {m.upper() for p, m, _ in operations()
                  if re.fullmatch(re.sub(r"\\\{[^{}/]+\\\}", "[^/]+", re.escape(p)), path)}
    if "GET" in documented:
        documented.add("HEAD")  # documented once, for every GET operation
    assert allowed == documented, (allowed, documented)


def test_request_id_echoed_or_replaced(live):
    assert live.get("/health", headers={"X-Request-Id": "abc-123"}).headers[
        "X-Request-Id"] == "abc-123"
    for bad in ["x" * 65, "has space"]:
        got = live.get("/health", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert got and got != bad
        assert re.fullmatch(r"[!-~]{1,64}", got)


# ---------------------------------------------------------------------------------------------
# --api-token

SECURED_OPERATIONS = [(p, m) for p, m, op in operations() if op.get("security")]


@pytest.mark.parametrize("path,method", SECURED_OPERATIONS,
                         ids=[f"{m}-{p}" for p, m in SECURED_OPERATIONS])
def test_401_without_the_token(guarded, path, method):
    body = OPERATION_BODIES.get((path, method), "")
    for auth in [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}", "Bearer "]:
        headers = {"Authorization": auth} if auth else {}
        resp = guarded.send(method.upper(), concrete(path), body, headers=headers)
        check_problem(resp, path, method, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    # checked before anything else: a malformed body, an unknown product, still a 401
    resp = guarded.send(method.upper(), concrete(path, pid="not-a-uuid"), "{", headers={})
    check_problem(resp, path, method, 401, "unauthorized")


def test_the_token_opens_commands_and_admin_only(guarded):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    view = check(guarded.create(headers=auth), "/products", "post", 201)
    pid = view["id"]
    check(guarded.patch(pid, '{"name":"Guarded"}', headers=auth), *PATCH, 200)
    check(guarded.stock(pid, '{"delta":1}', headers={"Authorization": f"bearer {TOKEN}"}),
          *STOCK, 200)
    check(guarded.get("/admin/projection", headers=auth), "/admin/projection", "get", 200)
    # queries and operations never need it
    check(guarded.get(f"/products/{pid}"), "/products/{id}", "get", 200)
    check(guarded.get(f"/products/by-sku/{view['sku']}"), "/products/by-sku/{sku}", "get", 200)
    check(guarded.get("/catalog"), "/catalog", "get", 200)
    check(guarded.get("/health"), "/health", "get", 200)
    check(guarded.get("/ready"), "/ready", "get", 200)
    check(guarded.get("/metrics"), "/metrics", "get", 200)
    check(guarded.get("/openapi.json"), "/openapi.json", "get", 200)
    check(guarded.get("/docs"), "/docs", "get", 200)
    check(guarded.delete(pid, headers=auth), *DELETE, 204)


# ---------------------------------------------------------------------------------------------
# SQLite refusing writes: 503 write-model-unavailable, and 409 idempotency-key-in-use while a
# command with the key is parked behind the lock


def test_write_model_locked_503_and_key_in_use(live):
    pid = created(live, stock=5)["id"]
    commands = [  # (documented path, method, HTTP method, URL path, body), the delete last
        ("/products", "post", "POST", "/products", create_text(new_sku("LOCK"))),
        ("/products/{id}", "patch", "PATCH", f"/products/{pid}", '{"name":"Locked"}'),
        ("/products/{id}/stock", "post", "POST", f"/products/{pid}/stock", '{"delta":-1}'),
        ("/products/{id}", "delete", "DELETE", f"/products/{pid}", ""),
    ]
    keys = [new_key() for _ in commands]
    with sqlite_write_lock(live.db):
        parked = [Background(verb, live.base + url, data=body,
                             headers={"Idempotency-Key": key, **JSON_CT})
                  for (_, _, verb, url, body), key in zip(commands, keys)]
        time.sleep(0.3)  # let each reach the server and hold its key
        seconds = [live.send(verb, url, body, headers={"Idempotency-Key": key},
                             timeout=LOCKED_TIMEOUT)
                   for (_, _, verb, url, body), key in zip(commands, keys)]

        def ready_503():
            resp = live.get("/ready")
            return [resp] if resp.status_code == 503 else None  # a 503 Response is falsy
        [not_ready] = wait_for(ready_503, STATE_DEADLINE,
                               "/ready to notice SQLite refusing writes")
        firsts = [b.result() for b in parked]
    problem = check_problem(not_ready, "/ready", "get", 503, "not-ready")
    assert problem["checks"][WRITE_MODEL_CHECK] == "failing", problem
    assert WRITE_MODEL_CHECK in problem["detail"], problem
    for (path, method, _, _, _), first, second in zip(commands, firsts, seconds):
        # one of the two held the key (503 after the busy timeout), the other met it in flight
        pair = sorted([first, second], key=lambda r: r.status_code)
        check_problem(pair[0], path, method, 409, "idempotency-key-in-use")
        check_problem(pair[1], path, method, 503, "write-model-unavailable")
        assert pair[1].headers["Retry-After"].isdigit()
    wait_for(live.is_ready, STATE_DEADLINE, "/ready to be 200 once SQLite takes writes again")
    # nothing was stored under the keys: the same requests now run
    for (path, method, verb, url, body), key, status in zip(commands, keys, [201, 200, 200, 204]):
        resp = live.send(verb, url, body, headers={"Idempotency-Key": key})
        check(resp, path, method, status)
        assert "Idempotent-Replayed" not in resp.headers and resp.headers["Projection"]


# ---------------------------------------------------------------------------------------------
# Redis down: queries 503 with Retry-After, commands 2xx with Projection: pending, /ready 503,
# a rebuild cannot start (503), /admin/projection and /metrics keep answering


def test_redis_down_then_back(stack):
    live = stack.api
    before = check(live.create(stock=4), "/products", "post", 201)
    sku = new_sku("DOWN")
    stack.redis.stop()
    try:
        wait_for(lambda: live.get("/catalog").status_code == 503, STATE_DEADLINE,
                 "queries to answer 503 once Redis is gone")
        for path, template in [(f"/products/{before['id']}", "/products/{id}"),
                               (f"/products/by-sku/{before['sku']}", "/products/by-sku/{sku}"),
                               ("/catalog", "/catalog")]:
            check_problem(live.get(path), template, "get", 503, "read-model-unavailable")
        assert check(live.get("/health"), "/health", "get", 200) == {"status": "ok"}
        created_ = live.create(sku=sku)
        pending = check(created_, "/products", "post", 201)
        assert created_.headers["Projection"] == "pending"
        patched = live.patch(before["id"], '{"name":"Patched while down"}')
        assert check(patched, *PATCH, 200)["version"] == 2
        assert patched.headers["Projection"] == "pending"
        moved = live.stock(before["id"], '{"delta":-1}')
        assert check(moved, *STOCK, 200)["stock"] == 3 and moved.headers["Projection"] == "pending"
        body = check_problem(live.get("/ready"), "/ready", "get", 503, "not-ready")
        assert body["checks"]["redis"] == "failing" and "redis" in body["detail"]
        assert body["lag_events"] >= 1
        assert body["head"] - body["checkpoint"] == body["lag_events"]
        check_problem(live.request("POST", "/admin/rebuild"), "/admin/rebuild", "post", 503,
                      "read-model-unavailable")
        status = check(live.get("/admin/projection"), "/admin/projection", "get", 200)
        assert status["state"] == "redis_down" and status["last_error"]
        assert status["lag_events"] >= 1
        _, samples = scrape(live)
        assert samples["catalogd_projection_lag_events"] >= 1
    finally:
        stack.redis.start()  # same port, empty: the server reconnects by itself, no restart
    wait_for(live.is_ready, STATE_DEADLINE, "/ready to be 200 again after Redis came back")
    # the projector rebuilt the empty Redis from SQLite, including the pending changes; each
    # loop thread's own Redis connection comes back on its own backoff (at most 1 s)
    got = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
        live.get(f"/products/by-sku/{sku}")), STATE_DEADLINE, "the query side to reconnect")
    assert check(got, "/products/by-sku/{sku}", "get", 200) == pending
    view = check(live.get(f"/products/{before['id']}"), "/products/{id}", "get", 200)
    assert (view["name"], view["stock"], view["version"]) == ("Patched while down", 3, 3)
    check(live.get("/ready"), "/ready", "get", 200)


# ---------------------------------------------------------------------------------------------
# SIGTERM: while a request is in flight the server drains; requests on open connections get
# 503 shutting-down, the in-flight one completes, and the process exits 0


def test_sigterm_drain_503_shutting_down():
    stack = Stack().start()
    try:
        srv = stack.api
        pid = created(srv)["id"]
        probes = [  # (documented path, method, HTTP method, URL path, body)
            ("/health", "get", "GET", "/health", None),
            ("/ready", "get", "GET", "/ready", None),
            ("/metrics", "get", "GET", "/metrics", None),
            ("/openapi.json", "get", "GET", "/openapi.json", None),
            ("/docs", "get", "GET", "/docs", None),
            ("/docs/{tag}/{asset}", "get", "GET", concrete("/docs/{tag}/{asset}"), None),
            ("/admin/projection", "get", "GET", "/admin/projection", None),
            ("/admin/rebuild", "post", "POST", "/admin/rebuild", None),
            ("/catalog", "get", "GET", "/catalog", None),
            ("/products/{id}", "get", "GET", f"/products/{pid}", None),
            ("/products/{id}", "patch", "PATCH", f"/products/{pid}", '{"name":"late"}'),
        ]
        sessions = []
        for _ in probes:  # one open keep-alive connection each: the listener closes on SIGTERM
            session = requests.Session()
            assert session.get(srv.base + "/health", timeout=HTTP_TIMEOUT).status_code == 200
            sessions.append(session)
        with sqlite_write_lock(srv.db):
            in_flight = Background("POST", srv.base + "/products", headers=JSON_CT,
                                   data=create_text(new_sku("DRAIN")))
            time.sleep(0.3)
            stack.server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            for session, (path, method, verb, url, body) in zip(sessions, probes):
                resp = session.request(verb, srv.base + url, data=body, headers=JSON_CT,
                                       timeout=HTTP_TIMEOUT)
                check_problem(resp, path, method, 503, "shutting-down")
                assert resp.headers["Retry-After"].isdigit()
                assert resp.headers.get("Connection", "").lower() == "close"
        # released: the in-flight command commits and is answered before the process exits
        check(in_flight.result(), "/products", "post", 201)
        assert stack.server.proc.wait(timeout=10) == 0, stack.server.stderr_tail()
        stack.server.proc = None
        for session in sessions:
            session.close()
    finally:
        stack.stop()


# ---------------------------------------------------------------------------------------------
# a body far over the limit: h2o refuses it from Content-Length, unread; the 413 is still ours


def test_body_over_1_mib_413_problem(live):
    body = '{"sku":"HUGE","name":"' + "a" * (1024 * 1024 + 16) + '","price":1,"stock":1}'
    try:
        resp = live.post_json("/products", body)
    except requests.ConnectionError as exc:  # the server may close before reading it all
        raise AssertionError(f"connection dropped instead of a 413 problem: {exc!r}") from None
    check(resp, "/products", "post", 413)


# ---------------------------------------------------------------------------------------------
# every documented response was exercised (only meaningful when the whole file ran, in order)

NOT_TRIGGERABLE = {}  # (path, method, status) -> why; empty: every documented answer is seen


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
    assert not untested, f"documented but never exercised: {sorted(untested)}"

"""POST /products: success, every validation/400/413/415/409 case, and nothing written on errors."""

import json
from datetime import datetime, timezone

import jsonschema
import pytest
import requests

from conftest import (PROBLEM_SCHEMA, TS_RE, UUID7_RE, VIEW_KEYS, VIEW_SCHEMA,
                      assert_problem, expected_view_text, is_integer_type, redis_view, sql,
                      sql_typeof, uniq_sku)


def body_of(sku=None, name='"Widget"', price="19.99", stock="5", extra=""):
    """A create body with each value given as literal JSON text (a unique sku by default)."""
    if sku is None:
        sku = json.dumps(uniq_sku())
    return ('{"sku":' + sku + ',"name":' + name + ',"price":' + price + ',"stock":' + stock
            + extra + "}")


# ---------------------------------------------------------------------------------------------
# success


def test_create_returns_the_view_with_headers(stack):
    sku = uniq_sku("GAMER")
    before = stack.counts()
    t0 = datetime.now(timezone.utc)
    resp = stack.post_raw("/products", '{"sku": "%s", "name": "PC Gamer Ultra", '
                          '"price": 5000.00, "stock": 5}' % sku)
    assert resp.status_code == 201, resp.text
    assert resp.headers.get("Content-Type") == "application/json"
    assert resp.headers.get("ETag") == '"1"'
    assert resp.headers.get("Projection") == "applied"
    assert resp.headers.get("X-Request-Id")
    view = json.loads(resp.text, object_pairs_hook=lambda pairs: pairs)
    assert [k for k, _ in view] == VIEW_KEYS
    view = resp.json()
    jsonschema.validate(view, VIEW_SCHEMA)
    assert resp.headers.get("Location") == f"/products/{view['id']}"
    assert UUID7_RE.match(view["id"])
    assert view["id"][14] == "7"  # the version nibble
    assert view["id"][19] in "89ab"  # RFC 9562 variant
    assert view["sku"] == sku
    assert view["name"] == "PC Gamer Ultra"
    assert view["price"] == 5000
    assert view["stock"] == 5
    assert view["available"] is True
    assert view["desc"] == "PC Gamer Ultra - $5000.00"
    assert view["version"] == 1
    assert TS_RE.match(view["created_at"]) and TS_RE.match(view["updated_at"])
    assert view["created_at"] == view["updated_at"]
    created = datetime.strptime(view["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc)
    assert abs((created - t0).total_seconds()) < 60
    # the id's 48-bit millisecond timestamp is the creation time
    id_ms = int(view["id"].replace("-", "")[:12], 16)
    assert abs(id_ms / 1000 - created.timestamp()) < 5
    # exact bytes: key order, no spaces, two-decimal price
    assert '"price":5000.00,' in resp.text
    view["price_text"] = "5000.00"
    assert resp.text == expected_view_text(view)
    assert stack.counts() == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize("literal", [
    "1e-400", "0." + "0" * 60000 + "1", "0.10000000000000001", "19.990000000000001", "5e-324",
], ids=["1e-400", "60000-zeros", "0.10000000000000001", "19.990000000000001", "5e-324"])
def test_price_literal_is_validated_exactly_not_through_a_double(stack, literal):
    """A double makes these 0.00, 0.10 or 19.99: the literal has more than two decimals."""
    before = stack.counts()
    sku = uniq_sku("EXACT")
    resp = stack.post_raw("/products", body_of(sku=f'"{sku}"', price=literal))
    problem = assert_problem(resp, 422)
    assert problem["errors"] == [{"field": "price", "message": "must have at most two decimals"}]
    assert stack.counts() == before
    _, view = stack.create()
    resp = stack.request("PATCH", f"/products/{view['id']}", data='{"price":%s}' % literal,
                         headers={"Content-Type": "application/json"})
    assert assert_problem(resp, 422)["errors"][0]["field"] == "price"


@pytest.mark.parametrize("literal,text,cents", [
    ("19.99", "19.99", 1999),
    ("0", "0.00", 0),
    ("0.0", "0.00", 0),
    ("-0", "0.00", 0),
    ("0.1", "0.10", 10),
    ("1.5", "1.50", 150),
    ("10", "10.00", 1000),
    ("1e2", "100.00", 10000),
    ("1E2", "100.00", 10000),
    ("2.5e1", "25.00", 2500),
    ("1.500", "1.50", 150),
    ("0.01", "0.01", 1),
    ("999999999.99", "999999999.99", 99999999999),
])
def test_price_is_exact_with_two_decimals(stack, literal, text, cents):
    resp, view = stack.create(price=literal)
    assert f'"price":{text},' in resp.text, resp.text
    assert view["desc"] == f"Widget - ${text}"
    rows = sql(stack.db, f"SELECT price_cents, {sql_typeof('price_cents')} FROM products "
               "WHERE id=?", (view["id"],))
    assert len(rows) == 1 and rows[0][0] == cents and is_integer_type(rows[0][1]), rows


def test_stock_zero_is_unavailable(stack):
    resp, view = stack.create(stock=0)
    assert view["stock"] == 0
    assert view["available"] is False
    assert '"stock":0,"available":false,' in resp.text


def test_stock_maximum(stack):
    resp, view = stack.create(stock=2147483647)
    assert view["stock"] == 2147483647
    assert '"stock":2147483647,"available":true,' in resp.text


def test_name_is_trimmed(stack):
    resp, view = stack.create(name="  \t Padded Name \t  ")
    assert view["name"] == "Padded Name"
    assert view["desc"] == "Padded Name - $19.99"
    rows = sql(stack.db, "SELECT name FROM products WHERE id=?", (view["id"],))
    assert rows == [("Padded Name",)]


def test_name_utf8_and_escaping_kept_exact(stack):
    name = 'Caf\u00e9 \u2615 "quoted" back\\slash \U0001F600'
    resp, view = stack.create(name=name)
    assert view["name"] == name
    assert view["desc"] == name + " - $19.99"
    assert resp.text == expected_view_text(view)
    assert resp.content.decode("utf-8") == resp.text
    assert "Caf\u00e9 \u2615".encode() in resp.content  # kept as UTF-8, not \u-escaped
    rows = sql(stack.db, "SELECT name FROM products WHERE id=?", (view["id"],))
    assert rows == [(name,)]


def test_name_of_200_multibyte_characters_is_accepted(stack):
    name = "\u00e9" * 200
    _, view = stack.create(name=name)
    assert view["name"] == name


def test_sku_of_64_allowed_characters_is_accepted(stack):
    sku = ("Az09._-" + uniq_sku("s").replace("-", "_")) .ljust(64, "x")
    assert len(sku) == 64
    _, view = stack.create(sku=sku)
    assert view["sku"] == sku


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          'application/json;charset="UTF-8"',
                                          "application/json; foo=bar; charset=Utf-8 ",
                                          "application/json; ;;"])
def test_content_type_with_charset_is_accepted(stack, content_type):
    resp = stack.post_raw("/products", body_of(sku=json.dumps(uniq_sku())),
                          content_type=content_type)
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-16",
                                          "application/json; charset=iso-8859-1",
                                          'application/json; charset="utf-16le"',
                                          "application/json; charset=utf-8; charset=latin1",
                                          "application/json; charset="])
def test_a_charset_other_than_utf_8_is_415_and_creates_nothing(stack, content_type):
    """JSON is UTF-8 (RFC 8259). A body announced in another charset was read as UTF-8 and
    answered 201."""
    before = stack.counts()
    resp = stack.post_raw("/products", body_of(sku=json.dumps(uniq_sku())),
                          content_type=content_type)
    problem = assert_problem(resp, 415)
    assert "UTF-8" in problem["detail"], problem
    assert stack.counts() == before


def test_ids_increase_in_creation_order(stack):
    ids = [stack.create()[1]["id"] for _ in range(8)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(UUID7_RE.match(i) for i in ids)


def test_event_written_with_the_product(stack):
    resp, view = stack.create()
    rows = sql(stack.db, "SELECT product_id, type, version, payload FROM events "
               "WHERE product_id=?", (view["id"],))
    assert len(rows) == 1
    pid, typ, version, payload = rows[0]
    assert (pid, typ, version) == (view["id"], "ProductCreated", 1)
    assert json.loads(payload) == resp.json()


# ---------------------------------------------------------------------------------------------
# 422 validation: every failing field listed; nothing written

S = None  # a unique, valid sku
LONG_SKU = '"' + "a" * 65 + '"'
LONG_NAME = '"' + "n" * 201 + '"'

VALIDATION_CASES = {
    "sku-empty": (body_of(sku='""'), {"sku"}),
    "sku-too-long": (body_of(sku=LONG_SKU), {"sku"}),
    "sku-space": (body_of(sku='"bad sku"'), {"sku"}),
    "sku-slash": (body_of(sku='"a/b"'), {"sku"}),
    "sku-non-ascii": (body_of(sku='"caf\u00e9"'), {"sku"}),
    "sku-number": (body_of(sku="123"), {"sku"}),
    "sku-null": (body_of(sku="null"), {"sku"}),
    "sku-array": (body_of(sku='["a"]'), {"sku"}),
    "name-empty": (body_of(sku=S, name='""'), {"name"}),
    "name-blank": (body_of(sku=S, name='"   "'), {"name"}),
    "name-too-long": (body_of(sku=S, name=LONG_NAME), {"name"}),
    "name-control-char": (body_of(sku=S, name='"a\\u0001b"'), {"name"}),
    "name-newline": (body_of(sku=S, name='"a\\nb"'), {"name"}),
    "name-tab-inside": (body_of(sku=S, name='"a\\tb"'), {"name"}),
    "name-number": (body_of(sku=S, name="123"), {"name"}),
    "name-object": (body_of(sku=S, name="{}"), {"name"}),
    "price-string": (body_of(sku=S, price='"19.99"'), {"price"}),
    "price-negative": (body_of(sku=S, price="-1"), {"price"}),
    "price-negative-cent": (body_of(sku=S, price="-0.01"), {"price"}),
    "price-too-big": (body_of(sku=S, price="1000000000.00"), {"price"}),
    "price-three-decimals": (body_of(sku=S, price="0.001"), {"price"}),
    "price-19.999": (body_of(sku=S, price="19.999"), {"price"}),
    "price-huge-exponent": (body_of(sku=S, price="1e309"), {"price"}),
    "price-bool": (body_of(sku=S, price="true"), {"price"}),
    "price-null": (body_of(sku=S, price="null"), {"price"}),
    "stock-float": (body_of(sku=S, stock="5.0"), {"stock"}),
    "stock-fraction": (body_of(sku=S, stock="1.5"), {"stock"}),
    "stock-string": (body_of(sku=S, stock='"5"'), {"stock"}),
    "stock-negative": (body_of(sku=S, stock="-1"), {"stock"}),
    "stock-too-big": (body_of(sku=S, stock="2147483648"), {"stock"}),
    "stock-way-too-big": (body_of(sku=S, stock="99999999999999999999"), {"stock"}),
    "stock-null": (body_of(sku=S, stock="null"), {"stock"}),
    "unknown-field": (body_of(sku=S, extra=',"color":"red"'), {"color"}),
    "unknown-id-field": (body_of(sku=S, extra=',"id":"x"'), {"id"}),
    "unknown-version-field": (body_of(sku=S, extra=',"version":1'), {"version"}),
    "all-four-bad": (body_of(sku='""', name='""', price='"x"', stock="-1"),
                     {"sku", "name", "price", "stock"}),
    "bad-and-unknown": (body_of(sku='"ok"', price="0.001", extra=',"extra":1'),
                        {"price", "extra"}),
}

MISSING_CASES = {
    "empty-object": ("{}", {"sku", "name", "price", "stock"}),
    "missing-stock": ('{"sku":"%s","name":"n","price":1}' % uniq_sku(), {"stock"}),
    "missing-sku-and-price": ('{"name":"n","stock":1}', {"sku", "price"}),
}


@pytest.mark.parametrize("body,fields", list(VALIDATION_CASES.values()),
                         ids=list(VALIDATION_CASES))
def test_validation_errors_list_every_field(stack, body, fields):
    before = stack.counts()
    resp = stack.post_raw("/products", body)
    problem = assert_problem(resp, 422)
    errors = problem.get("errors")
    assert isinstance(errors, list), problem
    for e in errors:
        assert set(e) >= {"field", "message"}, e
        assert isinstance(e["message"], str) and e["message"], e
    assert {e["field"] for e in errors} == fields, errors
    assert len(errors) == len(fields), errors
    assert stack.counts() == before


def test_many_unknown_fields_do_not_hide_the_bad_known_ones(stack):
    """20 unknown fields ahead of four bad ones: the 422 listed the first 16 unknown fields
    only, said "16 fields failed", and never named sku, name, price or stock. Now every bad
    field of the body's own is listed, the first 16 unknown ones with them, and the detail
    counts all 24."""
    before = stack.counts()
    unknown = "".join(f'"k{i}":1,' for i in range(20))
    resp = stack.post_raw("/products", "{" + unknown + body_of(sku='""', name='""', price="-1",
                                                                stock="-1")[1:])
    problem = assert_problem(resp, 422)
    fields = [e["field"] for e in problem["errors"]]
    assert fields == [f"k{i}" for i in range(16)] + ["sku", "name", "price", "stock"], fields
    assert problem["detail"] == ("24 fields failed validation: see errors (it lists the first "
                                 "16 of the 20 unknown fields)"), problem
    assert stack.counts() == before


@pytest.mark.parametrize("body,fields", list(MISSING_CASES.values()), ids=list(MISSING_CASES))
def test_missing_fields_are_required(stack, body, fields):
    before = stack.counts()
    resp = stack.post_raw("/products", body)
    problem = assert_problem(resp, 422)
    errors = problem["errors"]
    assert {e["field"] for e in errors} == fields, errors
    assert len(errors) == len(fields), errors
    for e in errors:
        assert "is required" in e["message"], e
    assert stack.counts() == before


def test_validation_problem_does_not_create_the_sku(stack):
    sku = uniq_sku()
    resp = stack.post_raw("/products", body_of(sku=json.dumps(sku), price="0.001"))
    assert_problem(resp, 422)
    assert sql(stack.db, "SELECT COUNT(*) FROM products WHERE sku=?", (sku,)) == [(0,)]
    assert stack.get(f"/products/by-sku/{sku}").status_code == 404
    # the sku is still free
    stack.create(sku=sku)


# ---------------------------------------------------------------------------------------------
# 400 malformed body

MALFORMED = {
    "invalid-json": '{"sku":',
    "not-json": "hello",
    "empty": "",
    "whitespace-only": "   ",
    "array": "[]",
    "array-of-object": '[{"sku":"a","name":"n","price":1,"stock":1}]',
    "string": '"text"',
    "number": "42",
    "null": "null",
    "true": "true",
    "duplicate-keys": '{"sku":"a","sku":"b","name":"n","price":1,"stock":1}',
    "duplicate-keys-same-value": '{"sku":"a","name":"n","price":1,"stock":1,"stock":1}',
    "nan": '{"sku":"a","name":"n","price":NaN,"stock":1}',
    "infinity": '{"sku":"a","name":"n","price":Infinity,"stock":1}',
    "minus-infinity": '{"sku":"a","name":"n","price":-Infinity,"stock":1}',
    "trailing-garbage": '{"sku":"a","name":"n","price":1,"stock":1} x',
    "two-objects": '{"sku":"a","name":"n","price":1,"stock":1}{}',
    "trailing-comma": '{"sku":"a","name":"n","price":1,"stock":1,}',
    "single-quotes": "{'sku':'a'}",
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_body_is_400(stack, body):
    before = stack.counts()
    resp = stack.post_raw("/products", body)
    assert_problem(resp, 400)
    assert stack.counts() == before


def test_invalid_utf8_is_rejected(stack):
    """Invalid UTF-8 is either not JSON (400) or an invalid name (422); never stored."""
    before = stack.counts()
    body = b'{"sku":"%s","name":"ab\xff\xfe","price":1,"stock":1}' % uniq_sku().encode()
    resp = stack.post_raw("/products", body)
    assert resp.status_code in (400, 422), resp.text
    problem = assert_problem(resp, resp.status_code)
    if resp.status_code == 422:
        assert [e["field"] for e in problem["errors"]] == ["name"], problem
    assert stack.counts() == before


# ---------------------------------------------------------------------------------------------
# 415 content type


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx", "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_415(stack, ctype):
    before = stack.counts()
    resp = stack.post_raw("/products", body_of(sku=json.dumps(uniq_sku())), content_type=ctype)
    assert_problem(resp, 415)
    assert stack.counts() == before


# ---------------------------------------------------------------------------------------------
# 413 body too large


def test_body_over_64k_is_413(stack):
    before = stack.counts()
    body = body_of(sku=json.dumps(uniq_sku()), name='"' + "n" * 70000 + '"')
    assert len(body) > 70000
    resp = requests.post(stack.url("/products"), data=body.encode(),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert_problem(resp, 413)
    assert stack.counts() == before


def test_body_limit_is_exactly_65536_bytes(stack):
    before = stack.counts()
    core = body_of(sku=json.dumps(uniq_sku()))
    at_limit = core + " " * (65536 - len(core))  # JSON whitespace after the object is allowed
    assert len(at_limit) == 65536
    resp = stack.post_raw("/products", at_limit)
    assert resp.status_code == 201, resp.text
    over = body_of(sku=json.dumps(uniq_sku()))
    over = over + " " * (65537 - len(over))
    resp = requests.post(stack.url("/products"), data=over.encode(),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert_problem(resp, 413)
    assert stack.counts() == (before[0] + 1, before[1] + 1)


def test_chunked_body_over_64k_is_413(stack):
    before = stack.counts()
    body = body_of(sku=json.dumps(uniq_sku()), name='"' + "n" * 70000 + '"').encode()

    def chunks():
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]
    resp = requests.post(stack.url("/products"), data=chunks(),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert_problem(resp, 413)
    assert stack.counts() == before


# ---------------------------------------------------------------------------------------------
# 409 duplicate sku


def test_duplicate_sku_is_409_with_existing_id(stack):
    sku = uniq_sku("DUP")
    _, first = stack.create(sku=sku, name="First", price="1.00", stock=1)
    before = stack.counts()
    resp = stack.post_raw("/products", body_of(sku=json.dumps(sku), name='"Second"',
                                               price="2.00", stock="2"))
    problem = assert_problem(resp, 409)
    assert problem.get("existing_id") == first["id"], problem
    assert stack.counts() == before
    # the original is untouched, on both sides
    assert sql(stack.db, "SELECT id, name, price_cents, stock, version FROM products "
               "WHERE sku=?", (sku,)) == [(first["id"], "First", 100, 1, 1)]
    got = stack.get(f"/products/by-sku/{sku}")
    assert got.status_code == 200
    assert got.text == first["raw"]
    assert redis_view(stack.r, first["id"])["raw"].decode() == first["raw"]


def test_problem_bodies_have_the_rfc9457_members(stack):
    resp = stack.post_raw("/products", "[]")
    body = assert_problem(resp, 400)
    jsonschema.validate(body, PROBLEM_SCHEMA)
    assert resp.headers.get("X-Request-Id")

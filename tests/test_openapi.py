"""The OpenAPI document (pulsestack/api/openapi.json) stays true to the app.

- it is served at GET /api/openapi.json;
- every route the app registers is described, and nothing else is;
- every operation has a unique operationId, responses, and path parameters
  that match its path; authenticated ones declare bearer security and a 401;
- every $ref resolves;
- real answers from a running server (both databases) match the documented
  status codes, schemas and required headers.

The schema check is a small validator for the subset of JSON Schema the
document uses (no dependency); a keyword it does not know fails the test,
so the document cannot silently outgrow it. When `openapi-spec-validator`
happens to be installed, the document is also validated against the spec.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pulsestack.api.openapi import SPEC_PATH
from pulsestack.app import create_app
from pulsestack.config import load_config

DOC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/api/openapi.json"),
          ("post", "/api/auth/register"), ("post", "/api/auth/login"),
          ("get", "/ws")}  # /ws authenticates in its first frame, not with a header


def operations() -> list[tuple[str, str, dict]]:
    return [(path, method, item[method]) for path, item in DOC["paths"].items() for method in METHODS if method in item]


def registered_routes() -> set[tuple[str, str]]:
    """(path, method) of every route the app registers; aiohttp's {name} is OpenAPI's too."""
    app = create_app(load_config(Path(__file__).with_name("empty.toml")))  # does not connect until startup
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        found.add((route.resource.canonical, route.method.lower()))
    return found


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), f"only local refs are used: {ref}"
    node: Any = DOC
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"])
    return node


def walk(node: Any, where: str = "#"):
    yield where, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}/{i}")


# --- the document itself -------------------------------------------------------------------------


async def test_document_is_served(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["openapi"] == "3.1.0"
    assert body == DOC


def test_every_registered_route_is_documented_and_nothing_else():
    documented = {(path, method) for path, method, _ in operations()}
    registered = registered_routes()
    assert registered - documented == set(), "routes the app serves but openapi.json does not describe"
    assert documented - registered == set(), "operations in openapi.json that the app does not serve"


def test_operations_have_unique_ids_and_responses():
    ids = [o.get("operationId") for _, _, o in operations()]
    assert all(isinstance(i, str) and i for i in ids), "every operation needs an operationId"
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {sorted(i for i in ids if ids.count(i) > 1)}"
    for path, method, o in operations():
        assert o.get("responses"), f"{method.upper()} {path} documents no response"
        for status in o["responses"]:
            assert status == "default" or re.fullmatch(r"[1-5]\d\d", status), f"{method.upper()} {path}: bad status {status}"


def test_path_parameters_match_the_path():
    for path, method, o in operations():
        params = [deref(p) for p in DOC["paths"][path].get("parameters", []) + o.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), f"{method.upper()} {path}: path parameters {in_path}"
        assert all(p["required"] for p in params if p["in"] == "path")


def test_security_is_declared_where_the_app_wants_a_token():
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    for path, method, o in operations():
        security = o.get("security", DOC.get("security", []))
        if (method, path) in PUBLIC:
            assert security == [], f"{method.upper()} {path} is public"
            assert "401" not in o["responses"] or path == "/api/auth/login"
        else:
            assert security == [{"bearerAuth": []}], f"{method.upper()} {path} needs bearer auth"
            assert "401" in o["responses"], f"{method.upper()} {path} can answer 401"


def test_every_ref_resolves():
    refs = [(where, node["$ref"]) for where, node in walk(DOC) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for where, ref in refs:
        assert isinstance(ref, str), where
        resolve(ref)


def test_every_error_response_uses_the_error_shape():
    for path, method, o in operations():
        for status, response in o["responses"].items():
            if status != "default" and int(status) < 400:
                continue
            schema = deref(deref(response)["content"]["application/json"]["schema"])
            assert schema["required"] == ["error"], f"{method.upper()} {path} {status}"


def test_document_passes_openapi_spec_validator_when_installed():
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator is not installed (optional)")
    validator.validate(DOC)


# --- a tiny validator for the JSON Schema subset the document uses -----------------------------

ANNOTATIONS = {"description", "examples", "default", "title", "format", "deprecated", "readOnly", "writeOnly"}
ASSERTIONS = {"$ref", "type", "properties", "required", "additionalProperties", "propertyNames", "items", "minItems",
              "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "pattern", "minLength", "maxLength", "minimum",
              "maximum"}
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def _check_format(value: str, fmt: str) -> bool:
    if fmt == "uuid":
        try:
            return str(uuid.UUID(value)) == value
        except ValueError:
            return False
    if fmt == "date-time":
        try:
            return datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False
    return True  # email and others: annotation only


def conforms(value: Any, schema: Any, where: str = "$") -> list[str]:
    """Problems found checking `value` against `schema` ([] when it conforms)."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{where}: not allowed"]
    unknown = set(schema) - ANNOTATIONS - ASSERTIONS
    assert not unknown, f"the test's validator does not know {unknown}; teach it"
    if "$ref" in schema:
        problems = conforms(value, resolve(schema["$ref"]), where)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return problems + (conforms(value, rest, where) if set(rest) - ANNOTATIONS else [])
    problems: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            return [f"{where}: {value!r} is not of type {types}"]
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    for key, combine in (("anyOf", any), ("oneOf", lambda oks: sum(oks) == 1)):
        if key in schema:
            results = [conforms(value, s, where) for s in schema[key]]
            if not combine([not r for r in results]):
                problems.append(f"{where}: {key} failed: {results}")
    for sub in schema.get("allOf", []):
        problems += conforms(value, sub, where)
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if "format" in schema and not _check_format(value, schema["format"]):
            problems.append(f"{where}: {value!r} is not a {schema['format']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: above {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing {name!r}")
        for name, item in value.items():
            if "propertyNames" in schema:
                problems += conforms(name, schema["propertyNames"], f"{where}[{name!r}]")
            if name in props:
                problems += conforms(item, props[name], f"{where}.{name}")
            elif "additionalProperties" in schema:
                problems += conforms(item, schema["additionalProperties"], f"{where}.{name}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: more than {schema['maxItems']} items")
        for i, item in enumerate(value if "items" in schema else []):
            problems += conforms(item, schema["items"], f"{where}[{i}]")
    return problems


def test_the_validator_catches_what_it_should():
    user = resolve("#/components/schemas/User")
    good = {"id": str(uuid.uuid4()), "email": "a@b.co", "system_role": "user", "created_at": "2026-01-02T03:04:05.123456Z"}
    assert conforms(good, user) == []
    assert conforms({**good, "password_hash": "x"}, user)
    assert conforms({**good, "created_at": "2026-01-02T03:04:05+00:00"}, user)
    assert conforms({**good, "id": "nope"}, user)
    assert conforms({k: v for k, v in good.items() if k != "email"}, user)
    assert conforms({**good, "system_role": "root"}, user)


def test_the_documented_examples_conform():
    for where, node in walk(DOC):
        if not isinstance(node, dict) or "schema" not in node or "example" not in node:
            continue
        assert conforms(node["example"], node["schema"]) == [], where
    for name, schema in DOC["components"]["schemas"].items():
        for example in schema.get("examples", []):
            assert conforms(example, schema) == [], name


# --- real answers match the document ---------------------------------------------------------------


async def documented(resp, method: str, path: str) -> Any:
    """Check a live answer against the document; return its JSON body (None for no body)."""
    o = DOC["paths"][path][method]
    status = str(resp.status)
    assert status in o["responses"], f"{method.upper()} {path} answered undocumented {status}: {await resp.text()}"
    spec = deref(o["responses"][status])
    for name, header in spec.get("headers", {}).items():
        if deref(header).get("required"):
            assert name in resp.headers, f"{method.upper()} {path} {status}: no {name} header"
    content = spec.get("content")
    if content is None:
        assert await resp.read() == b"", f"{method.upper()} {path} {status} should have no body"
        return None
    assert resp.content_type in content, f"{method.upper()} {path} {status}: {resp.content_type}"
    data = await resp.json()
    problems = conforms(data, content[resp.content_type]["schema"])
    assert problems == [], f"{method.upper()} {path} {status}: {problems}"
    return data


def caller_of(client):
    """`call(method, documented_path, url=None, token=None, **request_kwargs) -> (status, body)`,
    checking every answer against the document."""

    async def call(method: str, path: str, url: str | None = None, token: str | None = None, headers=None, **kw) -> Any:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        resp = await client.request(method, url or path, headers=headers, **kw)
        return resp.status, await documented(resp, method.lower(), path)

    return call


async def test_live_answers_match_the_document(client):
    call = caller_of(client)
    reg = "/api/auth/register"
    assert (await call("GET", "/healthz"))[0] == 200
    assert (await call("GET", "/readyz"))[0] == 200
    assert (await call("GET", "/api/openapi.json"))[0] == 200

    status, ann = await call("POST", reg, json={"email": "Ann@Example.com", "password": "correct horse"})
    assert status == 201 and ann["user"]["email"] == "ann@example.com"
    status, bob = await call("POST", reg, json={"email": "bob@example.com", "password": "correct horse"})
    status, cat = await call("POST", reg, json={"email": "cat@example.com", "password": "correct horse"})
    assert (await call("POST", reg, json={"email": "ann@example.com", "password": "correct horse"}))[0] == 409
    assert (await call("POST", reg, json={"email": "nope", "password": "short"}))[0] == 422
    assert (await call("POST", reg, json={}))[0] == 422
    assert (await call("POST", reg, data=b"{not json"))[0] == 400
    assert (await call("POST", reg, data=b"x" * (64 * 1024 + 1)))[0] == 413

    login = "/api/auth/login"
    status, session = await call("POST", login, json={"email": "ANN@example.com", "password": "correct horse"})
    assert status == 200
    A, B, C = session["token"], bob["token"], cat["token"]
    assert (await call("POST", login, json={"email": 1, "password": None}))[0] == 422
    for _ in range(5):
        assert (await call("POST", login, json={"email": "cat@example.com", "password": "wrong password"}))[0] == 401
    status, limited = await call("POST", login, json={"email": "cat@example.com", "password": "correct horse"})
    assert status == 429 and limited["error"]["details"]["retry_after"] > 0

    status, me = await call("GET", "/api/me", token=A)
    assert status == 200 and me["workspaces"] == []
    assert (await call("GET", "/api/me"))[0] == 401
    assert (await call("GET", "/api/me", token="not-a-token"))[0] == 401

    wss = "/api/workspaces"
    status, ws = await call("POST", wss, token=A, json={"name": "Acme Corp", "slug": "acme"})
    assert status == 201 and ws["role"] == "owner"
    assert (await call("POST", wss, token=B, json={"name": "Other", "slug": "acme"}))[0] == 409
    assert (await call("POST", wss, token=A, json={"name": " ", "slug": "Bad_Slug"}))[0] == 422
    status, listed = await call("GET", wss, token=A)
    assert status == 200 and [w["slug"] for w in listed["items"]] == ["acme"]

    one = "/api/workspaces/{slug}"
    assert (await call("GET", one, "/api/workspaces/acme", token=A))[0] == 200
    assert (await call("GET", one, "/api/workspaces/acme", token=B))[0] == 404

    members = "/api/workspaces/{slug}/members"
    url = "/api/workspaces/acme/members"
    status, bob_member = await call("POST", members, url, token=A, json={"email": "bob@example.com", "role": "admin"})
    assert status == 201 and bob_member["role"] == "admin"
    assert (await call("POST", members, url, token=A, json={"email": "cat@example.com"}))[0] == 201
    assert (await call("POST", members, url, token=A, json={"email": "cat@example.com"}))[0] == 409
    assert (await call("POST", members, url, token=A, json={"email": "nobody@example.com"}))[0] == 404
    assert (await call("POST", members, url, token=A, json={"email": "cat@example.com", "role": "owner"}))[0] == 422
    assert (await call("POST", members, url, token=C, json={"email": "ann@example.com"}))[0] == 403

    status, page = await call("GET", members, url + "?limit=2", token=C)
    assert status == 200 and len(page["items"]) == 2 and page["next_cursor"]
    status, rest = await call("GET", members, f"{url}?limit=2&cursor={page['next_cursor']}", token=C)
    assert status == 200 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert (await call("GET", members, url + "?limit=0", token=C))[0] == 400
    assert (await call("GET", members, url + "?cursor=garbage", token=C))[0] == 400

    assert (await call("PATCH", one, "/api/workspaces/acme", token=C, json={"name": "Nope"}))[0] == 403
    status, renamed = await call("PATCH", one, "/api/workspaces/acme", token=B, json={"name": "Acme Inc"})
    assert status == 200 and renamed["name"] == "Acme Inc" and renamed["role"] == "admin"
    assert (await call("PATCH", one, "/api/workspaces/acme", token=B, json={"name": ""}))[0] == 422

    member = "/api/workspaces/{slug}/members/{user_id}"
    ann_id, cat_id = ann["user"]["id"], cat["user"]["id"]
    status, changed = await call("PATCH", member, f"{url}/{cat_id}", token=B, json={"role": "admin"})
    assert status == 200 and changed["role"] == "admin"
    assert (await call("PATCH", member, f"{url}/{ann_id}", token=B, json={"role": "member"}))[0] == 409
    assert (await call("PATCH", member, f"{url}/not-a-uuid", token=B, json={"role": "member"}))[0] == 404
    assert (await call("PATCH", member, f"{url}/{cat_id}", token=B, json={}))[0] == 422
    assert (await call("DELETE", member, f"{url}/{ann_id}", token=A))[0] == 409
    assert (await call("DELETE", member, f"{url}/{cat_id}", token=C))[0] == 204  # leaves

    assert (await call("DELETE", one, "/api/workspaces/acme", token=B))[0] == 403
    assert (await call("DELETE", one, "/api/workspaces/acme", token=A))[0] == 204
    assert (await call("GET", one, "/api/workspaces/acme", token=A))[0] == 404

    assert (await call("POST", "/api/auth/logout", token=A))[0] == 204
    assert (await call("GET", "/api/me", token=A))[0] == 401
    assert (await call("POST", "/api/auth/logout", token=A))[0] == 401


async def test_live_notification_answers_match_the_document(client):
    call = caller_of(client)
    reg = "/api/auth/register"
    tokens, ids = {}, {}
    for name in ("ann", "bob", "cat", "dan"):
        _, issued = await call("POST", reg, json={"email": f"{name}@example.com", "password": "correct horse"})
        tokens[name], ids[name] = issued["token"], issued["user"]["id"]
    A, B, C, D = (tokens[n] for n in ("ann", "bob", "cat", "dan"))
    await call("POST", "/api/workspaces", token=A, json={"name": "Acme", "slug": "acme"})
    await call("POST", "/api/workspaces/{slug}/members", "/api/workspaces/acme/members", token=A, json={"email": "bob@example.com", "role": "admin"})
    await call("POST", "/api/workspaces/{slug}/members", "/api/workspaces/acme/members", token=A, json={"email": "cat@example.com"})

    sends, url = "/api/workspaces/{slug}/notifications", "/api/workspaces/acme/notifications"
    status, sent = await call("POST", sends, url, token=A, json={"title": "Deploy at 5", "message": "soon", "broadcast": True})
    assert status == 201 and sent["recipient_count"] == 2 and sent["notification"]["type"] == "info"
    status, direct = await call("POST", sends, url, token=C, json={"title": "hi", "type": "chat.message", "recipients": [ids["bob"]]})
    assert status == 201 and direct["recipient_count"] == 1 and direct["notification"]["broadcast"] is False
    assert (await call("POST", sends, url, token=C, json={"title": "all", "broadcast": True}))[0] == 403
    assert (await call("POST", sends, url, token=C, json={"title": "x", "recipients": [ids["dan"]]}))[0] == 422
    assert (await call("POST", sends, url, token=A, json={"title": "x"}))[0] == 422
    assert (await call("POST", sends, url, token=D, json={"title": "x", "broadcast": True}))[0] == 404
    assert (await call("POST", sends, url, token=A, headers={"Idempotency-Key": "k" * 256}, json={"title": "x", "broadcast": True}))[0] == 400
    resp = await client.post(url, headers={"Authorization": f"Bearer {A}", "Idempotency-Key": "once"}, json={"title": "once", "broadcast": True})
    first = await documented(resp, "post", sends)
    resp = await client.post(url, headers={"Authorization": f"Bearer {A}", "Idempotency-Key": "once"}, json={"title": "once", "broadcast": True})
    assert resp.headers.get("Idempotent-Replayed") == "true"
    assert await documented(resp, "post", sends) == first

    status, history = await call("GET", sends, url + "?limit=2", token=B)
    assert status == 200 and len(history["items"]) == 2 and history["next_cursor"]
    status, older = await call("GET", sends, f"{url}?limit=2&cursor={history['next_cursor']}", token=B)
    assert status == 200 and len(older["items"]) == 1 and older["next_cursor"] is None
    assert (await call("GET", sends, url, token=C))[0] == 403

    one = "/api/workspaces/{slug}/notifications/{notification_id}"
    status, counts = await call("GET", one, f"{url}/{direct['notification']['id']}", token=C)  # the sender
    assert status == 200 and (counts["recipient_count"], counts["read_count"]) == (1, 0)
    assert (await call("GET", one, f"{url}/{sent['notification']['id']}", token=C))[0] == 403
    assert (await call("GET", one, f"{url}/{ids['dan']}", token=B))[0] == 404

    inbox = "/api/notifications"
    status, page = await call("GET", inbox, inbox + "?limit=2", token=B)
    assert status == 200 and len(page["items"]) == 2 and page["next_cursor"]
    status, rest = await call("GET", inbox, f"{inbox}?limit=2&cursor={page['next_cursor']}", token=B)
    assert status == 200 and len(rest["items"]) == 1
    status, chats = await call("GET", inbox, inbox + "?workspace=acme&status=unread&type=chat.message", token=B)
    assert status == 200 and [i["id"] for i in chats["items"]] == [direct["notification"]["id"]]
    assert (await call("GET", inbox, inbox + "?status=new", token=B))[0] == 400
    assert (await call("GET", inbox, inbox + "?workspace=nope", token=B))[0] == 404

    status, counts = await call("GET", "/api/notifications/unread-count", token=B)
    assert status == 200 and counts["total"] == 3
    nid = direct["notification"]["id"]
    status, item = await call("POST", "/api/notifications/{notification_id}/read", f"/api/notifications/{nid}/read", token=B)
    assert status == 200 and item["is_read"] and item["read_at"]
    status, item = await call("POST", "/api/notifications/{notification_id}/unread", f"/api/notifications/{nid}/unread", token=B)
    assert status == 200 and not item["is_read"] and item["read_at"] is None
    assert (await call("POST", "/api/notifications/{notification_id}/read", f"/api/notifications/{nid}/read", token=D))[0] == 404
    status, done = await call("POST", "/api/notifications/read", token=B, json={"ids": [nid, ids["dan"]]})
    assert status == 200 and done == {"updated": 1}
    assert (await call("POST", "/api/notifications/read", token=B, json={"ids": []}))[0] == 422
    assert (await call("POST", "/api/notifications/read-all", token=B, json={"before": "yesterday"}))[0] == 422
    assert (await call("POST", "/api/notifications/read-all", token=B, json={"workspace": "nope"}))[0] == 404
    status, done = await call("POST", "/api/notifications/read-all", token=B, json={"workspace": "acme", "before": page["items"][0]["created_at"]})
    assert status == 200 and done == {"updated": 2}
    assert (await call("POST", "/api/notifications/read-all", token=C))[0] == 200  # no body at all
    status, counts = await call("GET", "/api/notifications/unread-count", token=B)
    assert counts == {"total": 0, "workspaces": {}}

    dismiss = "/api/notifications/{notification_id}"
    assert (await call("DELETE", dismiss, f"/api/notifications/{nid}", token=B))[0] == 204
    assert (await call("DELETE", dismiss, f"/api/notifications/{nid}", token=B))[0] == 404
    assert (await call("DELETE", one, f"{url}/{sent['notification']['id']}", token=C))[0] == 403
    assert (await call("DELETE", one, f"{url}/{sent['notification']['id']}", token=A))[0] == 204
    assert (await call("GET", one, f"{url}/{sent['notification']['id']}", token=A))[0] == 404

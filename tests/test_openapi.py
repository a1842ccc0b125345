"""The OpenAPI document is generated from the app's operations and stays true to it.

- it is what GET /api/openapi.json serves and `pulsestack openapi` prints;
- it passes openapi-spec-validator (OpenAPI 3.1);
- every route the app registers is described, and nothing else is;
- every operation has a unique operationId, lists its real error statuses
  (never just `default`), and declares bearer security where a token is needed;
- real answers from a running server (both databases) match the documented
  status codes, schemas and required headers (checked with jsonschema).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import BODY_MAX, IDEMPOTENCY_KEY_MAX
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pulsestack.api.openapi import document
from pulsestack.app import create_app
from pulsestack.config import load_config

APP = create_app(load_config(Path(__file__).with_name("empty.toml")))  # does not connect until startup
DOC: dict[str, Any] = document(APP)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/api/openapi.json"),
          ("post", "/api/auth/register"), ("post", "/api/auth/login"),
          ("get", "/ws"),  # /ws authenticates in its first frame, not with a header
          ("get", "/"), ("get", "/static/{name}"),  # the browser client's files
          ("get", "/metrics")}  # Prometheus scrapes without a token
DOC_URI = "urn:pulsestack:openapi"
REGISTRY = Registry().with_resource(DOC_URI, Resource.from_contents(DOC, default_specification=DRAFT202012))


def operations() -> list[tuple[str, str, dict]]:
    return [(path, method, item[method]) for path, item in DOC["paths"].items() for method in METHODS if method in item]


def pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def problems(value: Any, *where: str) -> list[str]:
    """What is wrong with `value` against the schema at DOC[where...] ([] when it conforms)."""
    validator = Draft202012Validator({"$ref": f"{DOC_URI}#/{pointer(*where)}"}, registry=REGISTRY,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]


# --- the document itself -------------------------------------------------------------------------


async def test_document_is_served(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == DOC


async def test_pulsestack_openapi_prints_the_served_document(client, tmp_path):
    served = await (await client.get("/api/openapi.json")).read()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSESTACK_")}

    printed = subprocess.run([sys.executable, "-m", "pulsestack", "openapi"], cwd=tmp_path, env=env,
                             capture_output=True, timeout=60)

    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == served


def test_document_is_valid_openapi_3_1():
    assert DOC["openapi"] == "3.1.0"
    validate_spec(DOC)


def test_every_registered_route_is_documented_and_nothing_else():
    documented = {(path, method) for path, method, _ in operations()}
    registered = {(r.resource.canonical, r.method.lower()) for r in APP.router.routes() if r.method not in ("HEAD", "*")}
    assert registered == documented


def test_operations_have_unique_ids_and_their_real_error_statuses():
    ids = [o["operationId"] for _, _, o in operations()]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {sorted(i for i in ids if ids.count(i) > 1)}"
    for path, method, o in operations():
        statuses = set(o["responses"])
        assert "default" not in statuses, f"{method.upper()} {path}"
        assert all(re.fullmatch(r"[1-5]\d\d", s) for s in statuses)
        if "{" in path:
            assert "404" in statuses, f"{method.upper()} {path} can answer 404"
        if "requestBody" in o:
            assert {"400", "413", "422"} <= statuses, f"{method.upper()} {path} takes a body"
        if path not in ("/healthz", "/api/openapi.json", "/ws", "/", "/static/{name}", "/metrics"):
            assert "503" in statuses, f"{method.upper()} {path} uses the database"


def test_security_is_declared_where_the_app_wants_a_token():
    for path, method, o in operations():
        if (method, path) in PUBLIC:
            assert o["security"] == [], f"{method.upper()} {path} is public"
            assert "401" not in o["responses"] or path == "/api/auth/login"
        else:
            assert o["security"] == [{"bearerAuth": []}], f"{method.upper()} {path} needs bearer auth"
            assert "401" in o["responses"], f"{method.upper()} {path} can answer 401"


def test_every_error_response_uses_the_error_shape():
    for path, method, o in operations():
        for status, response in o["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_no_pydantic_spelling_leaks_into_the_schemas():
    """Bounds must reach clients as JSON Schema (minimum, maximum), which tools
    enforce; pydantic's own names (ge, le, ...) would be silently ignored."""
    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    leaked = keys(DOC["components"]["schemas"]) | keys([p for *_, o in operations() for p in o.get("parameters", [])])
    assert not leaked & {"ge", "le", "gt", "lt", "multiple_of", "min_length", "max_length"}


def test_request_limits_in_the_document_are_the_validators():
    """The document is generated from the models that validate requests, so a
    limit in one is the limit in the other: probe each at its edge."""
    from pulsestack.models.requests import NewNotification

    schema = DOC["components"]["schemas"]["NewNotification"]["properties"]
    title_max = schema["title"]["maxLength"]
    ids_max = schema["recipients"]["anyOf"][0]["maxItems"]
    ok = {"title": "x" * title_max, "broadcast": True}
    assert NewNotification.model_validate(ok).title == ok["title"]
    assert problems(ok, "components", "schemas", "NewNotification") == []
    for bad in ({**ok, "title": "x" * (title_max + 1)},
                {"title": "x", "recipients": [f"00000000-0000-7000-8000-{i:012d}" for i in range(ids_max + 1)]},
                {**ok, "mesage": "a typo"}):
        assert problems(bad, "components", "schemas", "NewNotification"), bad
        try:
            NewNotification.model_validate(bad)
        except ValueError:
            continue
        raise AssertionError(f"the validator accepted {list(bad)}")


# --- real answers match the document ---------------------------------------------------------------


def header_spec(header: dict) -> dict:
    if "$ref" in header:
        return DOC["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]
    return header


async def documented(resp, method: str, path: str) -> Any:
    """Check a live answer against the document; return its JSON body (None for no body)."""
    o = DOC["paths"][path][method]
    status = str(resp.status)
    assert status in o["responses"], f"{method.upper()} {path} answered undocumented {status}: {await resp.text()}"
    spec = o["responses"][status]
    for name, header in spec.get("headers", {}).items():
        if header_spec(header).get("required"):
            assert name in resp.headers, f"{method.upper()} {path} {status}: no {name} header"
    content = spec.get("content")
    if content is None:
        assert await resp.read() == b"", f"{method.upper()} {path} {status} should have no body"
        return None
    assert resp.content_type in content, f"{method.upper()} {path} {status}: {resp.content_type}"
    data = await resp.json()
    found = problems(data, "paths", path, method, "responses", status, "content", resp.content_type, "schema")
    assert found == [], f"{method.upper()} {path} {status}: {found}"
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
    assert (await call("POST", reg, data=b"x" * (BODY_MAX + 1)))[0] == 413

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
    assert (await call("POST", sends, url, token=A, headers={"Idempotency-Key": "k" * (IDEMPOTENCY_KEY_MAX + 1)}, json={"title": "x", "broadcast": True}))[0] == 400
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
    assert counts == {"total": 0, "workspaces": {}, "unseen": {"total": 0, "workspaces": {}}}

    dismiss = "/api/notifications/{notification_id}"
    assert (await call("DELETE", dismiss, f"/api/notifications/{nid}", token=B))[0] == 204
    assert (await call("DELETE", dismiss, f"/api/notifications/{nid}", token=B))[0] == 404
    assert (await call("DELETE", one, f"{url}/{sent['notification']['id']}", token=C))[0] == 403
    assert (await call("DELETE", one, f"{url}/{sent['notification']['id']}", token=A))[0] == 204
    assert (await call("GET", one, f"{url}/{sent['notification']['id']}", token=A))[0] == 404


async def test_live_mute_answers_match_the_document(client):
    call = caller_of(client)
    tokens = {}
    for name in ("ann", "bob", "dan"):
        _, issued = await call("POST", "/api/auth/register", json={"email": f"{name}@example.com", "password": "correct horse"})
        tokens[name] = issued["token"]
    A, B, D = tokens["ann"], tokens["bob"], tokens["dan"]
    await call("POST", "/api/workspaces", token=A, json={"name": "Acme", "slug": "acme"})
    await call("POST", "/api/workspaces/{slug}/members", "/api/workspaces/acme/members", token=A, json={"email": "bob@example.com"})

    mute, url = "/api/workspaces/{slug}/mute", "/api/workspaces/acme/mute"
    assert await call("GET", mute, url, token=B) == (200, {"muted": False, "types": None, "until": None})
    status, muted = await call("PUT", mute, url, token=B, json={"types": ["billing"], "until": "2999-01-01T00:00:00Z"})
    assert status == 200 and muted["types"] == ["billing"]
    assert await call("GET", mute, url, token=B) == (200, muted)
    assert (await call("PUT", mute, url, token=B, json={"until": "2000-01-01T00:00:00Z"}))[0] == 422
    assert (await call("PUT", mute, url, token=B, json={"types": ["Billing"]}))[0] == 422
    assert (await call("PUT", mute, url, token=B, data=b"[]"))[0] == 400
    assert (await call("PUT", mute, url, token=D, json={}))[0] == 404
    assert (await call("GET", mute, url))[0] == 401
    sends = "/api/workspaces/{slug}/notifications"
    status, sent = await call("POST", sends, "/api/workspaces/acme/notifications", token=A,
                              json={"title": "bill", "type": "billing.invoice", "broadcast": True})
    assert status == 201 and sent["recipient_count"] == 0
    status, sent = await call("POST", sends, "/api/workspaces/acme/notifications", token=A,
                              json={"title": "bill", "type": "billing.invoice", "broadcast": True, "critical": True})
    assert status == 201 and sent["recipient_count"] == 1
    assert (await call("POST", sends, "/api/workspaces/acme/notifications", token=B,
                       json={"title": "x", "recipients": [sent["notification"]["sender_id"]], "critical": True}))[0] == 403
    assert (await call("DELETE", mute, url, token=B))[0] == 204
    assert (await call("DELETE", mute, url, token=D))[0] == 404

"""CORS (pulsestack/api/cors.py) through the whole app: preflights and
answers for a listed origin, nothing for any other origin, nothing at all by
default, and /ws left alone.

CORS touches no data, so these tests run on SQLite only (the `dialect`
fixture below overrides the one in conftest.py that runs both).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web
from helpers import HANG_GUARD_S, create_workspace, expect_error, json_of, register, token_of

from pulsestack.api import cors, openapi
from pulsestack.app import create_app
from pulsestack.config import load_config

LISTED = "https://app.example.com"
ALSO_LISTED = "http://localhost:3000"
OTHER = "https://evil.example"


@pytest.fixture
def dialect() -> str:
    return "sqlite"


@pytest.fixture
def cors_config(database_url: str):
    return load_config(Path(__file__).with_name("empty.toml"), env={
        "PULSESTACK_DATABASE_URL": database_url,
        "PULSESTACK_CORS_ORIGINS": f"{LISTED}, HTTP://LOCALHOST:3000",
    })


@pytest.fixture
def answers() -> list[tuple[str, int, dict[str, str]]]:
    """(path, status, headers) of every answer the app prepares, websocket handshakes included."""
    return []


def recording(app: web.Application, answers: list) -> web.Application:
    async def record(request: web.Request, response: web.StreamResponse) -> None:
        answers.append((request.path, response.status, dict(response.headers)))

    app.on_response_prepare.append(record)  # after the CORS hook: sees its headers
    return app


@pytest.fixture
async def app_client(aiohttp_client, cors_config, db, answers):
    """The whole app with LISTED and ALSO_LISTED allowed, plus a route that fails with a bug."""
    app = create_app(cors_config, db=db)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app.router.add_get("/test-only/boom", boom)
    return await aiohttp_client(recording(app, answers))


def cors_headers(resp) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower().startswith("access-control-")}


def listed(names: str) -> set[str]:
    return {n.strip().lower() for n in names.split(",")}


def assert_readable_by(resp, origin: str) -> None:
    """What a browser needs to hand this answer, and the headers a client reads, to a page of `origin`."""
    assert resp.headers["Access-Control-Allow-Origin"] == origin, dict(resp.headers)
    assert "origin" in listed(resp.headers["Vary"])
    assert {"idempotent-replayed", "x-request-id", "retry-after"} <= listed(resp.headers["Access-Control-Expose-Headers"])
    assert "Access-Control-Allow-Credentials" not in resp.headers


def preflight(client, path: str, origin: str = LISTED, method: str = "POST", headers: str | None = None):
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=sent)


# --- preflights ---------------------------------------------------------------


@pytest.mark.parametrize("path, method", [
    ("/api/workspaces/acme/notifications", "POST"),
    ("/api/me", "GET"),
    ("/api/workspaces/acme", "PATCH"),
    (f"/api/notifications/{uuid.uuid4()}", "DELETE"),
    ("/api/auth/login", "POST"),
])
async def test_preflight_from_a_listed_origin(app_client, path, method):
    resp = await preflight(app_client, path, method=method, headers="authorization,content-type,idempotency-key,x-request-id")
    assert resp.status == 204, await resp.text()
    assert await resp.read() == b""
    assert resp.headers["Access-Control-Allow-Origin"] == LISTED
    assert listed(resp.headers["Access-Control-Allow-Methods"]) == {"get", "post", "put", "patch", "delete"}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= \
        listed(resp.headers["Access-Control-Allow-Headers"])
    assert resp.headers["Access-Control-Max-Age"] == str(cors.MAX_AGE_S)
    assert "origin" in listed(resp.headers["Vary"])
    assert "Access-Control-Allow-Credentials" not in resp.headers
    assert resp.headers["X-Request-Id"]  # a request like any other: it has an id and a log line


async def test_preflight_echoes_the_origin_as_sent_whatever_its_case(app_client):
    # Browsers send lower case; another client may not. The comparison
    # normalises; the answer repeats what was sent, which is what the client compares.
    resp = await preflight(app_client, "/api/me", origin="HTTP://LocalHost:3000", method="GET")
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "HTTP://LocalHost:3000"
    resp = await preflight(app_client, "/api/me", origin=ALSO_LISTED, method="GET")
    assert resp.headers["Access-Control-Allow-Origin"] == ALSO_LISTED


async def test_preflight_for_a_path_that_does_not_exist_is_404(app_client):
    resp = await preflight(app_client, "/api/no-such-thing")
    await expect_error(resp, 404, "not_found")
    assert "Access-Control-Allow-Methods" not in resp.headers


@pytest.mark.parametrize("origin", [
    OTHER,
    "https://app.example.com.evil.example",
    "http://app.example.com",       # another scheme is another origin
    "https://app.example.com:8443",  # and so is another port
    "null",
    "not an origin",
])
async def test_preflight_from_another_origin_is_an_ordinary_options_request(app_client, origin):
    resp = await preflight(app_client, "/api/me", origin=origin, method="GET")
    await expect_error(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]
    assert cors_headers(resp) == {}
    resp = await preflight(app_client, "/api/no-such-thing", origin=origin)
    await expect_error(resp, 404, "not_found")
    assert cors_headers(resp) == {}


async def test_options_without_a_request_method_is_not_a_preflight(app_client):
    resp = await app_client.options("/api/me", headers={"Origin": LISTED})
    await expect_error(resp, 405, "method_not_allowed")
    assert_readable_by(resp, LISTED)  # an answer to a listed origin, so readable
    assert "Access-Control-Allow-Methods" not in resp.headers


# --- answers to a listed origin -----------------------------------------------


async def test_answers_to_a_listed_origin_carry_allow_origin_vary_and_expose(app_client):
    _, auth = await register(app_client)
    resp = await app_client.get("/api/me", headers={**auth, "Origin": LISTED})
    await json_of(resp, 200)
    assert_readable_by(resp, LISTED)

    resp = await app_client.post("/api/workspaces", json={"name": "Acme"}, headers={**auth, "Origin": ALSO_LISTED})
    await json_of(resp, 201)
    assert_readable_by(resp, ALSO_LISTED)

    resp = await app_client.head("/healthz", headers={"Origin": LISTED})
    assert resp.status == 200
    assert_readable_by(resp, LISTED)


async def test_a_replayed_send_exposes_idempotent_replayed(app_client):
    _, auth = await register(app_client)
    workspace = await create_workspace(app_client, auth)
    headers = {**auth, "Origin": LISTED, "Idempotency-Key": "k-1"}
    path = f"/api/workspaces/{workspace['slug']}/notifications"
    first = await app_client.post(path, json={"title": "hi", "broadcast": True}, headers=headers)
    await json_of(first, 201)
    again = await app_client.post(path, json={"title": "hi", "broadcast": True}, headers=headers)
    await json_of(again, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_readable_by(again, LISTED)


async def test_error_answers_to_a_listed_origin_are_readable(app_client, caplog):
    _, auth = await register(app_client)
    origin = {"Origin": LISTED}

    resp = await app_client.get("/api/me", headers=origin)
    await expect_error(resp, 401, "unauthorized")
    assert_readable_by(resp, LISTED)
    assert "www-authenticate" in listed(resp.headers["Access-Control-Expose-Headers"])

    resp = await app_client.post("/api/workspaces", json={"name": "Acme", "colour": "red"}, headers={**auth, **origin})
    body = await expect_error(resp, 422, "validation_error")
    assert "colour" in body["error"]["details"]
    assert_readable_by(resp, LISTED)

    resp = await app_client.post("/api/workspaces", data=b"not json", headers={**auth, **origin})
    await expect_error(resp, 400, "bad_request")
    assert_readable_by(resp, LISTED)

    resp = await app_client.get("/api/no-such-thing", headers=origin)
    await expect_error(resp, 404, "not_found")
    assert_readable_by(resp, LISTED)

    resp = await app_client.put("/api/me", headers={**auth, **origin})
    await expect_error(resp, 405, "method_not_allowed")
    assert_readable_by(resp, LISTED)

    resp = await app_client.get("/test-only/boom", headers=origin)
    await expect_error(resp, 500, "internal")
    assert_readable_by(resp, LISTED)


# --- any other origin, and no origin ------------------------------------------


@pytest.mark.parametrize("origin", [OTHER, "null", None])
async def test_other_origins_are_answered_as_before_without_cors_headers(app_client, origin):
    sent = {} if origin is None else {"Origin": origin}
    user, auth = await register(app_client)
    resp = await app_client.get("/api/me", headers={**auth, **sent})
    assert (await json_of(resp, 200))["user"]["id"] == user["id"]
    assert cors_headers(resp) == {}
    # Whether an answer carries CORS headers depends on Origin, so caches are told.
    assert "origin" in listed(resp.headers["Vary"])

    resp = await app_client.get("/api/me", headers=sent)
    await expect_error(resp, 401, "unauthorized")
    assert cors_headers(resp) == {}


async def test_the_default_config_sends_no_cors_headers_at_all(client):
    # `client` runs the default settings: no origin listed.
    _, auth = await register(client)
    for method, path, headers, status in [
        ("OPTIONS", "/api/me", {"Origin": LISTED, "Access-Control-Request-Method": "GET"}, 405),
        ("OPTIONS", "/api/no-such-thing", {"Origin": LISTED, "Access-Control-Request-Method": "GET"}, 404),
        ("GET", "/api/me", {**auth, "Origin": LISTED}, 200),
        ("GET", "/api/me", {"Origin": LISTED}, 401),
        ("GET", "/healthz", {"Origin": LISTED}, 200),
        ("GET", "/healthz", {}, 200),
    ]:
        resp = await client.request(method, path, headers=headers)
        assert resp.status == status, (method, path, await resp.text())
        assert cors_headers(resp) == {}, (method, path)
        assert "Vary" not in resp.headers, (method, path)


# --- /ws ------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [LISTED, OTHER])
async def test_websockets_are_unaffected(app_client, answers, origin):
    _, auth = await register(app_client)
    ws = await app_client.ws_connect("/ws", origin=origin)
    await ws.send_json({"type": "auth", "token": token_of(auth)})
    msg = await ws.receive(timeout=HANG_GUARD_S)
    assert msg.type == WSMsgType.TEXT, msg
    assert json.loads(msg.data)["type"] == "ready"
    await ws.close()
    handshakes = [headers for path, status, headers in answers if path == "/ws" and status == 101]
    assert len(handshakes) == 1
    assert not [k for k in handshakes[0] if k.lower().startswith("access-control-") or k.lower() == "vary"]


# --- the lists ------------------------------------------------------------------


def test_every_answer_header_the_api_documents_is_exposed(cors_config):
    document = openapi.document(create_app(cors_config))
    named = {name.lower()
             for path in document["paths"].values() for op in path.values()
             for answer in op["responses"].values() for name in answer.get("headers", {})}
    assert named, "the document names no answer headers: has its shape changed?"
    assert named <= {h.lower() for h in cors.EXPOSE_HEADERS}, named - {h.lower() for h in cors.EXPOSE_HEADERS}


def test_every_header_the_api_reads_may_be_sent(cors_config):
    document = openapi.document(create_app(cors_config))
    read = {p["name"].lower()
            for path in document["paths"].values() for op in path.values()
            for p in op.get("parameters", []) if p["in"] == "header"}
    assert "idempotency-key" in read
    assert read | {"authorization", "content-type", "x-request-id"} <= {h.lower() for h in cors.ALLOW_HEADERS}

"""/healthz, /readyz and the error shape of the routing layer, on both databases."""

from __future__ import annotations

from pathlib import Path

from pulsestack.app import create_app
from pulsestack.config import load_config
from pulsestack.db import open_database


async def test_healthz_answers_ok(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert resp.headers["X-Request-Id"]


async def test_readyz_checks_the_database(client, dialect):
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "database": dialect}


async def test_readyz_is_503_when_the_database_is_gone(aiohttp_client, config, database_url):
    db = open_database(database_url)
    await db.connect()
    client = await aiohttp_client(create_app(config, db=db))
    assert (await client.get("/readyz")).status == 200
    await db.close()

    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "unavailable"
    assert (await client.get("/healthz")).status == 200


async def test_readyz_is_503_when_postgres_is_unreachable(aiohttp_client):
    # Nothing listens on port 1: the server still starts, and says it is not ready.
    url = "postgresql://postgres@127.0.0.1:1/postgres"
    config = load_config(Path(__file__).with_name("empty.toml"), env={"PULSESTACK_DATABASE_URL": url})
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body == {"error": {"code": "unavailable", "message": "database unavailable", "details": {"database": "postgres"}}}


async def test_unknown_route_is_404_in_the_error_shape(client):
    resp = await client.get("/api/no-such-thing")
    assert resp.status == 404
    assert await resp.json() == {"error": {"code": "not_found", "message": "no such resource", "details": {}}}


async def test_wrong_method_is_405_in_the_error_shape(client):
    resp = await client.post("/healthz")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
    assert resp.headers["Allow"] == "GET, HEAD"  # RFC 9110: a 405 lists what is allowed


async def test_request_id_is_echoed(client):
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert resp.headers["X-Request-Id"] == "abc123"

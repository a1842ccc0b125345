"""The token → session cache (pulsestack/session_cache.py), seen from outside:
a token works from the cache, stops working the moment it is revoked, here
or in another server process, at its expiry, and after TTL_S at most when
nothing tells the process; the cache holds a bounded number of tokens.

"Served from the cache" is made visible by deleting a session row behind
the server's back (no event): a token that still works then was answered
from the cache. The cache's clock is frozen (FrozenClock) wherever the TTL
must not be what ends an entry, so a test of a revocation cannot pass by
waiting; every wait is a bounded poll, nothing is timed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from helpers import (
    HANG_GUARD_S,
    PASSWORD,
    bearer,
    expect_close,
    expect_error,
    json_of,
    login,
    open_ws,
    parse_ts,
    poll,
    register,
    token_of,
    unique_email,
)

from pulsestack.app import create_app
from pulsestack.appkeys import HUB, SESSION_CACHE
from pulsestack.db import NamedQuery, open_database
from pulsestack.hub import CLOSE_UNAUTHORIZED, UnreadHub
from pulsestack.ids import new_id, utcnow
from pulsestack.models.resources import User
from pulsestack.queries import sessions
from pulsestack.security import hash_token, new_token
from pulsestack.services import accounts
from pulsestack.session_cache import TTL_S, SessionCache

DELETE_SESSIONS = NamedQuery.dynamic("delete_sessions", "DELETE FROM sessions", "exec")


class FrozenClock:
    """The cache's monotonic clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frozen(client) -> FrozenClock:
    clock = FrozenClock()
    client.app[SESSION_CACHE].clock = clock
    return clock


async def me_status(client, headers: dict[str, str]) -> int:
    async with client.get("/api/me", headers=headers) as resp:
        return resp.status


async def refused(client, headers: dict[str, str]) -> bool:
    return await me_status(client, headers) == 401


async def cached_then_deleted(client, db, headers: dict[str, str]) -> None:
    """Use the token (so it is cached), then delete every session row with no
    event: from here on the token works only while the cache serves it."""
    assert await me_status(client, headers) == 200
    await db.execute(DELETE_SESSIONS)
    assert await me_status(client, headers) == 200, "served from the cache"


# --- what the cache serves ------------------------------------------------------------------------

async def test_a_cached_token_is_served_for_ttl_seconds_at_most_without_its_row(client, db):
    _, headers = await register(client)
    clock = frozen(client)
    await cached_then_deleted(client, db, headers)

    clock.now += TTL_S - 0.001
    assert await me_status(client, headers) == 200
    clock.now += 0.001

    await expect_error(await client.get("/api/me", headers=headers), 401, "unauthorized")


async def test_a_cached_token_is_refused_exactly_at_its_expiry(client, monkeypatch):
    body = await json_of(await client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD}),
                         201)
    headers, expires_at = bearer(body["token"]), parse_ts(body["expires_at"])
    frozen(client)  # the entry stays fresh: only the expiry can end it
    assert await me_status(client, headers) == 200

    monkeypatch.setattr(accounts, "utcnow", lambda: expires_at - timedelta(microseconds=1))
    assert await me_status(client, headers) == 200
    monkeypatch.setattr(accounts, "utcnow", lambda: expires_at)

    await expect_error(await client.get("/api/me", headers=headers), 401, "unauthorized")


async def test_a_refused_token_is_not_remembered(client, db):
    """No negative caching: a token refused once works as soon as its session exists."""
    user, _ = await register(client)
    token = new_token()
    frozen(client)
    await expect_error(await client.get("/api/me", headers=bearer(token)), 401, "unauthorized")

    await sessions.create_session(db, id=new_id(), user_id=user["id"], token_hash=hash_token(token),
                                  created_at=utcnow(), expires_at=utcnow() + timedelta(hours=1))

    assert (await json_of(await client.get("/api/me", headers=bearer(token)), 200))["user"] == user


async def test_the_cache_holds_a_bounded_number_of_tokens_dropping_the_oldest(aiohttp_client, config, db):
    app = create_app(config, db=db)
    app[SESSION_CACHE] = SessionCache(max_entries=2)
    client = await aiohttp_client(app)
    people = [(await register(client))[1] for _ in range(3)]
    frozen(client)
    for headers in people:
        assert await me_status(client, headers) == 200
    await db.execute(DELETE_SESSIONS)

    oldest, *newest = people
    await expect_error(await client.get("/api/me", headers=oldest), 401, "unauthorized")  # pushed out: asked the database
    for headers in newest:
        assert await me_status(client, headers) == 200  # still cached
    assert len(client.app[SESSION_CACHE]) == 2


def test_many_tokens_never_grow_the_cache_past_its_bound():
    cache = SessionCache(max_entries=100)
    user = User(id=new_id(), email="ann@example.com", system_role="user", created_at=utcnow())
    for _ in range(1000):
        principal = sessions.SessionUser(user, new_id(), utcnow() + timedelta(hours=1))
        cache.put(hash_token(new_token()), principal, cache.epoch)
    assert len(cache) == 100
    cache.forget([principal.session_id])
    assert len(cache) == 99


async def test_a_websocket_asks_the_database_not_the_cache(client, db):
    """A socket lives for hours on its one check: a token that HTTP still
    serves from the cache, but whose session is gone, opens no socket."""
    _, headers = await register(client)
    frozen(client)
    await cached_then_deleted(client, db, headers)

    ws = await open_ws(client)
    await ws.send_json({"type": "auth", "token": token_of(headers)})

    assert await expect_close(ws) == CLOSE_UNAUTHORIZED


# --- revocation -----------------------------------------------------------------------------------

async def logout_revokes_at_once_and_no_other(client) -> None:
    user, first = await register(client, "ann@example.com")
    second = await login(client, "ann@example.com")
    frozen(client)
    for headers in (first, second):
        assert await me_status(client, headers) == 200

    assert (await client.post("/api/auth/logout", headers=first)).status == 204

    await expect_error(await client.get("/api/me", headers=first), 401, "unauthorized")
    assert (await json_of(await client.get("/api/me", headers=second), 200))["user"] == user


async def test_logout_revokes_a_cached_token_at_once_and_no_other(client):
    await logout_revokes_at_once_and_no_other(client)


async def test_logout_revokes_a_cached_token_at_once_without_a_websocket_hub(api):
    """The plain Hub (here the recording one) hears nothing: the logout itself drops the entry."""
    await logout_revokes_at_once_and_no_other(api)


async def test_a_lookup_in_flight_during_a_logout_does_not_bring_the_session_back(client, monkeypatch):
    """The lookup reads the row, the logout deletes it and is applied, then
    the lookup ends: what it read is not kept."""
    _, headers = await register(client)
    frozen(client)
    real = sessions.get_session_user
    read, go_on = asyncio.Event(), asyncio.Event()

    async def slow_first_lookup(*args, **kwargs):
        found = await real(*args, **kwargs)
        if not read.is_set():
            read.set()
            await asyncio.wait_for(go_on.wait(), HANG_GUARD_S)
        return found

    monkeypatch.setattr(sessions, "get_session_user", slow_first_lookup)
    in_flight = asyncio.create_task(client.get("/api/me", headers=headers))
    await asyncio.wait_for(read.wait(), HANG_GUARD_S)
    assert (await client.post("/api/auth/logout", headers=headers)).status == 204
    go_on.set()
    assert (await in_flight).status == 200  # it began before the logout

    await expect_error(await client.get("/api/me", headers=headers), 401, "unauthorized")


async def test_after_a_bus_reconnect_no_token_is_served_from_the_cache(client, db):
    """What every event bus does after it reconnects (revocations sent while it
    was away are lost): the hub's refresh of everyone clears the cache."""
    _, headers = await register(client)
    frozen(client)
    await cached_then_deleted(client, db, headers)
    hub = client.app[HUB]
    assert isinstance(hub, UnreadHub)

    hub._refresh_everyone()

    await expect_error(await client.get("/api/me", headers=headers), 401, "unauthorized")


# --- across server processes (Postgres: LISTEN/NOTIFY) ---------------------------------------------

async def listening(client) -> UnreadHub:
    """The app's hub, once its bus listens (a NOTIFY before that would not reach it)."""
    hub = client.app[HUB]
    assert isinstance(hub, UnreadHub)
    await asyncio.wait_for(hub.bus.connected.wait(), HANG_GUARD_S)  # type: ignore[attr-defined]  # PostgresBus
    return hub


@pytest.mark.parametrize("dialect", ["postgres"])
async def test_logout_in_one_process_revokes_the_token_cached_in_another(aiohttp_client, config, database_url):
    """Two apps, each with its own database pool and PostgresBus, as two
    server processes behind a load balancer are."""
    async with open_database(database_url) as db_a, open_database(database_url) as db_b:
        a = await aiohttp_client(create_app(config, db=db_a))
        b = await aiohttp_client(create_app(config, db=db_b))
        await listening(a)
        await listening(b)
        user, first = await register(b, "ann@example.com")
        second = await login(b, "ann@example.com")
        frozen(a)  # A's entries never go stale: only the event can end them
        for headers in (first, second):
            assert await me_status(a, headers) == 200

        assert (await b.post("/api/auth/logout", headers=first)).status == 204

        await poll(lambda: refused(a, first), "A to refuse the token B revoked")  # the NOTIFY's way, no longer
        await expect_error(await a.get("/api/me", headers=first), 401, "unauthorized")
        assert (await json_of(await a.get("/api/me", headers=second), 200))["user"] == user


@pytest.mark.parametrize("dialect", ["postgres"])
async def test_when_the_bus_listener_reconnects_the_cache_is_cleared(client, db, database_url):
    _, headers = await register(client)
    hub = await listening(client)
    frozen(client)
    await cached_then_deleted(client, db, headers)

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", hub.bus._listener.get_server_pid())  # type: ignore[attr-defined]
    finally:
        await conn.close()

    await poll(lambda: refused(client, headers), "the reconnected bus to clear the cache")

"""Helpers shared by the test files; the fixtures are in tests/conftest.py.

Every helper that more than one test file uses lives here (a helper that one
file uses stays in that file), and test files import from this module only:
never from another test file, nor from conftest.py. Sections:

- Limits, read from the models that enforce them.
- HTTP API: accounts, workspaces, error bodies, raw requests.
- Rows through the query layer (factories).
- Notifications: teams, sending and reading, the recording hub, direct SQL.
- Websocket clients.
- The `pulsestack` command in a subprocess.
- The PostgreSQL server of the run: creating and dropping databases.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import psycopg
import pytest
from aiohttp import WSMsgType
from psycopg import sql

from pulsestack.api.jsonio import MAX_BODY_BYTES
from pulsestack.appkeys import DB
from pulsestack.db import Database, NamedQuery
from pulsestack.hub import CHANGED_MAX, Hub
from pulsestack.ids import new_id, utcnow
from pulsestack.models.requests import NewNotification, NewWorkspace, PageQuery, ReadMany, Registration, SendHeaders
from pulsestack.models.resources import User, Workspace
from pulsestack.queries import members, sessions, users, workspaces
from pulsestack.queries import members as members_q
from pulsestack.security import hash_token, new_token

# ================================================================================================
# Limits, read from the models that enforce them (never copied into a test)
# ================================================================================================

def field_schema(model: type[Any], name: str) -> dict[str, Any]:
    """A request field's JSON Schema, as the OpenAPI document gives it (`X | None` unwrapped)."""
    schema = model.model_json_schema(by_alias=True)["properties"][name]
    return next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)


TITLE_MAX = field_schema(NewNotification, "title")["maxLength"]
MESSAGE_MAX = field_schema(NewNotification, "message")["maxLength"]
TYPE_MAX = field_schema(NewNotification, "type")["maxLength"]
RECIPIENTS_MAX = field_schema(NewNotification, "recipients")["maxItems"]
IDS_MAX = field_schema(ReadMany, "ids")["maxItems"]
NAME_MAX = field_schema(NewWorkspace, "name")["maxLength"]
SLUG_MAX = field_schema(NewWorkspace, "slug")["maxLength"]
EMAIL_MAX = field_schema(Registration, "email")["maxLength"]
PASSWORD_MIN = field_schema(Registration, "password")["minLength"]
PASSWORD_MAX = field_schema(Registration, "password")["maxLength"]
IDEMPOTENCY_KEY_MAX = field_schema(SendHeaders, "Idempotency-Key")["maxLength"]
PAGE_MAX = field_schema(PageQuery, "limit")["maximum"]
BODY_MAX = MAX_BODY_BYTES


# ================================================================================================
# HTTP API: accounts, workspaces, error bodies
# ================================================================================================
#
# Everything here goes through the public API (the aiohttp test client), so a
# helper fails loudly, with the response body, when the API misbehaves.

PASSWORD = "correct horse battery staple"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
USER_KEYS = {"id", "email", "system_role", "created_at"}
WORKSPACE_KEYS = {"id", "name", "slug", "owner_id", "created_at", "role"}
MEMBER_KEYS = {"user_id", "email", "role", "joined_at"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def parse_ts(text: str) -> datetime:
    """An API timestamp as an aware datetime; asserts the ISO-8601 `Z` spelling."""
    assert ISO_Z.match(text), f"not an ISO-8601 UTC timestamp with Z: {text!r}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def json_of(resp, status: int) -> dict:
    """The JSON body of `resp`, after checking its status (the body is shown on a mismatch)."""
    body = await resp.json(content_type=None)
    assert resp.status == status, f"expected {status}, got {resp.status}: {body}"
    return body


async def expect_error(resp, status: int, code: str) -> dict:
    """Asserts the documented error shape with this status and code; returns the body."""
    body = await json_of(resp, status)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert isinstance(body["error"]["details"], dict), body
    return body


async def register(client, email: str | None = None, password: str = PASSWORD) -> tuple[dict, dict[str, str]]:
    """A new account through POST /api/auth/register: (user, bearer headers)."""
    resp = await client.post("/api/auth/register", json={"email": email or unique_email(), "password": password})
    body = await json_of(resp, 201)
    return body["user"], bearer(body["token"])


async def login(client, email: str, password: str = PASSWORD) -> dict[str, str]:
    """A fresh token for an existing account, as bearer headers."""
    body = await json_of(await client.post("/api/auth/login", json={"email": email, "password": password}), 200)
    return bearer(body["token"])


async def create_workspace(client, headers: dict[str, str], name: str | None = None, slug: str | None = None) -> dict:
    """A new workspace owned by the caller of `headers` (POST /api/workspaces)."""
    payload: dict = {"name": name or f"Team {uuid.uuid4().hex[:8]}"}
    if slug is not None:
        payload["slug"] = slug
    return await json_of(await client.post("/api/workspaces", json=payload, headers=headers), 201)


async def add_member(client, headers: dict[str, str], slug: str, email: str, role: str = "member") -> dict:
    resp = await client.post(f"/api/workspaces/{slug}/members", json={"email": email, "role": role}, headers=headers)
    return await json_of(resp, 201)


async def join(client, owner_headers: dict[str, str], slug: str, role: str = "member") -> tuple[dict, dict[str, str]]:
    """Register a new user and add them to workspace `slug` with `role`: (user, bearer headers)."""
    user, headers = await register(client)
    await add_member(client, owner_headers, slug, user["email"], role)
    return user, headers


@dataclass
class Person:
    """A registered user and the headers that authenticate as them."""

    user: dict
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return self.user["id"]


async def raw_request(client, head: bytes, body: bytes = b"") -> tuple[int, dict | None]:
    """Send a request byte for byte (with headers a client library would refuse
    to send) to the test server; (status, JSON body or None)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head.rstrip(b"\r\n") + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload) if payload else None


# ================================================================================================
# Rows for tests, made through the project's own query functions (factories)
# ================================================================================================

async def make_user(db: Database, email: str | None = None, system_role: str = "user") -> User:
    return await users.create_user(db, id=new_id(), email=email or f"u-{new_id().hex[-12:]}@example.com",
                                   password_hash="not-a-real-hash", system_role=system_role, created_at=utcnow())


async def make_workspace(db: Database, owner: User, slug: str | None = None) -> Workspace:
    slug = slug or f"ws-{new_id().hex[-10:]}"
    async with db.transaction() as tx:
        ws = await workspaces.create_workspace(tx, id=new_id(), name=slug.title(), slug=slug, owner_id=owner.id, created_at=utcnow())
        await members.add_member(tx, id=new_id(), workspace_id=ws.id, user_id=owner.id, role="owner", joined_at=utcnow())
    return ws


async def make_members(db: Database, workspace_id: UUID, count: int, role: str = "member") -> list[UUID]:
    """`count` new users, all members of the workspace; their ids in creation order."""
    ids = [new_id() for _ in range(count)]
    now = utcnow()
    async with db.transaction() as tx:
        for i in ids:
            await users.create_user(tx, id=i, email=f"m-{i.hex}@example.com", password_hash="x", system_role="user", created_at=now)
        await tx.execute_many("add_member", [
            {"id": new_id(), "workspace_id": workspace_id, "user_id": i, "role": role, "joined_at": now} for i in ids
        ])
    return ids


# A random UUID in SQL, for set-based seeding (a random v4 on SQLite, which has no UUID function).
UUID_EXPR = {
    "postgres": "gen_random_uuid()",
    "sqlite": "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a'"
              " || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))",
}


async def seed_members(db, workspace_id, count: int) -> None:
    """`count` users, all members of `workspace_id`, written set-based (a recursive CTE works on both)."""
    uuid = UUID_EXPR[db.dialect]
    series = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :count) "
    await db.execute(NamedQuery.dynamic("seed_users", series +
        f"INSERT INTO users (id, email, password_hash, system_role, created_at) "
        f"SELECT {uuid}, 'seed-' || i || '-' || :tag || '@example.com', 'x', 'user', :now FROM s", "exec"),
        count=count, tag=str(workspace_id), now=utcnow())
    await db.execute(NamedQuery.dynamic("seed_members",
        f"INSERT INTO workspace_members (id, workspace_id, user_id, role, joined_at) "
        f"SELECT {uuid}, :workspace_id, u.id, 'member', :now FROM users AS u WHERE u.email LIKE 'seed-%-' || :tag || '@example.com'",
        "exec"), workspace_id=workspace_id, tag=str(workspace_id), now=utcnow())



# ================================================================================================
# Notifications: teams, sending and reading, the recording hub, direct SQL
# ================================================================================================
#
# For tests/test_api_notifications.py and tests/test_api_inbox.py, which run
# against the `api` fixture of tests/conftest.py (a RecordingHub, no 5xx allowed).

NOTIFICATION_KEYS = {"id", "workspace_id", "sender_id", "title", "message", "type", "broadcast", "created_at", "url", "data"}
ITEM_KEYS = NOTIFICATION_KEYS | {"is_read", "read_at", "is_seen", "archived", "archived_at", "workspace_slug"}
API_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")  # docs/api.md: exactly six fractional digits

# --- direct SQL, independent of the product's own queries (joins notifications, not receipts.workspace_id) ---

SQL_RECEIPTS_OF_NOTIFICATION = NamedQuery.dynamic(
    "t_receipts_of_notification",
    "SELECT user_id, is_read FROM notification_receipts WHERE notification_id = :notification_id", "many")
SQL_UNREAD_BY_WORKSPACE = NamedQuery.dynamic(
    "t_unread_by_workspace",
    "SELECT n.workspace_id AS workspace_id, count(*) AS unread"
    "  FROM notification_receipts AS r JOIN notifications AS n ON n.id = r.notification_id"
    " WHERE r.user_id = :user_id AND NOT r.is_read"
    " GROUP BY n.workspace_id", "many")
# Unseen, recounted the plain way: unread, and created after the membership's seen_until (or never looked).
SQL_UNSEEN_BY_WORKSPACE = NamedQuery.dynamic(
    "t_unseen_by_workspace",
    "SELECT n.workspace_id AS workspace_id, count(*) AS unseen"
    "  FROM notification_receipts AS r JOIN notifications AS n ON n.id = r.notification_id"
    "  JOIN workspace_members AS m ON m.workspace_id = n.workspace_id AND m.user_id = r.user_id"
    " WHERE r.user_id = :user_id AND NOT r.is_read AND (m.seen_until IS NULL OR n.created_at > m.seen_until)"
    " GROUP BY n.workspace_id", "many")


async def sql_receipts(db, notification_id: str) -> dict[str, bool]:
    """{user_id: is_read} of one notification's receipts."""
    rows = await db.fetch_all(SQL_RECEIPTS_OF_NOTIFICATION, notification_id=uuid.UUID(notification_id))
    return {str(r["user_id"]): bool(r["is_read"]) for r in rows}


async def sql_unread(db, user_id: str) -> dict[str, int]:
    rows = await db.fetch_all(SQL_UNREAD_BY_WORKSPACE, user_id=uuid.UUID(user_id))
    return {str(r["workspace_id"]): int(r["unread"]) for r in rows}


async def sql_unseen(db, user_id: str) -> dict[str, int]:
    rows = await db.fetch_all(SQL_UNSEEN_BY_WORKSPACE, user_id=uuid.UUID(user_id))
    return {str(r["workspace_id"]): int(r["unseen"]) for r in rows}


def counts(unread: dict[str, int], unseen: dict[str, int] | None = None) -> dict:
    """An unread-count answer: unread per workspace id, and unseen (the same as unread unless given)."""
    unseen = dict(unread) if unseen is None else unseen
    return {"total": sum(unread.values()), "workspaces": unread,
            "unseen": {"total": sum(unseen.values()), "workspaces": unseen}}


# --- the app under test: the `hub` and `api` fixtures of tests/conftest.py use it ---------------

class RecordingHub(Hub):
    """Keeps every hub call, ids as strings: ("users", sorted ids), ("workspace", id), ("notification", id),
    ("chunk", notification id, after, upto), ("changed", user id, sorted ids), ("removed", user id, sorted ids), ("retracted", workspace id, id),
    ("refresh", sorted user ids)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def users_changed(self, user_ids) -> None:
        self.calls.append(("users", sorted(str(i) for i in user_ids)))

    def workspace_changed(self, workspace_id) -> None:
        self.calls.append(("workspace", str(workspace_id)))

    def notification_sent(self, notification_id) -> None:
        self.calls.append(("notification", str(notification_id)))

    def broadcast_delivered(self, notification_id, members) -> None:
        self.calls.append(("chunk", str(notification_id), *(str(m) for m in members)))

    def receipts_changed(self, user_id, notification_ids) -> None:
        self.calls.append(("changed", str(user_id), sorted(str(i) for i in notification_ids)))

    def receipts_removed(self, user_id, notification_ids) -> None:
        self.calls.append(("removed", str(user_id), sorted(str(i) for i in notification_ids)))

    def notification_retracted(self, workspace_id, notification_id) -> None:
        self.calls.append(("retracted", str(workspace_id), str(notification_id)))

    def inboxes_replaced(self, user_ids) -> None:
        self.calls.append(("refresh", sorted(str(i) for i in user_ids)))


# --- people and workspaces ----------------------------------------------------------------------

@dataclass
class Team:
    ws: dict
    owner: Person
    admins: list[Person] = field(default_factory=list)
    members: list[Person] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.ws["slug"]

    @property
    def id(self) -> str:
        return self.ws["id"]

    @property
    def everyone(self) -> list[Person]:
        return [self.owner, *self.admins, *self.members]


# Setup writes rows straight through the query layer (one transaction per team, as the row factories
# above do): registering and adding members over HTTP would cost ~25 ms a team in every test. What the
# tests exercise, sending and reading, always goes through the HTTP API.

async def _new_person(tx) -> Person:
    now = utcnow()
    user = await users.create_user(tx, id=new_id(), email=unique_email(), password_hash="not-a-real-hash",
                                   system_role="user", created_at=now)
    token = new_token()
    await sessions.create_session(tx, id=new_id(), user_id=user.id, token_hash=hash_token(token), created_at=now,
                                  expires_at=now + timedelta(days=1))
    return Person({"id": str(user.id), "email": user.email}, bearer(token))


async def person(api) -> Person:
    """A new account with a valid token, in no workspace."""
    async with api.app[DB].transaction() as tx:
        return await _new_person(tx)


async def make_team(api, members: int = 2, admins: int = 0, owner: Person | None = None) -> Team:
    """A new workspace owned by `owner` (or a new user) with `admins` admins and `members` plain members."""
    async with api.app[DB].transaction() as tx:
        owner = owner or await _new_person(tx)
        slug, now = f"ws-{new_id().hex[-12:]}", utcnow()
        ws = await workspaces.create_workspace(tx, id=new_id(), name=slug, slug=slug, owner_id=uuid.UUID(owner.id), created_at=now)
        team = Team({"id": str(ws.id), "slug": slug}, owner)
        for role, count, group in (("owner", 1, None), ("admin", admins, team.admins), ("member", members, team.members)):
            for _ in range(count):
                p = owner if group is None else await _new_person(tx)
                await members_q.add_member(tx, id=new_id(), workspace_id=ws.id, user_id=uuid.UUID(p.id), role=role, joined_at=now)
                if group is not None:
                    group.append(p)
    return team


async def add_to(api, team: Team, who: Person, role: str = "member") -> None:
    resp = await api.post(f"/api/workspaces/{team.slug}/members", json={"email": who.user["email"], "role": role},
                          headers=team.owner.headers)
    await json_of(resp, 201)
    (team.admins if role == "admin" else team.members).append(who)


# --- sending and reading ------------------------------------------------------------------------

def send(api, who: Person, slug: str, payload: dict, key: str | None = None):
    headers = {**who.headers, **({"Idempotency-Key": key} if key is not None else {})}
    return api.post(f"/api/workspaces/{slug}/notifications", json=payload, headers=headers)


async def broadcast(api, who: Person, team: Team, title: str = "hello", **extra) -> dict:
    """A broadcast that must succeed; returns the notification."""
    body = await json_of(await send(api, who, team.slug, {"title": title, "broadcast": True, **extra}), 201)
    return body["notification"]


async def direct(api, who: Person, team: Team, to: list[Person], title: str = "psst", **extra) -> dict:
    """A direct send that must succeed; returns the notification."""
    payload = {"title": title, "recipients": [p.id for p in to], **extra}
    body = await json_of(await send(api, who, team.slug, payload), 201)
    return body["notification"]


async def inbox(api, who: Person, **params) -> dict:
    return await json_of(await api.get("/api/notifications", params=params, headers=who.headers), 200)


async def inbox_all(api, who: Person, limit: int = 100, **params) -> list[dict]:
    """Every inbox item, following next_cursor to the end."""
    items: list[dict] = []
    cursor = None
    while True:
        page = await inbox(api, who, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def inbox_ids(api, who: Person, **params) -> list[str]:
    return [i["id"] for i in await inbox_all(api, who, **params)]


async def unread_count(api, who: Person) -> dict:
    return await json_of(await api.get("/api/notifications/unread-count", headers=who.headers), 200)


async def assert_counts_agree(api, db, people: list[Person]) -> dict[str, int]:
    """Each person's unread-count equals the unread inbox recounted page by page, the full inbox's
    unread items, and a direct SQL count. Returns {user_id: total}."""
    totals = {}
    for p in people:
        reported = await unread_count(api, p)
        unread_items = await inbox_all(api, p, limit=3, status="unread")
        assert all(not i["is_read"] and i["read_at"] is None for i in unread_items)
        by_inbox = Counter(i["workspace_id"] for i in unread_items)
        by_full_inbox = Counter(i["workspace_id"] for i in await inbox_all(api, p) if not i["is_read"])
        unseen_items = Counter(i["workspace_id"] for i in unread_items if not i["is_seen"])
        assert reported == counts(dict(by_inbox), dict(unseen_items)), p.user["email"]
        assert by_full_inbox == by_inbox
        assert reported["workspaces"] == await sql_unread(db, p.id)
        assert reported["unseen"]["workspaces"] == await sql_unseen(db, p.id)
        assert reported["unseen"]["workspaces"] == await sql_unseen(db, p.id)
        assert all(n > 0 for n in reported["workspaces"].values())
        totals[p.id] = reported["total"]
    return totals


# ================================================================================================
# Websocket clients (docs/websocket.md)
# ================================================================================================
#
# `Conn` wraps one aiohttp websocket client and keeps every frame it read.
# Reading always has a hang guard (HANG_GUARD_S): it stops a test that waits
# for a frame that never comes, and is never a timing assertion.
#
# Frames are state, not deltas, and after `ready` the hub may send one more
# `unread` frame with the same counts (its recount after a connect). So the
# waiting helpers skip a duplicate of the state last seen; `until_unread`
# in strict mode fails on any other `unread` frame than the one awaited.
#
# get_unread_count and post_notification take bearer headers, where
# unread_count and send of the notification section take a Person;
# tests/test_ws.py imports them as unread_count and send.

HANG_GUARD_S = 10.0
READY_KEYS = {"type", "user_id", "unread", "server_time", "heartbeat_s", "token_expires_at"}
CHANGED_ITEM_KEYS = {"id", "is_read", "read_at", "archived", "archived_at"}  # an inbox item's receipt state


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def state_of(frame: dict) -> dict:
    """{total, workspaces, unseen} of a `ready` or `unread` frame: the unread-count answer."""
    state = frame["unread"] if frame["type"] == "ready" else frame
    return {"total": state["total"], "workspaces": state["workspaces"], "unseen": state["unseen"]}


class Closed(AssertionError):
    """The server closed the socket while a frame was awaited."""


class Conn:
    """One authenticated websocket and every frame it has read so far.

    The order of a `notification` frame and the `unread` frame that counts
    it is not fixed (a recount that was already due may count the new
    notification first), so the waiting helpers also look at frames that
    other helpers have already read: `until_notification` at every
    notification read so far, `until_unread` at every `unread` frame it has
    not examined yet."""

    def __init__(self, ws, ready: dict):
        self.ws = ws
        self.ready = ready
        self.frames: list[dict] = [ready]
        self.notifications: list[dict] = []  # items of `notification` frames, in arrival order
        self.unread: list[dict] = []  # states of `unread` frames, in arrival order
        self.changed: list[dict] = []  # `changed` frames, in arrival order
        self.state = state_of(ready)  # the counts last pushed (ready, then each unread)
        self._cursor = 1  # frames[_cursor:] are not yet examined by until_unread
        self._confirmed = self.state  # the state until_unread last returned (ready at first)

    @property
    def user_id(self) -> str:
        return self.ready["user_id"]

    async def frame(self) -> dict:
        """The next frame (a JSON object); fails when the socket closes instead."""
        try:
            msg = await self.ws.receive(timeout=HANG_GUARD_S)
        except TimeoutError:
            pytest.fail(f"no frame within the {HANG_GUARD_S} s hang guard; frames so far: {self.frames}")
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise Closed(f"socket closed ({msg.type.name}, code {self.ws.close_code}) while waiting for a frame; "
                         f"frames so far: {self.frames}")
        assert msg.type == WSMsgType.TEXT, f"server sent a non-text frame: {msg}"
        frame = json.loads(msg.data)
        assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
        self.frames.append(frame)
        if frame["type"] == "notification":
            assert set(frame) == {"type", "item"}, frame
            self.notifications.append(frame["item"])
        elif frame["type"] == "changed":
            assert set(frame) == {"type", "items", "removed"}, frame
            assert all(set(item) == CHANGED_ITEM_KEYS for item in frame["items"]), frame
            ids = [item["id"] for item in frame["items"]] + frame["removed"]
            assert len(ids) == len(set(ids)) <= CHANGED_MAX, f"a changed frame names an id twice, or too many: {frame}"
            self.changed.append(frame)
        elif frame["type"] == "refresh":
            assert frame == {"type": "refresh"}, frame
        elif frame["type"] == "unread":
            assert set(frame) == {"type", "total", "workspaces", "unseen"}, frame
            assert frame["total"] == sum(frame["workspaces"].values()), f"total is not the sum of the workspaces: {frame}"
            assert all(n > 0 for n in frame["workspaces"].values()), f"zero entries in an unread frame: {frame}"
            self.state = state_of(frame)
            self.unread.append(self.state)
        return frame

    async def until_unread(self, total: int, *, strict: bool = True) -> dict:
        """The first `unread` frame with this total after the one this returned
        last (read already, or read until it comes); returns its state.

        Strict: every other `unread` frame on the way must repeat the state
        returned last (a recount that found nothing new), so a wrong
        intermediate count fails. Not strict (bursts): any counts on the way."""
        while True:
            while self._cursor < len(self.frames):
                frame = self.frames[self._cursor]
                self._cursor += 1
                if frame["type"] != "unread":
                    continue
                state = state_of(frame)
                if state["total"] == total:
                    self._confirmed = state
                    return state
                assert not strict or state == self._confirmed, (
                    f"unexpected unread frame {frame} while waiting for total {total} (last state {self._confirmed})")
            await self.frame()

    async def until_type(self, kind: str) -> dict:
        """Read until a frame of this type arrives."""
        while True:
            frame = await self.frame()
            if frame["type"] == kind:
                return frame

    async def until_notification(self, notification_id: str) -> dict:
        """The item of the `notification` frame of this id: one already read, or read until it comes."""
        for item in self.notifications:
            if item["id"] == notification_id:
                return item
        while True:
            frame = await self.until_type("notification")
            if frame["item"]["id"] == notification_id:
                return frame["item"]

    async def ping(self) -> None:
        """A ping, then frames until its pong (frames queued before it are kept)."""
        await self.ws.send_json({"type": "ping"})
        frame = await self.until_type("pong")
        assert frame == {"type": "pong"}

    async def closed(self) -> int:
        """Read until the server closes the socket; returns the close code."""
        return await expect_close(self.ws, self.frames)

    async def synced(self, client, headers: dict[str, str]) -> dict:
        """Read until the last pushed counts equal GET /api/notifications/unread-count."""
        http = await get_unread_count(client, headers)
        try:
            while self.state != http:
                await self.frame()
        except TimeoutError:
            pytest.fail(f"pushed counts {self.state} differ from GET unread-count {http}; frames: {self.frames}")
        return http


async def expect_close(ws, seen: list | None = None) -> int:
    """Read until the server closes `ws`; returns the close code. Text frames on the way are allowed."""
    while True:
        msg = await ws.receive(timeout=HANG_GUARD_S)
        if msg.type == WSMsgType.CLOSE:
            return msg.data
        if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return ws.close_code
        if seen is not None and msg.type == WSMsgType.TEXT:
            seen.append(json.loads(msg.data))


async def open_ws(client):
    return await client.ws_connect("/ws")


async def connect(client, headers: dict[str, str]) -> Conn:
    """Open /ws, authenticate with the token of `headers`, and read `ready` (which must come first)."""
    ws = await open_ws(client)
    await ws.send_json({"type": "auth", "token": token_of(headers)})
    msg = await ws.receive(timeout=HANG_GUARD_S)
    assert msg.type == WSMsgType.TEXT, f"expected ready, got {msg} (close code {ws.close_code})"
    ready = json.loads(msg.data)
    assert ready["type"] == "ready", f"the first frame is not ready: {ready}"
    assert set(ready) == READY_KEYS, ready
    assert set(ready["unread"]) == {"total", "workspaces", "unseen"}, ready
    assert ready["unread"]["total"] == sum(ready["unread"]["workspaces"].values()), ready
    return Conn(ws, ready)


async def get_unread_count(client, headers: dict[str, str]) -> dict:
    resp = await client.get("/api/notifications/unread-count", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def post_notification(client, headers: dict[str, str], slug: str, *, recipients: list[str] | None = None,
               title: str = "Hello", message: str = "", **extra: Any) -> dict:
    """POST a broadcast (no recipients) or a direct send; returns the notification."""
    payload: dict = {"title": title, "message": message, **extra}
    if recipients is None:
        payload["broadcast"] = True
    else:
        payload["recipients"] = recipients
    resp = await client.post(f"/api/workspaces/{slug}/notifications", json=payload, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return body["notification"]


async def inbox_item(client, headers: dict[str, str], notification_id: str) -> dict:
    """The inbox item of this id, archived or not (among the newest 100)."""
    resp = await client.get("/api/notifications", params={"status": "all", "archived": "include", "limit": "100"},
                            headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    items = [i for i in body["items"] if i["id"] == notification_id]
    assert len(items) == 1, f"{notification_id} not in the inbox: {body}"
    return items[0]


async def poll(predicate, what: str, limit_s: float = HANG_GUARD_S, interval_s: float = 0.01) -> None:
    """Wait (bounded) until `predicate()` (a function or a coroutine function) is
    true; a hang guard, not a timing check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        ok = predicate()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(interval_s)


# --- a raw websocket client that never reads ----------------------------------------------------

def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final client frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def raw_ws_connect(host: str, port: int, token: str, rcvbuf: int = 4096) -> socket.socket:
    """A websocket handshake done by hand on a socket with a small receive
    buffer, then the auth frame. The caller never reads from it again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), HANG_GUARD_S)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), HANG_GUARD_S)  # byte by byte: no frame bytes taken
        assert chunk, f"connection closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    await loop.sock_sendall(sock, masked_frame(json.dumps({"type": "auth", "token": token}).encode()))
    return sock


async def send_until_dropped(hub: Any, stalled_id: uuid.UUID, send_one: Callable[[int], Awaitable[None]]) -> int:
    """Make the hub drop a connected client that reads nothing (1013): `send_one(i)` until the
    hub lets go of its socket (at most 300 times); returns how many were sent. The kernel would
    buffer megabytes for it (send buffers autotune up to net.ipv4.tcp_wmem); a small send
    buffer on the server's end of this one connection makes the pipe fill after a few frames
    instead of hundreds."""
    await poll(lambda: stalled_id in hub.sockets, "the stalled client to be connected")
    [server_end] = hub.sockets[stalled_id]
    server_end.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sent = 0
    while stalled_id in hub.sockets:
        assert sent < 300, "the hub never dropped a client that reads nothing"
        await send_one(sent)
        sent += 1
    return sent


async def raw_read_until_close(sock: socket.socket) -> tuple[list[str], int | None]:
    """Read a raw client's socket to the end: (text frames, close code).
    The close code is None when the connection ended without a close frame."""
    loop = asyncio.get_running_loop()
    buf = b""
    texts: list[str] = []
    while True:
        while True:  # parse every complete frame in buf
            if len(buf) < 2:
                break
            opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            assert not buf[1] & 0x80, "a server frame must not be masked"
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < at + n:
                break
            payload, buf = buf[at:at + n], buf[at + n:]
            if opcode == 0x1:
                texts.append(payload.decode())
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    await loop.sock_sendall(sock, masked_frame(payload[:2], opcode=0x8))  # answer the close
                except OSError:
                    pass
                return texts, code
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), HANG_GUARD_S)
        except ConnectionError:
            return texts, None
        if not chunk:
            return texts, None
        buf += chunk


# ================================================================================================
# The `pulsestack` command in a subprocess (`python -m pulsestack`)
# ================================================================================================
#
# A command gets the caller's environment without its PULSESTACK_* variables
# unless told otherwise (clean_env); every wait is bounded by a hang guard.

COMMAND_TIMEOUT_S = 60  # a hang guard, not a timing assertion


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSESTACK_")}
    env.update(settings)
    return env


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pulsestack", *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


SERVING_ON = re.compile(r"serving on (http://[^ \"]+)")  # in a text line or a JSON one


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Server:
    """`pulsestack serve` in a subprocess; its stderr is read line by line as it comes."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulsestack", "serve", *args],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.port = 0  # known from its `serving on` line (serving_base)
        self.lines: list[str] = []
        self._more = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._more:
                self.lines.append(line)
                self._more.notify_all()

    def stderr(self) -> str:
        with self._more:
            return "".join(self.lines)

    def wait_for_line(self, needle: str, limit_s: float = 15.0) -> str:
        """The first stderr line containing `needle`, once it is written (bounded; not a timing check)."""
        def found() -> str | None:
            return next((line for line in self.lines if needle in line), None)

        with self._more:
            if not self._more.wait_for(lambda: found() is not None or self.proc.poll() is not None, limit_s):
                pytest.fail(f"no {needle!r} line within {limit_s} s:\n{''.join(self.lines)}")
        line = found()
        if line is None:
            self._reader.join(COMMAND_TIMEOUT_S)
            pytest.fail(f"server exited with {self.proc.returncode} before a {needle!r} line:\n{self.stderr()}")
        return line

    def serving_base(self) -> str:
        """The server's base URL, from its `serving on` line (started with `--port 0`, the system
        picked a free port: no other process can take it between our choice and the server's bind),
        its port kept as `self.port`. The line is written once the port answers: no polling."""
        line = self.wait_for_line("serving on http")
        match = SERVING_ON.search(line)
        assert match, line
        base = match.group(1)
        self.port = int(base.rsplit(":", 1)[1])
        return base

    def wait_ready(self, base: str, limit_s: float = 15.0) -> None:
        """Poll /healthz until it answers 200 (readiness, not a timing check)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(COMMAND_TIMEOUT_S)
                pytest.fail(f"server exited with {self.proc.returncode} before it was ready:\n{self.stderr()}")
            try:
                if http_status(base + "/healthz") == 200:
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        pytest.fail(f"server did not answer /healthz within {limit_s} s")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then (exit code, everything written to stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not exit within 10 s of SIGTERM:\n{self.stderr()}")
        self._reader.join(COMMAND_TIMEOUT_S)
        return self.proc.returncode, self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(COMMAND_TIMEOUT_S)


# ================================================================================================
# The PostgreSQL server of the run (the `postgres_server` fixture of tests/conftest.py)
# ================================================================================================

DB_PREFIX = "pulsestack_test_"


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


class PostgresServer:
    """Creates and drops the run's databases through the server's admin database."""

    def __init__(self, url: str):
        self.url = url
        self.run_id = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        self._count = 0

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def new_name(self) -> str:
        self._count += 1
        return f"{self.run_id}_{self._count}"

    def create(self, name: str, template: str | None = None, icu_locale: str | None = None) -> str:
        """A new database: a copy of `template`, or empty; with `icu_locale`,
        collated by that ICU locale (as many production databases are) instead
        of the server's default."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if icu_locale:  # a new locale needs the pristine template
            query += sql.SQL(" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE {} LOCALE 'C.UTF-8'").format(
                sql.Literal(icu_locale))
        elif template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin() as conn:
            conn.execute(query)
        return with_database(self.url, name)

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def drop_leftovers(self) -> None:
        """Drop databases of earlier runs whose process is gone (killed runs)."""
        with self._admin() as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",))]
        for name in names:
            m = re.match(rf"{DB_PREFIX}(\d+)_", name)
            if m and not _pid_alive(int(m.group(1))):
                self.drop(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ================================================================================================
# Browser tests: a real server process, driven over HTTP and by Debian's chromium (playwright)
# ================================================================================================

CHROMIUM_HINT = ("the browser tests drive Debian's chromium through playwright: install it with "
                 "`apt-get install chromium` (or set PULSESTACK_CHROMIUM to a Chromium binary); "
                 "playwright's own browser download is never used")


def chromium_path() -> str | None:
    """Debian's chromium (or $PULSESTACK_CHROMIUM), if it is there."""
    for candidate in (os.environ.get("PULSESTACK_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


class LiveServer:
    """`pulsestack serve` on one database, which a test may stop and start again on the same port
    (the browser's reconnect), with a small synchronous HTTP client for the test's own calls."""

    def __init__(self, cwd: Path, database_url: str, **settings: str):
        self.cwd, self.database_url, self.settings = cwd, database_url, settings
        self.port = 0  # the system picks one at the first start; a restart keeps it
        self.base = ""  # known once started
        self.server: Server | None = None

    def start(self) -> None:
        env = clean_env(PULSESTACK_DATABASE_URL=self.database_url, PULSESTACK_HUB_FLUSH_MS="20", **self.settings)
        self.server = Server(self.cwd, "--no-migrate", "--host", "127.0.0.1", "--port", str(self.port), env=env)
        self.base = self.server.serving_base()
        self.port = self.server.port

    def stop(self) -> None:
        if self.server is not None and self.server.proc.poll() is None:
            self.server.stop()
        self.server = None

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None,
             status: int | None = None) -> Any:
        """One API call; with `status`, asserts it. Returns the decoded body (None for 204)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=HANG_GUARD_S) as resp:
                code, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            code, raw = exc.code, exc.read()
        decoded = json.loads(raw) if raw else None
        if status is not None:
            assert code == status, f"{method} {path}: expected {status}, got {code}: {decoded}"
        return decoded

    def register(self, email: str | None = None) -> dict:
        """A new account: {"user", "token", "expires_at", "email", "password"}."""
        email = email or unique_email()
        issued = self.call("POST", "/api/auth/register", body={"email": email, "password": PASSWORD}, status=201)
        return {**issued, "email": email, "password": PASSWORD}

    def team(self, members: int = 1) -> tuple[dict, dict, list[dict]]:
        """(owner, workspace, members): a new workspace with `members` plain members."""
        owner = self.register()
        ws = self.call("POST", "/api/workspaces", owner["token"], {"name": f"Team {secrets.token_hex(3)}"}, status=201)
        people = [self.register() for _ in range(members)]
        for p in people:
            self.call("POST", f"/api/workspaces/{ws['slug']}/members", owner["token"], {"email": p["email"]}, status=201)
        return owner, ws, people

    def broadcast(self, owner: dict, ws: dict, title: str = "hello", **extra: Any) -> dict:
        body = {"title": title, "broadcast": True, **extra}
        return self.call("POST", f"/api/workspaces/{ws['slug']}/notifications", owner["token"], body, status=201)["notification"]

"""Small helpers for the HTTP API tests: accounts, workspaces, error bodies.

Everything here goes through the public API (the aiohttp test client), so a
helper fails loudly, with the response body, when the API misbehaves.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

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

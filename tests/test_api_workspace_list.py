"""GET /api/workspaces pages by (name, id) with a keyset cursor, like every list."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from helpers import PAGE_MAX, create_workspace, expect_error, json_of, register

from pulsestack.app import create_app
from pulsestack.config import load_config
from pulsestack.db import open_database


async def test_workspaces_page_by_name_with_no_gap_or_repeat(client):
    _, headers = await register(client)
    names = ["Echo", "alpha", "Delta", "Bravo", "Charlie"]
    for name in names:
        await create_workspace(client, headers, name=name)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await json_of(await client.get("/api/workspaces", params=params, headers=headers), 200)
        pages += 1
        assert len(body["items"]) <= 2
        seen += [w["name"] for w in body["items"]]
        assert all(w["role"] == "owner" for w in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(names) and len(seen) == len(set(seen))


async def test_workspace_list_refuses_bad_limits_and_cursors(client):
    _, headers = await register(client)
    for params in ({"limit": "0"}, {"limit": str(PAGE_MAX + 1)}, {"cursor": "garbage"}, {"cursor": "eyJuYW1lIjogMX0"}):
        await expect_error(await client.get("/api/workspaces", params=params, headers=headers), 400, "bad_request")


def cursor_of(values: dict) -> str:
    """A cursor as the server spells one: url-safe base64 of compact JSON, unpadded."""
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


@pytest.mark.parametrize("name", ["\\ud800", "a\\udfffb", "\\u0000", "x\\u0000"])
async def test_a_cursor_whose_name_no_database_can_store_is_400_not_500(client, name):
    """A lone surrogate (both databases) or a NUL (Postgres) inside a well-formed cursor."""
    _, headers = await register(client)
    await create_workspace(client, headers, name="Acme")
    raw = '{"name":"%s","id":"%s"}' % (name, uuid.uuid4())
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    resp = await client.get("/api/workspaces", params={"cursor": cursor}, headers=headers)

    body = await expect_error(resp, 400, "bad_request")
    assert "cursor" in body["error"]["details"]


async def test_a_cursor_the_server_made_still_works_when_built_by_hand(client):
    """The cursor's spelling is stable: a page after ("B", nil id) starts at the next name."""
    _, headers = await register(client)
    for name in ("A", "B", "C"):
        await create_workspace(client, headers, name=name)

    body = await json_of(await client.get("/api/workspaces", headers=headers,
                                          params={"cursor": cursor_of({"name": "B", "id": str(uuid.UUID(int=0))})}), 200)

    assert [w["name"] for w in body["items"]] == ["B", "C"]


NAMES = ["beta", "Alpha", "alpha", "Zulu", "zeta", "Ärger", "_under", "10 Downing", "9 Elms", "Beta"]


async def test_workspaces_are_ordered_by_code_point_on_every_database_and_locale(aiohttp_client, locale_database_url):
    """By name in Unicode code point order (upper case before lower case), the
    same on SQLite and on a Postgres database collated by a human locale."""
    config = load_config(Path(__file__).with_name("empty.toml"), env={"PULSESTACK_DATABASE_URL": locale_database_url})
    async with open_database(locale_database_url) as db:
        client = await aiohttp_client(create_app(config, db=db))
        _, headers = await register(client)
        for name in NAMES:
            await create_workspace(client, headers, name=name)

        me = await json_of(await client.get("/api/me", headers=headers), 200)
        paged, cursor = [], None
        while True:
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            body = await json_of(await client.get("/api/workspaces", params=params, headers=headers), 200)
            paged += [w["name"] for w in body["items"]]
            if (cursor := body["next_cursor"]) is None:
                break

    assert [w["name"] for w in me["workspaces"]] == sorted(NAMES)
    assert paged == sorted(NAMES)

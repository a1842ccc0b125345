"""GET /api/workspaces pages by (name, id) with a keyset cursor, like every list."""

from __future__ import annotations

from apihelpers import create_workspace, expect_error, json_of, register


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
    for params in ({"limit": "0"}, {"limit": "101"}, {"cursor": "garbage"}, {"cursor": "eyJuYW1lIjogMX0"}):
        await expect_error(await client.get("/api/workspaces", params=params, headers=headers), 400, "bad_request")

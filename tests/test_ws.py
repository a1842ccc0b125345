"""The websocket protocol (docs/websocket.md) and the hub, with real websocket clients.

Every test runs on SQLite and on PostgreSQL (the `client` fixture: the whole
app on a real aiohttp test server, with the real UnreadHub). Frames are read
with a hang guard (helpers.HANG_GUARD_S), never timed.

Absence of a frame is shown with a barrier, not a sleep: frames reach a socket
in the order the hub queued them, so once a later frame (a pong, or the
notification of a later send) has arrived, a frame that was due earlier would
have arrived before it.

Every `unread` frame a test waits for is also compared with
GET /api/notifications/unread-count (`Conn.synced`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from helpers import (
    API_TS,
    CHANGED_ITEM_KEYS,
    HANG_GUARD_S,
    PASSWORD,
    Conn,
    Person,
    bearer,
    connect,
    counts,
    create_workspace,
    expect_close,
    inbox_all,
    inbox_item,
    join,
    json_of,
    login,
    open_ws,
    parse_ts,
    poll,
    raw_read_until_close,
    raw_ws_connect,
    register,
    send_until_dropped,
    token_of,
)
from helpers import get_unread_count as unread_count  # by bearer headers; helpers.unread_count takes a Person
from helpers import post_notification as send  # by bearer headers; helpers.send takes a Person and a payload

from pulsestack import hub as hub_module
from pulsestack.api import ws as ws_api
from pulsestack.app import create_app
from pulsestack.appkeys import CONFIG, HUB
from pulsestack.db import NamedQuery
from pulsestack.eventbus import Change
from pulsestack.hub import CHANGED_MAX, News, Socket, UnreadHub, holds_id
from pulsestack.ids import utcnow
from pulsestack.queries import hub as hub_queries

CLOSE_UNAUTHORIZED = 4401
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_GOING_AWAY = 1001
CLOSE_SLOW = 1013
BAD_MESSAGE = {"type": "error", "code": "bad_message"}

SQL_EXPIRE_SESSIONS_OF = NamedQuery.dynamic(
    "t_expire_sessions_of", "UPDATE sessions SET expires_at = :t WHERE user_id = :user_id", "exec")
SQL_DELETE_RECEIPTS_OF = NamedQuery.dynamic(
    "t_delete_receipts_of", "DELETE FROM notification_receipts WHERE user_id = :user_id", "exec")


async def person(client) -> Person:
    return Person(*await register(client))


async def member(client, owner: Person, slug: str, role: str = "member") -> Person:
    return Person(*await join(client, owner.headers, slug, role))


async def team(client, members: int) -> tuple[Person, dict, list[Person]]:
    """An owner, their workspace, and `members` plain members."""
    owner = await person(client)
    ws = await create_workspace(client, owner.headers)
    return owner, ws, [await member(client, owner, ws["slug"]) for _ in range(members)]


def hub_of(client) -> UnreadHub:
    hub = client.app[HUB]
    assert isinstance(hub, UnreadHub)
    return hub


# --- authentication -----------------------------------------------------------------------------

async def test_ready_reflects_the_existing_unread_state(client):
    owner, ws1, [alice] = await team(client, 1)
    other = await person(client)
    ws2 = await create_workspace(client, other.headers)
    await json_of(await client.post(f"/api/workspaces/{ws2['slug']}/members", json={"email": alice.user["email"]},
                                    headers=other.headers), 201)
    await send(client, owner.headers, ws1["slug"], title="one")
    await send(client, owner.headers, ws1["slug"], title="two")
    await send(client, other.headers, ws2["slug"], recipients=[alice.id], title="three")

    conn = await connect(client, alice.headers)

    assert conn.ready["user_id"] == alice.id
    assert conn.ready["unread"] == counts({ws1["id"]: 2, ws2["id"]: 1})
    assert conn.ready["unread"] == await unread_count(client, alice.headers)
    assert conn.state == await unread_count(client, alice.headers)
    # Nothing sent before the connect is replayed: the next thing to arrive is the pong.
    await conn.ping()
    assert conn.notifications == []
    assert all(state == conn.state for state in conn.unread), conn.frames


async def test_ready_of_a_user_without_notifications(client):
    nobody = await person(client)

    conn = await connect(client, nobody.headers)

    assert conn.ready["user_id"] == nobody.id
    assert conn.ready["unread"] == counts({})
    await conn.ping()


async def test_ready_carries_the_server_time_the_ping_interval_and_the_token_expiry(aiohttp_client, config, db):
    client = await aiohttp_client(create_app(config.replace(hub={"heartbeat_s": 7}), db=db))
    user, _ = await register(client)
    issued = await json_of(await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD}), 200)

    before = utcnow()
    conn = await connect(client, bearer(issued["token"]))
    after = utcnow()

    assert conn.ready["heartbeat_s"] == 7 == client.app[CONFIG].hub.heartbeat_s  # what the server pings by
    assert conn.ready["token_expires_at"] == issued["expires_at"]  # the login answer's, to the microsecond
    assert API_TS.match(conn.ready["server_time"]), conn.ready
    assert before <= parse_ts(conn.ready["server_time"]) <= after
    assert conn.ready["unread"] == counts({}) == await unread_count(client, bearer(issued["token"]))


async def test_ready_tells_the_default_ping_interval(client):
    alice = await person(client)
    conn = await connect(client, alice.headers)
    assert conn.ready["heartbeat_s"] == client.app[CONFIG].hub.heartbeat_s == 30  # docs/websocket.md: default 30


FIRST_FRAMES = {
    "bad token": ("text", '{"type": "auth", "token": "not-a-token"}'),
    "empty token": ("text", '{"type": "auth", "token": ""}'),
    "garbage": ("text", "hello there"),
    "binary auth": ("binary", None),  # the user's valid auth frame, sent as binary
    "ping first": ("text", '{"type": "ping"}'),
    "auth without token": ("text", '{"type": "auth"}'),
    "token not a string": ("text", '{"type": "auth", "token": 12345}'),
    "json array": ("text", '["auth", "token"]'),
    "json string": ("text", '"auth"'),
}


@pytest.mark.parametrize("case", FIRST_FRAMES)
async def test_a_first_frame_that_does_not_authenticate_closes_4401(client, case):
    alice = await person(client)
    kind, text = FIRST_FRAMES[case]
    ws = await open_ws(client)
    if kind == "binary":
        await ws.send_bytes(f'{{"type": "auth", "token": "{token_of(alice.headers)}"}}'.encode())
    else:
        await ws.send_str(text)

    seen: list = []
    assert await expect_close(ws, seen) == CLOSE_UNAUTHORIZED
    assert seen == []
    assert alice.id not in {str(u) for u in hub_of(client).sockets}


async def test_an_expired_token_closes_4401(client, db):
    alice = await person(client)
    await (await connect(client, alice.headers)).ws.close()  # the token works ...
    await db.execute(SQL_EXPIRE_SESSIONS_OF, t=utcnow() - timedelta(seconds=1), user_id=uuid.UUID(alice.id))

    ws = await open_ws(client)
    await ws.send_json({"type": "auth", "token": token_of(alice.headers)})

    seen: list = []
    assert await expect_close(ws, seen) == CLOSE_UNAUTHORIZED  # ... until it expires
    assert seen == []


async def test_no_auth_frame_in_time_closes_4408(client, monkeypatch):
    assert ws_api.AUTH_TIMEOUT_S == 10  # docs/websocket.md: within 10 s; shortened here
    monkeypatch.setattr(ws_api, "AUTH_TIMEOUT_S", 0.2)
    ws = await open_ws(client)

    seen: list = []
    assert await expect_close(ws, seen) == CLOSE_AUTH_TIMEOUT
    assert seen == []


async def test_websockets_are_served_without_compression(client):
    """Per-message deflate costs hundreds of KiB per socket, so it is off (docs/websocket.md: not offered)."""
    alice = await person(client)
    ws = await client.ws_connect("/ws", compress=15)  # the client offers permessage-deflate
    assert ws.compress == 0
    await ws.send_json({"type": "auth", "token": token_of(alice.headers)})
    assert (await ws.receive_json(timeout=10))["type"] == "ready"


# --- after ready: ping and bad messages -----------------------------------------------------------

async def test_ping_pong_and_bad_messages_keep_the_connection(client):
    alice = await person(client)
    conn = await connect(client, alice.headers)
    await conn.ping()

    for bad in ("not json", '{"type": "nope"}', "[1, 2]", "42", '{"no": "type"}', '{"type": "PING"}',
                f'{{"type": "auth", "token": "{token_of(alice.headers)}"}}'):
        await conn.ws.send_str(bad)
        assert await conn.until_type("error") == BAD_MESSAGE, bad
    await conn.ws.send_bytes(b'{"type": "ping"}')
    assert await conn.until_type("error") == BAD_MESSAGE

    await conn.ping()
    await conn.ping()
    assert not conn.ws.closed


# --- pushes ----------------------------------------------------------------------------------------

async def test_sends_and_read_state_changes_push_counts_and_notifications(client):
    owner, ws, [alice, bob] = await team(client, 2)
    slug = ws["slug"]
    a = await connect(client, alice.headers)
    assert a.state == counts({})

    # broadcast
    n1 = await send(client, owner.headers, slug, title="Broadcast one", message="hello all")
    assert await a.until_unread(1) == counts({ws["id"]: 1})
    item = await a.until_notification(n1["id"])
    assert item == await inbox_item(client, alice.headers, n1["id"])
    assert item["title"] == "Broadcast one" and item["message"] == "hello all"
    assert item["workspace_slug"] == slug and item["workspace_id"] == ws["id"]
    assert item["is_read"] is False and item["read_at"] is None and item["broadcast"] is True
    assert item["sender_id"] == owner.id
    await a.synced(client, alice.headers)

    # direct send (by a plain member)
    n2 = await send(client, bob.headers, slug, recipients=[alice.id], title="Direct")
    assert await a.until_unread(2) == counts({ws["id"]: 2})
    item = await a.until_notification(n2["id"])
    assert item == await inbox_item(client, alice.headers, n2["id"])
    assert item["broadcast"] is False and item["is_read"] is False and item["workspace_slug"] == slug
    await a.synced(client, alice.headers)

    # read, unread
    await json_of(await client.post(f"/api/notifications/{n1['id']}/read", headers=alice.headers), 200)
    assert await a.until_unread(1) == counts({ws["id"]: 1})
    await a.synced(client, alice.headers)
    await json_of(await client.post(f"/api/notifications/{n1['id']}/unread", headers=alice.headers), 200)
    assert await a.until_unread(2) == counts({ws["id"]: 2})
    await a.synced(client, alice.headers)

    # bulk read
    await json_of(await client.post("/api/notifications/read", json={"ids": [n1["id"], n2["id"]]},
                                    headers=alice.headers), 200)
    assert await a.until_unread(0) == counts({})
    await a.synced(client, alice.headers)

    # read-all
    n3 = await send(client, owner.headers, slug, title="three")
    await a.until_unread(1)
    n4 = await send(client, owner.headers, slug, title="four")
    await a.until_unread(2)
    await a.until_notification(n3["id"])
    await a.until_notification(n4["id"])
    await json_of(await client.post("/api/notifications/read-all", json={}, headers=alice.headers), 200)
    assert await a.until_unread(0) == counts({})
    await a.synced(client, alice.headers)

    # dismiss
    n5 = await send(client, owner.headers, slug, title="five")
    await a.until_unread(1)
    await a.until_notification(n5["id"])
    assert (await client.delete(f"/api/notifications/{n5['id']}", headers=alice.headers)).status == 204
    assert await a.until_unread(0) == counts({})
    await a.synced(client, alice.headers)

    await a.ping()
    assert [i["id"] for i in a.notifications] == [n["id"] for n in (n1, n2, n3, n4, n5)]


async def test_retraction_member_removal_and_workspace_deletion_push_counts(client):
    owner, ws1, [alice, bob] = await team(client, 2)
    other = await person(client)
    ws2 = await create_workspace(client, other.headers)
    await json_of(await client.post(f"/api/workspaces/{ws2['slug']}/members", json={"email": bob.user["email"]},
                                    headers=other.headers), 201)
    a = await connect(client, alice.headers)
    b = await connect(client, bob.headers)
    n1 = await send(client, owner.headers, ws1["slug"], title="to be retracted")
    n2 = await send(client, owner.headers, ws1["slug"], title="stays")
    n3 = await send(client, other.headers, ws2["slug"], title="elsewhere")
    for conn, who, total in ((a, alice, 2), (b, bob, 3)):
        await conn.until_unread(total, strict=False)  # sends in a row may share a flush
        await conn.synced(client, who.headers)
    assert b.state == counts({ws1["id"]: 2, ws2["id"]: 1})

    # retraction: every member's count drops
    assert (await client.delete(f"/api/workspaces/{ws1['slug']}/notifications/{n1['id']}",
                                headers=owner.headers)).status == 204
    assert await a.until_unread(1) == counts({ws1["id"]: 1})
    assert await b.until_unread(2) == counts({ws1["id"]: 1, ws2["id"]: 1})
    await a.synced(client, alice.headers)
    await b.synced(client, bob.headers)

    # member removal: the removed member's count drops; their socket stays open
    assert (await client.delete(f"/api/workspaces/{ws1['slug']}/members/{alice.id}",
                                headers=owner.headers)).status == 204
    assert await a.until_unread(0) == counts({})
    await a.synced(client, alice.headers)
    await a.ping()
    frames_before_deletion = len(a.frames)

    # workspace deletion: the members' counts lose the workspace
    assert (await client.delete(f"/api/workspaces/{ws1['slug']}", headers=owner.headers)).status == 204
    assert await b.until_unread(1) == counts({ws2["id"]: 1})
    await b.synced(client, bob.headers)

    # alice, no longer a member, got nothing from the deletion: her next frame is the pong
    await a.ping()
    assert a.frames[frames_before_deletion:] == [{"type": "pong"}]
    assert {i["id"] for i in a.notifications} == {n1["id"], n2["id"]}
    assert {i["id"] for i in b.notifications} == {n1["id"], n2["id"], n3["id"]}


async def test_notification_frames_go_to_connected_recipients_only(client):
    owner, ws, [alice, bob, carol, dave] = await team(client, 4)
    slug = ws["slug"]
    o = await connect(client, owner.headers)
    a = await connect(client, alice.headers)
    b = await connect(client, bob.headers)
    c = await connect(client, carol.headers)
    # dave is not connected

    # one send at a time, each pushed before the next (each its own flush)
    n1 = await send(client, owner.headers, slug, title="broadcast")  # everyone but the sender
    for conn in (a, b, c):
        await conn.until_notification(n1["id"])
    n2 = await send(client, alice.headers, slug, recipients=[bob.id], title="direct to bob")
    await b.until_notification(n2["id"])
    n3 = await send(client, owner.headers, slug, title="barrier")  # a later frame for the members
    n4 = await send(client, alice.headers, slug, recipients=[owner.id], title="barrier for the owner")

    for conn in (a, b, c):
        await conn.until_notification(n3["id"])
    await o.until_notification(n4["id"])
    assert [i["id"] for i in o.notifications] == [n4["id"]]
    assert [i["id"] for i in a.notifications] == [n1["id"], n3["id"]]
    assert [i["id"] for i in b.notifications] == [n1["id"], n2["id"], n3["id"]]
    assert [i["id"] for i in c.notifications] == [n1["id"], n3["id"]]
    for conn, who in ((o, owner), (a, alice), (b, bob), (c, carol)):
        await conn.synced(client, who.headers)
        for item in conn.notifications:
            assert item == await inbox_item(client, who.headers, item["id"])

    # dave was never pushed anything; connecting now, he gets the whole state in `ready`, and no backlog
    d = await connect(client, dave.headers)
    assert d.ready["unread"] == counts({ws["id"]: 2})
    await d.ping()
    assert d.notifications == []


async def test_the_hub_counts_only_connected_users(client, monkeypatch):
    owner, ws, people = await team(client, 5)
    alice = people[0]
    hub = hub_of(client)
    counted: list[set[str]] = []
    real_count = hub._count

    async def spy(user_ids):
        user_ids = list(user_ids)
        counted.append({str(u) for u in user_ids})
        return await real_count(user_ids)

    monkeypatch.setattr(hub, "_count", spy)
    a = await connect(client, alice.headers)
    await send(client, owner.headers, ws["slug"], title="one")
    await send(client, owner.headers, ws["slug"], recipients=[p.id for p in people[1:]], title="not alice")
    n3 = await send(client, owner.headers, ws["slug"], recipients=[alice.id], title="barrier")
    await a.until_notification(n3["id"])
    await a.until_unread(2, strict=False)

    assert counted, "the hub never counted"
    assert all(ids <= {alice.id} for ids in counted), counted
    assert {str(u) for u in hub.sockets} == {alice.id}


# --- tabs and logout -------------------------------------------------------------------------------

async def test_every_tab_of_a_user_gets_every_frame(client):
    owner, ws, [alice] = await team(client, 1)
    second_token = await login(client, alice.user["email"])
    tabs = [await connect(client, alice.headers), await connect(client, alice.headers),
            await connect(client, second_token)]

    n1 = await send(client, owner.headers, ws["slug"], title="one")
    for tab in tabs:
        assert await tab.until_unread(1) == counts({ws["id"]: 1})
        await tab.until_notification(n1["id"])
    await json_of(await client.post(f"/api/notifications/{n1['id']}/read", headers=alice.headers), 200)
    for tab in tabs:
        assert await tab.until_unread(0) == counts({})
    n2 = await send(client, owner.headers, ws["slug"], recipients=[alice.id], title="two")
    for tab in tabs:
        assert await tab.until_unread(1) == counts({ws["id"]: 1})
        await tab.until_notification(n2["id"])
        await tab.ping()
        assert [i["id"] for i in tab.notifications] == [n1["id"], n2["id"]]
        assert tab.notifications == tabs[0].notifications
        await tab.synced(client, alice.headers)

    # a tab opened now starts from the current state
    late = await connect(client, alice.headers)
    assert late.ready["unread"] == counts({ws["id"]: 1})


async def test_logout_closes_that_tokens_sockets_only(client):
    owner, ws, [alice] = await team(client, 1)
    other_token = await login(client, alice.user["email"])
    doomed = [await connect(client, alice.headers), await connect(client, alice.headers)]
    survivor = await connect(client, other_token)

    assert (await client.post("/api/auth/logout", headers=alice.headers)).status == 204

    for conn in doomed:
        assert await conn.closed() == CLOSE_UNAUTHORIZED
    await survivor.ping()
    n1 = await send(client, owner.headers, ws["slug"], title="after logout")
    assert await survivor.until_unread(1) == counts({ws["id"]: 1})
    await survivor.until_notification(n1["id"])
    await survivor.synced(client, other_token)
    assert [len(sockets) for sockets in hub_of(client).sockets.values()] == [1]

    # the revoked token no longer authenticates
    ws_ = await open_ws(client)
    await ws_.send_json({"type": "auth", "token": token_of(alice.headers)})
    assert await expect_close(ws_) == CLOSE_UNAUTHORIZED


# --- list changes: `changed` and `refresh` ----------------------------------------------------------

@contextlib.contextmanager
def changes_held(hub: UnreadHub) -> Iterator[Change]:
    """Inside, what the services tell the hub piles up in the yielded Change
    instead of reaching the flusher: as another process's changes do until
    its NOTIFY arrives. `hub._apply(change)` then hands it over, as the bus would."""
    held = Change()
    hub._publish = held.merge  # type: ignore[method-assign]  # the instance's attribute shadows the method
    try:
        yield held
    finally:
        del hub._publish

def receipt_state(item: dict) -> dict:
    """What a `changed` frame says of an inbox item."""
    return {key: item[key] for key in CHANGED_ITEM_KEYS}


async def expect_changed(conns: list[Conn], client, headers: dict[str, str], changed=(), removed=()) -> None:
    """The next `changed` frame of each socket: the `changed` ids in the state the inbox shows now (by id),
    and the `removed` ids."""
    items = [receipt_state(await inbox_item(client, headers, i)) for i in sorted(changed)]
    for conn in conns:
        assert await conn.until_type("changed") == {"type": "changed", "items": items, "removed": sorted(removed)}


async def nothing_listed_since(conn: Conn, mark: int) -> None:
    """Neither `changed` nor `refresh` reached `conn` after frame number `mark` (the pong is the barrier)."""
    await conn.ping()
    assert [f for f in conn.frames[mark:] if f["type"] in ("changed", "refresh")] == [], conn.frames[mark:]


async def call(client, method: str, path: str, headers: dict[str, str], status: int, body: dict | None = None) -> None:
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status == status, await resp.text()


async def test_read_unread_archive_unarchive_and_dismiss_push_changed_to_every_tab_of_that_user_only(client):
    owner, ws, [alice, bob] = await team(client, 2)
    tabs = [await connect(client, alice.headers), await connect(client, await login(client, alice.user["email"]))]
    b = await connect(client, bob.headers)
    n1 = await send(client, owner.headers, ws["slug"], title="one")
    n2 = await send(client, owner.headers, ws["slug"], title="two")
    for conn in (*tabs, b):
        await conn.until_notification(n2["id"])
        await conn.until_unread(2, strict=False)
    bob_mark = len(b.frames)
    n1_path = f"/api/notifications/{n1['id']}"

    await call(client, "POST", n1_path + "/read", alice.headers, 200)
    await expect_changed(tabs, client, alice.headers, [n1["id"]])
    item = receipt_state(await inbox_item(client, alice.headers, n1["id"]))
    assert item["is_read"] is True and API_TS.match(item["read_at"]) and item["archived"] is False
    for tab in tabs:
        assert await tab.until_unread(1) == counts({ws["id"]: 1})

    await call(client, "POST", n1_path + "/read", alice.headers, 200)  # already read: nothing changes, no frame
    await call(client, "POST", n1_path + "/unread", alice.headers, 200)
    await expect_changed(tabs, client, alice.headers, [n1["id"]])  # the unread's frame, not one of the no-op
    assert receipt_state(await inbox_item(client, alice.headers, n1["id"]))["read_at"] is None
    for tab in tabs:
        assert await tab.until_unread(2) == counts({ws["id"]: 2})

    await call(client, "POST", n1_path + "/archive", alice.headers, 200)  # archiving reads it too
    await expect_changed(tabs, client, alice.headers, [n1["id"]])
    item = receipt_state(await inbox_item(client, alice.headers, n1["id"]))
    assert item["archived"] is True and API_TS.match(item["archived_at"]) and item["is_read"] is True
    for tab in tabs:
        assert await tab.until_unread(1) == counts({ws["id"]: 1})

    await call(client, "POST", n1_path + "/unarchive", alice.headers, 200)
    await expect_changed(tabs, client, alice.headers, [n1["id"]])
    item = receipt_state(await inbox_item(client, alice.headers, n1["id"]))
    assert item["archived"] is False and item["archived_at"] is None and item["is_read"] is True

    await call(client, "DELETE", f"/api/notifications/{n2['id']}", alice.headers, 204)  # dismiss
    await expect_changed(tabs, client, alice.headers, removed=[n2["id"]])
    for tab in tabs:
        assert await tab.until_unread(0) == counts({})
        await tab.synced(client, alice.headers)

    await nothing_listed_since(b, bob_mark)  # bob holds the same notifications; his receipts did not change
    assert b.state == counts({ws["id"]: 2})


async def test_bulk_read_bulk_archive_read_all_and_archive_all_push_changed(client):
    owner, ws, [alice, bob] = await team(client, 2)
    a = await connect(client, alice.headers)
    b = await connect(client, bob.headers)
    n = [await send(client, owner.headers, ws["slug"], title=f"n{i}") for i in range(4)]
    ids = [x["id"] for x in n]
    for conn in (a, b):
        await conn.until_notification(ids[-1])
        await conn.until_unread(4, strict=False)
    bob_mark = len(b.frames)

    await call(client, "POST", "/api/notifications/read", alice.headers, 200, {"ids": ids[:2]})
    await expect_changed([a], client, alice.headers, ids[:2])
    assert await a.until_unread(2) == counts({ws["id"]: 2})

    await call(client, "POST", "/api/notifications/archive", alice.headers, 200, {"ids": ids[1:3]})
    await expect_changed([a], client, alice.headers, ids[1:3])
    assert await a.until_unread(1) == counts({ws["id"]: 1})

    await call(client, "POST", "/api/notifications/read-all", alice.headers, 200, {})  # only n3 was unread
    await expect_changed([a], client, alice.headers, ids[3:])
    assert await a.until_unread(0) == counts({})

    await call(client, "POST", "/api/notifications/archive-all", alice.headers, 200, {"status": "all"})
    await expect_changed([a], client, alice.headers, [ids[0], ids[3]])  # the two not archived yet
    await a.synced(client, alice.headers)
    await nothing_listed_since(b, bob_mark)


async def test_more_than_changed_max_receipts_at_once_push_refresh(client):
    owner, ws, [alice, bob] = await team(client, 2)
    a = await connect(client, alice.headers)
    b = await connect(client, bob.headers)
    sent: list[dict] = []
    for _ in range(CHANGED_MAX + 1):  # one at a time: 101 sends, each its own transaction
        sent.append(await send(client, owner.headers, ws["slug"], recipients=[alice.id], title=f"n{len(sent)}"))
    ids = sorted(x["id"] for x in sent)
    await a.until_unread(CHANGED_MAX + 1, strict=False)
    await a.ping()
    mark = len(a.frames)

    # exactly CHANGED_MAX: still listed, all in one frame, each as the inbox shows it
    await call(client, "POST", "/api/notifications/read", alice.headers, 200, {"ids": ids[:CHANGED_MAX]})
    frame = await a.until_type("changed")
    states = {i["id"]: receipt_state(i) for i in await inbox_all(client, alice, status="all", archived="include")}
    assert frame == {"type": "changed", "items": [states[i] for i in ids[:CHANGED_MAX]], "removed": []}
    assert await a.until_unread(1) == counts({ws["id"]: 1})

    # one more (archive-all of 101): refresh, then the counts
    await call(client, "POST", "/api/notifications/archive-all", alice.headers, 200, {"status": "all"})
    assert await a.until_type("refresh") == {"type": "refresh"}
    assert await a.until_unread(0) == counts({})

    # the same past the limit through the hub: one call of 101, or two calls that add up to 101 in one flush
    hub = hub_of(client)
    alice_id = uuid.UUID(alice.id)
    hub.receipts_changed(alice_id, [uuid.UUID(i) for i in ids])
    assert await a.until_type("refresh") == {"type": "refresh"}
    hub.receipts_changed(alice_id, [uuid.UUID(i) for i in ids[:60]])
    hub.receipts_changed(alice_id, [uuid.UUID(i) for i in ids[60:]])  # no await between: the same flush
    assert await a.until_type("refresh") == {"type": "refresh"}
    await a.ping()
    assert [f["type"] for f in a.frames[mark:] if f["type"] in ("changed", "refresh")] == ["changed"] + ["refresh"] * 3
    await nothing_listed_since(b, 1)


async def test_a_retraction_pushes_removed_to_the_connected_members_of_its_workspace(client):
    owner, ws, [alice, bob] = await team(client, 2)
    outsider, _, _ = await team(client, 0)
    o = await connect(client, owner.headers)
    a = await connect(client, alice.headers)
    b = await connect(client, bob.headers)
    x = await connect(client, outsider.headers)
    n1 = await send(client, owner.headers, ws["slug"], title="oops")
    n2 = await send(client, owner.headers, ws["slug"], title="stays")
    for conn in (a, b):
        await conn.until_notification(n2["id"])
        await conn.until_unread(2, strict=False)

    await call(client, "DELETE", f"/api/workspaces/{ws['slug']}/notifications/{n1['id']}", owner.headers, 204)

    # every connected member, the sender too (whoever may list it); the counts of those who had it
    for conn in (o, a, b):
        assert await conn.until_type("changed") == {"type": "changed", "items": [], "removed": [n1["id"]]}
    for conn, who in ((a, alice), (b, bob)):
        assert await conn.until_unread(1) == counts({ws["id"]: 1})
        await conn.synced(client, who.headers)
    await nothing_listed_since(x, 1)


async def test_member_removal_leaving_and_workspace_deletion_push_refresh_to_those_users_only(client):
    owner, ws, [alice, bob, carol] = await team(client, 3)
    o, a, b, c = [await connect(client, p.headers) for p in (owner, alice, bob, carol)]
    n1 = await send(client, owner.headers, ws["slug"], title="hello")
    for conn in (a, b, c):
        await conn.until_notification(n1["id"])
        await conn.until_unread(1, strict=False)
    marks = {id(conn): len(conn.frames) for conn in (o, a, b, c)}

    # removal: alice alone
    await call(client, "DELETE", f"/api/workspaces/{ws['slug']}/members/{alice.id}", owner.headers, 204)
    assert await a.until_type("refresh") == {"type": "refresh"}
    assert await a.until_unread(0) == counts({})
    for conn in (o, b, c):
        await nothing_listed_since(conn, marks[id(conn)])

    # leaving: bob alone
    await call(client, "DELETE", f"/api/workspaces/{ws['slug']}/members/{bob.id}", bob.headers, 204)
    assert await b.until_type("refresh") == {"type": "refresh"}
    assert await b.until_unread(0) == counts({})
    for conn in (o, c):
        await nothing_listed_since(conn, marks[id(conn)])
    marks = {id(conn): len(conn.frames) for conn in (a, b)}

    # deletion: everyone who was still a member (the owner and carol), not the two who are gone
    await call(client, "DELETE", f"/api/workspaces/{ws['slug']}", owner.headers, 204)
    for conn in (o, c):
        assert await conn.until_type("refresh") == {"type": "refresh"}
    assert await c.until_unread(0) == counts({})
    for conn in (a, b):
        await nothing_listed_since(conn, marks[id(conn)])
    for conn, who in ((o, owner), (a, alice), (b, bob), (c, carol)):
        await conn.synced(client, who.headers)


async def test_a_lost_bus_connection_sends_refresh_to_everyone_connected(client):
    alice, bob = await person(client), await person(client)
    a, b = await connect(client, alice.headers), await connect(client, bob.headers)

    hub_of(client)._refresh_everyone()  # what the bus calls once it listens again

    for conn in (a, b):
        assert await conn.until_type("refresh") == {"type": "refresh"}


async def test_one_flush_sends_notifications_then_changed_then_unread(client):
    owner, ws, [alice] = await team(client, 1)
    a = await connect(client, alice.headers)
    hub = hub_of(client)
    with changes_held(hub) as held:
        n1 = await send(client, owner.headers, ws["slug"], title="one")
        n2 = await send(client, owner.headers, ws["slug"], title="two")
        await call(client, "POST", f"/api/notifications/{n1['id']}/read", alice.headers, 200)
    await a.ping()
    mark = len(a.frames)

    hub._apply(held)  # all of it at once: one flush

    assert await a.until_unread(1) == counts({ws["id"]: 1})
    frames = a.frames[mark:]
    assert [f["type"] for f in frames] == ["notification", "notification", "changed", "unread"], frames
    assert [f["item"]["id"] for f in frames[:2]] == [n1["id"], n2["id"]]  # oldest first
    assert frames[2]["items"] == [receipt_state(await inbox_item(client, alice.headers, n1["id"]))]


async def test_a_notification_heard_twice_from_another_process_is_pushed_and_counted_once(client, monkeypatch):
    """A publisher whose connection failed after its NOTIFY ran sends that payload again
    (db/postgres_bus.py); the hub drops the repeat. Counts are bumped here (margin 0), so a repeat
    would also add one unread too many."""
    monkeypatch.setattr(hub_module, "BUMP_MARGIN", timedelta(0))
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    flushes = hub.flushes
    a = await connect(client, alice.headers)
    await poll(lambda: hub.flushes > flushes, "the recount the connect asked for")  # counted before the sends
    with changes_held(hub) as held:
        n1 = await send(client, owner.headers, ws["slug"], title="one")
    bumps = hub.bumps

    hub._apply_heard(held)  # as the bus hands over another process's change
    assert (await a.until_notification(n1["id"]))["title"] == "one"
    await a.until_unread(1)
    hub._apply_heard(held)  # the same payload again
    n2 = await send(client, owner.headers, ws["slug"], title="two")  # then something new, in order after it

    await a.until_notification(n2["id"])
    assert await a.until_unread(2) == counts({ws["id"]: 2})
    assert [n["id"] for n in a.notifications] == [n1["id"], n2["id"]]
    assert hub.bumps == bumps + 2  # both bumped, neither recounted nor bumped twice
    assert a.state == await a.synced(client, alice.headers)


async def test_counts_older_than_the_bump_max_age_are_recounted(client, db, monkeypatch):
    """A count can be wrong without any process hearing of it (here: receipts deleted behind the
    server's back, as a server killed between its commit and its NOTIFY leaves counts). Past
    BUMP_MAX_AGE (here 0: at once) the next notification recounts instead of bumping."""
    monkeypatch.setattr(hub_module, "BUMP_MARGIN", timedelta(0))
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    a = await connect(client, alice.headers)
    for title in ("one", "two"):
        await send(client, owner.headers, ws["slug"], title=title)
    await a.until_unread(2, strict=False)
    await db.execute(SQL_DELETE_RECEIPTS_OF, user_id=uuid.UUID(alice.id))  # the hub is not told
    monkeypatch.setattr(hub_module, "BUMP_MAX_AGE", timedelta(0))
    bumps = hub.bumps

    n3 = await send(client, owner.headers, ws["slug"], title="three")

    await a.until_notification(n3["id"])
    assert await a.until_unread(1) == counts({ws["id"]: 1})  # only "three": recounted, not 2 + 1
    assert hub.bumps == bumps
    assert a.state == await a.synced(client, alice.headers)


async def test_a_socket_that_connects_while_a_flush_counts_gets_no_bump_on_top_of_its_ready(client, monkeypatch):
    """Alice's first tab was counted long ago, so a new notification bumps it. Her second tab
    connects while that flush is counting someone else: its `ready` already counted the
    notification, so bumping it too would say one unread too many (until its own recount)."""
    owner, ws, [alice, bob] = await team(client, 2)
    hub = hub_of(client)
    first = await connect(client, alice.headers)
    b = await connect(client, bob.headers)
    socks = [s for user in (alice, bob) for s in hub.sockets[uuid.UUID(user.id)]]
    at_ready = {id(s): s.counted_at for s in socks}
    await poll(lambda: all(s.counted_at > at_ready[id(s)] for s in socks), "the recounts the connects asked for")
    for sock in hub.sockets[uuid.UUID(alice.id)]:
        sock.counted_at = utcnow() - timedelta(seconds=5)  # as if counted 5 s ago (nothing changed since)
    second: list[Conn] = []
    real_count = hub._count

    async def count_while_a_tab_connects(user_ids):
        second.append(await connect(client, alice.headers))
        return await real_count(user_ids)

    monkeypatch.setattr(hub, "_count", count_while_a_tab_connects)
    with changes_held(hub) as held:
        await send(client, owner.headers, ws["slug"], title="now", recipients=[alice.id])
    held.users.add(uuid.UUID(bob.id))  # someone to count in the same flush
    bumps = hub.bumps

    hub._apply(held)

    assert await first.until_unread(1) == counts({ws["id"]: 1})
    assert hub.bumps == bumps + 1
    [tab] = second
    assert tab.ready["unread"]["total"] == 1  # counted after the send committed
    await tab.ping()
    assert [f["total"] for f in tab.frames if f["type"] == "unread"] == [], tab.frames  # never bumped to 2
    assert tab.notifications == []  # its `ready` counted it: no frame either
    await b.ping()


# --- no double delivery: what `ready` counted is never pushed again --------------------------------

async def test_a_notification_counted_in_ready_is_not_pushed_after_it(client, monkeypatch):
    """The race of a send just before a connect: the flush that pushes the
    send runs only after the connect's `ready`, which counted it already."""
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    gate = asyncio.Event()
    real_flush = hub.flush

    async def held_flush(change):
        await asyncio.wait_for(gate.wait(), HANG_GUARD_S)
        await real_flush(change)

    monkeypatch.setattr(hub, "flush", held_flush)
    await send(client, owner.headers, ws["slug"], title="before the connect")  # n1

    a = await connect(client, alice.headers)  # while the flush that carries n1 waits
    assert a.ready["unread"] == counts({ws["id"]: 1})  # n1 is counted ...
    gate.set()
    n2 = await send(client, owner.headers, ws["slug"], title="after the connect")

    await a.until_notification(n2["id"])  # ... so by the time a later send arrives, n1's flush is long done
    assert [i["id"] for i in a.notifications] == [n2["id"]]  # and it did not push n1 to this socket
    assert await a.until_unread(2, strict=False) == counts({ws["id"]: 2})
    await a.synced(client, alice.headers)


async def test_a_notification_counted_in_ready_is_not_pushed_when_another_process_tells_of_it_later(client):
    """Across processes, the NOTIFY of a send may arrive after a connect that
    counted the send: the bus hands it to the hub like this."""
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    with changes_held(hub) as from_elsewhere:  # as if another process had served the send
        n1 = await send(client, owner.headers, ws["slug"], title="sent through another process")
    assert from_elsewhere.notifications == {uuid.UUID(n1["id"])}

    a = await connect(client, alice.headers)
    assert a.ready["unread"] == counts({ws["id"]: 1})
    hub._apply(from_elsewhere)  # the NOTIFY arrives, after the connect
    n2 = await send(client, owner.headers, ws["slug"], title="a later send")

    await a.until_notification(n2["id"])
    assert [i["id"] for i in a.notifications] == [n2["id"]]
    await a.synced(client, alice.headers)

    # a tab opened before the send is pushed it, the late NOTIFY notwithstanding
    b = await connect(client, alice.headers)
    with changes_held(hub) as n3_change:
        n3 = await send(client, owner.headers, ws["slug"], title="third")
    hub._apply(n3_change)
    for tab in (a, b):
        await tab.until_notification(n3["id"])
    assert [i["id"] for i in b.notifications] == [n3["id"]]


async def test_a_notification_sent_while_ready_is_read_is_pushed_right_after_it(client, monkeypatch):
    """A flush that runs while a socket's `ready` is being read keeps that
    socket's frames and sends them after `ready`: a send that `ready` did not
    count is not lost."""
    owner, ws, [alice, bob] = await team(client, 2)
    b = await connect(client, bob.headers)
    read, gate = asyncio.Event(), asyncio.Event()
    real = hub_queries.get_connect_state

    async def slow_connect_state(*args, **kwargs):
        state = await real(*args, **kwargs)  # the snapshot is taken ...
        read.set()
        await asyncio.wait_for(gate.wait(), HANG_GUARD_S)  # ... and `ready` waits
        return state

    monkeypatch.setattr(hub_queries, "get_connect_state", slow_connect_state)
    connecting = asyncio.create_task(connect(client, alice.headers))
    await asyncio.wait_for(read.wait(), HANG_GUARD_S)
    n1 = await send(client, owner.headers, ws["slug"], title="while alice connects")
    await b.until_notification(n1["id"])  # the flush of n1 ran, alice's socket not ready yet
    gate.set()
    a = await connecting

    assert a.ready["unread"] == counts({})  # the snapshot came before n1 ...
    assert (await a.until_notification(n1["id"]))["title"] == "while alice connects"  # ... so n1 is pushed
    assert await a.until_unread(1) == counts({ws["id"]: 1})
    await a.ping()
    assert [i["id"] for i in a.notifications] == [n1["id"]]
    await a.synced(client, alice.headers)


# --- coalescing ------------------------------------------------------------------------------------

async def test_many_users_changed_calls_cost_one_flush(client, db):
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    a = await connect(client, alice.headers)
    for i in range(3):
        await send(client, owner.headers, ws["slug"], title=f"n{i}")
        await a.until_unread(i + 1)
    # A change the hub is not told about by a service ...
    await db.execute(SQL_DELETE_RECEIPTS_OF, user_id=uuid.UUID(alice.id))
    before = hub.flushes

    for _ in range(50):  # ... then fifty notices of it, in one go
        hub.users_changed([uuid.UUID(alice.id)])

    assert await a.until_unread(0) == counts({})
    assert hub.flushes - before <= 2, f"{hub.flushes - before} flushes for 50 users_changed calls"
    await a.synced(client, alice.headers)


async def test_a_burst_of_sends_is_pushed_in_few_flushes(client, monkeypatch):
    """Changes that come while a flush is busy pile up for one next flush. (The flush is held until
    every send has answered, so the count does not depend on how fast this machine sends.)"""
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    a = await connect(client, alice.headers)
    await a.ping()
    before = hub.flushes
    sends_done = asyncio.Event()
    real_flush = hub.flush

    async def held_flush(change):
        await sends_done.wait()
        await real_flush(change)

    monkeypatch.setattr(hub, "flush", held_flush)

    sent = await asyncio.gather(*(send(client, owner.headers, ws["slug"], title=f"burst {i}") for i in range(20)))
    sends_done.set()

    assert await a.until_unread(20, strict=False) == counts({ws["id"]: 20})
    for n in sent:
        await a.until_notification(n["id"])
    assert hub.flushes - before <= 2, f"{hub.flushes - before} flushes for 20 sends"
    await a.ping()
    assert sorted(i["id"] for i in a.notifications) == sorted(n["id"] for n in sent)  # each exactly once
    await a.synced(client, alice.headers)


# --- a failed flush --------------------------------------------------------------------------------

async def test_a_flush_that_fails_is_retried_and_loses_nothing(client, monkeypatch, caplog):
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    a = await connect(client, alice.headers)
    await a.ping()
    real = hub._new_notifications
    failed: list[set] = []

    async def fails_once(notification_ids, chunks, connected):
        if notification_ids and not failed:  # the flush that carries the send below, whatever else it carries
            failed.append(set(notification_ids))
            raise RuntimeError("the driver lost its way")
        return await real(notification_ids, chunks, connected)

    monkeypatch.setattr(hub, "_new_notifications", fails_once)

    n1 = await send(client, owner.headers, ws["slug"], title="through a failed flush")

    assert await a.until_unread(1) == counts({ws["id"]: 1})
    assert (await a.until_notification(n1["id"]))["title"] == "through a failed flush"
    assert failed == [{uuid.UUID(n1["id"])}]
    await a.synced(client, alice.headers)
    await a.ping()
    assert [i["id"] for i in a.notifications] == [n1["id"]]  # once, not twice
    logged = [r for r in caplog.records if r.name == "pulsestack.hub" and "flush failed" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "RuntimeError: the driver lost its way" in logged[0].getMessage()


# --- a slow consumer -------------------------------------------------------------------------------

async def test_a_client_that_stops_reading_is_closed_and_slows_nobody(aiohttp_client, config, db):
    client = await aiohttp_client(create_app(config.replace(hub={"send_queue": 4}), db=db))
    hub = hub_of(client)
    owner, ws, [alice, stalled] = await team(client, 2)
    a = await connect(client, alice.headers)
    raw = await raw_ws_connect(client.server.host, client.server.port, token_of(stalled.headers))
    stalled_id = uuid.UUID(stalled.id)
    try:
        sent: list[dict] = []

        async def send_big(i: int) -> None:
            n = await send(client, owner.headers, ws["slug"], title=f"big {i}", message="x" * 10_000)
            sent.append(n)
            # the reading client keeps up: each send reaches it, counts included
            await a.until_notification(n["id"])
            await a.until_unread(len(sent))

        await send_until_dropped(hub, stalled_id, send_big)
        # Reading the stalled socket now: what it got, then a close frame with 1013 (try again later).
        texts, code = await raw_read_until_close(raw)
        assert code == CLOSE_SLOW
        frames = [json.loads(t) for t in texts]
        assert frames[0]["type"] == "ready"
        got = [f["item"]["id"] for f in frames if f["type"] == "notification"]
        assert got == [n["id"] for n in sent[:len(got)]], "the frames it did get came in order"
        assert len(got) < len(sent), "the dropped client cannot have received everything"
        # the reading client was never dropped and got every notification, in order
        assert [i["id"] for i in a.notifications] == [n["id"] for n in sent]
        await a.ping()
        await a.synced(client, alice.headers)
        n = await send(client, owner.headers, ws["slug"], title="after the drop")
        await a.until_notification(n["id"])
    finally:
        raw.close()

    # the dropped client reconnects to fresh state
    again = await connect(client, stalled.headers)
    assert again.ready["unread"] == await unread_count(client, stalled.headers)
    assert again.ready["unread"]["total"] == len(sent) + 1


# --- shutdown ----------------------------------------------------------------------------------------

async def test_shutdown_closes_every_socket_with_1001(client):
    owner, ws, [alice] = await team(client, 1)
    conns = [await connect(client, alice.headers), await connect(client, owner.headers)]
    for conn in conns:
        await conn.ping()

    closing = asyncio.create_task(client.server.close())  # the runner's cleanup: on_shutdown, then cleanup
    try:
        for conn in conns:
            assert await conn.closed() == CLOSE_GOING_AWAY
    finally:
        await asyncio.wait_for(closing, 15)
    assert hub_of(client).sockets == {}


async def test_shutdown_closes_a_socket_still_authenticating_with_1001(client, monkeypatch):
    """A socket opened but not yet authenticated when the server goes away gets
    1001 too, at once; it does not hold the shutdown until its auth timeout."""
    monkeypatch.setattr(ws_api, "AUTH_TIMEOUT_S", 3.0)  # bounds the wait if it is not closed at shutdown
    ws = await open_ws(client)
    alice = await person(client)
    conn = await connect(client, alice.headers)  # a request that surely reached the server after the first socket

    closing = asyncio.create_task(client.server.close())
    try:
        assert await conn.closed() == CLOSE_GOING_AWAY
        assert await expect_close(ws) == CLOSE_GOING_AWAY
    finally:
        await asyncio.wait_for(closing, 15)


# --- garbage collection around a flush ----------------------------------------------------------------

def test_gc_is_paused_inside_a_flush_and_back_after_it_even_on_error():
    import gc

    from pulsestack.hub import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("flush failed")
    assert gc.isenabled()


async def test_when_ready_reads_only_the_newest_recent_receipts_the_older_ones_are_not_pushed_either(client, monkeypatch):
    """Past RECENT_MAX receipts in the window, `ready` reads the newest ones
    only: everything created at or before the oldest of them is kept off the
    socket too, since `ready` counted it."""
    monkeypatch.setattr(hub_module, "RECENT_MAX", 2)
    owner, ws, [alice] = await team(client, 1)
    hub = hub_of(client)
    with changes_held(hub) as from_elsewhere:
        for i in range(3):
            await send(client, owner.headers, ws["slug"], recipients=[alice.id], title=f"n{i}")

    a = await connect(client, alice.headers)
    assert a.ready["unread"] == counts({ws["id"]: 3})
    [sock] = hub.sockets[uuid.UUID(alice.id)]
    assert len(sock.recent) == 2 * 16  # n1 and n2, 16 bytes each; n0 is older than the floor
    hub._apply(from_elsewhere)
    n3 = await send(client, owner.headers, ws["slug"], recipients=[alice.id], title="n3")

    await a.until_notification(n3["id"])
    assert [i["title"] for i in a.notifications] == ["n3"]


def test_a_socket_finds_an_id_only_on_a_16_byte_boundary():
    ids = [uuid.uuid4() for _ in range(3)]
    blob = b"".join(i.bytes for i in ids)
    assert all(holds_id(blob, i) for i in ids)
    straddling = uuid.UUID(bytes=ids[0].bytes[8:] + ids[1].bytes[:8])  # present in the bytes, but not an id
    assert not holds_id(blob, straddling)
    assert not holds_id(blob, uuid.uuid4()) and not holds_id(b"", ids[0])


def test_after_the_window_a_socket_keeps_a_cut_off_instead_of_the_ids_and_still_blocks_them():
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    counted, fresh, old, workspace = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sock = Socket(None, uuid.uuid4(), uuid.uuid4(), None, None, recent=counted.bytes,  # type: ignore[arg-type]
                  recent_newest=t0 + timedelta(seconds=1), floor=t0, forget_at=100.0)
    news = [News(counted, workspace, t0 + timedelta(seconds=1), b"counted"),
            News(fresh, workspace, t0 + timedelta(seconds=2), b"fresh"), News(old, workspace, t0, b"old")]

    assert sock.owed(news, now=99.0) == [b"fresh"]
    assert sock.recent == counted.bytes
    assert sock.owed(news, now=100.0) == [b"fresh"]  # the window is over: the ids fold into the floor ...
    assert sock.recent == b"" and sock.floor == t0 + timedelta(seconds=1)
    just_after = News(uuid.uuid4(), workspace, t0 + timedelta(seconds=1, microseconds=1), b"just after")
    assert sock.owed([just_after], now=100.0) == [b"just after"]  # ... which blocks nothing newer


async def test_frames_held_for_a_socket_past_its_send_queue_become_one_refresh(aiohttp_client, config, db, monkeypatch):
    client = await aiohttp_client(create_app(config.replace(hub={"send_queue": 2}), db=db))
    owner, ws, [alice, bob] = await team(client, 2)
    b = await connect(client, bob.headers)
    read, gate = asyncio.Event(), asyncio.Event()
    real = hub_queries.get_connect_state

    async def slow_connect_state(*args, **kwargs):
        state = await real(*args, **kwargs)
        read.set()
        await asyncio.wait_for(gate.wait(), HANG_GUARD_S)
        return state

    monkeypatch.setattr(hub_queries, "get_connect_state", slow_connect_state)
    connecting = asyncio.create_task(connect(client, alice.headers))
    await asyncio.wait_for(read.wait(), HANG_GUARD_S)
    for i in range(3):  # each its own flush (bob's frame proves it ran): three held frames, one too many
        n = await send(client, owner.headers, ws["slug"], title=f"while alice connects {i}")
        await b.until_notification(n["id"])
    gate.set()
    a = await connecting

    assert await a.until_type("refresh") == {"type": "refresh"}  # right after ready: refetch the list
    assert await a.until_unread(3) == counts({ws["id"]: 3})
    await a.ping()
    assert [f["type"] for f in a.frames] == ["ready", "refresh", "unread", "pong"]

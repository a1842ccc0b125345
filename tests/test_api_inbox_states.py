"""Inbox states over HTTP (docs/api.md "Inbox states"): links and data on
notifications, seen and unseen, archive, and the `after` catch-up.

Every test runs on SQLite and on PostgreSQL through a real aiohttp test
server (the `api` fixture: recording hub, no 5xx allowed). After each
operation the unread and unseen counts are checked against the inbox and a
direct SQL recount (assert_counts_agree).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from helpers import (
    IDS_MAX,
    ITEM_KEYS,
    NOTIFICATION_KEYS,
    Person,
    assert_counts_agree,
    broadcast,
    counts,
    direct,
    expect_error,
    inbox,
    inbox_all,
    inbox_ids,
    json_of,
    make_team,
    parse_ts,
    person,
    send,
    sql_unread,
    unread_count,
)

from pulsestack.appkeys import DB
from pulsestack.db import NamedQuery
from pulsestack.ids import isoformat_z, utcnow
from pulsestack.models.fields import DATA_MAX_BYTES, URL_MAX

SQL_NOTIFICATIONS_IN = NamedQuery.dynamic(
    "t_notifications_in", "SELECT count(*) FROM notifications WHERE workspace_id = :workspace_id", "scalar")
SQL_RECEIPT_STATE = NamedQuery.dynamic(
    "t_receipt_state",
    "SELECT is_read, read_at, archived_at FROM notification_receipts WHERE notification_id = :nid AND user_id = :uid", "one")
SQL_SEEN_UNTIL = NamedQuery.dynamic(
    "t_seen_until", "SELECT seen_until FROM workspace_members WHERE workspace_id = :w AND user_id = :u", "scalar")


def post(api, who: Person, path: str, body: dict | None = None):
    return api.post(path, headers=who.headers, **({} if body is None else {"json": body}))


async def receipt_state(api, nid: str, who: Person) -> dict | None:
    row = await api.app[DB].fetch_one(SQL_RECEIPT_STATE, nid=uuid.UUID(nid), uid=uuid.UUID(who.id))
    if row is None:
        return None
    return {"is_read": bool(row["is_read"]), "read_at": row["read_at"], "archived_at": row["archived_at"]}


# --- url and data -------------------------------------------------------------------------------

async def test_url_and_data_come_back_wherever_the_notification_appears(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    data = {"build": 812, "tags": ["ci", "main"], "nested": {"ok": True, "none": None}, "text": "ünïcode"}
    body = await json_of(await send(api, team.owner, team.slug, {"title": "Build failed", "broadcast": True,
                                                                "url": "https://ci.example.com/builds/812?tab=log#L3",
                                                                "data": data}), 201)
    n = body["notification"]
    assert set(n) == NOTIFICATION_KEYS
    assert n["url"] == "https://ci.example.com/builds/812?tab=log#L3" and n["data"] == data
    plain = await broadcast(api, team.owner, team, title="no link")
    assert plain["url"] is None and plain["data"] is None

    [item_plain, item] = (await inbox(api, me))["items"]
    assert set(item) == ITEM_KEYS and item["url"] == n["url"] and item["data"] == data
    assert item_plain["url"] is None and item_plain["data"] is None
    read = await json_of(await post(api, me, f"/api/notifications/{n['id']}/read"), 200)
    assert read["url"] == n["url"] and read["data"] == data
    history = await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications", headers=team.owner.headers), 200)
    assert history["items"][1] == n
    detail = await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications/{n['id']}",
                                         headers=team.owner.headers), 200)
    assert detail["notification"] == n


@pytest.mark.parametrize("url", ["/", "/inbox/42?x=1#y", "http://example.com", "HTTPS://Example.com/a"])
async def test_a_path_or_an_http_url_is_a_good_url(api, url):
    team = await make_team(api, members=1)
    n = await broadcast(api, team.owner, team, url=url)
    assert n["url"] == url


@pytest.mark.parametrize("bad", [
    {"url": "//evil.example.com/x"},  # protocol-relative: another host
    {"url": "/\\evil.example.com"},  # browsers read /\ as //
    {"url": "javascript:alert(1)"},
    {"url": "ftp://example.com/x"},
    {"url": "example.com/x"},
    {"url": "https://"},
    {"url": "/has space"},
    {"url": "/line\nbreak"},
    {"url": ""},
    {"url": "/" + "a" * URL_MAX},
    {"url": 42},
    {"data": [1, 2]},
    {"data": "text"},
    {"data": 5},
    {"data": {"big": "x" * DATA_MAX_BYTES}},
    {"mesage": "typo"},
])
async def test_a_bad_url_or_data_or_an_unknown_field_is_422_naming_it_and_sends_nothing(api, bad):
    team = await make_team(api, members=1)
    resp = await send(api, team.owner, team.slug, {"title": "t", "broadcast": True, **bad})
    body = await expect_error(resp, 422, "validation_error")
    assert set(body["error"]["details"]) == set(bad), body
    assert await api.app[DB].fetch_value(SQL_NOTIFICATIONS_IN, workspace_id=uuid.UUID(team.id)) == 0


async def test_data_may_be_exactly_4_kib_written_compactly(api):
    team = await make_team(api, members=1)
    filler = DATA_MAX_BYTES - len('{"k":""}')
    n = await broadcast(api, team.owner, team, data={"k": "x" * filler})
    assert len(n["data"]["k"]) == filler
    resp = await send(api, team.owner, team.slug, {"title": "t", "broadcast": True, "data": {"k": "x" * (filler + 1)}})
    await expect_error(resp, 422, "validation_error")


# --- seen and unseen ----------------------------------------------------------------------------

async def test_seen_clears_the_unseen_badge_but_not_unread_and_never_moves_back(api):
    a, b = await make_team(api, members=1), await make_team(api, members=0)
    me = a.members[0]
    await json_of(await api.post(f"/api/workspaces/{b.slug}/members", json={"email": await email_of(api, me)},
                                 headers=b.owner.headers), 201)
    n1 = await broadcast(api, a.owner, a)
    await broadcast(api, b.owner, b)
    assert await unread_count(api, me) == counts({a.id: 1, b.id: 1})

    done = await json_of(await post(api, me, "/api/notifications/seen", {"workspace": a.slug}), 200)
    assert done == {"updated_workspaces": 1}
    assert await unread_count(api, me) == counts({a.id: 1, b.id: 1}, {b.id: 1})
    [item] = (await inbox(api, me, workspace=a.slug))["items"]
    assert item["is_seen"] is True and item["is_read"] is False

    n2 = await broadcast(api, a.owner, a, title="after I looked")
    assert await unread_count(api, me) == counts({a.id: 2, b.id: 1}, {a.id: 1, b.id: 1})
    assert {i["id"]: i["is_seen"] for i in (await inbox(api, me, workspace=a.slug))["items"]} == {n1["id"]: True, n2["id"]: False}

    # Back in time: a's cut-off stays; b's, never set, moves to before b's notification.
    earlier = isoformat_z(parse_ts(n1["created_at"]) - timedelta(hours=1))
    assert await json_of(await post(api, me, "/api/notifications/seen", {"until": earlier}), 200) == {"updated_workspaces": 1}
    assert await json_of(await post(api, me, "/api/notifications/seen", {"until": earlier}), 200) == {"updated_workspaces": 0}
    assert await unread_count(api, me) == counts({a.id: 2, b.id: 1}, {a.id: 1, b.id: 1})

    # No body at all: every workspace, now.
    assert await json_of(await post(api, me, "/api/notifications/seen"), 200) == {"updated_workspaces": 2}
    assert await unread_count(api, me) == counts({a.id: 2, b.id: 1}, {})
    await assert_counts_agree(api, api.app[DB], [me, a.owner, b.owner])


async def test_seen_until_a_moment_and_never_past_now(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    n1 = await broadcast(api, team.owner, team, title="one")
    n2 = await broadcast(api, team.owner, team, title="two")
    await json_of(await post(api, me, "/api/notifications/seen", {"until": n1["created_at"]}), 200)
    assert await unread_count(api, me) == counts({team.id: 2}, {team.id: 1})
    assert {i["id"]: i["is_seen"] for i in (await inbox(api, me))["items"]} == {n1["id"]: True, n2["id"]: False}

    # A moment in the future is taken as now: what arrives later is still unseen.
    future = isoformat_z(utcnow() + timedelta(days=365))
    assert await json_of(await post(api, me, "/api/notifications/seen", {"until": future}), 200) == {"updated_workspaces": 1}
    stored = await api.app[DB].fetch_value(SQL_SEEN_UNTIL, w=uuid.UUID(team.id), u=uuid.UUID(me.id))
    assert stored <= utcnow()
    await broadcast(api, team.owner, team, title="three")
    assert await unread_count(api, me) == counts({team.id: 3}, {team.id: 1})
    await assert_counts_agree(api, api.app[DB], [me])


@pytest.mark.parametrize("bad", [{"until": "yesterday"}, {"until": "2026-01-01T00:00:00"}, {"workspace": "Not A Slug"},
                                 {"workspace": 5}, {"everywhere": True}])
async def test_bad_seen_input_is_422_naming_the_field_and_changes_nothing(api, bad):
    team = await make_team(api, members=1)
    me = team.members[0]
    await broadcast(api, team.owner, team)
    body = await expect_error(await post(api, me, "/api/notifications/seen", bad), 422, "validation_error")
    assert set(body["error"]["details"]) == set(bad)
    assert await api.app[DB].fetch_value(SQL_SEEN_UNTIL, w=uuid.UUID(team.id), u=uuid.UUID(me.id)) is None
    assert await unread_count(api, me) == counts({team.id: 1})


async def test_seen_in_a_workspace_i_am_not_in_is_404_and_changes_nothing(api):
    mine, theirs = await make_team(api, members=1), await make_team(api, members=1)
    me = mine.members[0]
    await broadcast(api, theirs.owner, theirs)
    await expect_error(await post(api, me, "/api/notifications/seen", {"workspace": theirs.slug}), 404, "not_found")
    for who in theirs.everyone:
        assert await api.app[DB].fetch_value(SQL_SEEN_UNTIL, w=uuid.UUID(theirs.id), u=uuid.UUID(who.id)) is None
    assert await unread_count(api, theirs.members[0]) == counts({theirs.id: 1})


async def test_seen_tells_the_hub_only_when_a_cut_off_moved(api, hub):
    team = await make_team(api, members=1)
    me = team.members[0]
    hub.calls.clear()
    await json_of(await post(api, me, "/api/notifications/seen"), 200)
    assert hub.calls == [("users", [me.id])]
    hub.calls.clear()
    await json_of(await post(api, me, "/api/notifications/seen", {"until": "2020-01-01T00:00:00Z"}), 200)
    assert hub.calls == []


# --- archive ------------------------------------------------------------------------------------

async def test_archive_hides_from_the_default_inbox_marks_read_and_unarchive_keeps_it_read(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    keep, gone = await broadcast(api, team.owner, team, title="keep"), await broadcast(api, team.owner, team, title="gone")

    item = await json_of(await post(api, me, f"/api/notifications/{gone['id']}/archive"), 200)
    assert set(item) == ITEM_KEYS
    assert item["archived"] is True and item["is_read"] is True and item["is_seen"] is True
    assert item["archived_at"] == item["read_at"]
    assert await inbox_ids(api, me) == [keep["id"]]
    assert await inbox_ids(api, me, archived="exclude") == [keep["id"]]
    assert await inbox_ids(api, me, archived="only") == [gone["id"]]
    assert await inbox_ids(api, me, archived="include") == [gone["id"], keep["id"]]
    assert await unread_count(api, me) == counts({team.id: 1})
    await assert_counts_agree(api, api.app[DB], [me])

    # Archiving again changes nothing, not even the time.
    again = await json_of(await post(api, me, f"/api/notifications/{gone['id']}/archive"), 200)
    assert again == item

    back = await json_of(await post(api, me, f"/api/notifications/{gone['id']}/unarchive"), 200)
    assert back["archived"] is False and back["archived_at"] is None
    assert back["is_read"] is True and back["read_at"] == item["read_at"]
    assert await inbox_ids(api, me) == [gone["id"], keep["id"]]
    assert await inbox_ids(api, me, archived="only") == []


async def test_archiving_a_read_item_keeps_its_first_read_at(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)
    first = await json_of(await post(api, me, f"/api/notifications/{n['id']}/read"), 200)
    archived = await json_of(await post(api, me, f"/api/notifications/{n['id']}/archive"), 200)
    assert archived["read_at"] == first["read_at"]
    assert parse_ts(archived["archived_at"]) >= parse_ts(first["read_at"])


async def test_bulk_archive_counts_only_my_receipts_not_yet_archived(api):
    team = await make_team(api, members=2)
    me, other = team.members
    mine = [await broadcast(api, team.owner, team, title=f"n{i}") for i in range(3)]
    theirs = await direct(api, team.owner, team, [other])
    await json_of(await post(api, me, f"/api/notifications/{mine[0]['id']}/archive"), 200)

    ids = [n["id"] for n in mine] + [theirs["id"], str(uuid.uuid4())]
    assert await json_of(await post(api, me, "/api/notifications/archive", {"ids": ids}), 200) == {"updated": 2}
    assert await inbox_ids(api, me) == []
    assert await receipt_state(api, theirs["id"], other) == {"is_read": False, "read_at": None, "archived_at": None}
    assert await inbox_ids(api, other) == [theirs["id"], *reversed([n["id"] for n in mine])]
    await assert_counts_agree(api, api.app[DB], [me, other])


@pytest.mark.parametrize("bad", [{"ids": []}, {"ids": ["nope"]}, {"ids": "x"}, {"ids": [str(uuid.uuid4())] * 2 + ["bad"]},
                                 {"ids": [str(uuid.uuid4()) for _ in range(IDS_MAX + 1)]}, {"idz": []}])
async def test_bad_bulk_archive_is_422_and_changes_nothing(api, bad):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)
    body = await expect_error(await post(api, me, "/api/notifications/archive", bad), 422, "validation_error")
    assert set(body["error"]["details"]) <= {"ids", "idz"}
    assert await receipt_state(api, n["id"], me) == {"is_read": False, "read_at": None, "archived_at": None}


async def test_archive_all_takes_read_by_default_or_all_and_respects_workspace_and_before(api):
    a, b = await make_team(api, members=1), await make_team(api, members=0)
    me = a.members[0]
    await json_of(await api.post(f"/api/workspaces/{b.slug}/members", json={"email": await email_of(api, me)},
                                 headers=b.owner.headers), 201)
    a1, a2 = await broadcast(api, a.owner, a, title="a1"), await broadcast(api, a.owner, a, title="a2")
    a3 = await broadcast(api, a.owner, a, title="a3")
    b1 = await broadcast(api, b.owner, b, title="b1")
    for n in (a1, a3, b1):
        await json_of(await post(api, me, f"/api/notifications/{n['id']}/read"), 200)

    # Default status "read", one workspace, up to a2's moment: only a1.
    body = {"workspace": a.slug, "before": a2["created_at"]}
    assert await json_of(await post(api, me, "/api/notifications/archive-all", body), 200) == {"updated": 1}
    assert await inbox_ids(api, me, archived="only") == [a1["id"]]
    # Read ones everywhere: a3 and b1; a2 is unread and stays.
    assert await json_of(await post(api, me, "/api/notifications/archive-all"), 200) == {"updated": 2}
    assert await inbox_ids(api, me) == [a2["id"]]
    assert await unread_count(api, me) == counts({a.id: 1})
    # status "all": the unread one too, and it is read from then on.
    assert await json_of(await post(api, me, "/api/notifications/archive-all", {"status": "all"}), 200) == {"updated": 1}
    assert await inbox_ids(api, me) == []
    assert await unread_count(api, me) == counts({})
    state = await receipt_state(api, a2["id"], me)
    assert state is not None and state["is_read"] and state["read_at"] == state["archived_at"]
    assert await json_of(await post(api, me, "/api/notifications/archive-all", {"status": "all"}), 200) == {"updated": 0}
    await assert_counts_agree(api, api.app[DB], [me, a.owner, b.owner])


@pytest.mark.parametrize("bad", [{"status": "unread"}, {"status": None}, {"before": "soon"}, {"workspace": "UPPER"},
                                 {"everything": True}])
async def test_bad_archive_all_is_422_naming_the_field_and_changes_nothing(api, bad):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)
    await json_of(await post(api, me, f"/api/notifications/{n['id']}/read"), 200)
    body = await expect_error(await post(api, me, "/api/notifications/archive-all", bad), 422, "validation_error")
    assert set(body["error"]["details"]) == set(bad)
    assert await inbox_ids(api, me) == [n["id"]]


async def test_archive_of_someone_elses_or_an_unknown_notification_is_404_and_changes_nothing(api):
    mine, theirs = await make_team(api, members=1), await make_team(api, members=1)
    me, them = mine.members[0], theirs.members[0]
    their_n = await broadcast(api, theirs.owner, theirs)
    for path in (f"/api/notifications/{their_n['id']}/archive", f"/api/notifications/{their_n['id']}/unarchive",
                 f"/api/notifications/{uuid.uuid4()}/archive", "/api/notifications/not-a-uuid/archive"):
        await expect_error(await post(api, me, path), 404, "not_found")
    assert await json_of(await post(api, me, "/api/notifications/archive", {"ids": [their_n["id"]]}), 200) == {"updated": 0}
    await expect_error(await post(api, me, "/api/notifications/archive-all", {"workspace": theirs.slug, "status": "all"}),
                       404, "not_found")
    assert await receipt_state(api, their_n["id"], them) == {"is_read": False, "read_at": None, "archived_at": None}


async def test_archive_tells_the_hub_which_receipts_changed_and_only_when_they_did(api, hub):
    team = await make_team(api, members=1)
    me = team.members[0]
    n1, n2 = await broadcast(api, team.owner, team), await broadcast(api, team.owner, team)
    hub.calls.clear()
    await json_of(await post(api, me, "/api/notifications/archive", {"ids": [n1["id"], n2["id"]]}), 200)
    assert hub.calls == [("changed", me.id, sorted([n1["id"], n2["id"]]))]
    hub.calls.clear()
    await json_of(await post(api, me, "/api/notifications/archive", {"ids": [n1["id"]]}), 200)
    await json_of(await post(api, me, "/api/notifications/archive-all", {"status": "all"}), 200)
    assert hub.calls == []


async def test_more_than_100_changed_at_once_asks_the_hub_for_a_refresh(api, hub):
    team = await make_team(api, members=1)
    me = team.members[0]
    await send_many(api, team, 101)
    hub.calls.clear()
    assert await json_of(await post(api, me, "/api/notifications/read-all"), 200) == {"updated": 101}
    assert hub.calls == [("refresh", [me.id])]
    hub.calls.clear()
    assert await json_of(await post(api, me, "/api/notifications/archive-all"), 200) == {"updated": 101}
    assert hub.calls == [("refresh", [me.id])]


# --- catch-up -----------------------------------------------------------------------------------

async def test_after_returns_only_newer_items_newest_first_paged(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    sent = [await broadcast(api, team.owner, team, title=f"n{i}") for i in range(6)]
    newer = [n["id"] for n in reversed(sent[2:])]

    first = await inbox(api, me, after=sent[1]["id"], limit=3)
    assert [i["id"] for i in first["items"]] == newer[:3] and first["next_cursor"]
    second = await inbox(api, me, after=sent[1]["id"], limit=3, cursor=first["next_cursor"])
    assert [i["id"] for i in second["items"]] == newer[3:] and second["next_cursor"] is None
    assert await inbox_ids(api, me, after=sent[-1]["id"]) == []

    # Still works when the client's newest item was dismissed meanwhile; filters combine.
    assert (await api.delete(f"/api/notifications/{sent[1]['id']}", headers=me.headers)).status == 204
    await json_of(await post(api, me, f"/api/notifications/{sent[5]['id']}/archive"), 200)
    assert await inbox_ids(api, me, after=sent[1]["id"]) == newer[1:]
    assert await inbox_ids(api, me, after=sent[1]["id"], archived="include") == newer


async def test_after_a_notification_outside_my_workspaces_is_404(api):
    mine, theirs = await make_team(api, members=1), await make_team(api, members=1)
    me = mine.members[0]
    their_n = await broadcast(api, theirs.owner, theirs)
    await broadcast(api, mine.owner, mine)
    for after in (their_n["id"], str(uuid.uuid4())):
        body = await expect_error(await api.get("/api/notifications", params={"after": after}, headers=me.headers),
                                  404, "not_found")
        assert set(body["error"]["details"]) == {"after"}


@pytest.mark.parametrize("params", [{"after": "nope"}, {"archived": "maybe"}, {"archived": ""}])
async def test_bad_after_or_archived_is_400(api, params):
    me = await person(api)
    await expect_error(await api.get("/api/notifications", params=params, headers=me.headers), 400, "bad_request")


# --- every operation keeps unread and unseen equal to a recount ---------------------------------

async def test_unread_and_unseen_agree_with_a_recount_after_every_operation(api):
    a, b = await make_team(api, members=2), await make_team(api, members=1)
    me, other = a.members
    await json_of(await api.post(f"/api/workspaces/{b.slug}/members", json={"email": await email_of(api, me)},
                                 headers=b.owner.headers), 201)
    people = [me, other, b.members[0]]
    ns = [await broadcast(api, a.owner, a, title=f"a{i}") for i in range(4)] + [await broadcast(api, b.owner, b)]
    operations = [
        post(api, me, "/api/notifications/seen", {"workspace": a.slug}),
        post(api, me, f"/api/notifications/{ns[0]['id']}/archive"),
        post(api, me, f"/api/notifications/{ns[1]['id']}/read"),
        post(api, me, f"/api/notifications/{ns[0]['id']}/unarchive"),
        post(api, me, f"/api/notifications/{ns[0]['id']}/unread"),
        post(api, me, "/api/notifications/archive", {"ids": [ns[2]["id"], ns[4]["id"]]}),
        post(api, other, "/api/notifications/seen"),
        post(api, me, "/api/notifications/read-all", {"workspace": b.slug}),
        post(api, me, "/api/notifications/archive-all", {"status": "read"}),
        post(api, me, "/api/notifications/seen"),
        post(api, other, "/api/notifications/archive-all", {"status": "all", "before": ns[1]["created_at"]}),
    ]
    for i, request in enumerate(operations):
        resp = await request
        assert resp.status == 200, (i, await resp.text())
        await assert_counts_agree(api, api.app[DB], people)
        await broadcast(api, a.owner, a, title=f"between {i}")  # something new arrives after each step
        await assert_counts_agree(api, api.app[DB], people)
    assert (await unread_count(api, me))["workspaces"] == await sql_unread(api.app[DB], me.id)


# --- helpers ------------------------------------------------------------------------------------

async def email_of(api, who: Person) -> str:
    return (await json_of(await api.get("/api/me", headers=who.headers), 200))["user"]["email"]


async def send_many(api, team, count: int) -> None:
    for i in range(count):
        await json_of(await send(api, team.owner, team.slug, {"title": f"bulk {i}", "broadcast": True}), 201)


async def test_inbox_items_of_every_state_have_the_full_shape(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    await broadcast(api, team.owner, team)
    n = await broadcast(api, team.owner, team)
    await json_of(await post(api, me, f"/api/notifications/{n['id']}/archive"), 200)
    for item in await inbox_all(api, me, archived="include"):
        assert set(item) == ITEM_KEYS
        assert item["archived"] == (item["archived_at"] is not None)

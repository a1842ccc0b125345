"""The inbox, unread counts and read state over HTTP (docs/api.md "Inbox").

Every test runs on SQLite and on PostgreSQL through a real aiohttp test
server (the `api` fixture of tests/conftest.py: recording hub, no 5xx
allowed). Unread counts are checked against two independent recounts:
the unread inbox, page by page, and a direct SQL count.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta, timezone

import pytest
from helpers import (
    API_TS,
    IDS_MAX,
    ITEM_KEYS,
    PAGE_MAX,
    TYPE_MAX,
    Person,
    add_to,
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
    sql_receipts,
    unread_count,
)

NO_UNREAD = counts({})


def read(api, who: Person, nid: str):
    return api.post(f"/api/notifications/{nid}/read", headers=who.headers)


def unread(api, who: Person, nid: str):
    return api.post(f"/api/notifications/{nid}/unread", headers=who.headers)


def read_many(api, who: Person, ids: list[str]):
    return api.post("/api/notifications/read", json={"ids": ids}, headers=who.headers)


def read_all(api, who: Person, body: dict | None = None):
    if body is None:
        return api.post("/api/notifications/read-all", headers=who.headers)
    return api.post("/api/notifications/read-all", json=body, headers=who.headers)


def dismiss(api, who: Person, nid: str):
    return api.delete(f"/api/notifications/{nid}", headers=who.headers)


async def updated(request) -> int:
    """The `updated` of a bulk read or read-all (an un-awaited request)."""
    body = await json_of(await request, 200)
    assert set(body) == {"updated"}, body
    return body["updated"]


def cursor_of(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# ================================================================================================
# GET /api/notifications
# ================================================================================================

async def test_a_new_user_has_an_empty_inbox_and_no_unread(api):
    me = await person(api)

    assert await inbox(api, me) == {"items": [], "next_cursor": None}
    assert await unread_count(api, me) == NO_UNREAD


async def test_the_inbox_lists_every_workspace_newest_first_as_items(api):
    a = await make_team(api, members=1)
    me = a.members[0]
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    sent = [
        (await broadcast(api, a.owner, a, title="a1", message="first", type="deploy.done"), a),
        (await broadcast(api, b.owner, b, title="b1"), b),
        (await direct(api, a.owner, a, [me], title="a2"), a),
        (await direct(api, b.owner, b, [me], title="b2"), b),
    ]

    items = (await inbox(api, me))["items"]

    assert [i["id"] for i in items] == [n["id"] for n, _ in reversed(sent)]
    for item, (n, team) in zip(items, reversed(sent)):
        assert set(item) == ITEM_KEYS
        assert {k: item[k] for k in n} == n
        assert (item["is_read"], item["read_at"], item["workspace_slug"]) == (False, None, team.slug)


async def test_the_inbox_pages_through_seven_items_three_at_a_time_without_gap_or_repeat(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    sent = [await broadcast(api, team.owner, team, title=f"n{i}") for i in range(7)]

    pages, cursor = [], None
    while True:
        page = await inbox(api, me, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append([i["id"] for i in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == [n["id"] for n in reversed(sent)]


async def test_the_default_page_is_twenty_and_a_full_last_page_ends_with_a_null_cursor(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    for i in range(21):
        await direct(api, team.owner, team, [me], title=f"n{i}")

    first = await inbox(api, me)
    assert len(first["items"]) == 20 and first["next_cursor"]
    second = await inbox(api, me, cursor=first["next_cursor"])
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    exact = await inbox(api, me, limit=21)
    assert len(exact["items"]) == 21 and exact["next_cursor"] is None


async def test_inbox_filters_by_workspace_status_and_type(api):
    a = await make_team(api, members=1)
    me = a.members[0]
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    a_info = await broadcast(api, a.owner, a, title="a-info")
    a_deploy = await broadcast(api, a.owner, a, title="a-deploy", type="deploy")
    b_deploy = await broadcast(api, b.owner, b, title="b-deploy", type="deploy")
    b_info = await broadcast(api, b.owner, b, title="b-info")
    await json_of(await read(api, me, a_deploy["id"]), 200)
    await json_of(await read(api, me, b_info["id"]), 200)
    ids = lambda *ns: [n["id"] for n in ns]  # noqa: E731  (newest first)

    assert await inbox_ids(api, me) == ids(b_info, b_deploy, a_deploy, a_info)
    assert await inbox_ids(api, me, status="all") == ids(b_info, b_deploy, a_deploy, a_info)
    assert await inbox_ids(api, me, workspace=a.slug) == ids(a_deploy, a_info)
    assert await inbox_ids(api, me, workspace=b.slug) == ids(b_info, b_deploy)
    assert await inbox_ids(api, me, status="unread") == ids(b_deploy, a_info)
    assert await inbox_ids(api, me, status="read") == ids(b_info, a_deploy)
    assert await inbox_ids(api, me, type="deploy") == ids(b_deploy, a_deploy)
    assert await inbox_ids(api, me, type="info") == ids(b_info, a_info)
    assert await inbox_ids(api, me, type="nothing.here") == []
    assert await inbox_ids(api, me, workspace=a.slug, status="read", type="deploy") == ids(a_deploy)
    assert await inbox_ids(api, me, workspace=b.slug, status="unread", type="info") == []
    # filters hold while following next_cursor
    assert await inbox_ids(api, me, limit=1, status="unread") == ids(b_deploy, a_info)
    assert await inbox_ids(api, me, limit=1, workspace=b.slug) == ids(b_info, b_deploy)
    assert await inbox_ids(api, me, limit=1, type="deploy") == ids(b_deploy, a_deploy)
    read_items = await inbox_all(api, me, status="read")
    assert all(i["is_read"] and API_TS.match(i["read_at"]) for i in read_items)


async def test_the_workspace_filter_for_a_workspace_i_am_not_in_is_404(api):
    team = await make_team(api, members=1)
    outsider = await person(api)

    for slug in (team.slug, "no-such-workspace"):
        resp = await api.get("/api/notifications", params={"workspace": slug}, headers=outsider.headers)

        await expect_error(resp, 404, "not_found")


async def test_bad_inbox_query_parameters_are_400(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    await broadcast(api, team.owner, team)
    bad = [
        {"status": "bogus"}, {"status": ""}, {"status": "UNREAD"},
        {"limit": "0"}, {"limit": str(PAGE_MAX + 1)}, {"limit": "-1"}, {"limit": "ten"}, {"limit": ""},
        {"type": "Bad Type"}, {"type": "1x"}, {"type": "a" * (TYPE_MAX + 1)},
        {"cursor": "garbage!!"}, {"cursor": "e30"},  # e30 = "{}"
        {"cursor": cursor_of({"t": "yesterday", "id": str(uuid.uuid4())})},
        {"cursor": cursor_of({"t": "2026-01-01T00:00:00", "id": str(uuid.uuid4())})},  # naive
        {"cursor": cursor_of({"t": "2026-01-01T00:00:00Z", "id": "nope"})},
        {"cursor": cursor_of({"t": 5, "id": 5})},
        {"cursor": cursor_of(["t", "id"])},
    ]

    for params in bad:
        resp = await api.get("/api/notifications", params=params, headers=me.headers)

        await expect_error(resp, 400, "bad_request")


async def test_a_cursor_with_an_out_of_range_timestamp_is_400_not_500(api):
    # 0001-01-01T00:00+01:00 is a valid ISO-8601 timestamp whose UTC value is before year 1.
    team = await make_team(api, members=1)
    me = team.members[0]
    await broadcast(api, team.owner, team)

    for t in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        cursor = cursor_of({"t": t, "id": str(uuid.uuid4())})
        resp = await api.get("/api/notifications", params={"cursor": cursor}, headers=me.headers)
        await expect_error(resp, 400, "bad_request")
        resp = await api.get(f"/api/workspaces/{team.slug}/notifications", params={"cursor": cursor},
                             headers=team.owner.headers)
        await expect_error(resp, 400, "bad_request")


async def test_a_cursor_of_one_user_used_by_another_returns_only_the_others_items(api):
    team = await make_team(api, members=2)
    ann, bob = team.members
    anns, bobs = [], []
    for i in range(5):
        anns.append((await direct(api, team.owner, team, [ann], title=f"ann{i}"))["id"])
        bobs.append((await direct(api, team.owner, team, [bob], title=f"bob{i}"))["id"])
    anns_cursor = (await inbox(api, ann, limit=2))["next_cursor"]
    assert anns_cursor

    page = await inbox(api, bob, limit=100, cursor=anns_cursor)

    got = [i["id"] for i in page["items"]]
    assert got, "Bob has older items than Ann's cursor position"
    assert set(got) <= set(bobs)
    assert not set(got) & set(anns)
    assert got == [b for b in reversed(bobs) if b in got]


# ================================================================================================
# GET /api/notifications/unread-count
# ================================================================================================

async def test_unread_count_is_per_workspace_with_only_non_zero_entries(api):
    a = await make_team(api, members=1)
    me = a.members[0]
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    a1 = await broadcast(api, a.owner, a)
    await broadcast(api, b.owner, b)
    await broadcast(api, b.owner, b)

    assert await unread_count(api, me) == counts({a.id: 1, b.id: 2})
    await json_of(await read(api, me, a1["id"]), 200)
    assert await unread_count(api, me) == counts({b.id: 2})
    assert await unread_count(api, a.owner) == NO_UNREAD


async def test_unread_counts_agree_with_the_inbox_and_sql_after_every_operation(api, db):
    a = await make_team(api, members=2)
    me, other = a.members
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    people = [me, other, a.owner, b.owner]
    mine = []

    async def step(expected_me: int) -> None:
        totals = await assert_counts_agree(api, db, people)
        mine.append(totals[me.id])
        assert totals[me.id] == expected_me, f"after step {len(mine)}"

    n1 = await broadcast(api, a.owner, a)
    await step(1)
    b1 = await broadcast(api, b.owner, b)
    await broadcast(api, b.owner, b)
    await step(3)
    d1 = await direct(api, other, a, [me, a.owner])
    await step(4)
    await json_of(await read(api, me, n1["id"]), 200)
    await step(3)
    await json_of(await read(api, me, n1["id"]), 200)  # already read: no change
    await step(3)
    await json_of(await unread(api, me, n1["id"]), 200)
    await step(4)
    assert await updated(read_many(api, me, [n1["id"], b1["id"], d1["id"]])) == 3
    await step(1)
    await broadcast(api, a.owner, a)
    await step(2)
    assert await updated(read_all(api, me, {"workspace": a.slug})) == 1
    await step(1)
    await broadcast(api, b.owner, b)
    await json_of(await unread(api, me, d1["id"]), 200)
    await step(3)
    assert await updated(read_all(api, me, {})) == 3
    await step(0)
    n5 = await broadcast(api, a.owner, a)
    n6 = await broadcast(api, a.owner, a)
    await step(2)
    assert (await dismiss(api, me, n5["id"])).status == 204
    await step(1)
    assert (await dismiss(api, me, d1["id"])).status == 204  # a read one: the count does not move
    await step(1)
    assert (await api.delete(f"/api/workspaces/{a.slug}/notifications/{n6['id']}", headers=a.owner.headers)).status == 204
    await step(0)
    assert (await unread_count(api, other))["total"] > 0
    assert (await api.delete(f"/api/workspaces/{a.slug}/members/{other.id}", headers=a.owner.headers)).status == 204
    await step(0)
    assert await unread_count(api, other) == NO_UNREAD
    await broadcast(api, b.owner, b)
    await broadcast(api, a.owner, a)
    await step(2)
    assert (await api.delete(f"/api/workspaces/{b.slug}", headers=b.owner.headers)).status == 204
    await step(1)
    assert await unread_count(api, me) == counts({a.id: 1})


# ================================================================================================
# POST /api/notifications/{id}/read, /unread
# ================================================================================================

async def test_read_then_unread_one_notification(api, db):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)

    first = await json_of(await read(api, me, n["id"]), 200)

    assert set(first) == ITEM_KEYS
    assert {k: first[k] for k in n} == n
    assert first["is_read"] is True and first["workspace_slug"] == team.slug
    assert API_TS.match(first["read_at"])
    assert parse_ts(first["read_at"]) >= parse_ts(n["created_at"])
    assert await sql_receipts(db, n["id"]) == {me.id: True}

    again = await json_of(await read(api, me, n["id"]), 200)
    assert again == first  # the first read_at is kept

    back = await json_of(await unread(api, me, n["id"]), 200)
    assert (back["is_read"], back["read_at"]) == (False, None)
    assert {k: back[k] for k in n} == n
    assert await json_of(await unread(api, me, n["id"]), 200) == back
    assert [(i["is_read"], i["read_at"]) for i in await inbox_all(api, me)] == [(False, None)]
    assert await unread_count(api, me) == counts({team.id: 1})

    reread = await json_of(await read(api, me, n["id"]), 200)
    assert reread["is_read"] is True
    assert parse_ts(reread["read_at"]) >= parse_ts(first["read_at"])
    assert [(i["is_read"], i["read_at"]) for i in await inbox_all(api, me)] == [(True, reread["read_at"])]


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/api/notifications/read", "POST"),
    ("DELETE", "/api/notifications/read-all", "POST"),
    ("DELETE", "/api/notifications/unread-count", "GET, HEAD"),
    ("GET", "/api/notifications/read", "POST"),
])
async def test_a_fixed_path_is_never_taken_for_a_notification_id(api, method, path, allow):
    """`read` is no notification id: a method the fixed path lacks is 405 with
    the methods it has, not "DELETE the notification `read`" (404)."""
    owner = await person(api)

    resp = await api.request(method, path, headers=owner.headers)

    await expect_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == allow


async def test_someone_elses_or_an_unknown_or_a_malformed_id_is_404_and_changes_nothing(api, db):
    team = await make_team(api, members=2)
    me, owner_of_it = team.members
    theirs = await direct(api, team.owner, team, [owner_of_it])
    sent_by_me = await direct(api, me, team, [owner_of_it])  # sent, not received: not in my inbox

    for nid in (theirs["id"], sent_by_me["id"], str(uuid.uuid4()), "not-a-uuid", "123"):
        for resp in (await read(api, me, nid), await unread(api, me, nid), await dismiss(api, me, nid)):
            await expect_error(resp, 404, "not_found")

    assert [(i["id"], i["is_read"]) for i in await inbox_all(api, owner_of_it)] == [
        (sent_by_me["id"], False), (theirs["id"], False)]
    assert await sql_receipts(db, theirs["id"]) == {owner_of_it.id: False}
    assert await unread_count(api, owner_of_it) == counts({team.id: 2})


# ================================================================================================
# POST /api/notifications/read
# ================================================================================================

async def test_bulk_read_counts_only_my_unread_receipts(api, db):
    team = await make_team(api, members=2)
    me, other = team.members
    mine = [await broadcast(api, team.owner, team, title=f"m{i}") for i in range(4)]
    theirs = await direct(api, team.owner, team, [other])
    await json_of(await read(api, me, mine[0]["id"]), 200)

    ids = [mine[0]["id"], mine[1]["id"], mine[2]["id"], mine[2]["id"], theirs["id"], str(uuid.uuid4())]
    assert await updated(read_many(api, me, ids)) == 2

    assert [(i["id"], i["is_read"]) for i in await inbox_all(api, me)] == [
        (mine[3]["id"], False), (mine[2]["id"], True), (mine[1]["id"], True), (mine[0]["id"], True)]
    assert await sql_receipts(db, theirs["id"]) == {other.id: False}
    assert (await unread_count(api, other))["total"] == 5
    assert await unread_count(api, me) == counts({team.id: 1})
    assert await updated(read_many(api, me, ids)) == 0


async def test_bulk_read_of_a_thousand_ids_is_accepted(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)

    ids = [n["id"]] + [str(uuid.uuid4()) for _ in range(999)]

    assert await updated(read_many(api, me, ids)) == 1


async def test_bulk_read_with_bad_ids_is_422_naming_ids(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)
    too_many = [n["id"]] + [str(uuid.uuid4()) for _ in range(IDS_MAX)]

    for body in ({"ids": []}, {"ids": too_many}, {"ids": [n["id"], "nope"]}, {"ids": [n["id"], 7]},
                 {"ids": n["id"]}, {"ids": None}, {}):
        resp = await api.post("/api/notifications/read", json=body, headers=me.headers)

        err = await expect_error(resp, 422, "validation_error")
        assert "ids" in err["error"]["details"]
    assert await unread_count(api, me) == counts({team.id: 1})


# ================================================================================================
# POST /api/notifications/read-all
# ================================================================================================

async def test_read_all_with_an_empty_object_or_no_body_marks_everything(api):
    a = await make_team(api, members=1)
    me = a.members[0]
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    await broadcast(api, a.owner, a)
    await broadcast(api, b.owner, b)

    assert await updated(read_all(api, me, {})) == 2
    assert await unread_count(api, me) == NO_UNREAD
    assert all(i["is_read"] for i in await inbox_all(api, me))

    await broadcast(api, a.owner, a)
    await broadcast(api, b.owner, b)
    assert await updated(read_all(api, me)) == 2  # no body at all
    assert await unread_count(api, me) == NO_UNREAD
    assert await updated(read_all(api, me)) == 0


async def test_read_all_of_one_workspace_leaves_the_others(api):
    a = await make_team(api, members=2)
    me, other = a.members
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    await broadcast(api, a.owner, a)
    await broadcast(api, a.owner, a)
    kept = await broadcast(api, b.owner, b)

    assert await updated(read_all(api, me, {"workspace": a.slug})) == 2

    assert await unread_count(api, me) == counts({b.id: 1})
    assert await inbox_ids(api, me, status="unread") == [kept["id"]]
    assert (await unread_count(api, other))["total"] == 2


async def test_read_all_of_a_workspace_i_am_not_in_is_404_and_marks_nothing(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    elsewhere = await make_team(api, members=1)
    await broadcast(api, team.owner, team)

    for slug in (elsewhere.slug, "no-such-workspace"):
        await expect_error(await read_all(api, me, {"workspace": slug}), 404, "not_found")

    assert (await unread_count(api, me))["total"] == 1


async def test_read_all_before_keeps_what_arrived_after_the_user_looked(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    older = await broadcast(api, team.owner, team, title="older")
    seen_newest = await broadcast(api, team.owner, team, title="seen")
    looked = (await inbox(api, me))["items"]
    assert looked[0]["id"] == seen_newest["id"]
    arrived_later = await broadcast(api, team.owner, team, title="later")

    assert await updated(read_all(api, me, {"before": looked[0]["created_at"]})) == 2

    assert await inbox_ids(api, me, status="unread") == [arrived_later["id"]]
    assert await inbox_ids(api, me, status="read") == [seen_newest["id"], older["id"]]
    assert await unread_count(api, me) == counts({team.id: 1})


async def test_read_all_before_is_inclusive_and_accepts_any_zone_spelling(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    first = await broadcast(api, team.owner, team, title="first")
    second = await broadcast(api, team.owner, team, title="second")
    # the same moment as first's created_at, written with a +02:00 offset
    moment = parse_ts(first["created_at"]).astimezone(timezone(timedelta(hours=2))).isoformat()

    assert await updated(read_all(api, me, {"before": moment})) == 1

    assert await inbox_ids(api, me, status="unread") == [second["id"]]
    just_before = (parse_ts(second["created_at"]) - timedelta(microseconds=1)).isoformat()
    assert await updated(read_all(api, me, {"before": just_before})) == 0
    assert await updated(read_all(api, me, {"workspace": team.slug, "before": second["created_at"]})) == 1


async def test_read_all_with_a_bad_before_or_workspace_is_422_and_marks_nothing(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    await broadcast(api, team.owner, team)

    for body, field in (({"before": "yesterday"}, "before"), ({"before": "2026-01-01T00:00:00"}, "before"),
                        ({"before": "2026-01-01"}, "before"), ({"before": ""}, "before"), ({"before": 1767225600}, "before"),
                        ({"workspace": 5}, "workspace"), ({"workspace": ""}, "workspace")):
        err = await expect_error(await read_all(api, me, body), 422, "validation_error")
        assert field in err["error"]["details"], body

    assert (await unread_count(api, me))["total"] == 1


async def test_read_all_with_an_out_of_range_before_is_422_not_500(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    await broadcast(api, team.owner, team)

    for before in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        err = await expect_error(await read_all(api, me, {"before": before}), 422, "validation_error")
        assert "before" in err["error"]["details"]

    assert (await unread_count(api, me))["total"] == 1


async def test_read_all_with_a_body_that_is_not_a_json_object_is_400(api):
    me = await person(api)

    for raw in (b"[]", b"{nope", b"null"):
        resp = await api.post("/api/notifications/read-all", data=raw,
                              headers={**me.headers, "Content-Type": "application/json"})

        await expect_error(resp, 400, "bad_request")


# ================================================================================================
# DELETE /api/notifications/{id}
# ================================================================================================

async def test_dismiss_removes_only_my_receipt(api, db):
    team = await make_team(api, members=2)
    me, other = team.members
    kept = await broadcast(api, team.owner, team, title="kept")
    n = await broadcast(api, team.owner, team, title="dismissed")

    resp = await dismiss(api, me, n["id"])

    assert resp.status == 204
    assert await resp.read() == b""
    assert await inbox_ids(api, me) == [kept["id"]]
    assert await unread_count(api, me) == counts({team.id: 1})
    assert await sql_receipts(db, n["id"]) == {other.id: False}
    assert await inbox_ids(api, other) == [n["id"], kept["id"]]
    await expect_error(await dismiss(api, me, n["id"]), 404, "not_found")
    await expect_error(await read(api, me, n["id"]), 404, "not_found")
    assert await sql_receipts(db, n["id"]) == {other.id: False}


async def test_dismissing_a_read_notification_keeps_the_counts(api):
    team = await make_team(api, members=1)
    me = team.members[0]
    n = await broadcast(api, team.owner, team)
    await broadcast(api, team.owner, team)
    await json_of(await read(api, me, n["id"]), 200)

    assert (await dismiss(api, me, n["id"])).status == 204

    assert await unread_count(api, me) == counts({team.id: 1})
    assert len(await inbox_ids(api, me)) == 1


async def test_the_inbox_of_a_removed_member_keeps_other_workspaces_and_unread_states(api):
    a = await make_team(api, members=1)
    me = a.members[0]
    b = await make_team(api, members=0)
    await add_to(api, b, me)
    await broadcast(api, a.owner, a)
    b_read = await broadcast(api, b.owner, b)
    b_unread = await broadcast(api, b.owner, b)
    await json_of(await read(api, me, b_read["id"]), 200)

    assert (await api.delete(f"/api/workspaces/{a.slug}/members/{me.id}", headers=a.owner.headers)).status == 204

    assert [(i["id"], i["is_read"]) for i in await inbox_all(api, me)] == [(b_unread["id"], False), (b_read["id"], True)]
    assert await unread_count(api, me) == counts({b.id: 1})
    await expect_error(await api.get("/api/notifications", params={"workspace": a.slug}, headers=me.headers),
                       404, "not_found")

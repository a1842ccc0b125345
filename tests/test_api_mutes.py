"""Workspace mutes and critical sends (docs/api.md "Mutes"; docs/design.md
"Mutes").

A member mutes a workspace, or some notification types in it, with
PUT /api/workspaces/{slug}/mute; every send's fan-out then leaves them out
(no receipt, no count) unless the send is `critical`, which only an admin or
the owner may send. Every test runs on SQLite and on PostgreSQL through a
real aiohttp test server (the `api` fixture, which also fails a test that
provoked a 5xx). Rows are checked with direct SQL, independent of the
product's own queries.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from helpers import (
    API_TS,
    NOTIFICATION_KEYS,
    Person,
    Team,
    add_to,
    broadcast,
    counts,
    direct,
    expect_error,
    field_schema,
    inbox_ids,
    json_of,
    make_team,
    parse_ts,
    person,
    send,
    sql_receipts,
    sql_unread,
    unread_count,
)

from pulsestack.db import NamedQuery
from pulsestack.ids import isoformat_z, new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.models.requests import MuteSettings
from pulsestack.queries import members, notifications, users
from pulsestack.services import mutes as mutes_service

TYPE_PREFIXES_MAX = field_schema(MuteSettings, "types")["maxItems"]
TYPE_PREFIX_MAX = field_schema(MuteSettings, "types")["items"]["maxLength"]
NOT_MUTED = {"muted": False, "types": None, "until": None}

# --- direct SQL, independent of the product's own queries -----------------------------------------

SQL_MUTE_ROWS = NamedQuery.dynamic(
    "t_mute_rows",
    "SELECT user_id, type_prefix, until FROM workspace_mutes WHERE workspace_id = :workspace_id", "many")
SQL_EXPIRE_MUTE = NamedQuery.dynamic(
    "t_expire_mute",
    "UPDATE workspace_mutes SET until = :until WHERE workspace_id = :workspace_id AND user_id = :user_id", "exec")
SQL_NOTIFICATIONS_OF_WORKSPACE = NamedQuery.dynamic(
    "t_mute_notifications_of_workspace", "SELECT count(*) AS n FROM notifications WHERE workspace_id = :workspace_id",
    "scalar")


async def sql_mute_rows(db, team: Team) -> set[tuple[str, str, str | None]]:
    """{(user id, type prefix, until as API text)} of every mute row in the workspace."""
    rows = await db.fetch_all(SQL_MUTE_ROWS, workspace_id=uuid.UUID(team.id))
    return {(str(r["user_id"]), r["type_prefix"], isoformat_z(r["until"]) if r["until"] else None) for r in rows}


async def sql_notification_count(db, team: Team) -> int:
    return int(await db.fetch_value(SQL_NOTIFICATIONS_OF_WORKSPACE, workspace_id=uuid.UUID(team.id)))


# --- the mute routes ------------------------------------------------------------------------------

def mute_url(team: Team | str) -> str:
    return f"/api/workspaces/{team if isinstance(team, str) else team.slug}/mute"


async def get_mute(api, who: Person, team: Team) -> dict:
    return await json_of(await api.get(mute_url(team), headers=who.headers), 200)


async def put_mute(api, who: Person, team: Team, **body) -> dict:
    return await json_of(await api.put(mute_url(team), json=body, headers=who.headers), 200)


async def delete_mute(api, who: Person, team: Team) -> None:
    resp = await api.delete(mute_url(team), headers=who.headers)
    assert resp.status == 204, await resp.text()
    assert await resp.read() == b""


def later(**delta) -> str:
    return isoformat_z(utcnow() + timedelta(**delta))


# ================================================================================================
# GET / PUT / DELETE
# ================================================================================================

async def test_get_put_delete_round_trip(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]

    assert await get_mute(api, bob, team) == NOT_MUTED

    muted = await put_mute(api, bob, team)  # {}: every type, until deleted
    assert muted == {"muted": True, "types": None, "until": None}
    assert await get_mute(api, bob, team) == muted
    assert await sql_mute_rows(db, team) == {(bob.id, "", None)}

    await delete_mute(api, bob, team)
    assert await get_mute(api, bob, team) == NOT_MUTED
    assert await sql_mute_rows(db, team) == set()
    await delete_mute(api, bob, team)  # no mute: still 204
    assert await get_mute(api, bob, team) == NOT_MUTED


async def test_put_with_types_and_until_answers_the_mute_and_repeated_prefixes_count_once(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    until = later(hours=2)

    muted = await put_mute(api, bob, team, types=["chat", "billing.invoice", "chat"], until=until)

    assert set(muted) == {"muted", "types", "until"}
    assert muted["muted"] is True
    assert muted["types"] == ["billing.invoice", "chat"]
    assert API_TS.match(muted["until"]) and parse_ts(muted["until"]) == parse_ts(until)
    assert await get_mute(api, bob, team) == muted
    assert await sql_mute_rows(db, team) == {(bob.id, "billing.invoice", muted["until"]), (bob.id, "chat", muted["until"])}


async def test_null_types_and_until_are_the_same_as_leaving_them_out(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]

    assert await put_mute(api, bob, team, types=None, until=None) == {"muted": True, "types": None, "until": None}
    assert await sql_mute_rows(db, team) == {(bob.id, "", None)}


async def test_a_second_put_replaces_the_first(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, carol, team, types=["deploy"])

    await put_mute(api, bob, team, types=["billing", "chat"], until=later(days=1))
    everything = await put_mute(api, bob, team)
    assert everything == {"muted": True, "types": None, "until": None}
    assert await get_mute(api, bob, team) == everything
    only_chat = await put_mute(api, bob, team, types=["chat"])
    assert only_chat == {"muted": True, "types": ["chat"], "until": None}

    assert await get_mute(api, bob, team) == only_chat
    assert await sql_mute_rows(db, team) == {(bob.id, "chat", None), (carol.id, "deploy", None)}  # carol's is untouched
    await broadcast(api, team.owner, team, type="billing")
    assert len(await inbox_ids(api, bob)) == 1  # billing is no longer muted


async def test_a_mute_only_ever_names_the_callers_own(api, db):
    team = await make_team(api, members=2, admins=1)
    bob, carol = team.members
    await put_mute(api, bob, team, types=["chat"])

    assert await get_mute(api, carol, team) == NOT_MUTED
    assert await get_mute(api, team.admins[0], team) == NOT_MUTED
    await delete_mute(api, team.owner, team)  # the owner's own (none), never bob's
    assert await get_mute(api, bob, team) == {"muted": True, "types": ["chat"], "until": None}


async def test_an_expired_mute_reads_as_not_muted_and_mutes_nothing(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, bob, team, until=later(hours=1))
    # The API refuses a past `until`: age the row in place instead of waiting.
    assert await db.execute(SQL_EXPIRE_MUTE, until=utcnow() - timedelta(seconds=1), workspace_id=uuid.UUID(team.id),
                            user_id=uuid.UUID(bob.id)) == 1

    assert await get_mute(api, bob, team) == NOT_MUTED
    body = await json_of(await send(api, team.owner, team.slug, {"title": "after", "broadcast": True}), 201)
    assert body["recipient_count"] == 2
    assert set(await sql_receipts(db, body["notification"]["id"])) == {bob.id, carol.id}
    n = await direct(api, carol, team, [bob])
    assert await inbox_ids(api, bob) == [n["id"], body["notification"]["id"]]


async def test_a_mute_ending_exactly_at_the_send_mutes_nothing(api, db):
    """`until` is when the mute ends: a send created at that very moment is delivered (until > created_at mutes)."""
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, bob, team, until=later(hours=1))
    await put_mute(api, carol, team, until=later(hours=1))
    ends = utcnow() + timedelta(minutes=5)
    for who, until in ((bob, ends), (carol, ends + timedelta(microseconds=1))):
        await db.execute(SQL_EXPIRE_MUTE, until=until, workspace_id=uuid.UUID(team.id), user_id=uuid.UUID(who.id))

    nid = new_id()
    async with db.transaction() as tx:
        await notifications.create_notification(tx, id=nid, workspace_id=uuid.UUID(team.id),
                                                sender_id=uuid.UUID(team.owner.id), title="t", message="", type="info",
                                                broadcast=True, created_at=ends)
        count = await notifications.fan_out_broadcast(tx, notification_id=nid, workspace_id=uuid.UUID(team.id),
                                                      sender_id=uuid.UUID(team.owner.id), created_at=ends,
                                                      type_prefixes=type_prefixes("info"), critical=False)

    assert count == 1
    assert set(await sql_receipts(db, str(nid))) == {bob.id}


# ================================================================================================
# Sends skip muted members
# ================================================================================================

async def test_a_workspace_mute_keeps_broadcasts_and_direct_sends_away(api, db):
    team = await make_team(api, members=3, admins=1)
    bob, carol, dan = team.members
    await put_mute(api, bob, team)

    body = await json_of(await send(api, team.admins[0], team.slug, {"title": "all", "broadcast": True, "type": "deploy"}), 201)
    assert body["recipient_count"] == 3  # owner, carol, dan: not the sender, not bob
    assert set(await sql_receipts(db, body["notification"]["id"])) == {team.owner.id, carol.id, dan.id}

    body = await json_of(await send(api, carol, team.slug, {"title": "two", "recipients": [bob.id, dan.id]}), 201)
    assert body["recipient_count"] == 1
    assert set(await sql_receipts(db, body["notification"]["id"])) == {dan.id}

    body = await json_of(await send(api, carol, team.slug, {"title": "only bob", "recipients": [bob.id]}), 201)
    assert body["recipient_count"] == 0
    assert await sql_receipts(db, body["notification"]["id"]) == {}

    assert await inbox_ids(api, bob) == []
    assert await unread_count(api, bob) == counts({}) == counts(await sql_unread(db, bob.id))
    assert await unread_count(api, dan) == counts({team.id: 2}) == counts(await sql_unread(db, dan.id))


async def test_a_non_member_among_muted_recipients_is_still_422(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    await put_mute(api, bob, team)
    stranger = (await person(api)).id

    resp = await send(api, team.owner, team.slug, {"title": "hi", "recipients": [bob.id, stranger]})

    body = await expect_error(resp, 422, "validation_error")
    assert body["error"]["details"] == {"recipients": [stranger]}
    assert await sql_notification_count(db, team) == 0


async def test_the_sender_who_muted_the_workspace_does_not_receive_their_own_direct_send(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    await put_mute(api, bob, team)

    body = await json_of(await send(api, bob, team.slug, {"title": "note to self", "recipients": [bob.id, team.owner.id]}), 201)

    assert body["recipient_count"] == 1
    assert set(await sql_receipts(db, body["notification"]["id"])) == {team.owner.id}


@pytest.mark.parametrize("muted, delivered, kept", [
    (["billing"], ["billingx", "bill", "info", "billing_x", "billing-x"], ["billing", "billing.invoice", "billing.invoice.paid"]),
    (["billing.invoice"], ["billing", "billing.invoices", "billing.invoicex", "billing.refund"],
     ["billing.invoice", "billing.invoice.paid"]),
    (["chat", "deploy.prod"], ["deploy", "deploy.staging", "chatter", "info"], ["chat", "chat.message", "deploy.prod", "deploy.prod.eu"]),
])
async def test_a_type_prefix_mutes_whole_segments_only(api, db, muted, delivered, kept):
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, bob, team, types=muted)

    for type_ in delivered + kept:
        body = await json_of(await send(api, team.owner, team.slug, {"title": type_, "broadcast": True, "type": type_}), 201)
        expected = {carol.id} if type_ in kept else {bob.id, carol.id}
        assert set(await sql_receipts(db, body["notification"]["id"])) == expected, type_
        assert body["recipient_count"] == len(expected), type_
        n = await direct(api, carol, team, [bob], type=type_)
        assert (await sql_receipts(db, n["id"])) == ({} if type_ in kept else {bob.id: False}), type_

    bob_types = sorted(i["type"] for i in (await json_of(await api.get("/api/notifications", params={"limit": "100"},
                                                                         headers=bob.headers), 200))["items"])
    assert bob_types == sorted(delivered * 2)
    assert await unread_count(api, bob) == counts({team.id: 2 * len(delivered)}) == counts(await sql_unread(db, bob.id))


async def test_mutes_of_one_workspace_leave_another_alone(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    other = await make_team(api, members=0)
    await add_to(api, other, bob)
    await put_mute(api, bob, team)

    muted = await broadcast(api, team.owner, team)
    heard = await broadcast(api, other.owner, other)

    assert await inbox_ids(api, bob) == [heard["id"]]
    assert muted["id"] not in await sql_receipts(db, muted["id"])
    assert await get_mute(api, bob, other) == NOT_MUTED
    assert await unread_count(api, bob) == counts({other.id: 1}) == counts(await sql_unread(db, bob.id))


# ================================================================================================
# Critical sends
# ================================================================================================

async def test_a_critical_send_by_an_admin_or_the_owner_reaches_muted_members(api, db):
    team = await make_team(api, members=2, admins=1)
    bob, carol = team.members
    admin = team.admins[0]
    await put_mute(api, bob, team)
    await put_mute(api, carol, team, types=["incident"])

    body = await json_of(await send(api, admin, team.slug, {"title": "outage", "type": "incident.major", "broadcast": True,
                                                           "critical": True}), 201)
    assert body["recipient_count"] == 3
    assert set(await sql_receipts(db, body["notification"]["id"])) == {team.owner.id, bob.id, carol.id}
    assert set(body["notification"]) == NOTIFICATION_KEYS  # `critical` is neither stored nor returned

    body = await json_of(await send(api, team.owner, team.slug, {"title": "you", "recipients": [bob.id], "critical": True}), 201)
    assert body["recipient_count"] == 1
    assert await unread_count(api, bob) == counts({team.id: 2}) == counts(await sql_unread(db, bob.id))

    body = await json_of(await send(api, team.owner, team.slug, {"title": "not critical", "broadcast": True,
                                                                "critical": False}), 201)
    assert set(await sql_receipts(db, body["notification"]["id"])) == {admin.id, carol.id}
    history = await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications", headers=admin.headers), 200)
    assert all(set(n) == NOTIFICATION_KEYS for n in history["items"])


async def test_a_critical_send_by_a_plain_member_is_403_and_nothing_is_written(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, carol, team)

    for payload in ({"title": "x", "recipients": [carol.id], "critical": True},
                    {"title": "x", "recipients": [team.owner.id], "critical": True}):
        await expect_error(await send(api, bob, team.slug, payload), 403, "forbidden")
        await expect_error(await send(api, bob, team.slug, payload, key="same-key"), 403, "forbidden")

    assert await sql_notification_count(db, team) == 0
    assert await inbox_ids(api, carol) == [] and await inbox_ids(api, team.owner) == []
    # The key was never used: the same key now sends.
    body = await json_of(await send(api, bob, team.slug, {"title": "y", "recipients": [team.owner.id]}, key="same-key"), 201)
    assert body["recipient_count"] == 1


async def test_critical_must_be_a_boolean(api, db):
    team = await make_team(api, members=1)

    for bad in ("yes", 1, None):
        resp = await send(api, team.owner, team.slug, {"title": "x", "broadcast": True, "critical": bad})
        assert set((await expect_error(resp, 422, "validation_error"))["error"]["details"]) == {"critical"}, bad
    assert await sql_notification_count(db, team) == 0


async def test_an_idempotent_replay_of_a_send_to_muted_members_answers_the_first_answer(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, bob, team)
    first = await send(api, team.owner, team.slug, {"title": "once", "broadcast": True}, key="k-1")
    body = await json_of(first, 201)
    assert body["recipient_count"] == 1

    await delete_mute(api, bob, team)
    again = await send(api, team.owner, team.slug, {"title": "once", "broadcast": True}, key="k-1")

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await json_of(again, 201) == body
    assert await sql_notification_count(db, team) == 1
    assert await inbox_ids(api, bob) == [] and await inbox_ids(api, carol) == [body["notification"]["id"]]


# ================================================================================================
# Validation
# ================================================================================================

BAD_MUTES = {  # name: (body, the field the 422 must name)
    "until-in-the-past": ({"until": "2020-01-01T00:00:00Z"}, "until"),
    "until-a-second-ago": (lambda: {"until": isoformat_z(utcnow() - timedelta(seconds=1))}, "until"),
    "until-not-a-timestamp": ({"until": "tomorrow"}, "until"),
    "until-without-zone": ({"until": "2099-01-01T00:00:00"}, "until"),
    "until-a-number": ({"until": 4102444800}, "until"),
    "types-empty": ({"types": []}, "types"),
    "types-not-a-list": ({"types": "billing"}, "types"),
    "types-upper-case": ({"types": ["Billing"]}, "types"),
    "types-trailing-dot": ({"types": ["billing."]}, "types"),
    "types-leading-dot": ({"types": [".x"]}, "types"),
    "types-double-dot": ({"types": ["a..b"]}, "types"),
    "types-empty-prefix": ({"types": [""]}, "types"),
    "types-digit-first": ({"types": ["1x"]}, "types"),
    "types-space": ({"types": ["bill ing"]}, "types"),
    "types-not-strings": ({"types": [5]}, "types"),
    "types-too-long": ({"types": ["a" * (TYPE_PREFIX_MAX + 1)]}, "types"),
    "types-too-many": ({"types": [f"t{i}" for i in range(TYPE_PREFIXES_MAX + 1)]}, "types"),
    "unknown-field": ({"muted": True}, "muted"),
    "misspelt-field": ({"type": ["billing"]}, "type"),
}


@pytest.mark.parametrize("case", BAD_MUTES)
async def test_bad_mute_input_is_422_naming_the_field_and_changes_nothing(api, db, case):
    team = await make_team(api, members=1)
    bob = team.members[0]
    before = await put_mute(api, bob, team, types=["chat"], until=later(days=1))
    rows = await sql_mute_rows(db, team)
    body, field = BAD_MUTES[case]
    body = body() if callable(body) else body

    resp = await api.put(mute_url(team), json=body, headers=bob.headers)

    error = await expect_error(resp, 422, "validation_error")
    assert set(error["error"]["details"]) == {field}, error
    assert await get_mute(api, bob, team) == before
    assert await sql_mute_rows(db, team) == rows


async def test_the_most_prefixes_allowed_are_accepted(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    prefixes = [f"t{i}" for i in range(TYPE_PREFIXES_MAX)] + ["a" * TYPE_PREFIX_MAX]

    muted = await put_mute(api, bob, team, types=prefixes[1:])

    assert muted["types"] == sorted(prefixes[1:])
    assert len(await sql_mute_rows(db, team)) == TYPE_PREFIXES_MAX


async def test_a_put_without_a_json_object_is_400(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]

    for raw in (b"", b"[]", b"{nope"):
        resp = await api.put(mute_url(team), data=raw, headers={**bob.headers, "Content-Type": "application/json"})
        await expect_error(resp, 400, "bad_request")
    assert await sql_mute_rows(db, team) == set()


# ================================================================================================
# Tenancy and membership
# ================================================================================================

async def test_a_non_member_gets_404_for_every_mute_route_and_nothing_is_written(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    await put_mute(api, bob, team, types=["chat"])
    rows = await sql_mute_rows(db, team)
    other = await make_team(api, members=1)
    for outsider in (await person(api), other.owner, other.members[0]):
        for method, kwargs in (("GET", {}), ("PUT", {"json": {}}), ("PUT", {"json": {"types": ["x"]}}), ("DELETE", {})):
            resp = await api.request(method, mute_url(team), headers=outsider.headers, **kwargs)
            await expect_error(resp, 404, "not_found")
        for method in ("GET", "PUT", "DELETE"):
            resp = await api.request(method, mute_url("no-such-workspace"), headers=outsider.headers, json={})
            await expect_error(resp, 404, "not_found")

    assert await sql_mute_rows(db, team) == rows
    assert await get_mute(api, bob, team) == {"muted": True, "types": ["chat"], "until": None}


async def test_the_mute_routes_need_a_token(api, db):
    team = await make_team(api, members=1)

    for method in ("GET", "PUT", "DELETE"):
        resp = await api.request(method, mute_url(team), json={})
        await expect_error(resp, 401, "unauthorized")
    assert await sql_mute_rows(db, team) == set()


async def test_a_system_admin_who_is_not_a_member_has_no_mute_to_set(api, db):
    team = await make_team(api, members=1)
    admin = await person(api)
    await users.set_system_role(db, uuid.UUID(admin.id), "admin")

    assert await get_mute(api, admin, team) == NOT_MUTED
    await expect_error(await api.put(mute_url(team), json={}, headers=admin.headers), 404, "not_found")
    await delete_mute(api, admin, team)
    assert await sql_mute_rows(db, team) == set()


async def test_a_members_mute_goes_when_they_leave(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    await put_mute(api, bob, team, types=["chat", "billing"])
    await put_mute(api, carol, team)

    resp = await api.delete(f"/api/workspaces/{team.slug}/members/{bob.id}", headers=bob.headers)
    assert resp.status == 204

    assert await sql_mute_rows(db, team) == {(carol.id, "", None)}
    await expect_error(await api.get(mute_url(team), headers=bob.headers), 404, "not_found")
    resp = await api.post(f"/api/workspaces/{team.slug}/members", json={"email": bob.user["email"]},
                          headers=team.owner.headers)
    await json_of(resp, 201)
    assert await get_mute(api, bob, team) == NOT_MUTED  # back without the old mute
    await broadcast(api, team.owner, team, type="chat")
    assert len(await inbox_ids(api, bob)) == 1


async def test_a_workspaces_mutes_go_with_it(api, db):
    team = await make_team(api, members=1)
    await put_mute(api, team.members[0], team)

    resp = await api.delete(f"/api/workspaces/{team.slug}", headers=team.owner.headers)
    assert resp.status == 204

    assert await sql_mute_rows(db, team) == set()


async def test_a_put_by_a_member_removed_after_the_access_check_is_404_and_writes_nothing(api, db, monkeypatch):
    """The removal lands between the access check and the write (deterministically: it runs right after
    the service's access check), as a concurrent DELETE of the member would."""
    team = await make_team(api, members=1)
    bob = team.members[0]
    real = mutes_service.access

    async def then_remove(*args, **kwargs):
        result = await real(*args, **kwargs)
        await members.remove_member(db, uuid.UUID(team.id), uuid.UUID(bob.id))
        return result

    monkeypatch.setattr(mutes_service, "access", then_remove)

    await expect_error(await api.put(mute_url(team), json={"types": ["chat"]}, headers=bob.headers), 404, "not_found")
    assert await sql_mute_rows(db, team) == set()


async def test_simultaneous_puts_leave_exactly_one_of_them(api, db):
    """Each PUT replaces the whole mute: however they interleave, the result is one PUT's mute, never a mix,
    and none fails on the primary key (Postgres makes them take turns on the membership row)."""
    team = await make_team(api, members=1)
    bob = team.members[0]
    bodies = [{"types": ["chat", f"t{i}"]} for i in range(8)] + [{}, {"types": ["chat"]}]

    answers = await asyncio.gather(*(api.put(mute_url(team), json=body, headers=bob.headers) for body in bodies))

    muted = [await json_of(resp, 200) for resp in answers]
    final = await get_mute(api, bob, team)
    assert final in muted
    prefixes = [""] if final["types"] is None else final["types"]
    assert await sql_mute_rows(db, team) == {(bob.id, prefix, None) for prefix in prefixes}

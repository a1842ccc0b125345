"""Sending notifications, Idempotency-Key, a workspace's history and retraction,
and the hub hooks (docs/api.md "Sending notifications"; the receipt pattern in
docs/design.md).

Every test runs on SQLite and on PostgreSQL through a real aiohttp test
server. The `api` fixture builds the app with a RecordingHub (every
users_changed / workspace_changed call is kept) and watches every response
the server prepares: a test that provoked a 5xx fails at teardown.

The `api` and `hub` fixtures are in tests/conftest.py; the helpers this file
shares with tests/test_api_inbox.py are in tests/helpers.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

from helpers import (
    API_TS,
    IDEMPOTENCY_KEY_MAX,
    MESSAGE_MAX,
    NOTIFICATION_KEYS,
    PAGE_MAX,
    RECIPIENTS_MAX,
    TITLE_MAX,
    TYPE_MAX,
    Person,
    Team,
    add_to,
    bearer,
    broadcast,
    counts,
    direct,
    expect_error,
    inbox,
    inbox_all,
    inbox_ids,
    json_of,
    make_team,
    person,
    raw_request,
    send,
    sql_receipts,
    sql_unread,
    unread_count,
)

from pulsestack.app import create_app
from pulsestack.db import NamedQuery

# --- direct SQL, independent of the product's own queries (joins notifications, not receipts.workspace_id) ---

SQL_NOTIFICATIONS_OF_WORKSPACE = NamedQuery.dynamic(
    "t_notifications_of_workspace", "SELECT count(*) AS n FROM notifications WHERE workspace_id = :workspace_id", "scalar")
SQL_RECEIPTS_OF_WORKSPACE = NamedQuery.dynamic(
    "t_receipts_of_workspace",
    "SELECT count(*) AS n FROM notification_receipts AS r"
    " WHERE r.workspace_id = :workspace_id"
    "    OR r.notification_id IN (SELECT id FROM notifications WHERE workspace_id = :workspace_id)", "scalar")


async def sql_notification_count(db, workspace_id: str) -> int:
    return int(await db.fetch_value(SQL_NOTIFICATIONS_OF_WORKSPACE, workspace_id=uuid.UUID(workspace_id)))


async def sql_receipt_count(db, workspace_id: str) -> int:
    return int(await db.fetch_value(SQL_RECEIPTS_OF_WORKSPACE, workspace_id=uuid.UUID(workspace_id)))


# --- a workspace's history ----------------------------------------------------------------------

async def history(api, who: Person, team: Team, **params) -> dict:
    return await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications", params=params, headers=who.headers), 200)


# ================================================================================================
# Send: broadcast
# ================================================================================================

async def test_broadcast_by_an_admin_reaches_every_member_but_the_sender(api, db):
    team = await make_team(api, members=3, admins=1)
    sender = team.admins[0]

    resp = await send(api, sender, team.slug,
                      {"title": "Deploy at 5", "message": "The API restarts.", "type": "deploy.scheduled", "broadcast": True})

    body = await json_of(resp, 201)
    assert set(body) == {"notification", "recipient_count", "delivery"}
    assert body["delivery"] == {"state": "done", "delivered": 4}  # a small broadcast: every receipt written
    n = body["notification"]
    assert set(n) == NOTIFICATION_KEYS
    uuid.UUID(n["id"])
    assert API_TS.match(n["created_at"]), n["created_at"]
    assert (n["workspace_id"], n["sender_id"], n["title"], n["message"], n["type"], n["broadcast"]) == (
        team.id, sender.id, "Deploy at 5", "The API restarts.", "deploy.scheduled", True)
    assert body["recipient_count"] == len(team.everyone) - 1 == 4
    for p in team.everyone:
        ids = await inbox_ids(api, p)
        assert ids == ([] if p is sender else [n["id"]])
    assert set(await sql_receipts(db, n["id"])) == {p.id for p in team.everyone if p is not sender}


async def test_broadcast_by_the_owner_counts_every_other_member(api):
    team = await make_team(api, members=2)

    body = await json_of(await send(api, team.owner, team.slug, {"title": "hi", "broadcast": True}), 201)

    assert body["recipient_count"] == 2
    assert body["notification"]["type"] == "info"
    assert body["notification"]["message"] == ""


async def test_broadcast_in_a_workspace_of_one_reaches_nobody(api, db):
    team = await make_team(api, members=0)

    body = await json_of(await send(api, team.owner, team.slug, {"title": "alone", "broadcast": True}), 201)

    assert body["recipient_count"] == 0
    assert await sql_receipts(db, body["notification"]["id"]) == {}


async def test_a_plain_member_broadcasting_is_403_and_nothing_is_sent(api, db):
    team = await make_team(api, members=2)

    resp = await send(api, team.members[0], team.slug, {"title": "everyone!", "broadcast": True})

    await expect_error(resp, 403, "forbidden")
    assert await sql_notification_count(db, team.id) == 0
    assert await inbox_ids(api, team.members[1]) == []
    assert await inbox_ids(api, team.owner) == []


# ================================================================================================
# Send: direct
# ================================================================================================

async def test_a_direct_send_by_a_plain_member_reaches_exactly_the_listed_members(api, db):
    team = await make_team(api, members=3, admins=1)
    sender, bob, carol = team.members
    admin = team.admins[0]

    resp = await send(api, sender, team.slug, {"title": "Review please", "recipients": [bob.id, admin.id]})

    body = await json_of(resp, 201)
    n = body["notification"]
    assert body["recipient_count"] == 2
    assert (n["broadcast"], n["sender_id"], n["workspace_id"], n["type"]) == (False, sender.id, team.id, "info")
    assert await inbox_ids(api, bob) == [n["id"]]
    assert await inbox_ids(api, admin) == [n["id"]]
    for outsider in (sender, carol, team.owner):
        assert await inbox_ids(api, outsider) == []
    assert set(await sql_receipts(db, n["id"])) == {bob.id, admin.id}


async def test_a_direct_send_reaches_the_sender_too_when_listed(api):
    team = await make_team(api, members=1)
    sender, bob = team.owner, team.members[0]

    n = await direct(api, sender, team, [sender, bob])

    assert await inbox_ids(api, sender) == [n["id"]]
    assert await inbox_ids(api, bob) == [n["id"]]


async def test_duplicate_recipient_ids_count_once(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members

    resp = await send(api, team.owner, team.slug,
                      {"title": "dup", "recipients": [bob.id, bob.id, bob.id.upper(), carol.id, carol.id]})

    body = await json_of(resp, 201)
    assert body["recipient_count"] == 2
    assert sorted(await sql_receipts(db, body["notification"]["id"])) == sorted([bob.id, carol.id])
    assert (await unread_count(api, bob))["total"] == 1


async def test_a_list_of_a_thousand_recipients_is_accepted_and_duplicates_count_once(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members

    body = await json_of(await send(api, team.owner, team.slug, {"title": "t", "recipients": [bob.id, carol.id] * 500}), 201)

    assert body["recipient_count"] == 2
    assert set(await sql_receipts(db, body["notification"]["id"])) == {bob.id, carol.id}


async def test_a_non_member_recipient_is_422_naming_it_and_nothing_is_created(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]
    other = await make_team(api, members=1)
    strangers = {"registered-outsider": (await person(api)).id, "member-of-another-workspace": other.members[0].id,
                 "owner-of-another-workspace": other.owner.id, "random-uuid": str(uuid.uuid4())}

    for case, stranger in strangers.items():
        resp = await send(api, team.owner, team.slug, {"title": "hi", "recipients": [bob.id, stranger]})

        body = await expect_error(resp, 422, "validation_error")
        assert stranger in body["error"]["details"]["recipients"], case
        assert bob.id not in body["error"]["details"]["recipients"], case
    resp = await send(api, team.owner, team.slug, {"title": "hi", "recipients": list(strangers.values())})
    named = (await expect_error(resp, 422, "validation_error"))["error"]["details"]["recipients"]
    assert all(s in named for s in strangers.values())

    assert await sql_notification_count(db, team.id) == 0
    assert await sql_receipt_count(db, team.id) == 0
    assert await inbox_ids(api, bob) == []
    assert await unread_count(api, bob) == counts({})
    assert await inbox_ids(api, other.members[0]) == []


async def test_details_recipients_is_the_list_of_ids_that_are_not_members(api, db):
    team = await make_team(api, members=1)
    strangers = sorted([(await person(api)).id, str(uuid.uuid4())])

    resp = await send(api, team.owner, team.slug, {"title": "hi", "recipients": [team.members[0].id, *strangers]})

    details = (await expect_error(resp, 422, "validation_error"))["error"]["details"]
    assert details == {"recipients": strangers}
    assert await sql_notification_count(db, team.id) == 0


# ================================================================================================
# Send: validation
# ================================================================================================

BAD_SENDS = {  # name: (payload given a member's id, fields the 422 must name)
    "title-missing": (lambda m: {"broadcast": True}, {"title"}),
    "title-empty": (lambda m: {"title": "", "broadcast": True}, {"title"}),
    "title-too-long": (lambda m: {"title": "t" * (TITLE_MAX + 1), "broadcast": True}, {"title"}),
    "title-not-string": (lambda m: {"title": 5, "broadcast": True}, {"title"}),
    "message-too-long": (lambda m: {"title": "t", "message": "m" * (MESSAGE_MAX + 1), "broadcast": True}, {"message"}),
    "message-not-string": (lambda m: {"title": "t", "message": None, "broadcast": True}, {"message"}),
    "type-with-space": (lambda m: {"title": "t", "type": "Bad Type", "broadcast": True}, {"type"}),
    "type-digit-first": (lambda m: {"title": "t", "type": "1x", "broadcast": True}, {"type"}),
    "type-too-long": (lambda m: {"title": "t", "type": "a" * (TYPE_MAX + 1), "broadcast": True}, {"type"}),
    "type-empty": (lambda m: {"title": "t", "type": "", "broadcast": True}, {"type"}),
    "type-upper": (lambda m: {"title": "t", "type": "Info", "broadcast": True}, {"type"}),
    "broadcast-and-recipients": (lambda m: {"title": "t", "broadcast": True, "recipients": [m]}, {"broadcast", "recipients"}),
    "neither": (lambda m: {"title": "t"}, {"broadcast", "recipients"}),
    "broadcast-false-alone": (lambda m: {"title": "t", "broadcast": False}, {"broadcast", "recipients"}),
    "broadcast-not-bool": (lambda m: {"title": "t", "broadcast": "yes"}, {"broadcast"}),
    "recipients-empty": (lambda m: {"title": "t", "recipients": []}, {"recipients"}),
    "recipients-too-many": (lambda m: {"title": "t", "recipients": [m] + [str(uuid.uuid4()) for _ in range(RECIPIENTS_MAX)]}, {"recipients"}),
    "recipients-not-uuid": (lambda m: {"title": "t", "recipients": [m, "not-a-uuid"]}, {"recipients"}),
    "recipients-number": (lambda m: {"title": "t", "recipients": [m, 5]}, {"recipients"}),
    "recipients-not-list": (lambda m: {"title": "t", "recipients": m}, {"recipients"}),
}


async def test_an_invalid_send_is_422_naming_each_bad_field_and_sends_nothing(api, db):
    team = await make_team(api, members=1)
    member = team.members[0]

    for case, (payload_of, fields) in BAD_SENDS.items():
        resp = await send(api, team.owner, team.slug, payload_of(member.id))

        body = await expect_error(resp, 422, "validation_error")
        assert fields <= set(body["error"]["details"]), (case, body)
    assert await sql_notification_count(db, team.id) == 0
    assert await inbox_ids(api, member) == []
    assert await unread_count(api, member) == counts({})


async def test_a_typo_in_a_field_name_is_422_naming_it_and_sends_nothing(api, db):
    team = await make_team(api, members=1)

    resp = await send(api, team.owner, team.slug, {"title": "Deploy", "mesage": "at five", "broadcast": True})

    body = await expect_error(resp, 422, "validation_error")
    assert set(body["error"]["details"]) == {"mesage"}
    assert await sql_notification_count(db, team.id) == 0


async def test_titles_are_trimmed_and_one_of_only_whitespace_is_422(api, db):
    team = await make_team(api, members=1)

    for blank in ("   ", "\t\n ", "\u2003"):
        resp = await send(api, team.owner, team.slug, {"title": blank, "broadcast": True})
        body = await expect_error(resp, 422, "validation_error")
        assert set(body["error"]["details"]) == {"title"}, repr(blank)
    assert await sql_notification_count(db, team.id) == 0

    sent = await broadcast(api, team.owner, team, title="  Deploy at 5 \n")

    assert sent["title"] == "Deploy at 5"
    [item] = await inbox_all(api, team.members[0])
    assert item["title"] == "Deploy at 5"


async def test_the_longest_valid_fields_are_accepted(api):
    team = await make_team(api, members=1)
    payload = {"title": "t" * TITLE_MAX, "message": "m" * MESSAGE_MAX, "type": "a" + "b" * (TYPE_MAX - 1), "recipients": [team.members[0].id]}

    body = await json_of(await send(api, team.owner, team.slug, payload), 201)

    n = body["notification"]
    assert (n["title"], n["message"], n["type"]) == (payload["title"], payload["message"], payload["type"])
    [item] = await inbox_all(api, team.members[0])
    assert (item["title"], item["message"], item["type"]) == (payload["title"], payload["message"], payload["type"])


async def test_valid_types_are_kept(api):
    team = await make_team(api, members=1)

    for type_ in ("a", "deploy.finished", "chat_message-2", "x.y_z-0"):
        n = await broadcast(api, team.owner, team, type=type_)

        assert n["type"] == type_


async def test_a_non_member_sending_is_404_and_so_is_an_unknown_workspace(api, db):
    team = await make_team(api, members=1)
    outsider = await person(api)

    for slug in (team.slug, "no-such-workspace"):
        for payload in ({"title": "t", "broadcast": True}, {"title": "t", "recipients": [team.members[0].id]}):
            await expect_error(await send(api, outsider, slug, payload), 404, "not_found")
    assert await sql_notification_count(db, team.id) == 0


async def test_a_send_body_that_is_not_a_json_object_is_400(api, db):
    team = await make_team(api, members=0)

    for raw in (b"{nope", b"[]", b"", b"null", b'"title"'):
        resp = await api.post(f"/api/workspaces/{team.slug}/notifications", data=raw,
                              headers={**team.owner.headers, "Content-Type": "application/json"})

        await expect_error(resp, 400, "bad_request")
    assert await sql_notification_count(db, team.id) == 0


UNAUTHENTICATED = [
    ("POST", "/api/workspaces/acme/notifications"),
    ("GET", "/api/workspaces/acme/notifications"),
    ("GET", f"/api/workspaces/acme/notifications/{uuid.uuid4()}"),
    ("DELETE", f"/api/workspaces/acme/notifications/{uuid.uuid4()}"),
    ("GET", "/api/notifications"),
    ("GET", "/api/notifications/unread-count"),
    ("POST", f"/api/notifications/{uuid.uuid4()}/read"),
    ("POST", f"/api/notifications/{uuid.uuid4()}/unread"),
    ("POST", "/api/notifications/read"),
    ("POST", "/api/notifications/read-all"),
    ("DELETE", f"/api/notifications/{uuid.uuid4()}"),
]


async def test_every_notification_endpoint_needs_a_token(api):
    for method, path in UNAUTHENTICATED:
        await expect_error(await api.request(method, path, json={}), 401, "unauthorized")
        await expect_error(await api.request(method, path, json={}, headers=bearer("not-a-token")), 401, "unauthorized")


# ================================================================================================
# Idempotency-Key
# ================================================================================================

async def test_a_repeat_with_the_same_key_returns_the_first_answer_byte_for_byte_and_sends_nothing(api, db):
    team = await make_team(api, members=2)
    other_team = await make_team(api, members=1, owner=team.owner)
    payload = {"title": "Deploy", "broadcast": True}
    first = await send(api, team.owner, team.slug, payload, key="deploy-42")
    first_bytes = await first.read()
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    receipts_before = await sql_receipts(db, (await first.json())["notification"]["id"])
    await json_of(await api.post(f"/api/notifications/{(await first.json())['notification']['id']}/read",
                                 headers=team.members[0].headers), 200)

    again = await send(api, team.owner, team.slug, payload, key="deploy-42")
    different_body = await send(api, team.owner, team.slug, {"title": "Other", "recipients": [team.members[1].id]},
                                key="deploy-42")
    other_workspace = await send(api, team.owner, other_team.slug, payload, key="deploy-42")  # the key is the sender's

    for resp in (again, different_body, other_workspace):
        assert resp.status == 201
        assert await resp.read() == first_bytes
        assert resp.headers.get("Idempotent-Replayed") == "true"
    assert len((await history(api, team.owner, team))["items"]) == 1
    assert await sql_notification_count(db, team.id) == 1
    nid = (await first.json())["notification"]["id"]
    assert await sql_receipts(db, nid) == {**receipts_before, team.members[0].id: True}
    assert await inbox_ids(api, team.members[1]) == [nid]
    assert (await unread_count(api, team.members[1]))["total"] == 1
    assert await sql_notification_count(db, other_team.id) == 0


async def test_the_same_key_from_another_sender_sends_a_new_notification(api, db):
    team = await make_team(api, members=1, admins=1)
    admin = team.admins[0]

    first = await json_of(await send(api, team.owner, team.slug, {"title": "a", "broadcast": True}, key="k"), 201)
    second_resp = await send(api, admin, team.slug, {"title": "b", "broadcast": True}, key="k")

    second = await json_of(second_resp, 201)
    assert "Idempotent-Replayed" not in second_resp.headers
    assert second["notification"]["id"] != first["notification"]["id"]
    assert second["notification"]["sender_id"] == admin.id
    assert await sql_notification_count(db, team.id) == 2
    assert set(await inbox_ids(api, team.members[0])) == {first["notification"]["id"], second["notification"]["id"]}


async def test_a_key_of_a_failed_send_is_not_used_up(api, db):
    team = await make_team(api, members=1)
    bob = team.members[0]

    await expect_error(await send(api, team.owner, team.slug, {"title": "x", "recipients": [str(uuid.uuid4())]}, key="k1"),
                       422, "validation_error")
    resp = await send(api, team.owner, team.slug, {"title": "x", "recipients": [bob.id]}, key="k1")

    body = await json_of(resp, 201)
    assert "Idempotent-Replayed" not in resp.headers
    assert await inbox_ids(api, bob) == [body["notification"]["id"]]


async def test_the_key_survives_a_restart(api, aiohttp_client, config, db):
    team = await make_team(api, members=1)
    payload = {"title": "once", "broadcast": True}
    first = await send(api, team.owner, team.slug, payload, key="restart-key")
    first_bytes = await first.read()
    assert first.status == 201

    # A second app that opens its own Database on the same URL: nothing shared in memory.
    restarted = await aiohttp_client(create_app(config))
    again = await send(restarted, team.owner, team.slug, payload, key="restart-key")

    assert again.status == 201
    assert await again.read() == first_bytes
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await sql_notification_count(db, team.id) == 1


async def test_concurrent_duplicates_with_one_key_create_one_notification(api, db):
    team = await make_team(api, members=2)
    payload = {"title": "race", "broadcast": True}

    responses = await asyncio.gather(*(send(api, team.owner, team.slug, payload, key="same") for _ in range(5)))

    bodies = [await r.read() for r in responses]
    assert [r.status for r in responses] == [201] * 5
    assert len(set(bodies)) == 1
    assert Counter(r.headers.get("Idempotent-Replayed") for r in responses) == {None: 1, "true": 4}
    assert await sql_notification_count(db, team.id) == 1
    assert await sql_receipt_count(db, team.id) == 2
    for m in team.members:
        assert len(await inbox_ids(api, m)) == 1
        assert (await unread_count(api, m))["total"] == 1


async def test_a_bad_idempotency_key_is_400_and_sends_nothing(api, db):
    team = await make_team(api, members=1)

    for key in ("", "k" * (IDEMPOTENCY_KEY_MAX + 1)):
        resp = await send(api, team.owner, team.slug, {"title": "t", "broadcast": True}, key=key)

        await expect_error(resp, 400, "bad_request")
    assert await sql_notification_count(db, team.id) == 0


async def test_an_idempotency_key_that_is_not_printable_ascii_is_400_and_sends_nothing(api, db):
    """Header bytes that are not UTF-8 (and control characters) never reach the database."""
    team = await make_team(api, members=1)
    body = json.dumps({"title": "t", "broadcast": True}).encode()

    for key in (b"\xff\xfe-latin1", b"caf\xc3\xa9", b"tab\there"):
        head = (f"POST /api/workspaces/{team.slug}/notifications HTTP/1.1\r\nHost: test\r\n"
                f"Authorization: {team.owner.headers['Authorization']}\r\nContent-Type: application/json\r\n").encode()
        status, answer = await raw_request(api, head + b"Idempotency-Key: " + key + b"\r\n", body)

        assert status == 400, (key, answer)
        assert answer is not None and answer["error"]["code"] == "bad_request"
    assert await sql_notification_count(db, team.id) == 0


async def test_a_key_of_255_characters_is_accepted(api):
    team = await make_team(api, members=1)

    resp = await send(api, team.owner, team.slug, {"title": "t", "broadcast": True}, key="k" * IDEMPOTENCY_KEY_MAX)

    await json_of(resp, 201)


# ================================================================================================
# Workspace side: history, one sent notification, retraction
# ================================================================================================

async def test_history_lists_everything_sent_newest_first_with_keyset_pages(api):
    team = await make_team(api, members=2, admins=1)
    a, b = team.members
    sent = []
    for i in range(7):
        if i % 3 == 0:
            sent.append(await direct(api, a, team, [b], title=f"n{i}"))  # not addressed to the admin reading history
        else:
            sent.append(await broadcast(api, team.owner, team, title=f"n{i}"))
    expected = [n["id"] for n in reversed(sent)]

    for reader in (team.owner, team.admins[0]):
        pages, cursor = [], None
        while True:
            page = await history(api, reader, team, limit=3, **({"cursor": cursor} if cursor else {}))
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        items = [n for p in pages for n in p]
        assert [n["id"] for n in items] == expected
        assert all(set(n) == NOTIFICATION_KEYS for n in items)
        assert items[0] == sent[-1]


async def test_history_of_an_exact_multiple_of_the_limit_ends_with_a_null_cursor(api):
    team = await make_team(api, members=1)
    sent = [await broadcast(api, team.owner, team, title=f"n{i}") for i in range(4)]

    first = await history(api, team.owner, team, limit=2)
    second = await history(api, team.owner, team, limit=2, cursor=first["next_cursor"])

    assert [n["id"] for n in first["items"] + second["items"]] == [n["id"] for n in reversed(sent)]
    assert second["next_cursor"] is None


async def test_history_is_only_this_workspaces(api):
    team = await make_team(api, members=1)
    other = await make_team(api, members=1, owner=team.owner)
    mine = await broadcast(api, team.owner, team)
    await broadcast(api, team.owner, other)

    assert [n["id"] for n in (await history(api, team.owner, team))["items"]] == [mine["id"]]


async def test_history_is_403_for_a_plain_member_and_404_for_a_non_member(api):
    team = await make_team(api, members=1)
    await broadcast(api, team.owner, team)
    outsider = await person(api)

    await expect_error(await api.get(f"/api/workspaces/{team.slug}/notifications", headers=team.members[0].headers),
                       403, "forbidden")
    await expect_error(await api.get(f"/api/workspaces/{team.slug}/notifications", headers=outsider.headers),
                       404, "not_found")


async def test_history_with_a_bad_limit_or_cursor_is_400(api):
    team = await make_team(api, members=0)

    for params in ({"limit": "0"}, {"limit": str(PAGE_MAX + 1)}, {"limit": "x"}, {"cursor": "garbage!"}, {"cursor": "eyJ0IjogMX0"}):
        resp = await api.get(f"/api/workspaces/{team.slug}/notifications", params=params, headers=team.owner.headers)

        await expect_error(resp, 400, "bad_request")


async def test_get_a_sent_notification_reports_recipients_and_reads(api):
    team = await make_team(api, members=3, admins=1)
    n = await broadcast(api, team.admins[0], team)
    for reader in team.members[:2]:
        await json_of(await api.post(f"/api/notifications/{n['id']}/read", headers=reader.headers), 200)

    for viewer in (team.owner, team.admins[0]):
        body = await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications/{n['id']}", headers=viewer.headers), 200)
        assert body == {"notification": n, "recipient_count": 4, "read_count": 2,
                        "delivery": {"state": "done", "delivered": 4}}

    # a dismissal drops out of recipient_count; reading it back unread drops read_count
    await api.delete(f"/api/notifications/{n['id']}", headers=team.members[0].headers)
    await json_of(await api.post(f"/api/notifications/{n['id']}/unread", headers=team.members[1].headers), 200)
    body = await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications/{n['id']}", headers=team.owner.headers), 200)
    assert (body["recipient_count"], body["read_count"], body["delivery"]) == (3, 0, {"state": "done", "delivered": 3})


async def test_the_sender_may_see_their_direct_send_but_another_plain_member_may_not(api):
    team = await make_team(api, members=3)
    sender, bob, carol = team.members
    n = await direct(api, sender, team, [bob])
    url = f"/api/workspaces/{team.slug}/notifications/{n['id']}"

    body = await json_of(await api.get(url, headers=sender.headers), 200)
    assert body == {"notification": n, "recipient_count": 1, "read_count": 0, "delivery": {"state": "done", "delivered": 1}}
    await expect_error(await api.get(url, headers=bob.headers), 403, "forbidden")
    await expect_error(await api.get(url, headers=carol.headers), 403, "forbidden")
    await expect_error(await api.get(url, headers=(await person(api)).headers), 404, "not_found")


async def test_get_a_sent_notification_of_another_workspace_or_unknown_or_malformed_is_404(api):
    team = await make_team(api, members=1)
    other = await make_team(api, members=1, owner=team.owner)
    theirs = await broadcast(api, team.owner, other)
    base = f"/api/workspaces/{team.slug}/notifications"

    for nid in (theirs["id"], str(uuid.uuid4()), "not-a-uuid"):
        await expect_error(await api.get(f"{base}/{nid}", headers=team.owner.headers), 404, "not_found")


async def test_retraction_by_an_admin_removes_every_receipt(api, db):
    team = await make_team(api, members=2, admins=1)
    kept = await broadcast(api, team.owner, team, title="kept")
    n = await broadcast(api, team.owner, team, title="retracted")
    await json_of(await api.post(f"/api/notifications/{n['id']}/read", headers=team.members[0].headers), 200)
    url = f"/api/workspaces/{team.slug}/notifications/{n['id']}"

    resp = await api.delete(url, headers=team.admins[0].headers)

    assert resp.status == 204
    assert await sql_receipts(db, n["id"]) == {}
    for p in (team.admins[0], *team.members):
        assert await inbox_ids(api, p) == [kept["id"]]
        assert await unread_count(api, p) == counts({team.id: 1})
    assert [x["id"] for x in (await history(api, team.owner, team))["items"]] == [kept["id"]]
    await expect_error(await api.get(url, headers=team.owner.headers), 404, "not_found")
    await expect_error(await api.delete(url, headers=team.owner.headers), 404, "not_found")
    await expect_error(await api.post(f"/api/notifications/{n['id']}/read", headers=team.members[1].headers), 404, "not_found")


async def test_the_sender_may_retract_their_own_direct_send_and_another_member_may_not(api, db):
    team = await make_team(api, members=3)
    sender, bob, carol = team.members
    n = await direct(api, sender, team, [bob, carol])
    url = f"/api/workspaces/{team.slug}/notifications/{n['id']}"

    await expect_error(await api.delete(url, headers=bob.headers), 403, "forbidden")
    await expect_error(await api.delete(url, headers=(await person(api)).headers), 404, "not_found")
    assert set(await sql_receipts(db, n["id"])) == {bob.id, carol.id}

    resp = await api.delete(url, headers=sender.headers)

    assert resp.status == 204
    assert await inbox_ids(api, bob) == [] and await inbox_ids(api, carol) == []
    assert (await unread_count(api, bob))["total"] == 0


async def test_retracting_through_another_workspaces_slug_is_404_and_keeps_it(api, db):
    team = await make_team(api, members=1)
    other = await make_team(api, members=1, owner=team.owner)
    theirs = await broadcast(api, team.owner, other)

    resp = await api.delete(f"/api/workspaces/{team.slug}/notifications/{theirs['id']}", headers=team.owner.headers)

    await expect_error(resp, 404, "not_found")
    assert await inbox_ids(api, other.members[0]) == [theirs["id"]]
    assert await sql_receipts(db, theirs["id"]) == {other.members[0].id: False}


# ================================================================================================
# Membership changes and receipts
# ================================================================================================

async def test_removing_a_member_deletes_their_receipts_of_that_workspace_only(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    elsewhere = await make_team(api, members=0)
    await add_to(api, elsewhere, bob)
    here = [await broadcast(api, team.owner, team, title=f"here{i}") for i in range(2)]
    there = await broadcast(api, elsewhere.owner, elsewhere, title="there")

    resp = await api.delete(f"/api/workspaces/{team.slug}/members/{bob.id}", headers=team.owner.headers)

    assert resp.status == 204
    assert await inbox_ids(api, bob) == [there["id"]]
    assert await unread_count(api, bob) == counts({elsewhere.id: 1})
    assert await sql_unread(db, bob.id) == {elsewhere.id: 1}
    assert await inbox_ids(api, carol) == [n["id"] for n in reversed(here)]
    for n in here:
        assert await sql_receipts(db, n["id"]) == {carol.id: False}
    await expect_error(await api.post(f"/api/notifications/{here[0]['id']}/read", headers=bob.headers), 404, "not_found")


async def test_leaving_deletes_the_leavers_receipts_of_that_workspace(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    n = await broadcast(api, team.owner, team)

    resp = await api.delete(f"/api/workspaces/{team.slug}/members/{bob.id}", headers=bob.headers)

    assert resp.status == 204
    assert await inbox_ids(api, bob) == []
    assert await unread_count(api, bob) == counts({})
    assert await sql_receipts(db, n["id"]) == {carol.id: False}


async def test_deleting_a_workspace_deletes_all_its_receipts(api, db):
    team = await make_team(api, members=2)
    bob, carol = team.members
    elsewhere = await make_team(api, members=0)
    await add_to(api, elsewhere, bob)
    await broadcast(api, team.owner, team)
    await direct(api, bob, team, [carol, team.owner])
    there = await broadcast(api, elsewhere.owner, elsewhere)

    resp = await api.delete(f"/api/workspaces/{team.slug}", headers=team.owner.headers)

    assert resp.status == 204
    assert await sql_notification_count(db, team.id) == 0
    assert await sql_receipt_count(db, team.id) == 0
    assert await inbox_ids(api, bob) == [there["id"]]
    assert await unread_count(api, bob) == counts({elsewhere.id: 1})
    for p in (carol, team.owner):
        assert await inbox_ids(api, p) == []
        assert await unread_count(api, p) == counts({})


# ================================================================================================
# Hub hooks
# ================================================================================================

async def test_hub_hears_a_broadcast_as_one_sent_notification(api, hub):
    team = await make_team(api, members=2, admins=1)
    hub.calls.clear()

    n = await broadcast(api, team.admins[0], team)

    assert hub.calls == [("notification", n["id"])]  # the hub finds its recipients from the receipts


async def test_hub_hears_a_direct_send_as_one_sent_notification(api, hub):
    team = await make_team(api, members=3)
    sender, bob, carol = team.members
    hub.calls.clear()

    body = await json_of(await send(api, sender, team.slug, {"title": "t", "recipients": [bob.id, carol.id, bob.id]}), 201)

    assert hub.calls == [("notification", body["notification"]["id"])]


async def test_hub_hears_nothing_from_failed_or_replayed_sends(api, hub):
    team = await make_team(api, members=1)
    member = team.members[0]
    await json_of(await send(api, team.owner, team.slug, {"title": "t", "broadcast": True}, key="k"), 201)
    hub.calls.clear()

    await expect_error(await send(api, team.owner, team.slug, {"title": "t", "recipients": [str(uuid.uuid4())]}),
                       422, "validation_error")
    await expect_error(await send(api, team.owner, team.slug, {"title": ""}), 422, "validation_error")
    await expect_error(await send(api, member, team.slug, {"title": "t", "broadcast": True}), 403, "forbidden")
    await expect_error(await send(api, await person(api), team.slug, {"title": "t", "broadcast": True}), 404, "not_found")
    replay = await send(api, team.owner, team.slug, {"title": "t", "broadcast": True}, key="k")
    assert replay.headers.get("Idempotent-Replayed") == "true"

    assert hub.calls == []


async def test_hub_hears_read_state_changes_only_when_something_changed(api, hub):
    team = await make_team(api, members=1)
    me = team.members[0]
    n1 = await broadcast(api, team.owner, team, title="one")
    n2 = await broadcast(api, team.owner, team, title="two")
    def mine(*ns: dict) -> list:
        return [("changed", me.id, sorted(n["id"] for n in ns))]

    async def calls_of(request) -> list:
        hub.calls.clear()
        resp = await request
        assert resp.status in (200, 204), await resp.text()
        return list(hub.calls)

    read = lambda nid: api.post(f"/api/notifications/{nid}/read", headers=me.headers)  # noqa: E731
    unread = lambda nid: api.post(f"/api/notifications/{nid}/unread", headers=me.headers)  # noqa: E731
    bulk = lambda ids: api.post("/api/notifications/read", json={"ids": ids}, headers=me.headers)  # noqa: E731
    read_all = lambda body: api.post("/api/notifications/read-all", json=body, headers=me.headers)  # noqa: E731

    archive = lambda nid: api.post(f"/api/notifications/{nid}/archive", headers=me.headers)  # noqa: E731
    unarchive = lambda nid: api.post(f"/api/notifications/{nid}/unarchive", headers=me.headers)  # noqa: E731

    assert await calls_of(read(n1["id"])) == mine(n1)
    assert await calls_of(read(n1["id"])) == []  # already read
    assert await calls_of(unread(n1["id"])) == mine(n1)
    assert await calls_of(unread(n1["id"])) == []  # already unread
    assert await calls_of(bulk([n1["id"]])) == mine(n1)
    assert await calls_of(bulk([n1["id"], str(uuid.uuid4())])) == []
    assert await calls_of(read_all({})) == mine(n2)
    assert await calls_of(read_all({})) == []
    assert await calls_of(read_all({"workspace": team.slug})) == []
    assert await calls_of(unread(n2["id"])) == mine(n2)
    assert await calls_of(read_all({"workspace": team.slug})) == mine(n2)
    assert await calls_of(archive(n2["id"])) == mine(n2)
    assert await calls_of(archive(n2["id"])) == []  # already archived
    assert await calls_of(unarchive(n2["id"])) == mine(n2)
    assert await calls_of(unarchive(n2["id"])) == []
    assert await calls_of(api.delete(f"/api/notifications/{n1['id']}", headers=me.headers)) == [("removed", me.id, [n1["id"]])]


async def test_hub_hears_nothing_from_refused_inbox_calls(api, hub):
    team = await make_team(api, members=2)
    me, other = team.members
    theirs = await direct(api, team.owner, team, [other])
    hub.calls.clear()

    for resp in (await api.post(f"/api/notifications/{theirs['id']}/read", headers=me.headers),
                 await api.post(f"/api/notifications/{theirs['id']}/unread", headers=me.headers),
                 await api.delete(f"/api/notifications/{theirs['id']}", headers=me.headers)):
        await expect_error(resp, 404, "not_found")
    await json_of(await api.post("/api/notifications/read", json={"ids": [theirs["id"]]}, headers=me.headers), 200)
    await json_of(await api.post("/api/notifications/read-all", headers=me.headers), 200)

    assert hub.calls == []


async def test_hub_hears_a_retraction_as_the_workspace_losing_it(api, hub):
    team = await make_team(api, members=2)
    n = await direct(api, team.members[0], team, [team.members[1]])
    hub.calls.clear()

    resp = await api.delete(f"/api/workspaces/{team.slug}/notifications/{n['id']}", headers=team.owner.headers)

    assert resp.status == 204
    assert hub.calls == [("retracted", team.id, n["id"])]


async def test_hub_hears_a_member_removal_and_a_leave_as_that_user(api, hub):
    team = await make_team(api, members=2)
    bob, carol = team.members
    hub.calls.clear()

    assert (await api.delete(f"/api/workspaces/{team.slug}/members/{bob.id}", headers=team.owner.headers)).status == 204
    assert hub.calls == [("refresh", [bob.id])]
    hub.calls.clear()
    assert (await api.delete(f"/api/workspaces/{team.slug}/members/{carol.id}", headers=carol.headers)).status == 204
    assert hub.calls == [("refresh", [carol.id])]


async def test_hub_hears_a_workspace_deletion_as_all_its_former_members(api, hub):
    team = await make_team(api, members=2, admins=1)
    hub.calls.clear()

    assert (await api.delete(f"/api/workspaces/{team.slug}", headers=team.owner.headers)).status == 204

    assert hub.calls == [("refresh", sorted(p.id for p in team.everyone))]


async def test_hub_calls_tally_over_a_mixed_session(api, hub):
    """Counted per kind: each write that changes receipts is heard once, and nothing else is."""
    team = await make_team(api, members=2)
    bob, carol = team.members
    hub.calls.clear()

    n = await broadcast(api, team.owner, team)
    await direct(api, bob, team, [carol])
    await json_of(await api.post(f"/api/notifications/{n['id']}/read", headers=bob.headers), 200)
    await unread_count(api, bob)
    await inbox(api, carol)
    await history(api, team.owner, team)

    assert Counter(call[0] for call in hub.calls) == {"notification": 2, "changed": 1}

"""Workspaces and members over HTTP (docs/api.md): tenancy, roles, and the 404-not-403 rule.

Every test runs on SQLite and on PostgreSQL through a real aiohttp test server.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from helpers import (
    MEMBER_KEYS,
    NAME_MAX,
    PAGE_MAX,
    SLUG_MAX,
    WORKSPACE_KEYS,
    add_member,
    create_workspace,
    expect_error,
    join,
    json_of,
    make_members,
    parse_ts,
    register,
)

from pulsestack.db import NamedQuery
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.queries import notifications, users

MEMBERSHIP_ROWS = NamedQuery.dynamic(
    "membership_rows", "SELECT user_id, role FROM workspace_members WHERE workspace_id = :workspace_id", "many")
RECEIPT_WORKSPACES = NamedQuery.dynamic(
    "receipt_workspaces", "SELECT workspace_id FROM notification_receipts WHERE user_id = :user_id", "many")


async def make_system_admin(client, db) -> tuple[dict, dict[str, str]]:
    user, headers = await register(client)
    await users.set_system_role(db, uuid.UUID(user["id"]), "admin")
    return user, headers


async def broadcast(db, workspace: dict, sender: dict) -> None:
    """One broadcast in `workspace` from `sender`, written through the query layer (as tests/test_fanout.py does)."""
    nid, now, ws_id, sender_id = new_id(), utcnow(), uuid.UUID(workspace["id"]), uuid.UUID(sender["id"])
    async with db.transaction() as tx:
        await notifications.create_notification(tx, id=nid, workspace_id=ws_id, sender_id=sender_id, title="hello",
                                                message="", type="info", broadcast=True, created_at=now)
        await notifications.fan_out_broadcast(tx, notification_id=nid, workspace_id=ws_id, sender_id=sender_id, created_at=now,
                                              type_prefixes=type_prefixes("info"), critical=False)


# --- create -------------------------------------------------------------------------------------

async def test_create_workspace_answers_201_and_makes_the_creator_its_owner(client, db):
    user, headers = await register(client)

    resp = await client.post("/api/workspaces", json={"name": "Acme Corp!"}, headers=headers)

    ws = await json_of(resp, 201)
    assert set(ws) == WORKSPACE_KEYS
    assert ws["name"] == "Acme Corp!"
    assert ws["slug"] == "acme-corp"
    assert ws["role"] == "owner"
    assert ws["owner_id"] == user["id"]
    uuid.UUID(ws["id"])
    parse_ts(ws["created_at"])
    rows = await db.fetch_all(MEMBERSHIP_ROWS, workspace_id=uuid.UUID(ws["id"]))
    assert [(str(r["user_id"]), r["role"]) for r in rows] == [(user["id"], "owner")]
    members = await json_of(await client.get("/api/workspaces/acme-corp/members", headers=headers), 200)
    assert [(m["user_id"], m["role"]) for m in members["items"]] == [(user["id"], "owner")]


@pytest.mark.parametrize("name, slug", [
    ("Acme Corp!", "acme-corp"),
    ("  Hello,   World  ", "hello-world"),
    ("Ünïcödé Café", "unicode-cafe"),
    ("R&D 2024", "r-d-2024"),
    ("A" * NAME_MAX, "a" * SLUG_MAX),
])
async def test_create_workspace_derives_the_slug_from_the_name(client, name, slug):
    _, headers = await register(client)

    ws = await create_workspace(client, headers, name=name)

    assert ws["slug"] == slug
    assert (await json_of(await client.get(f"/api/workspaces/{slug}", headers=headers), 200))["id"] == ws["id"]


async def test_create_workspace_trims_the_name(client):
    _, headers = await register(client)

    ws = await create_workspace(client, headers, name="  Acme  ")

    assert ws["name"] == "Acme"


async def test_same_name_twice_gets_a_different_derived_slug(client):
    _, ann = await register(client)
    _, bob = await register(client)
    first = await create_workspace(client, ann, name="Acme Corp")

    second = await create_workspace(client, bob, name="Acme Corp")

    assert first["slug"] == "acme-corp"
    assert second["slug"] != "acme-corp"
    assert second["slug"].startswith("acme-corp")
    assert (await json_of(await client.get(f"/api/workspaces/{second['slug']}", headers=bob), 200))["id"] == second["id"]


async def test_create_workspace_with_an_explicit_slug(client):
    _, headers = await register(client)

    ws = await create_workspace(client, headers, name="Acme Corp", slug="acme")

    assert ws["slug"] == "acme"


async def test_create_workspace_with_a_taken_slug_is_409(client, db):
    _, ann = await register(client)
    _, bob = await register(client)
    await create_workspace(client, ann, name="Acme", slug="acme")

    resp = await client.post("/api/workspaces", json={"name": "Other", "slug": "acme"}, headers=bob)

    body = await expect_error(resp, 409, "conflict")
    assert "slug" in body["error"]["details"]
    assert (await json_of(await client.get("/api/workspaces", headers=bob), 200))["items"] == []


@pytest.mark.parametrize("slug", ["Bad Slug", "-x", "x-", "UPPER", "a_b", "", "a" * (SLUG_MAX + 1), "dots.not.ok", 42, ["acme"]])
async def test_create_workspace_with_an_invalid_slug_is_422_naming_slug(client, slug):
    _, headers = await register(client)

    resp = await client.post("/api/workspaces", json={"name": "Acme", "slug": slug}, headers=headers)

    body = await expect_error(resp, 422, "validation_error")
    assert "slug" in body["error"]["details"]
    assert (await json_of(await client.get("/api/workspaces", headers=headers), 200))["items"] == []


@pytest.mark.parametrize("slug", ["a", "a1", "a-b", "0-9", "x" * SLUG_MAX])
async def test_create_workspace_accepts_valid_slugs(client, slug):
    _, headers = await register(client)

    ws = await create_workspace(client, headers, name="Acme", slug=slug)

    assert ws["slug"] == slug


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}, {"name": "n" * (NAME_MAX + 1)}, {"name": 7}, {"name": None},
                                     {"slug": "acme"}])
async def test_create_workspace_with_a_bad_name_is_422_naming_name(client, payload):
    _, headers = await register(client)

    resp = await client.post("/api/workspaces", json=payload, headers=headers)

    body = await expect_error(resp, 422, "validation_error")
    assert "name" in body["error"]["details"]


async def test_create_workspace_name_of_200_characters_is_accepted(client):
    _, headers = await register(client)

    ws = await create_workspace(client, headers, name="n" * NAME_MAX)

    assert ws["name"] == "n" * NAME_MAX


@pytest.mark.parametrize("raw", [b"{nope", b"[]", b'"Acme"', b""])
async def test_create_workspace_with_a_body_that_is_not_a_json_object_is_400(client, raw):
    _, headers = await register(client)

    resp = await client.post("/api/workspaces", data=raw, headers={**headers, "Content-Type": "application/json"})

    await expect_error(resp, 400, "bad_request")


UNSTORABLE_NAMES = {"nul": "Acme\x00Corp", "lone-surrogate": "Acme \ud800"}


@pytest.mark.parametrize("name", list(UNSTORABLE_NAMES.values()), ids=list(UNSTORABLE_NAMES))
async def test_a_name_that_cannot_be_stored_is_a_client_error_not_500(client, name):
    # PostgreSQL text cannot hold NUL, and a lone surrogate (a valid JSON escape) is not UTF-8:
    # the same request must get the same 4xx on both databases.
    _, headers = await register(client)
    await create_workspace(client, headers, name="Acme", slug="acme")

    created = await client.post("/api/workspaces", json={"name": name}, headers=headers)
    renamed = await client.patch("/api/workspaces/acme", json={"name": name}, headers=headers)

    for resp in (created, renamed):
        assert resp.status in (400, 422), await resp.text()
    assert [w["slug"] for w in (await json_of(await client.get("/api/workspaces", headers=headers), 200))["items"]] == ["acme"]


async def test_a_slug_with_a_nul_byte_in_the_path_is_404_not_500(client):
    _, headers = await register(client)

    resp = await client.get("/api/workspaces/a%00b", headers=headers)

    await expect_error(resp, 404, "not_found")


@pytest.mark.parametrize("email", ["bob\x00@example.com", "\ud800@example.com"], ids=["nul", "lone-surrogate"])
async def test_add_member_with_an_unstorable_email_is_a_client_error_not_500(client, email):
    _, headers = await register(client)
    await create_workspace(client, headers, name="Acme", slug="acme")

    resp = await client.post("/api/workspaces/acme/members", json={"email": email}, headers=headers)

    assert resp.status in (400, 404, 422), await resp.text()


# --- list and get -------------------------------------------------------------------------------

async def test_list_workspaces_shows_each_with_the_callers_role(client):
    ann, ann_h = await register(client)
    _, bob_h = await register(client)
    own = await create_workspace(client, ann_h, name="Alpha", slug="alpha")
    theirs = await create_workspace(client, bob_h, name="Beta", slug="beta")
    await add_member(client, bob_h, "beta", ann["email"], "admin")
    await create_workspace(client, bob_h, name="Gamma", slug="gamma")

    body = await json_of(await client.get("/api/workspaces", headers=ann_h), 200)

    assert set(body) == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    assert sorted(body["items"], key=lambda w: w["slug"]) == [own, {**theirs, "role": "admin"}]


async def test_get_workspace_answers_the_workspace_with_the_callers_role(client):
    _, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    _, member = await join(client, owner, "acme")

    as_owner = await json_of(await client.get("/api/workspaces/acme", headers=owner), 200)
    as_member = await json_of(await client.get("/api/workspaces/acme", headers=member), 200)

    assert as_owner == ws
    assert as_member == {**ws, "role": "member"}


# --- rename -------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["owner", "admin"])
async def test_rename_by_admin_or_owner(client, role):
    _, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    caller = owner if role == "owner" else (await join(client, owner, "acme", "admin"))[1]

    resp = await client.patch("/api/workspaces/acme", json={"name": "  Acme Industries "}, headers=caller)

    body = await json_of(resp, 200)
    assert body == {**ws, "name": "Acme Industries", "role": role}
    assert (await json_of(await client.get("/api/workspaces/acme", headers=owner), 200))["name"] == "Acme Industries"


async def test_rename_by_member_is_403(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    _, member = await join(client, owner, "acme")

    resp = await client.patch("/api/workspaces/acme", json={"name": "Mine now"}, headers=member)

    await expect_error(resp, 403, "forbidden")
    assert (await json_of(await client.get("/api/workspaces/acme", headers=owner), 200))["name"] == "Acme"


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "n" * (NAME_MAX + 1)}, {"name": ["x"]}])
async def test_rename_with_a_bad_name_is_422(client, payload):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.patch("/api/workspaces/acme", json=payload, headers=owner)

    body = await expect_error(resp, 422, "validation_error")
    assert "name" in body["error"]["details"]


async def test_rename_cannot_change_the_slug(client):
    """An unknown field answers 422 naming it; `slug` is not a field of a rename."""
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.patch("/api/workspaces/acme", json={"name": "Zenith", "slug": "zenith"}, headers=owner)

    body = await expect_error(resp, 422, "validation_error")
    assert set(body["error"]["details"]) == {"slug"}
    unchanged = await json_of(await client.get("/api/workspaces/acme", headers=owner), 200)
    assert (unchanged["name"], unchanged["slug"]) == ("Acme", "acme")
    await expect_error(await client.get("/api/workspaces/zenith", headers=owner), 404, "not_found")


async def test_a_null_slug_is_derived_from_the_name(client):
    _, owner = await register(client)

    body = await json_of(await client.post("/api/workspaces", json={"name": "Null Corp", "slug": None}, headers=owner), 201)

    assert body["slug"] == "null-corp"


# --- delete -------------------------------------------------------------------------------------

async def test_delete_by_owner_removes_the_workspace_for_everyone(client, db):
    _, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    _, member = await join(client, owner, "acme")

    resp = await client.delete("/api/workspaces/acme", headers=owner)

    assert resp.status == 204
    assert await resp.read() == b""
    for headers in (owner, member):
        await expect_error(await client.get("/api/workspaces/acme", headers=headers), 404, "not_found")
        assert (await json_of(await client.get("/api/workspaces", headers=headers), 200))["items"] == []
    assert await db.fetch_all(MEMBERSHIP_ROWS, workspace_id=uuid.UUID(ws["id"])) == []
    # The slug is free again.
    await create_workspace(client, member, name="Acme again", slug="acme")


@pytest.mark.parametrize("role", ["admin", "member"])
async def test_delete_by_admin_or_member_is_403(client, role):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    _, caller = await join(client, owner, "acme", role)

    resp = await client.delete("/api/workspaces/acme", headers=caller)

    await expect_error(resp, 403, "forbidden")
    assert (await client.get("/api/workspaces/acme", headers=owner)).status == 200


# --- system admins ------------------------------------------------------------------------------

async def test_system_admin_can_get_rename_and_delete_a_workspace_they_are_not_in(client, db):
    _, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    _, admin = await make_system_admin(client, db)

    got = await json_of(await client.get("/api/workspaces/acme", headers=admin), 200)
    renamed = await json_of(await client.patch("/api/workspaces/acme", json={"name": "Renamed"}, headers=admin), 200)
    listed = await json_of(await client.get("/api/workspaces/acme/members", headers=admin), 200)
    deleted = await client.delete("/api/workspaces/acme", headers=admin)

    assert (got["id"], got["slug"], got["name"]) == (ws["id"], "acme", "Acme")
    assert (renamed["id"], renamed["name"]) == (ws["id"], "Renamed")
    assert [m["role"] for m in listed["items"]] == ["owner"]
    assert deleted.status == 204
    await expect_error(await client.get("/api/workspaces/acme", headers=owner), 404, "not_found")
    # Not being a member, the system admin does not see it in their own lists.
    assert (await json_of(await client.get("/api/workspaces", headers=admin), 200))["items"] == []


async def test_system_admin_who_is_a_plain_member_still_acts_as_owner(client, db):
    # A system admin "acts in any workspace as its owner would, member or not" (services/workspaces.py;
    # docs/api.md: DELETE is for the owner and system admins).
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    admin_user, admin = await join(client, owner, "acme", "member")
    await users.set_system_role(db, uuid.UUID(admin_user["id"]), "admin")

    renamed = await client.patch("/api/workspaces/acme", json={"name": "Renamed"}, headers=admin)
    deleted = await client.delete("/api/workspaces/acme", headers=admin)

    assert renamed.status == 200, await renamed.text()
    assert deleted.status == 204, await deleted.text()


# --- the 404-not-403 rule -----------------------------------------------------------------------

def every_workspace_path(slug: str, member_id: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("GET", f"/api/workspaces/{slug}", None),
        ("PATCH", f"/api/workspaces/{slug}", {"name": "Taken over"}),
        ("DELETE", f"/api/workspaces/{slug}", None),
        ("GET", f"/api/workspaces/{slug}/members", None),
        ("POST", f"/api/workspaces/{slug}/members", {"email": "someone@example.com", "role": "admin"}),
        ("PATCH", f"/api/workspaces/{slug}/members/{member_id}", {"role": "admin"}),
        ("DELETE", f"/api/workspaces/{slug}/members/{member_id}", None),
    ]


async def test_non_members_get_the_same_404_as_for_a_missing_workspace_on_every_path(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    member, _ = await join(client, owner, "acme")
    await register(client, "someone@example.com")
    _, outsider = await register(client)

    for method, path, body in every_workspace_path("acme", member["id"]):
        as_outsider = await client.request(method, path, json=body, headers=outsider)
        missing = await client.request(method, path.replace("/acme", "/no-such-slug", 1), json=body, headers=outsider)

        outsider_body = await expect_error(as_outsider, 404, "not_found")
        assert await expect_error(missing, 404, "not_found") == outsider_body, (method, path)

    # Nothing changed.
    ws = await json_of(await client.get("/api/workspaces/acme", headers=owner), 200)
    assert ws["name"] == "Acme"
    listed = await json_of(await client.get("/api/workspaces/acme/members", headers=owner), 200)
    assert sorted(m["role"] for m in listed["items"]) == ["member", "owner"]


async def test_a_workspace_of_another_tenant_is_404_even_for_its_admins_elsewhere(client):
    _, ann = await register(client)
    _, bob = await register(client)
    await create_workspace(client, ann, name="Ann's", slug="anns")
    await create_workspace(client, bob, name="Bob's", slug="bobs")

    await expect_error(await client.get("/api/workspaces/anns", headers=bob), 404, "not_found")
    await expect_error(await client.get("/api/workspaces/bobs/members", headers=ann), 404, "not_found")


async def test_a_former_member_gets_404(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    member, member_h = await join(client, owner, "acme")
    assert (await client.get("/api/workspaces/acme", headers=member_h)).status == 200

    assert (await client.delete(f"/api/workspaces/acme/members/{member['id']}", headers=owner)).status == 204

    await expect_error(await client.get("/api/workspaces/acme", headers=member_h), 404, "not_found")
    await expect_error(await client.get("/api/workspaces/acme/members", headers=member_h), 404, "not_found")


# --- members: list ------------------------------------------------------------------------------

async def test_list_members_shows_user_id_email_role_and_joined_at(client):
    owner_user, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    admin_user, _ = await join(client, owner, "acme", "admin")
    member_user, member = await join(client, owner, "acme", "member")

    body = await json_of(await client.get("/api/workspaces/acme/members", headers=member), 200)

    assert body["next_cursor"] is None
    for item in body["items"]:
        assert set(item) == MEMBER_KEYS
        parse_ts(item["joined_at"])
    assert sorted((m["user_id"], m["email"], m["role"]) for m in body["items"]) == sorted([
        (owner_user["id"], owner_user["email"], "owner"),
        (admin_user["id"], admin_user["email"], "admin"),
        (member_user["id"], member_user["email"], "member"),
    ])


async def test_list_members_pages_with_a_keyset_cursor(client, db):
    owner_user, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    others = await make_members(db, uuid.UUID(ws["id"]), 4)
    everyone = {owner_user["id"], *(str(i) for i in others)}

    pages, cursor = [], None
    while True:
        params = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        body = await json_of(await client.get("/api/workspaces/acme/members", params=params, headers=owner), 200)
        pages.append([m["user_id"] for m in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10, "the cursor never ends"

    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [user_id for page in pages for user_id in page]
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == everyone
    unpaged = await json_of(await client.get("/api/workspaces/acme/members", headers=owner), 200)
    assert [m["user_id"] for m in unpaged["items"]] == seen


async def test_list_members_with_an_exact_page_ends_with_a_null_cursor(client, db):
    _, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    await make_members(db, uuid.UUID(ws["id"]), 3)

    first = await json_of(await client.get("/api/workspaces/acme/members", params={"limit": "2"}, headers=owner), 200)
    second = await json_of(await client.get("/api/workspaces/acme/members",
                                            params={"limit": "2", "cursor": first["next_cursor"]}, headers=owner), 200)

    assert len(first["items"]) == 2 and first["next_cursor"] is not None
    assert len(second["items"]) == 2 and second["next_cursor"] is None


async def test_list_members_accepts_limits_1_and_100(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    for limit in ("1", "100"):
        body = await json_of(await client.get("/api/workspaces/acme/members", params={"limit": limit}, headers=owner), 200)
        assert len(body["items"]) == 1 and body["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", str(PAGE_MAX + 1), "abc", "-1", "1.5", "", " 5", "1e2", "99999999999999999999999"])
async def test_list_members_with_a_bad_limit_is_400(client, limit):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.get("/api/workspaces/acme/members", params={"limit": limit}, headers=owner)

    await expect_error(resp, 400, "bad_request")


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = {
    "garbage": "garbage",
    "symbols": "!!!***",
    "non-ascii": "é",
    "not-json": _b64(b"not json"),
    "not-utf8": _b64(b"\xff\xfe\xfd"),
    "json-list": _b64([1, 2]),
    "json-string": _b64("after"),
    "wrong-key": _b64({"before": str(uuid.uuid4())}),
    "extra-key": _b64({"after": str(uuid.uuid4()), "x": 1}),
    "after-not-uuid": _b64({"after": "not-a-uuid"}),
    "after-null": _b64({"after": None}),
    "after-number": _b64({"after": 123}),
    "after-list": _b64({"after": [1]}),
    "after-object": _b64({"after": {}}),
    "deeply-nested": _b64(b"[" * 3000 + b"]" * 3000),
}


@pytest.mark.parametrize("cursor", list(BAD_CURSORS.values()), ids=list(BAD_CURSORS))
async def test_list_members_with_a_garbage_cursor_is_400_never_500(client, cursor):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.get("/api/workspaces/acme/members", params={"cursor": cursor}, headers=owner)

    await expect_error(resp, 400, "bad_request")


# --- members: add -------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["member", "admin"])
async def test_add_member_by_email_answers_201_with_the_member(client, role):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, bob_h = await register(client, "bob@example.com")

    resp = await client.post("/api/workspaces/acme/members", json={"email": "  BOB@Example.COM ", "role": role}, headers=owner)

    body = await json_of(resp, 201)
    assert set(body) == MEMBER_KEYS
    assert (body["user_id"], body["email"], body["role"]) == (bob["id"], "bob@example.com", role)
    parse_ts(body["joined_at"])
    assert (await json_of(await client.get("/api/workspaces/acme", headers=bob_h), 200))["role"] == role


async def test_add_member_role_defaults_to_member(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, _ = await register(client)

    body = await json_of(await client.post("/api/workspaces/acme/members", json={"email": bob["email"]}, headers=owner), 201)

    assert body["role"] == "member"


async def test_an_admin_can_add_members(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    _, admin = await join(client, owner, "acme", "admin")
    carol, _ = await register(client)

    body = await add_member(client, admin, "acme", carol["email"], "admin")

    assert (body["user_id"], body["role"]) == (carol["id"], "admin")


async def test_add_member_with_an_unknown_email_is_404(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.post("/api/workspaces/acme/members", json={"email": "nobody@example.com"}, headers=owner)

    await expect_error(resp, 404, "not_found")


async def test_add_an_existing_member_is_409(client):
    owner_user, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, _ = await join(client, owner, "acme", "member")

    again = await client.post("/api/workspaces/acme/members", json={"email": bob["email"].upper(), "role": "admin"}, headers=owner)
    the_owner = await client.post("/api/workspaces/acme/members", json={"email": owner_user["email"]}, headers=owner)

    await expect_error(again, 409, "conflict")
    await expect_error(the_owner, 409, "conflict")
    listed = await json_of(await client.get("/api/workspaces/acme/members", headers=owner), 200)
    assert sorted(m["role"] for m in listed["items"]) == ["member", "owner"]


@pytest.mark.parametrize("role", ["owner", "superuser", "", "ADMIN", None, 1])
async def test_add_member_with_a_bad_role_is_422_naming_role(client, role):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, bob_h = await register(client)

    resp = await client.post("/api/workspaces/acme/members", json={"email": bob["email"], "role": role}, headers=owner)

    body = await expect_error(resp, 422, "validation_error")
    assert "role" in body["error"]["details"]
    await expect_error(await client.get("/api/workspaces/acme", headers=bob_h), 404, "not_found")


@pytest.mark.parametrize("payload", [{}, {"email": "not-an-email"}, {"email": 5}, {"role": "member"}])
async def test_add_member_with_a_bad_email_is_422_naming_email(client, payload):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.post("/api/workspaces/acme/members", json=payload, headers=owner)

    body = await expect_error(resp, 422, "validation_error")
    assert "email" in body["error"]["details"]


async def test_a_member_cannot_add_members(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    _, member = await join(client, owner, "acme")
    carol, carol_h = await register(client)

    resp = await client.post("/api/workspaces/acme/members", json={"email": carol["email"]}, headers=member)

    await expect_error(resp, 403, "forbidden")
    await expect_error(await client.get("/api/workspaces/acme", headers=carol_h), 404, "not_found")


# --- members: change role -----------------------------------------------------------------------

@pytest.mark.parametrize("by", ["owner", "admin"])
async def test_change_role_by_admin_or_owner(client, by):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    caller = owner if by == "owner" else (await join(client, owner, "acme", "admin"))[1]
    bob, bob_h = await join(client, owner, "acme", "member")

    promoted = await client.patch(f"/api/workspaces/acme/members/{bob['id']}", json={"role": "admin"}, headers=caller)

    body = await json_of(promoted, 200)
    assert set(body) == MEMBER_KEYS
    assert (body["user_id"], body["email"], body["role"]) == (bob["id"], bob["email"], "admin")
    assert (await json_of(await client.get("/api/workspaces/acme", headers=bob_h), 200))["role"] == "admin"

    demoted = await client.patch(f"/api/workspaces/acme/members/{bob['id']}", json={"role": "member"}, headers=caller)

    assert (await json_of(demoted, 200))["role"] == "member"
    assert (await json_of(await client.get("/api/workspaces/acme", headers=bob_h), 200))["role"] == "member"


async def test_a_member_cannot_change_roles_not_even_their_own(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, bob_h = await join(client, owner, "acme")
    carol, _ = await join(client, owner, "acme")

    for target in (carol, bob):
        resp = await client.patch(f"/api/workspaces/acme/members/{target['id']}", json={"role": "admin"}, headers=bob_h)
        await expect_error(resp, 403, "forbidden")
    assert (await json_of(await client.get("/api/workspaces/acme", headers=bob_h), 200))["role"] == "member"


@pytest.mark.parametrize("by", ["owner", "admin"])
async def test_changing_the_owners_role_is_409(client, by):
    owner_user, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    caller = owner if by == "owner" else (await join(client, owner, "acme", "admin"))[1]

    resp = await client.patch(f"/api/workspaces/acme/members/{owner_user['id']}", json={"role": "member"}, headers=caller)

    await expect_error(resp, 409, "conflict")
    assert (await json_of(await client.get("/api/workspaces/acme", headers=owner), 200))["role"] == "owner"


@pytest.mark.parametrize("payload", [{"role": "owner"}, {"role": "superuser"}, {}, {"role": None}])
async def test_change_role_to_owner_or_nonsense_is_422_naming_role(client, payload):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, bob_h = await join(client, owner, "acme")

    resp = await client.patch(f"/api/workspaces/acme/members/{bob['id']}", json=payload, headers=owner)

    body = await expect_error(resp, 422, "validation_error")
    assert "role" in body["error"]["details"]
    assert (await json_of(await client.get("/api/workspaces/acme", headers=bob_h), 200))["role"] == "member"


async def test_change_role_of_a_non_member_is_404(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    stranger, stranger_h = await register(client)

    for user_id in (stranger["id"], str(uuid.uuid4())):
        resp = await client.patch(f"/api/workspaces/acme/members/{user_id}", json={"role": "admin"}, headers=owner)
        await expect_error(resp, 404, "not_found")
    await expect_error(await client.get("/api/workspaces/acme", headers=stranger_h), 404, "not_found")


@pytest.mark.parametrize("user_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_a_malformed_user_id_in_the_path_is_404(client, method, user_id):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")

    resp = await client.request(method, f"/api/workspaces/acme/members/{user_id}", json={"role": "admin"}, headers=owner)

    await expect_error(resp, 404, "not_found")


# --- members: remove and leave ------------------------------------------------------------------

@pytest.mark.parametrize("by", ["owner", "admin"])
async def test_remove_member_by_admin_or_owner(client, db, by):
    _, owner = await register(client)
    ws = await create_workspace(client, owner, name="Acme", slug="acme")
    caller = owner if by == "owner" else (await join(client, owner, "acme", "admin"))[1]
    bob, bob_h = await join(client, owner, "acme")

    resp = await client.delete(f"/api/workspaces/acme/members/{bob['id']}", headers=caller)

    assert resp.status == 204
    assert await resp.read() == b""
    await expect_error(await client.get("/api/workspaces/acme", headers=bob_h), 404, "not_found")
    assert (await json_of(await client.get("/api/me", headers=bob_h), 200))["workspaces"] == []
    rows = await db.fetch_all(MEMBERSHIP_ROWS, workspace_id=uuid.UUID(ws["id"]))
    assert bob["id"] not in {str(r["user_id"]) for r in rows}
    # Removing again: no such member.
    await expect_error(await client.delete(f"/api/workspaces/acme/members/{bob['id']}", headers=caller), 404, "not_found")


async def test_a_member_cannot_remove_someone_else(client):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    _, bob_h = await join(client, owner, "acme")
    carol, carol_h = await join(client, owner, "acme")

    resp = await client.delete(f"/api/workspaces/acme/members/{carol['id']}", headers=bob_h)

    await expect_error(resp, 403, "forbidden")
    assert (await client.get("/api/workspaces/acme", headers=carol_h)).status == 200


@pytest.mark.parametrize("role", ["member", "admin"])
async def test_a_member_can_leave(client, role):
    _, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    bob, bob_h = await join(client, owner, "acme", role)

    resp = await client.delete(f"/api/workspaces/acme/members/{bob['id']}", headers=bob_h)

    assert resp.status == 204
    await expect_error(await client.get("/api/workspaces/acme", headers=bob_h), 404, "not_found")
    listed = await json_of(await client.get("/api/workspaces/acme/members", headers=owner), 200)
    assert [m["role"] for m in listed["items"]] == ["owner"]


@pytest.mark.parametrize("by", ["owner", "admin", "system-admin"])
async def test_the_owner_cannot_leave_or_be_removed(client, db, by):
    owner_user, owner = await register(client)
    await create_workspace(client, owner, name="Acme", slug="acme")
    if by == "owner":
        caller = owner
    elif by == "admin":
        _, caller = await join(client, owner, "acme", "admin")
    else:
        _, caller = await make_system_admin(client, db)

    resp = await client.delete(f"/api/workspaces/acme/members/{owner_user['id']}", headers=caller)

    await expect_error(resp, 409, "conflict")
    assert (await json_of(await client.get("/api/workspaces/acme", headers=owner), 200))["role"] == "owner"


async def test_removing_a_member_deletes_their_receipts_of_that_workspace_only(client, db):
    owner_user, owner = await register(client)
    acme = await create_workspace(client, owner, name="Acme", slug="acme")
    other = await create_workspace(client, owner, name="Other", slug="other")
    bob, _ = await join(client, owner, "acme")
    await add_member(client, owner, "other", bob["email"])
    carol, _ = await join(client, owner, "acme")
    for ws in (acme, acme, other):
        await broadcast(db, ws, owner_user)
    bob_id, carol_id = uuid.UUID(bob["id"]), uuid.UUID(carol["id"])
    before = sorted(str(r["workspace_id"]) for r in await db.fetch_all(RECEIPT_WORKSPACES, user_id=bob_id))
    assert before == sorted([acme["id"], acme["id"], other["id"]])

    resp = await client.delete(f"/api/workspaces/acme/members/{bob['id']}", headers=owner)

    assert resp.status == 204
    after = [str(r["workspace_id"]) for r in await db.fetch_all(RECEIPT_WORKSPACES, user_id=bob_id)]
    assert after == [other["id"]]
    carols = [str(r["workspace_id"]) for r in await db.fetch_all(RECEIPT_WORKSPACES, user_id=carol_id)]
    assert carols == [acme["id"], acme["id"]]


async def test_leaving_deletes_the_leavers_receipts_of_that_workspace(client, db):
    owner_user, owner = await register(client)
    acme = await create_workspace(client, owner, name="Acme", slug="acme")
    bob, bob_h = await join(client, owner, "acme")
    await broadcast(db, acme, owner_user)

    assert (await client.delete(f"/api/workspaces/acme/members/{bob['id']}", headers=bob_h)).status == 204

    assert await db.fetch_all(RECEIPT_WORKSPACES, user_id=uuid.UUID(bob["id"])) == []

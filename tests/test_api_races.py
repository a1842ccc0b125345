"""Requests that race with a workspace being deleted, or with a member being
removed, answered over HTTP on both dialects.

A workspace deleted between a request's access check and its write must
answer 404 `not_found` and write nothing, never 500. The deletion is made to
land in exactly that window by wrapping the query the service runs just
before its write, so those tests are deterministic.

A member removed while a broadcast is being fanned out must end with no
receipt and no unread count in that workspace. That one is a real race: the
two requests run at once, on two connections, many times over.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from helpers import create_workspace, expect_error, join, json_of, make_members, register

from pulsestack.db import NamedQuery
from pulsestack.queries import members as members_q
from pulsestack.queries import receipts as receipts_q
from pulsestack.queries import users as users_q
from pulsestack.queries import workspaces as workspaces_q
from pulsestack.services import notifications as notifications_service

ROWS_OF_WORKSPACE = NamedQuery.dynamic(
    "rows_of_workspace",
    "SELECT (SELECT count(*) FROM notifications WHERE workspace_id = :workspace_id)"
    "     + (SELECT count(*) FROM notification_receipts WHERE workspace_id = :workspace_id)"
    "     + (SELECT count(*) FROM workspace_members WHERE workspace_id = :workspace_id) AS n", "scalar")
RECEIPTS_OF_MEMBER = NamedQuery.dynamic(
    "receipts_of_member",
    "SELECT count(*) AS n FROM notification_receipts AS r JOIN notifications AS n ON n.id = r.notification_id"
    " WHERE r.user_id = :user_id AND n.workspace_id = :workspace_id", "scalar")
MEMBERS = 3000  # enough that a fan-out is still reading members while the removal commits
ROUNDS = 25


@pytest.fixture
def delete_workspace_after(monkeypatch, db):
    """Make `module.name` (a coroutine function the service awaits) delete the
    workspace once it has run, as a concurrent DELETE would."""

    def install(module, name: str, workspace_id: str) -> None:
        real = getattr(module, name)

        async def then_delete(*args, **kwargs):
            result = await real(*args, **kwargs)
            await workspaces_q.delete_workspace(db, uuid.UUID(workspace_id))
            return result

        monkeypatch.setattr(module, name, then_delete)

    return install


async def expect_no_such_workspace(resp) -> None:
    body = await expect_error(resp, 404, "not_found")
    assert body["error"]["message"] == "no such workspace"


async def test_a_broadcast_to_a_workspace_deleted_after_the_access_check_is_404(client, db, delete_workspace_after):
    _, owner = await register(client)
    ws = await create_workspace(client, owner)
    await join(client, owner, ws["slug"])
    delete_workspace_after(notifications_service, "access", ws["id"])

    resp = await client.post(f"/api/workspaces/{ws['slug']}/notifications", json={"title": "hi", "broadcast": True},
                             headers=owner)

    await expect_no_such_workspace(resp)
    assert await db.fetch_value(ROWS_OF_WORKSPACE, workspace_id=uuid.UUID(ws["id"])) == 0


async def test_a_direct_send_to_a_workspace_deleted_after_the_recipient_check_is_404(client, db, delete_workspace_after):
    _, owner = await register(client)
    ws = await create_workspace(client, owner)
    member, _ = await join(client, owner, ws["slug"])
    delete_workspace_after(members_q, "list_member_ids_among", ws["id"])

    resp = await client.post(f"/api/workspaces/{ws['slug']}/notifications",
                             json={"title": "hi", "recipients": [member["id"]]}, headers=owner)

    await expect_no_such_workspace(resp)
    assert await db.fetch_value(ROWS_OF_WORKSPACE, workspace_id=uuid.UUID(ws["id"])) == 0


async def test_a_send_with_an_idempotency_key_to_a_deleted_workspace_stores_no_answer(client, db, delete_workspace_after):
    _, owner = await register(client)
    ws = await create_workspace(client, owner)
    await join(client, owner, ws["slug"])
    delete_workspace_after(notifications_service, "access", ws["id"])
    headers = {**owner, "Idempotency-Key": "once"}

    resp = await client.post(f"/api/workspaces/{ws['slug']}/notifications", json={"title": "hi", "broadcast": True},
                             headers=headers)

    await expect_no_such_workspace(resp)
    # Nothing was stored under the key: the same key in a new workspace sends for real.
    other = await create_workspace(client, owner)
    again = await client.post(f"/api/workspaces/{other['slug']}/notifications", json={"title": "hi", "broadcast": True},
                              headers=headers)
    assert (await json_of(again, 201))["notification"]["workspace_id"] == other["id"]


async def test_adding_a_member_to_a_workspace_deleted_after_the_access_check_is_404(client, db, delete_workspace_after):
    _, owner = await register(client)
    ws = await create_workspace(client, owner)
    newcomer, newcomer_headers = await register(client)
    delete_workspace_after(users_q, "get_user_credentials_by_email", ws["id"])

    resp = await client.post(f"/api/workspaces/{ws['slug']}/members", json={"email": newcomer["email"]}, headers=owner)

    await expect_no_such_workspace(resp)
    assert await db.fetch_value(ROWS_OF_WORKSPACE, workspace_id=uuid.UUID(ws["id"])) == 0
    assert (await json_of(await client.get("/api/workspaces", headers=newcomer_headers), 200))["items"] == []


async def test_a_member_removed_during_a_broadcast_keeps_no_receipt_and_no_unread_count(client, db):
    _, owner = await register(client)
    ws = await create_workspace(client, owner)
    workspace_id = uuid.UUID(ws["id"])
    member_ids = await make_members(db, workspace_id, MEMBERS)
    leavers = member_ids[-ROUNDS:]  # the fan-out reads members by user_id: these are read last

    for leaver in leavers:
        sent, removed = await asyncio.gather(
            client.post(f"/api/workspaces/{ws['slug']}/notifications", json={"title": "hi", "broadcast": True},
                        headers=owner),
            client.delete(f"/api/workspaces/{ws['slug']}/members/{leaver}", headers=owner),
        )
        await json_of(sent, 201)
        assert removed.status == 204, await removed.text()
        assert await db.fetch_value(RECEIPTS_OF_MEMBER, user_id=leaver, workspace_id=workspace_id) == 0
        assert [r for r in await receipts_q.count_unread_by_workspace(db, [leaver]) if r["workspace_id"] == workspace_id] == []

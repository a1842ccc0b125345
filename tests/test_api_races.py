"""Requests that race with a workspace being deleted, or with a member being
removed, answered over HTTP on both dialects.

A workspace deleted between a request's access check and its write must
answer 404 `not_found` and write nothing, never 500. The deletion is made to
land in exactly that window by wrapping the query the service runs just
before its write, so the test is deterministic.
"""

from __future__ import annotations

import uuid

import pytest

from apihelpers import create_workspace, expect_error, join, json_of, register
from pulsestack.db import NamedQuery
from pulsestack.queries import members as members_q
from pulsestack.queries import users as users_q
from pulsestack.queries import workspaces as workspaces_q
from pulsestack.services import notifications as notifications_service

ROWS_OF_WORKSPACE = NamedQuery.dynamic(
    "rows_of_workspace",
    "SELECT (SELECT count(*) FROM notifications WHERE workspace_id = :workspace_id)"
    "     + (SELECT count(*) FROM notification_receipts WHERE workspace_id = :workspace_id)"
    "     + (SELECT count(*) FROM workspace_members WHERE workspace_id = :workspace_id) AS n", "scalar")


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

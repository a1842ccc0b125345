"""Workspaces and members: who may do what.

Roles rank owner > admin > member. A system admin acts in any workspace as
its owner would, member or not. To anyone else, a workspace they do not
belong to does not exist: every path answers 404, never 403, so slugs do not
leak. Inside a workspace, a role too low for an action answers 403.

The owner is a member row with role 'owner'; it can neither leave, be
removed, nor have its role changed here (409). Removing a member also
deletes that member's receipts of the workspace, in the same transaction.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from uuid import UUID

from ..db import Database, ForeignKeyViolation, UniqueViolation
from ..errors import Conflict, Forbidden, NotFound
from ..hub import Hub
from ..ids import new_id, utcnow
from ..models.fields import AssignableRole
from ..models.requests import NewMember
from ..models.resources import Member, MyWorkspace, WorkspaceSummary
from ..queries import fanout, members, receipts, users, workspaces
from .accounts import Principal

RANK = {"member": 1, "admin": 2, "owner": 3}


@dataclass(frozen=True)
class Access:
    """A workspace as the caller sees it: `view.role` is their membership
    role (None for a system admin who is not a member); `rank` what they may do."""

    view: MyWorkspace
    rank: int

    @property
    def id(self) -> UUID:
        return self.view.id


def slug_from_name(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or "workspace"


async def access(db: Database, principal: Principal, slug: str, need: str = "member") -> Access:
    """The workspace `slug` if the caller may see it, checked for role `need`."""
    mine = await workspaces.get_workspace_membership(db, slug, principal.id)
    if mine is not None and mine.role is not None:
        result = Access(mine, RANK["owner"] if principal.is_system_admin else RANK[mine.role])
    elif principal.is_system_admin and (ws := await workspaces.get_workspace_by_slug(db, slug)) is not None:
        result = Access(MyWorkspace(**ws.model_dump(), role=None), RANK["owner"])
    else:
        raise NotFound("no such workspace")
    if result.rank < RANK[need]:
        raise Forbidden(f"this needs the {need} role in the workspace")
    return result


async def create(db: Database, principal: Principal, name: str, slug: str | None) -> MyWorkspace:
    derived = slug is None
    slug = slug_from_name(name) if slug is None else slug
    for attempt in range(5):
        candidate = slug if attempt == 0 else f"{slug[:59]}-{secrets.token_hex(2)}"
        try:
            now = utcnow()
            async with db.transaction() as tx:
                ws = await workspaces.create_workspace(tx, id=new_id(), name=name, slug=candidate, owner_id=principal.id,
                                                       created_at=now)
                await members.add_member(tx, id=new_id(), workspace_id=ws.id, user_id=principal.id, role="owner", joined_at=now)
            return MyWorkspace(**ws.model_dump(), role="owner")
        except UniqueViolation:
            if not derived:
                raise Conflict("a workspace with this slug already exists", {"slug": "taken"}) from None
    raise Conflict("could not find a free slug; give one explicitly", {"slug": "taken"})


async def list_mine(db: Database, principal: Principal) -> list[WorkspaceSummary]:
    return await workspaces.list_workspaces_for_user(db, principal.id)


async def list_page(db: Database, principal: Principal, limit: int, after: tuple[str, UUID] | None) -> list[MyWorkspace]:
    return await workspaces.list_workspaces_page(db, principal.id, limit=limit, after=after)


async def rename(db: Database, principal: Principal, slug: str, name: str) -> MyWorkspace:
    acc = await access(db, principal, slug, need="admin")
    ws = await workspaces.rename_workspace(db, acc.id, name)
    if ws is None:  # deleted meanwhile
        raise NotFound("no such workspace")
    return MyWorkspace(**ws.model_dump(), role=acc.view.role)


async def delete(db: Database, hub: Hub, principal: Principal, slug: str) -> None:
    acc = await access(db, principal, slug, need="owner")
    async with db.transaction() as tx:
        # Read before the rows cascade away: these members' counts change.
        member_ids = await members.list_member_user_ids(tx, acc.id)
        # Its fan-out jobs first, in the order a chunk locks (job row, then workspace row):
        # see services/notifications.py retract.
        await fanout.delete_workspace_fanout_jobs(tx, acc.id)
        # Members, notifications and their receipts go with it (ON DELETE CASCADE).
        await workspaces.delete_workspace(tx, acc.id)
        tx.after_commit(lambda: hub.inboxes_replaced(member_ids))


async def list_members(db: Database, principal: Principal, slug: str, limit: int, after_user_id: UUID | None) -> list[Member]:
    acc = await access(db, principal, slug)
    return await members.list_members(db, acc.id, limit=limit, after_user_id=after_user_id)


async def add_member(db: Database, principal: Principal, slug: str, new: NewMember) -> Member:
    acc = await access(db, principal, slug, need="admin")
    found = await users.get_user_credentials_by_email(db, new.email)
    if found is None:
        raise NotFound("no user with this email", {"email": "no such user"})
    try:
        # One transaction: the answer is the row just written, even if the
        # workspace is deleted right after.
        async with db.transaction() as tx:
            await members.add_member(tx, id=new_id(), workspace_id=acc.id, user_id=found.user.id, role=new.role,
                                     joined_at=utcnow())
            member = await members.get_member(tx, acc.id, found.user.id)
    except UniqueViolation:
        raise Conflict("this user is already a member", {"email": "already a member"}) from None
    except ForeignKeyViolation:  # the workspace was deleted after the access check
        raise NotFound("no such workspace") from None
    assert member is not None  # written in the same transaction
    return member


async def change_role(db: Database, principal: Principal, slug: str, user_id: UUID, role: AssignableRole) -> Member:
    acc = await access(db, principal, slug, need="admin")
    target = await members.get_member(db, acc.id, user_id)
    if target is None:
        raise NotFound("no such member")
    if target.role == "owner":
        raise Conflict("the owner's role cannot be changed", {"user_id": "is the owner"})
    if await members.update_member_role(db, acc.id, user_id, role) == 0:
        raise NotFound("no such member")  # removed or made owner meanwhile
    return target.model_copy(update={"role": role})


async def remove_member(db: Database, hub: Hub, principal: Principal, slug: str, user_id: UUID) -> None:
    """Remove a member (admin+), or leave (anyone, for themselves)."""
    leaving = user_id == principal.id
    acc = await access(db, principal, slug, need="member" if leaving else "admin")
    target = await members.get_member(db, acc.id, user_id)
    if target is None:
        raise NotFound("no such member")
    if target.role == "owner":
        raise Conflict("the owner cannot leave or be removed; delete the workspace instead", {"user_id": "is the owner"})
    async with db.transaction() as tx:
        # Waits for a send in flight to commit, so its receipts are deleted
        # too, and holds new sends' fan-outs off until this has committed.
        if await workspaces.lock_workspace_for_member_removal(tx, acc.id) is None:
            raise NotFound("no such workspace")
        if await members.remove_member(tx, acc.id, user_id) == 0:
            raise NotFound("no such member")
        await receipts.delete_member_receipts(tx, acc.id, user_id)
        tx.after_commit(lambda: hub.inboxes_replaced([user_id]))

"""Workspaces, their members, and each member's own mute over HTTP (rules in
services/workspaces.py and services/mutes.py)."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import DB, HUB
from ..models.requests import (
    IdCursor,
    MuteSettings,
    NameCursor,
    NewMember,
    NewWorkspace,
    PageQuery,
    RoleChange,
    WorkspaceRename,
)
from ..models.resources import Member, MemberPage, Mute, MyWorkspace, WorkspacePage
from ..services import mutes, workspaces
from .jsonio import decode_cursor, page_of, path_uuid
from .routing import Routes, caller

routes = Routes("workspaces")

NOT_ADMIN = "forbidden: the caller's role is below admin"


def _slug(request: web.Request) -> str:
    return request.match_info["slug"]


@routes.post("/api/workspaces", body=NewWorkspace, answer=MyWorkspace, status=201,
             errors={409: "conflict: the slug is taken (details.slug: \"taken\")"})
async def create_workspace(request: web.Request, body: NewWorkspace) -> MyWorkspace:
    """Create a workspace; the caller becomes its owner

    Without `slug`, one is derived from the name (accents dropped, lower-cased,
    other characters turned into hyphens) with a random suffix if it is taken.
    """
    return await workspaces.create(request.app[DB], await caller(request), body.name, body.slug)


@routes.get("/api/workspaces", query=PageQuery, answer=WorkspacePage)
async def list_workspaces(request: web.Request, query: PageQuery) -> WorkspacePage:
    """The caller's workspaces, by name

    Names sort by Unicode code point (upper case before lower case), the
    same on every database.
    """
    cursor = decode_cursor(query.cursor, NameCursor)
    rows = await workspaces.list_page(request.app[DB], await caller(request), query.limit + 1,
                                      (cursor.name, cursor.id) if cursor else None)
    return page_of(WorkspacePage, rows, query.limit, lambda last: NameCursor(name=last.name, id=last.id))


@routes.get("/api/workspaces/{slug}", answer=MyWorkspace)
async def get_workspace(request: web.Request) -> MyWorkspace:
    """A workspace, with the caller's role"""
    return (await workspaces.access(request.app[DB], await caller(request), _slug(request))).view


@routes.patch("/api/workspaces/{slug}", body=WorkspaceRename, answer=MyWorkspace, errors={403: NOT_ADMIN})
async def rename_workspace(request: web.Request, body: WorkspaceRename) -> MyWorkspace:
    """Rename a workspace (admin or owner); the slug never changes"""
    return await workspaces.rename(request.app[DB], await caller(request), _slug(request), body.name)


@routes.delete("/api/workspaces/{slug}", answer=None, status=204,
               errors={403: "forbidden: only the owner (or a system admin) deletes a workspace"})
async def delete_workspace(request: web.Request) -> None:
    """Delete a workspace with its members, notifications and receipts"""
    await workspaces.delete(request.app[DB], request.app[HUB], await caller(request), _slug(request))


@routes.get("/api/workspaces/{slug}/members", query=PageQuery, answer=MemberPage)
async def list_members(request: web.Request, query: PageQuery) -> MemberPage:
    """A workspace's members, by user id"""
    cursor = decode_cursor(query.cursor, IdCursor)
    rows = await workspaces.list_members(request.app[DB], await caller(request), _slug(request), query.limit + 1,
                                         cursor.after if cursor else None)
    return page_of(MemberPage, rows, query.limit, lambda last: IdCursor(after=last.user_id))


@routes.post("/api/workspaces/{slug}/members", body=NewMember, answer=Member, status=201,
             errors={403: NOT_ADMIN, 404: "not_found: no such workspace, or no account with this email",
                     409: "conflict: already a member"})
async def add_member(request: web.Request, body: NewMember) -> Member:
    """Add an existing account to a workspace (admin or owner)"""
    return await workspaces.add_member(request.app[DB], await caller(request), _slug(request), body)


@routes.patch("/api/workspaces/{slug}/members/{user_id}", body=RoleChange, answer=Member,
              errors={403: NOT_ADMIN, 409: "conflict: the target is the owner"})
async def change_member_role(request: web.Request, body: RoleChange) -> Member:
    """Make a member an admin, or an admin a member (admin or owner)"""
    user_id = path_uuid(request, "user_id")
    return await workspaces.change_role(request.app[DB], await caller(request), _slug(request), user_id, body.role)


@routes.delete("/api/workspaces/{slug}/members/{user_id}", answer=None, status=204,
               errors={403: "forbidden: a plain member removing someone else",
                       409: "conflict: the owner cannot leave or be removed"})
async def remove_member(request: web.Request) -> None:
    """Remove a member (admin or owner), or leave (any member, with their own id)

    The member's receipts of this workspace go with them.
    """
    await workspaces.remove_member(request.app[DB], request.app[HUB], await caller(request), _slug(request),
                                   path_uuid(request, "user_id"))


@routes.get("/api/workspaces/{slug}/mute", answer=Mute)
async def get_mute(request: web.Request) -> Mute:
    """The caller's own mute of a workspace

    `muted` is false when there is none, or its `until` has passed.
    """
    return await mutes.get(request.app[DB], await caller(request), _slug(request))


@routes.put("/api/workspaces/{slug}/mute", body=MuteSettings, answer=Mute,
            errors={404: "not_found: no such workspace, or the caller is not a member",
                    422: "validation_error: bad or unknown fields, or `until` not in the future"})
async def set_mute(request: web.Request, body: MuteSettings) -> Mute:
    """Mute a workspace for the caller, or some notification types in it

    Replaces the caller's previous mute of this workspace. Sends skip a muted
    member entirely (no receipt, no count), unless they are `critical`. A
    type prefix covers whole dot-separated segments: `billing` mutes
    `billing` and `billing.invoice`, never `billingx`.
    """
    return await mutes.replace(request.app[DB], await caller(request), _slug(request), body)


@routes.delete("/api/workspaces/{slug}/mute", answer=None, status=204)
async def delete_mute(request: web.Request) -> None:
    """Unmute: delete the caller's mute of a workspace (also when there is none)"""
    await mutes.delete(request.app[DB], await caller(request), _slug(request))

"""Workspaces and their members over HTTP (rules in services/workspaces.py)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..appkeys import DB, HUB
from ..services import workspaces
from ..services.workspaces import NAME_MAX, SLUG_PATTERN
from .auth import caller
from .jsonio import decode_cursor, one_of, page_limit, page_of, passthrough, path_uuid, read_json, respond, text, validate

routes = web.RouteTableDef()

NAME = (text(1, NAME_MAX, strip=True), True)


def _slug(request: web.Request) -> str:
    return request.match_info["slug"]


@routes.post("/api/workspaces")
async def create_workspace(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = validate(await read_json(request), {"name": NAME, "slug": (text(1, 64, SLUG_PATTERN), False)})
    ws = await workspaces.create(request.app[DB], principal, body["name"], body.get("slug"))
    return respond(ws, status=201)


@routes.get("/api/workspaces")
async def list_workspaces(request: web.Request) -> web.Response:
    principal = await caller(request)
    limit = page_limit(request)
    cursor = decode_cursor(request, {"name": str, "id": uuid.UUID})
    rows = await workspaces.list_page(request.app[DB], principal, limit + 1, (cursor["name"], cursor["id"]) if cursor else None)
    return respond(page_of(rows, limit, lambda last: {"name": last["name"], "id": last["id"]}))


@routes.get("/api/workspaces/{slug}")
async def get_workspace(request: web.Request) -> web.Response:
    principal = await caller(request)
    acc = await workspaces.access(request.app[DB], principal, _slug(request))
    return respond(acc.view())


@routes.patch("/api/workspaces/{slug}")
async def rename_workspace(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = validate(await read_json(request), {"name": NAME})
    return respond(await workspaces.rename(request.app[DB], principal, _slug(request), body["name"]))


@routes.delete("/api/workspaces/{slug}")
async def delete_workspace(request: web.Request) -> web.Response:
    await workspaces.delete(request.app[DB], request.app[HUB], await caller(request), _slug(request))
    return web.Response(status=204)


@routes.get("/api/workspaces/{slug}/members")
async def list_members(request: web.Request) -> web.Response:
    principal = await caller(request)
    limit = page_limit(request)
    cursor = decode_cursor(request, {"after": uuid.UUID})
    rows = await workspaces.list_members(request.app[DB], principal, _slug(request), limit + 1,
                                         cursor["after"] if cursor else None)
    return respond(page_of(rows, limit, lambda last: {"after": last["user_id"]}))


@routes.post("/api/workspaces/{slug}/members")
async def add_member(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = validate(await read_json(request), {"email": (passthrough, True), "role": (one_of("member", "admin"), False)})
    member = await workspaces.add_member(request.app[DB], principal, _slug(request), body["email"], body.get("role", "member"))
    return respond(member, status=201)


@routes.patch("/api/workspaces/{slug}/members/{user_id}")
async def change_member_role(request: web.Request) -> web.Response:
    principal = await caller(request)
    user_id = path_uuid(request, "user_id")
    body = validate(await read_json(request), {"role": (one_of("member", "admin"), True)})
    return respond(await workspaces.change_role(request.app[DB], principal, _slug(request), user_id, body["role"]))


@routes.delete("/api/workspaces/{slug}/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    principal = await caller(request)
    await workspaces.remove_member(request.app[DB], request.app[HUB], principal, _slug(request), path_uuid(request, "user_id"))
    return web.Response(status=204)

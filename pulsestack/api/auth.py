"""Accounts over HTTP: register, login, logout, me; and `caller(request)`,
which every authenticated handler calls first."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from ..appkeys import CONFIG, DB, HUB, LOGIN_LIMITER, REGISTRATION_LIMITER
from ..errors import Forbidden
from ..services import accounts, workspaces
from ..services.accounts import IssuedToken, Principal
from .jsonio import passthrough, read_json, respond, validate

routes = web.RouteTableDef()

CREDENTIALS = {"email": (passthrough, True), "password": (passthrough, True)}
PRINCIPAL = web.RequestKey("principal", Principal)


async def caller(request: web.Request) -> Principal:
    """The authenticated user of this request, or 401."""
    if PRINCIPAL not in request:
        request[PRINCIPAL] = await accounts.authenticate(request.app[DB], request.headers.get("Authorization"))
    return request[PRINCIPAL]


def _token_ttl(request: web.Request) -> timedelta:
    return timedelta(hours=request.app[CONFIG].auth.token_ttl_hours)


def _client(request: web.Request) -> str:
    """The key of the per-address rate limits: the TCP peer's address."""
    return request.remote or "unknown"


def _issued(issued: IssuedToken) -> dict:
    return {"user": issued.user, "token": issued.token, "expires_at": issued.expires_at}


@routes.post("/api/auth/register")
async def register(request: web.Request) -> web.Response:
    if not request.app[CONFIG].auth.open_registration:
        raise Forbidden("registration is closed on this server; ask an administrator for an account")
    body = validate(await read_json(request), CREDENTIALS)
    issued = await accounts.register(request.app[DB], body["email"], body["password"], _token_ttl(request),
                                     request.app[REGISTRATION_LIMITER], _client(request))
    return respond(_issued(issued), status=201)


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = validate(await read_json(request), CREDENTIALS)
    issued = await accounts.login(request.app[DB], body["email"], body["password"], _token_ttl(request),
                                  request.app[LOGIN_LIMITER], _client(request))
    return respond(_issued(issued))


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    await accounts.logout(request.app[DB], request.app[HUB], await caller(request))
    return web.Response(status=204)


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    principal = await caller(request)
    mine = await workspaces.list_mine(request.app[DB], principal)
    return respond({
        "user": principal.user,
        "workspaces": [{"id": w["id"], "name": w["name"], "slug": w["slug"], "role": w["role"]} for w in mine],
    })

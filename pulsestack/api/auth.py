"""Accounts over HTTP: register, login, logout, me."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from ..appkeys import CONFIG, DB, HUB, LOGIN_LIMITER, REGISTRATION_LIMITER, SESSION_CACHE
from ..errors import Forbidden
from ..models.requests import Login, Registration
from ..models.resources import Issued, Me
from ..services import accounts, workspaces
from .clients import client_address
from .routing import Routes, caller

routes = Routes("accounts")


def _token_ttl(request: web.Request) -> timedelta:
    return timedelta(hours=request.app[CONFIG].auth.token_ttl_hours)


@routes.post("/api/auth/register", auth=False, body=Registration, answer=Issued, status=201,
             errors={403: "forbidden: registration is closed on this server",
                     409: "conflict: an account with this email exists (details.email: \"taken\")",
                     429: "rate_limited: too many registrations from this address; wait `Retry-After` seconds"})
async def register(request: web.Request, body: Registration) -> Issued:
    """Create an account and sign it in

    While `auth.open_registration` is true. The account gets system role
    `user`; the answer carries its first token.
    """
    if not request.app[CONFIG].auth.open_registration:
        raise Forbidden("registration is closed on this server; ask an administrator for an account")
    return await accounts.register(request.app[DB], body, _token_ttl(request), request.app[REGISTRATION_LIMITER],
                                   client_address(request))


@routes.post("/api/auth/login", auth=False, body=Login, answer=Issued,
             errors={401: "unauthorized: wrong email or password (the same answer for an unknown email)",
                     429: "rate_limited: too many failed logins; wait `Retry-After` seconds"})
async def login(request: web.Request, body: Login) -> Issued:
    """Exchange email and password for a new token

    Each login makes a new token; earlier ones stay valid.
    """
    return await accounts.login(request.app[DB], body, _token_ttl(request), request.app[LOGIN_LIMITER], client_address(request))


@routes.post("/api/auth/logout", answer=None, status=204)
async def logout(request: web.Request) -> None:
    """Revoke the token this request carries

    It answers 401 from then on, and its websockets close with 4401.
    """
    await accounts.logout(request.app[DB], request.app[HUB], request.app[SESSION_CACHE], await caller(request))


@routes.get("/api/me", answer=Me)
async def me(request: web.Request) -> Me:
    """The caller and their workspaces, by name"""
    principal = await caller(request)
    return Me(user=principal.user, workspaces=await workspaces.list_mine(request.app[DB], principal))

"""Liveness and readiness, for load balancers and orchestrators.

/healthz answers 200 while the process serves requests at all. /readyz also
asks the database a trivial question and answers 503 `unavailable` when it
cannot, so a balancer stops sending traffic to an instance that would fail.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..appkeys import DB
from ..db import DatabaseUnavailable
from ..errors import Unavailable

READY_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    db = request.app[DB]
    try:
        await asyncio.wait_for(db.ping(), READY_TIMEOUT_S)
    except (DatabaseUnavailable, TimeoutError) as exc:
        # The reason (hosts, ports) is for the operator's log, not the caller.
        log.warning("readyz: database unavailable: %s", str(exc) or "ping timed out")
        raise Unavailable("database unavailable", {"database": db.dialect}) from exc
    return web.json_response({"status": "ok", "database": db.dialect})

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
from ..models.resources import Health, Ready
from .routing import Routes

READY_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)
routes = Routes("health")


@routes.get("/healthz", auth=False, database=False, answer=Health)
async def healthz(request: web.Request) -> Health:
    """Liveness: 200 while the process serves requests; the database is not asked"""
    return Health(status="ok")


@routes.get("/readyz", auth=False, answer=Ready)
async def readyz(request: web.Request) -> Ready:
    """Readiness: 200 while the database answers a trivial query within 2 s

    503 `unavailable` otherwise, with `details.database` naming the dialect.
    """
    db = request.app[DB]
    try:
        await asyncio.wait_for(db.ping(), READY_TIMEOUT_S)
    except (DatabaseUnavailable, TimeoutError) as exc:
        # The reason (hosts, ports) is for the operator's log, not the caller.
        log.warning("readyz: database unavailable: %s", str(exc) or "ping timed out")
        raise Unavailable("database unavailable", {"database": db.dialect}) from exc
    return Ready(status="ok", database=db.dialect)

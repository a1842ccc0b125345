"""The application factory: `create_app(config) -> web.Application`.

Opens the database in a cleanup context (closed again on shutdown), installs
the middleware (and CORS, when `server.cors_origins` lists origins) and
mounts each resource's routes, /metrics among them unless `metrics.port`
gives it a listener of its own (`pulsestack serve` opens that one). Migrations are not run here: `pulsestack
serve` applies them before the server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from . import housekeeping
from .api import auth, cors, health, notifications, openapi, static, workspaces, ws
from .api import metrics as metrics_api
from .api.jsonio import MAX_BODY_BYTES
from .api.middleware import request_context
from .appkeys import CONFIG, DB, FANOUT, HUB, LOGIN_LIMITER, REGISTRATION_LIMITER, SESSION_CACHE
from .config import Config
from .db import Database, open_database
from .hub import Hub, UnreadHub
from .services.accounts import LoginLimiter, RegistrationLimiter
from .services.fanout import FanOutWorker
from .session_cache import SessionCache


def database_for(config: Config) -> Database:
    return open_database(
        config.database.url,
        pool_size=config.database.pool_size,
        sqlite_readers=config.database.sqlite_readers,
        busy_timeout_ms=config.database.busy_timeout_ms,
    )


def create_app(config: Config, db: Database | None = None, hub: Hub | None = None) -> web.Application:
    """The whole service. Pass `db` to share an already-open database (tests);
    otherwise the app opens and closes its own. Pass `hub` to receive the
    services' change events instead of the websocket hub (tests that record
    them); /ws then closes each socket with 1011 after its auth frame."""
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY_BYTES)
    cors.install(app, config.server.cors_origins)  # inside request_context: preflights are logged too
    app[CONFIG] = config
    app[LOGIN_LIMITER] = LoginLimiter()
    app[REGISTRATION_LIMITER] = RegistrationLimiter()
    app[SESSION_CACHE] = SessionCache()  # authenticate's; the hub drops revoked sessions from it

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        if db is not None:
            app[DB] = db
            yield
            return
        own = database_for(config)
        await own.connect()
        app[DB] = own
        try:
            yield
        finally:
            await own.close()

    async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
        if hub is not None:
            app[HUB] = hub
            yield
            return
        bus = app[DB].event_bus(config.hub.flush_ms / 1000)
        realtime = UnreadHub(app[DB], bus, flush_ms=config.hub.flush_ms, send_queue=config.hub.send_queue,
                             session_cache=app[SESSION_CACHE])
        await realtime.start()
        app[HUB] = realtime
        yield
        await realtime.close()  # after the fan-out worker and in-flight requests: their changes go out first

    async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
        # Large broadcasts' receipts, chunk by chunk; it resumes any job left unfinished at once.
        worker = FanOutWorker(app[DB], app[HUB], config.fanout.chunk)
        await worker.start()
        app[FANOUT] = worker
        yield
        await worker.close()

    async def close_websockets(app: web.Application) -> None:
        # On shutdown, before aiohttp waits for handlers: every socket gets 1001.
        if HUB in app:
            await app[HUB].close_sockets()

    async def housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(housekeeping.run_forever(app[DB], config.retention, app[HUB]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(hub_ctx)
    app.cleanup_ctx.append(fanout_ctx)
    app.cleanup_ctx.append(housekeeping_ctx)
    app.on_shutdown.append(close_websockets)
    for module in (health, auth, workspaces, notifications, openapi, ws, static):
        module.routes.add_to(app)
    if config.metrics.enabled and config.metrics.port == 0:  # else `serve` gives it a listener of its own, or none
        metrics_api.routes.add_to(app)
    app[openapi.DOCUMENT] = openapi.render(app)
    return app

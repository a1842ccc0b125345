"""GET /ws: the websocket protocol (docs/websocket.md).

Browsers cannot set headers on a websocket, so the token comes in the first
frame: `{"type": "auth", "token": "..."}` within 10 s (else close 4408; a
bad or expired token closes 4401). Then the hub sends `ready` with the full
unread state, the server time, the ping interval and the token's expiry,
and `notification` / `changed` / `refresh` / `unread` frames as things
change. The client may send `{"type": "ping"}` (answered
`{"type": "pong"}`); anything else is answered
`{"type": "error", "code": "bad_message"}` and the connection stays open.

Each authenticated socket is logged when it opens (user) and when it
closes (how long it lived, the close code), and counted in the
pulsestack_ws_open gauge meanwhile; every close the server starts is
counted by its code (metrics.ws_closed).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSMsgType, web

from .. import metrics
from ..appkeys import CONFIG, DB, HUB
from ..db import DatabaseError
from ..errors import Unauthorized
from ..hub import CLOSE_UNAUTHORIZED, RealtimeUnavailable, close_websocket, parse_client_frame
from ..ids import utcnow
from ..services import accounts
from .routing import Routes

AUTH_TIMEOUT_S = 10.0
CLOSE_AUTH_TIMEOUT = 4408
MAX_CLIENT_FRAME = 4096

routes = Routes("realtime")
log = logging.getLogger(__name__)


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> accounts.Principal | None:
    """The principal named by the first frame, or None after closing the socket."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
    except TimeoutError:
        await close_websocket(ws, CLOSE_AUTH_TIMEOUT, b"authenticate within 10 seconds")
        return None
    if msg.type != WSMsgType.TEXT:
        await close_websocket(ws, CLOSE_UNAUTHORIZED, b"first frame must be auth")
        return None
    frame = parse_client_frame(msg.data)
    token = frame.get("token") if frame and frame.get("type") == "auth" else None
    if not isinstance(token, str):
        await close_websocket(ws, CLOSE_UNAUTHORIZED, b"first frame must be {\"type\": \"auth\", \"token\": ...}")
        return None
    try:
        # Not through the session cache: a socket lives for hours on this one
        # check, and a revocation that came before it would never close it.
        return await accounts.authenticate(request.app[DB], f"Bearer {token}")
    except Unauthorized:
        await close_websocket(ws, CLOSE_UNAUTHORIZED, b"invalid or expired token")
    except DatabaseError:
        await close_websocket(ws, 1011, b"database unavailable; retry")
    return None


@routes.get("/ws", auth=False, database=False, answer=None, status=101,
            errors={400: "bad_request: not a websocket upgrade request"})
async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Live unread counts, new notifications and inbox changes over a websocket

    Upgrade to a websocket (no compression). The client sends
    `{"type": "auth", "token": "..."}` within 10 s (else close 4408; a bad or
    expired token closes 4401); the server answers `ready` with the unread
    counts (as GET /api/notifications/unread-count answers them),
    `server_time`, `heartbeat_s` (its ping interval) and `token_expires_at`.
    Then, on every server process's changes: a `notification` frame for each
    new notification (never one that `ready` already counted), a `changed`
    frame with the state now of the user's receipts that changed (`items`:
    id, is_read, read_at, archived, archived_at) and the ids of those that
    are gone (`removed`: dismissed or retracted), at most 100 ids, or instead
    `refresh` when more changed (refetch the list), and `unread` whenever the
    counts change, in that order. `{"type": "ping"}` is answered
    `{"type": "pong"}`. Close codes: 1001 server shutting down, 1011 database
    unavailable, 1013 client too slow (reconnect), 4401 token invalid,
    revoked or expired, 4408 no auth frame in time. The protocol is in
    docs/websocket.md.
    """
    hub_config = request.app[CONFIG].hub
    # Per-message deflate would cost hundreds of KiB per socket: off.
    ws = web.WebSocketResponse(heartbeat=hub_config.heartbeat_s, compress=False, max_msg_size=MAX_CLIENT_FRAME)
    await ws.prepare(request)
    hub = request.app[HUB]
    with hub.authenticating(ws):
        principal = await _authenticate(request, ws)
    if principal is None or ws.closed or request.transport is None:
        return ws
    try:
        sock = await hub.connect(ws, principal.id, principal.session_id, request,
                                 expires_at=principal.expires_at, heartbeat_s=hub_config.heartbeat_s)
    except RealtimeUnavailable as exc:
        await close_websocket(ws, 1011, str(exc).encode())
        return ws
    except DatabaseError:
        await close_websocket(ws, 1011, b"database unavailable; retry")
        return ws
    # The token stops being valid at its expiry, and so does the socket.
    expiry = asyncio.get_running_loop().call_later(
        max(0.0, (principal.expires_at - utcnow()).total_seconds()), hub.expire, sock)
    opened = time.perf_counter()
    metrics.WS_OPEN.inc()
    log.info("websocket open: user %s", principal.id, extra={"user_id": str(principal.id)})
    try:
        async for msg in ws:
            frame = parse_client_frame(msg.data) if msg.type == WSMsgType.TEXT else None
            if frame is not None and frame.get("type") == "ping":
                hub.send(sock, {"type": "pong"})
            else:
                hub.send(sock, {"type": "error", "code": "bad_message"})
    finally:
        expiry.cancel()
        hub.disconnect(sock)
        metrics.WS_OPEN.dec()
        # The hub's code when the hub closed it (aiohttp then reports the client's echo), else the client's.
        code = sock.close_code or ws.close_code
        lived = time.perf_counter() - opened
        log.info("websocket closed: user %s after %.1f s, code %s", principal.id, lived, code,
                 extra={"user_id": str(principal.id), "duration_ms": round(lived * 1000), "close_code": code})
    return ws

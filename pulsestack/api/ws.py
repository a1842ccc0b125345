"""GET /ws: the websocket protocol (docs/websocket.md).

Browsers cannot set headers on a websocket, so the token comes in the first
frame: `{"type": "auth", "token": "..."}` within 10 s (else close 4408; a
bad or expired token closes 4401). Then the hub sends `ready` with the full
unread state, the server time, the ping interval and the token's expiry,
and `notification` / `changed` / `refresh` / `unread` frames as things
change. The client may send `{"type": "ping"}` (answered
`{"type": "pong"}`); anything else is answered
`{"type": "error", "code": "bad_message"}` and the connection stays open.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from ..appkeys import CONFIG, DB, HUB
from ..db import DatabaseError
from ..errors import Unauthorized
from ..hub import CLOSE_UNAUTHORIZED, RealtimeUnavailable, parse_client_frame
from ..ids import utcnow
from ..services import accounts
from .routing import Routes

AUTH_TIMEOUT_S = 10.0
CLOSE_AUTH_TIMEOUT = 4408
MAX_CLIENT_FRAME = 4096

routes = Routes("realtime")


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> accounts.Principal | None:
    """The principal named by the first frame, or None after closing the socket."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
    except TimeoutError:
        await ws.close(code=CLOSE_AUTH_TIMEOUT, message=b"authenticate within 10 seconds")
        return None
    if msg.type != WSMsgType.TEXT:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"first frame must be auth")
        return None
    frame = parse_client_frame(msg.data)
    token = frame.get("token") if frame and frame.get("type") == "auth" else None
    if not isinstance(token, str):
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"first frame must be {\"type\": \"auth\", \"token\": ...}")
        return None
    try:
        # Not through the session cache: a socket lives for hours on this one
        # check, and a revocation that came before it would never close it.
        return await accounts.authenticate(request.app[DB], f"Bearer {token}")
    except Unauthorized:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"invalid or expired token")
    except DatabaseError:
        await ws.close(code=1011, message=b"database unavailable; retry")
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
        await ws.close(code=1011, message=str(exc).encode())
        return ws
    except DatabaseError:
        await ws.close(code=1011, message=b"database unavailable; retry")
        return ws
    # The token stops being valid at its expiry, and so does the socket.
    expiry = asyncio.get_running_loop().call_later(
        max(0.0, (principal.expires_at - utcnow()).total_seconds()), hub.expire, sock)
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
    return ws

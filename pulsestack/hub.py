"""The realtime hub: websocket connections, coalesced unread counts, fan-out.

Services tell the hub what changed, after the change committed:
`users_changed(ids)`, `workspace_changed(id)`, `notification_sent(id)`,
`session_revoked(id)`. `Hub` is that interface and does nothing (the HTTP
API alone, and tests that record calls); `UnreadHub` is the real one.

How UnreadHub stays cheap: a change only marks things dirty. A flusher runs
`flush_ms` after the first change of a quiet period and handles everything
that piled up with a fixed handful of set-based queries over the users
connected to this process: which of them belong to the changed workspaces,
which received the new notifications, and one unread count for all of them.
It then sends each socket only what changed. A burst of 50 sends costs a
few flushes, and a broadcast to 100,000 members costs one count over the
users connected here, not 100,000 queries.

Frames are state, not deltas: `unread` carries absolute counts and `ready`
the full state, so a client that missed frames is right after the next one.
Every socket has a bounded queue; one that fills (a client that stopped
reading) is closed with 1013 and dropped, and nobody else waits for it.

Across processes, changes travel over an EventBus (eventbus.py); after the
bus reconnects, every connected user is recounted, since changes may have
been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

from .db import Database, DatabaseError
from .eventbus import Change, EventBus
from .serialize import dumps

log = logging.getLogger(__name__)

CLOSE_SLOW = WSCloseCode.TRY_AGAIN_LATER  # 1013
CLOSE_SHUTDOWN = WSCloseCode.GOING_AWAY  # 1001
CLOSE_UNAUTHORIZED = 4401
CLOSE_TIMEOUT = 5.0  # seconds a close handshake may take before the connection is cut


class Hub:
    """What services call after a commit. This base does nothing."""

    def users_changed(self, user_ids: Iterable[uuid.UUID]) -> None:
        """The unread state of these users may have changed."""

    def workspace_changed(self, workspace_id: uuid.UUID) -> None:
        """The unread state of any member of this workspace may have changed."""

    def notification_sent(self, notification_id: uuid.UUID) -> None:
        """A notification was sent; its recipients get a `notification` frame."""

    def session_revoked(self, session_id: uuid.UUID) -> None:
        """A token was revoked (logout); its sockets are closed."""


def counts_frame(kind: str, counts: dict[uuid.UUID, int], **extra) -> str:
    return dumps({"type": kind, **extra, **unread_state(counts)})


def unread_state(counts: dict[uuid.UUID, int]) -> dict:
    return {"total": sum(counts.values()), "workspaces": {str(k): v for k, v in counts.items()}}


@dataclass(eq=False)
class Socket:
    """One authenticated websocket and its bounded queue of frames to send."""

    ws: web.WebSocketResponse
    user_id: uuid.UUID
    session_id: uuid.UUID
    queue: asyncio.Queue[str]
    transport: asyncio.BaseTransport | None
    ready: bool = False
    closing: bool = False
    sender: asyncio.Task | None = field(default=None, repr=False)


class UnreadHub(Hub):
    def __init__(self, db: Database, bus: EventBus, *, flush_ms: int = 50, send_queue: int = 256):
        self.db = db
        self.bus = bus
        self.flush_s = flush_ms / 1000
        self.send_queue = send_queue
        self.sockets: dict[uuid.UUID, set[Socket]] = {}
        self._last: dict[uuid.UUID, dict[uuid.UUID, int]] = {}  # counts last sent to each user
        self._pending = Change()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._closers: set[asyncio.Task] = set()
        self.flushes = 0  # how many flushes ran (observable in tests and logs)
        self._closed = False
        self.authenticating: set[web.WebSocketResponse] = set()  # open, auth frame not yet in

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start(self._apply, self._refresh_everyone)
        self._flusher = asyncio.create_task(self._flush_forever(), name="pulsestack-hub-flusher")

    async def close(self) -> None:
        """Close every socket with 1001 (going away), then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sock in [s for socks in self.sockets.values() for s in socks]:
            self._close(sock, CLOSE_SHUTDOWN, "server shutting down")
        for ws in list(self.authenticating):  # else they would hold shutdown until their auth timeout
            task = asyncio.create_task(ws.close(code=CLOSE_SHUTDOWN, message=b"server shutting down"))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)
        if self._closers:
            await asyncio.wait(self._closers, timeout=CLOSE_TIMEOUT + 1)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.bus.close()

    # -- what services call ------------------------------------------------

    def users_changed(self, user_ids: Iterable[uuid.UUID]) -> None:
        self._publish(Change(users=set(user_ids)))

    def workspace_changed(self, workspace_id: uuid.UUID) -> None:
        self._publish(Change(workspaces={workspace_id}))

    def notification_sent(self, notification_id: uuid.UUID) -> None:
        self._publish(Change(notifications={notification_id}))

    def session_revoked(self, session_id: uuid.UUID) -> None:
        self._publish(Change(sessions={session_id}))

    def _publish(self, change: Change) -> None:
        self._apply(change)
        self.bus.publish(change)

    def _apply(self, change: Change) -> None:
        """Note a change (ours or another process's) for the next flush."""
        for session_id in change.sessions:
            for sock in [s for socks in self.sockets.values() for s in socks if s.session_id == session_id]:
                self._close(sock, CLOSE_UNAUTHORIZED, "token revoked")
        self._pending.merge(Change(change.users, change.workspaces, change.notifications, set(), change.everyone))
        if self._pending:
            self._wake.set()

    def _refresh_everyone(self) -> None:
        self._apply(Change(everyone=True))

    # -- sockets -----------------------------------------------------------

    async def connect(self, ws: web.WebSocketResponse, user_id: uuid.UUID, session_id: uuid.UUID,
                      transport: asyncio.BaseTransport | None) -> Socket:
        """Register an authenticated socket and queue its `ready` frame."""
        sock = Socket(ws, user_id, session_id, asyncio.Queue(self.send_queue), transport)
        sock.sender = asyncio.create_task(self._send_forever(sock), name="pulsestack-ws-sender")
        first = user_id not in self.sockets
        self.sockets.setdefault(user_id, set()).add(sock)
        try:
            counts = (await self._count([user_id])).get(user_id, {})
        except BaseException:
            self.disconnect(sock)
            raise
        if sock.closing:
            return sock
        self._enqueue(sock, dumps({"type": "ready", "user_id": user_id, "unread": unread_state(counts)}))
        sock.ready = True
        if first:
            self._last[user_id] = counts
        # Recount at the next flush: a change that raced with the count above,
        # or reached other tabs' last counts, then reaches every socket.
        self._apply(Change(users={user_id}))
        return sock

    def disconnect(self, sock: Socket) -> None:
        socks = self.sockets.get(sock.user_id)
        if socks is not None:
            socks.discard(sock)
            if not socks:
                del self.sockets[sock.user_id]
                self._last.pop(sock.user_id, None)
        if sock.sender is not None:
            sock.sender.cancel()

    def expire(self, sock: Socket) -> None:
        """The socket's token has expired: close it as if revoked."""
        self._close(sock, CLOSE_UNAUTHORIZED, "token expired")

    def send(self, sock: Socket, frame: dict) -> None:
        """Queue a reply (pong, error) on one socket."""
        self._enqueue(sock, dumps(frame))

    def _enqueue(self, sock: Socket, frame: str) -> None:
        if sock.closing:
            return
        try:
            sock.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.info("closing a slow websocket of user %s: %d frames unsent", sock.user_id, sock.queue.qsize())
            self._close(sock, CLOSE_SLOW, "too slow; reconnect for fresh state")

    def _close(self, sock: Socket, code: int, message: str) -> None:
        if sock.closing:
            return
        sock.closing = True
        self.disconnect(sock)
        task = asyncio.create_task(self._close_socket(sock, code, message))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    @staticmethod
    async def _close_socket(sock: Socket, code: int, message: str) -> None:
        try:
            await asyncio.wait_for(sock.ws.close(code=code, message=message.encode()), CLOSE_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            if not sock.ws.closed and sock.transport is not None:
                sock.transport.abort()  # a peer that will not even take a close frame

    @staticmethod
    async def _send_forever(sock: Socket) -> None:
        try:
            while True:
                frame = await sock.queue.get()
                await sock.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            pass  # the socket went away; its handler unregisters it

    # -- the flusher -------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_s)  # let a burst pile up
            self._wake.clear()
            change, self._pending = self._pending, Change()
            try:
                await self.flush(change)
            except DatabaseError as exc:
                log.warning("hub: flush failed, retrying: %s", exc)
                self._apply(change)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("hub: flush failed")

    async def flush(self, change: Change) -> None:
        connected = list(self.sockets)
        if not connected:
            return
        self.flushes += 1
        dirty = set(connected) if change.everyone else change.users & self.sockets.keys()
        if change.workspaces:
            rows = await self.db.fetch_all("list_connected_members", workspace_ids=list(change.workspaces), user_ids=connected)
            dirty |= {r["user_id"] for r in rows}
        if change.notifications:
            dirty |= await self._push_notifications(change.notifications, connected)
        dirty &= self.sockets.keys()
        if not dirty:
            return
        counts = await self._count(dirty)
        for user_id in dirty:
            new = counts.get(user_id, {})
            if user_id in self.sockets and new != self._last.get(user_id):
                self._last[user_id] = new
                frame = counts_frame("unread", new)
                for sock in list(self.sockets[user_id]):
                    if sock.ready:
                        self._enqueue(sock, frame)

    async def _push_notifications(self, notification_ids: set[uuid.UUID], connected: list[uuid.UUID]) -> set[uuid.UUID]:
        """Send `notification` frames to connected recipients; returns who they were."""
        ids = list(notification_ids)
        receipts = await self.db.fetch_all("list_new_receipts", notification_ids=ids, user_ids=connected)
        if not receipts:
            return set()
        items = await self.db.fetch_all("list_notifications_by_ids", notification_ids=ids)
        recipients: dict[uuid.UUID, set[uuid.UUID]] = {}
        for r in receipts:
            recipients.setdefault(r["notification_id"], set()).add(r["user_id"])
        for item in items:  # oldest first
            frame = dumps({"type": "notification", "item": item})
            for user_id in recipients.get(item["id"], ()):
                for sock in list(self.sockets.get(user_id, ())):
                    if sock.ready:
                        self._enqueue(sock, frame)
        return {r["user_id"] for r in receipts}

    async def _count(self, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
        rows = await self.db.fetch_all("count_unread_by_workspace", user_ids=list(user_ids))
        counts: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
        for r in rows:
            counts.setdefault(r["user_id"], {})[r["workspace_id"]] = r["unread"]
        return counts


def parse_client_frame(text: str) -> dict | None:
    """A client's frame as a dict, or None when it is not a JSON object."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return frame if isinstance(frame, dict) else None

"""The realtime hub: websocket connections, coalesced unread counts, fan-out.

Services tell the hub what changed, after the change committed:
`users_changed(ids)`, `workspace_changed(id)`, `notification_sent(id)`,
`session_revoked(id)`; the websocket handler (api/ws.py) hands it sockets.
`Hub` is that whole interface and holds no sockets: its events do nothing
and `connect` refuses (the HTTP API alone, and tests that record calls).
`UnreadHub` is the real one.

How UnreadHub stays cheap: a change only marks things dirty. A flusher runs
`flush_ms` after the first change of a quiet period and handles everything
that piled up with a fixed handful of set-based queries over the users
connected to this process: which of them belong to the changed workspaces,
which received the new notifications, and one unread count for all of them.
It then sends each socket only what changed. A burst of 50 sends costs a
few flushes, and a broadcast to 100,000 members costs one count over the
users connected here, not 100,000 queries. A flush that fails, for
whatever reason, loses nothing: its change goes back in line and is tried
again FLUSH_RETRY_S later, with whatever came meanwhile.

Frames are state, not deltas: `unread` carries absolute counts and `ready`
the full state, so a client that missed frames is right after the next one.
Each distinct frame is encoded once per flush (a broadcast's notification
frame, and one `unread` frame per distinct set of counts) and its bytes are
written straight to every socket's transport, each user's frames together,
after all of the flush's queries ran. A socket whose transport is backed up
gets a bounded backlog drained by its own task; one whose backlog fills (a
client that stopped reading) is closed with 1013 and dropped, and nobody
else waits for it.

Across processes, changes travel over an EventBus (eventbus.py); after the
bus reconnects, every connected user is recounted, since changes may have
been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import struct
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

from .db import Database, DatabaseError
from .eventbus import Change, EventBus
from .models.resources import InboxItem, UnreadCounts
from .queries import hub as hub_queries
from .queries import receipts
from .queries.receipts import NO_UNREAD
from .serialize import dumps

log = logging.getLogger(__name__)

CLOSE_SLOW = WSCloseCode.TRY_AGAIN_LATER  # 1013
CLOSE_SHUTDOWN = WSCloseCode.GOING_AWAY  # 1001
CLOSE_UNAUTHORIZED = 4401
CHANGED_MAX = 100  # receipts a `changed` frame names at most; past that, `refresh`
CLOSE_TIMEOUT = 5.0  # seconds a close handshake may take before the connection is cut
FLUSH_RETRY_S = 1.0  # pause after a failed flush before its change is tried again


class RealtimeUnavailable(Exception):
    """This hub serves no websockets."""


class Hub:
    """What services call after a commit, and what /ws calls. This base
    holds no sockets: events do nothing, and `connect` refuses."""

    def users_changed(self, user_ids: Iterable[uuid.UUID]) -> None:
        """The unread state of these users may have changed."""

    def workspace_changed(self, workspace_id: uuid.UUID) -> None:
        """The unread state of any member of this workspace may have changed."""

    def notification_sent(self, notification_id: uuid.UUID) -> None:
        """A notification was sent: each recipient gets a `notification` frame and their new counts."""

    def session_revoked(self, session_id: uuid.UUID) -> None:
        """A token was revoked (logout); its sockets are closed."""

    def receipts_changed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID]) -> None:
        """These receipts of the user changed state (read, unread, archive, unarchive): a `changed`
        frame with their state now (a `refresh` when there are more than CHANGED_MAX), and new counts."""

    def receipts_removed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID]) -> None:
        """These receipts of the user are gone (dismissed): a `changed` frame naming them in `removed`,
        and new counts."""

    def notification_retracted(self, workspace_id: uuid.UUID, notification_id: uuid.UUID) -> None:
        """A notification and all its receipts are gone: `removed` for the workspace's members, and new counts."""

    def inboxes_replaced(self, user_ids: Iterable[uuid.UUID]) -> None:
        """Too much changed to list (more than CHANGED_MAX receipts, or a whole workspace's): a `refresh`
        frame, and new counts."""

    @contextlib.contextmanager
    def authenticating(self, ws: web.WebSocketResponse) -> Iterator[None]:
        """While a socket waits for its auth frame (so shutdown can close it too)."""
        yield

    async def connect(self, ws: web.WebSocketResponse, user_id: uuid.UUID, session_id: uuid.UUID,
                      request: web.Request) -> Socket:
        """Register an authenticated socket and send its `ready` frame."""
        raise RealtimeUnavailable("realtime hub not running")

    def disconnect(self, sock: Socket) -> None:
        """The socket's handler is done with it."""

    def expire(self, sock: Socket) -> None:
        """The socket's token has expired: close it as if revoked."""

    def send(self, sock: Socket, frame: dict) -> None:
        """Send a reply (pong, error) on one socket."""

    async def close(self) -> None:
        """Close every socket (1001) and stop."""


def unread_frame(counts: UnreadCounts) -> str:
    """`unread`: the unread-count answer's fields at the top level."""
    return '{"type":"unread",' + counts.model_dump_json()[1:]


def notification_frame(item: InboxItem) -> str:
    return '{"type":"notification","item":' + item.model_dump_json() + "}"


def wire_frame(text: str) -> bytes:
    """A complete unmasked websocket text frame (RFC 6455 §5.2), as a server sends it."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


@dataclass(eq=False)
class Socket:
    """One authenticated websocket; a backlog only while its client is slow to read."""

    ws: web.WebSocketResponse
    user_id: uuid.UUID
    session_id: uuid.UUID
    transport: asyncio.WriteTransport
    drain: Callable[[], Awaitable[None]]  # waits until the transport takes writes again
    ready: bool = False
    closing: bool = False
    backlog: deque[bytes] | None = field(default=None, repr=False)
    sender: asyncio.Task | None = field(default=None, repr=False)


class UnreadHub(Hub):
    def __init__(self, db: Database, bus: EventBus, *, flush_ms: int = 50, send_queue: int = 256):
        self.db = db
        self.bus = bus
        self.flush_s = flush_ms / 1000
        self.send_queue = send_queue
        self.sockets: dict[uuid.UUID, set[Socket]] = {}
        self._last: dict[uuid.UUID, UnreadCounts] = {}  # counts last sent to each user
        self._pending = Change()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._closers: set[asyncio.Task] = set()
        self.flushes = 0  # how many flushes ran (observable in tests and logs)
        self._closed = False
        self._authenticating: set[web.WebSocketResponse] = set()  # open, auth frame not yet in

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
        for ws in list(self._authenticating):  # else they would hold shutdown until their auth timeout
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

    def receipts_changed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID]) -> None:
        self.users_changed([user_id])

    def receipts_removed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID]) -> None:
        self.users_changed([user_id])

    def notification_retracted(self, workspace_id: uuid.UUID, notification_id: uuid.UUID) -> None:
        self.workspace_changed(workspace_id)

    def inboxes_replaced(self, user_ids: Iterable[uuid.UUID]) -> None:
        self.users_changed(user_ids)

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

    @contextlib.contextmanager
    def authenticating(self, ws: web.WebSocketResponse) -> Iterator[None]:
        self._authenticating.add(ws)
        try:
            yield
        finally:
            self._authenticating.discard(ws)

    async def connect(self, ws: web.WebSocketResponse, user_id: uuid.UUID, session_id: uuid.UUID,
                      request: web.Request) -> Socket:
        assert request.transport is not None and request.writer is not None  # an open connection
        sock = Socket(ws, user_id, session_id, request.transport, request.writer.drain)
        first = user_id not in self.sockets
        self.sockets.setdefault(user_id, set()).add(sock)
        try:
            counts = (await self._count([user_id])).get(user_id, NO_UNREAD)
        except BaseException:
            self.disconnect(sock)
            raise
        if sock.closing:
            return sock
        self._deliver(sock, wire_frame(dumps({"type": "ready", "user_id": user_id,
                                              "unread": counts.model_dump(mode="json")})))
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
        self._close(sock, CLOSE_UNAUTHORIZED, "token expired")

    def send(self, sock: Socket, frame: dict) -> None:
        self._deliver(sock, wire_frame(dumps(frame)))

    def _deliver(self, sock: Socket, *frames: bytes) -> None:
        """Write frames now (in one write), or queue them behind a backed-up transport."""
        if sock.closing or sock.transport.is_closing():
            return  # going away; its handler unregisters it
        if sock.backlog is None:
            if sock.transport.get_write_buffer_size() <= sock.transport.get_write_buffer_limits()[1]:
                sock.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
                return
            sock.backlog = deque()
            sock.sender = asyncio.create_task(self._send_backlog(sock), name="pulsestack-ws-backlog")
        if len(sock.backlog) + len(frames) > self.send_queue:
            log.info("closing a slow websocket of user %s: %d frames unsent", sock.user_id, len(sock.backlog))
            self._close(sock, CLOSE_SLOW, "too slow; reconnect for fresh state")
            return
        sock.backlog.extend(frames)

    @staticmethod
    async def _send_backlog(sock: Socket) -> None:
        """Write the backlog as the client reads, then go back to writing directly."""
        assert sock.backlog is not None
        try:
            while sock.backlog:
                await sock.drain()
                if sock.transport.is_closing():
                    return
                sock.transport.write(sock.backlog.popleft())
        except ConnectionError:
            pass  # the socket went away; its handler unregisters it
        finally:
            sock.backlog, sock.sender = None, None

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
            if not sock.ws.closed:
                sock.transport.abort()  # a peer that will not even take a close frame

    # -- the flusher -------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_s)  # let a burst pile up
            self._wake.clear()
            change, self._pending = self._pending, Change()
            try:
                with gc_paused():
                    await self.flush(change)
            except Exception as exc:
                # Whatever failed (the database, the driver after a restart, a
                # bug), the change goes back in line with what came meanwhile:
                # a dropped change is a badge that stays wrong until the next
                # change of the same user. A database error is expected now
                # and then; anything else also gets its traceback.
                log.warning("hub: flush failed, retrying in %g s: %s: %s", FLUSH_RETRY_S, type(exc).__name__, exc,
                            exc_info=not isinstance(exc, DatabaseError))
                self._apply(change)
                await asyncio.sleep(FLUSH_RETRY_S)

    async def flush(self, change: Change) -> None:
        """Query everything the change needs, then send: each user's new
        notifications, then their new counts, one user at a time."""
        connected = list(self.sockets)
        if not connected:
            return
        self.flushes += 1
        lap = Laps()
        dirty = set(connected) if change.everyone else change.users & self.sockets.keys()
        members, news = await asyncio.gather(  # independent: on two connections at once
            self._connected_members(change.workspaces, connected), self._new_notifications(change.notifications, connected))
        lap("members and notifications")
        dirty |= members | news.keys()
        dirty &= self.sockets.keys()
        counts = await self._count(dirty) if dirty else {}
        lap("count")
        encoded: dict[str, bytes] = {}  # one `unread` frame per distinct state
        for user_id in dirty:
            socks = self.sockets.get(user_id)
            if not socks:
                continue
            frames = news.get(user_id, [])
            new = counts.get(user_id, NO_UNREAD)
            if new != self._last.get(user_id):
                self._last[user_id] = new
                text = unread_frame(new)
                if text not in encoded:
                    encoded[text] = wire_frame(text)
                frames = [*frames, encoded[text]]
            if frames:
                for sock in list(socks):
                    if sock.ready:
                        self._deliver(sock, *frames)
        lap("send")
        log.debug("hub: flush %d: %d of %d connected users dirty, %d got notifications; %s",
                  self.flushes, len(dirty), len(connected), len(news), lap)

    async def _connected_members(self, workspace_ids: set[uuid.UUID], connected: list[uuid.UUID]) -> set[uuid.UUID]:
        if not workspace_ids:
            return set()
        return await hub_queries.list_connected_members(self.db, workspace_ids, connected)

    async def _new_notifications(self, notification_ids: set[uuid.UUID],
                                 connected: list[uuid.UUID]) -> dict[uuid.UUID, list[bytes]]:
        """The `notification` frames owed to each connected recipient, oldest first."""
        if not notification_ids:
            return {}
        new_receipts = await hub_queries.list_new_receipts(self.db, notification_ids, connected)
        if not new_receipts:
            return {}
        items = await hub_queries.list_notifications_by_ids(self.db, notification_ids)
        order = {item.id: i for i, item in enumerate(items)}  # oldest first
        frames = [wire_frame(notification_frame(item)) for item in items]
        owed: dict[uuid.UUID, list[int]] = {}
        for r in new_receipts:
            if r.notification_id in order:
                owed.setdefault(r.user_id, []).append(order[r.notification_id])
        return {user_id: [frames[i] for i in sorted(positions)] for user_id, positions in owed.items()}

    async def _count(self, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, UnreadCounts]:
        return await receipts.count_unread(self.db, list(user_ids))


class Laps:
    """Milliseconds per named step, for the flush's debug log line."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.steps: list[str] = []

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append(f"{name} {(now - self.last) * 1000:.1f} ms")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.steps)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside. With 10,000 sockets the heap holds
    millions of objects and a full collection takes 0.2-0.75 s; a flush
    allocates enough to set one off, in the middle of its sends. Deferred, it
    runs after the flush, when every frame is already in the kernel's hands."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_client_frame(text: str) -> dict | None:
    """A client's frame as a dict, or None when it is not a JSON object."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return frame if isinstance(frame, dict) else None

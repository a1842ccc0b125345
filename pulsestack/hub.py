"""The realtime hub: websocket connections, coalesced frames, fan-out.

Services tell the hub what changed, after the change committed:
`users_changed(ids)`, `workspace_changed(id)`, `notification_sent(id)`,
`broadcast_delivered(id, members)`, `receipts_changed(user, ids)`,
`receipts_removed(user, ids)`, `notification_retracted(workspace, id)`,
`inboxes_replaced(users)`, `session_revoked(id)`; the websocket handler
(api/ws.py) hands it sockets. `Hub` is that whole interface and holds no
sockets: its events do nothing and `connect` refuses (the HTTP API alone,
and tests that record calls). `UnreadHub` is the real one.

How UnreadHub stays cheap: a change only marks things dirty. A flusher runs
`flush_ms` after the first change of a quiet period and handles everything
that piled up with a fixed handful of set-based queries over the users
connected to this process: which of them belong to the changed workspaces,
which received the new notifications, the state now of the receipts that
changed, and one unread count for all of them. It then sends each socket
only what changed: each user's `notification` frames, then one `changed`
frame (or `refresh`, past CHANGED_MAX receipts), then `unread`. A burst of
50 sends costs a few flushes, and a broadcast to 100,000 members costs one
count over the users connected here, not 100,000 queries. A flush that
fails, for whatever reason, loses nothing: its change goes back in line and
is tried again FLUSH_RETRY_S later, with whatever came meanwhile.

Frames are state, not deltas: `unread` carries absolute counts, `changed`
the receipts' state now, and `ready` the full counts, so a client that
missed frames is right after the next one. A socket gets `unread` whenever
the counts differ from the last ones it got. Each distinct frame is encoded
once per flush (a broadcast's notification frame, one `unread` frame per
distinct set of counts) and its bytes are written straight to every
socket's transport, each user's frames together, after all of the flush's
queries ran. A socket whose transport is backed up gets a bounded backlog
drained by its own task; one whose backlog fills (a client that stopped
reading) is closed with 1013 and dropped, and nobody else waits for it.

A count without counting (`_bumpable`, `bump`): a user whose only news in
a flush is new notifications, on sockets whose counts were last counted
well before those notifications were created (BUMP_MARGIN) but not long
before (BUMP_MAX_AGE), gets the counts it last got plus one unread and
unseen per new notification, worked out in memory. The counted snapshot
cannot hold a receipt created after it, and any other change to the user
(a read, a seen, a dismissal, a lost bus) is an event that recounts them.
A notification or chunk heard twice from another process (its publisher
sent it again after a failure) is dropped the second time, so it is never
added twice. And since no process can hear an event that was never sent (a
server killed between its commit and its NOTIFY), counts older than
BUMP_MAX_AGE are recounted rather than bumped: such an error lasts until
the next notification after that age at most. This keeps a broadcast's
counts cheap: 10,000 connected recipients with 100 unread each would
otherwise be a recount of a million index entries per chunk.

No double delivery: a notification that a socket's `ready` may have counted
is never pushed to that socket as a `notification` frame (see `connect`).

Across processes, changes travel over an EventBus (eventbus.py); after the
bus reconnects, every connected user is recounted and sent `refresh`, since
changes may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import json
import logging
import struct
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from aiohttp import WSCloseCode, web

from . import metrics
from .db import Database, DatabaseError
from .eventbus import CHANGED_MAX, Change, Chunk, EventBus  # CHANGED_MAX: the services read it here too
from .ids import utcnow
from .models.resources import ChangedFrame, ChangedItem, InboxItem, ReadyFrame, UnreadCounts
from .queries import hub as hub_queries
from .queries import receipts
from .queries.receipts import NO_UNREAD
from .serialize import dumps
from .session_cache import SessionCache

log = logging.getLogger(__name__)

CLOSE_SLOW = WSCloseCode.TRY_AGAIN_LATER  # 1013
CLOSE_SHUTDOWN = WSCloseCode.GOING_AWAY  # 1001
CLOSE_UNAUTHORIZED = 4401
CLOSE_TIMEOUT = 5.0  # seconds a close handshake may take before the connection is cut
FLUSH_RETRY_S = 1.0  # pause after a failed flush before its change is tried again
# No double delivery (UnreadHub.connect): a connecting user's receipts created
# this recently, at most RECENT_MAX of them, are read with their `ready` count;
# after the window a socket keeps only a cut-off time instead of their ids.
# Only notifications whose frames are still on their way at the connect matter,
# the newest few, so the limit can be small.
RECENT_WINDOW = timedelta(minutes=10)
RECENT_MAX = 256
# A socket's counts may be bumped for a new notification (see "A count without
# counting" above) only if they were counted at least this long before the
# notification was created: room for the clocks of two server processes to
# disagree, and for a count in flight while the send began.
BUMP_MARGIN = timedelta(seconds=1)
# ... and at most this long before it (see "A count without counting").
BUMP_MAX_AGE = timedelta(hours=1)
# How many notifications and chunks heard from other processes are remembered, to drop a repeat.
HEARD_MAX = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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

    def broadcast_delivered(self, notification_id: uuid.UUID, members: tuple[uuid.UUID, uuid.UUID]) -> None:
        """One chunk of a large broadcast was written, for the members whose user id is in the range
        (after, upto]: each of its recipients gets a `notification` frame and their new counts."""

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
                      request: web.Request, *, expires_at: datetime, heartbeat_s: int) -> Socket:
        """Register an authenticated socket and send its `ready` frame (which
        tells the client its token's expiry and the server's ping interval)."""
        raise RealtimeUnavailable("realtime hub not running")

    def disconnect(self, sock: Socket) -> None:
        """The socket's handler is done with it."""

    def expire(self, sock: Socket) -> None:
        """The socket's token has expired: close it as if revoked."""

    def send(self, sock: Socket, frame: dict) -> None:
        """Send a reply (pong, error) on one socket."""

    async def close_sockets(self) -> None:
        """Shutdown begins: close every socket (1001) and accept no more; events
        still travel to other processes until `close`."""

    async def close(self) -> None:
        """Close every socket (1001), if not yet done, and stop, after passing on
        what other processes have yet to hear."""


def unread_frame(counts: UnreadCounts) -> str:
    """`unread`: the unread-count answer's fields at the top level."""
    return '{"type":"unread",' + counts.model_dump_json()[1:]


def notification_frame(item: InboxItem) -> str:
    return '{"type":"notification","item":' + item.model_dump_json() + "}"


def changed_frame(items: Iterable[ChangedItem], removed: Iterable[uuid.UUID]) -> str:
    """`changed`: receipts' state now, and the ids of receipts that are gone; each list by id."""
    return ChangedFrame(items=sorted(items, key=lambda i: i.id), removed=sorted(removed)).model_dump_json()


def bump(counts: str, news: list[News], memo: dict[tuple[str, int], str]) -> str:
    """The `unread` frame text `counts` plus one unread and unseen per notification of `news`, in
    its workspace (see "A count without counting"). `memo` keeps each result, since the sockets of
    a broadcast's recipients mostly hold the same counts and get the same news: keyed by the
    counts and the identity of the `news` list, which one flush builds once per distinct set of
    notifications and shares among their recipients (`_new_notifications`)."""
    key = (counts, id(news))
    if key in memo:
        return memo[key]
    data = json.loads(counts)
    del data["type"]
    for n in news:
        workspace = str(n.workspace_id)
        for part in (data, data["unseen"]):
            part["total"] += 1
            part["workspaces"][workspace] = part["workspaces"].get(workspace, 0) + 1
    text = memo[key] = unread_frame(UnreadCounts.model_validate(data))
    return text


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


REFRESH_FRAME = wire_frame('{"type":"refresh"}')


class News(NamedTuple):
    """A `notification` frame owed to a user, with what decides whether a given socket of theirs gets it
    (and its workspace, for a count bumped without counting)."""

    notification_id: uuid.UUID
    workspace_id: uuid.UUID
    created_at: datetime
    frame: bytes


@dataclass(eq=False, slots=True)  # slots: no per-socket __dict__ (10,000 idle sockets)
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
    # The counts it last got (ready, then unread), as the text of their `unread` frame: a
    # short string, where a model per socket would cost ~1.6 KiB.
    counts: str | None = field(default=None, repr=False)
    counted_at: datetime | None = field(default=None, repr=False)  # when `counts` were last counted, not bumped
    # What its `ready` may have counted, never to be pushed to it (UnreadHub.connect):
    # these notifications, and every notification created at or before `floor`. The ids
    # are one bytes object, 16 bytes each (see holds_id): a set of UUIDs costs ~180 bytes
    # an id, and a user with 100 fresh unread would add 18 KiB to every idle socket.
    recent: bytes = field(default=b"", repr=False)
    recent_newest: datetime = field(default=EPOCH, repr=False)  # the newest creation time among `recent`
    floor: datetime = field(default=EPOCH, repr=False)
    forget_at: float = field(default=0.0, repr=False)  # loop time when `recent` folds into `floor`
    # Frames flushes owed it while its `ready` was being prepared, sent right after it.
    held: list[News | bytes] | None = field(default=None, repr=False)
    held_overflow: bool = field(default=False, repr=False)  # too many: a `refresh` instead
    close_code: int | None = field(default=None, repr=False)  # the code the hub closed it with

    def owed(self, news: Iterable[News], now: float) -> list[bytes]:
        """The notification frames among `news` this socket may get: none that its `ready` may have counted."""
        if self.recent and now >= self.forget_at:
            # Past the window, a cut-off replaces the ids: everything in
            # `recent` is at or before recent_newest, so nothing it blocked
            # gets through, and the socket no longer holds the ids.
            self.floor, self.recent = max(self.floor, self.recent_newest), b""
        floor, recent = self.floor, self.recent
        return [n.frame for n in news if n.created_at > floor and not holds_id(recent, n.notification_id)]


def bumpable(sock: Socket, window: tuple[datetime, datetime]) -> bool:
    """Whether the socket is ready and its counts were counted within `window` (see "A count
    without counting")."""
    return (sock.ready and sock.counts is not None and sock.counted_at is not None
            and window[0] < sock.counted_at < window[1])


def holds_id(ids: bytes, notification_id: uuid.UUID) -> bool:
    """Whether `ids` (UUIDs as 16-byte strings, end to end) holds this one: a
    match must start on a 16-byte boundary."""
    key = notification_id.bytes
    at = ids.find(key)
    while at != -1:
        if at % 16 == 0:
            return True
        at = ids.find(key, at + 1)
    return False


class UnreadHub(Hub):
    def __init__(self, db: Database, bus: EventBus, *, flush_ms: int = 50, send_queue: int = 256,
                 session_cache: SessionCache):
        self.db = db
        self.bus = bus
        self.session_cache = session_cache  # authenticate's: revoked sessions leave it as their sockets close
        self.flush_s = flush_ms / 1000
        self.send_queue = send_queue
        self.sockets: dict[uuid.UUID, set[Socket]] = {}
        self._pending = Change()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._closers: set[asyncio.Task] = set()
        self.flushes = 0  # how many flushes ran (observable in tests and logs)
        self.bumps = 0  # how many users' counts were bumped rather than recounted (likewise)
        self._closed = False
        self._authenticating: set[web.WebSocketResponse] = set()  # open, auth frame not yet in
        self._heard: OrderedDict[uuid.UUID | Chunk, None] = OrderedDict()  # the newest HEARD_MAX, oldest first

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start(self._apply_heard, self._refresh_everyone)
        self._flusher = asyncio.create_task(self._flush_forever(), name="pulsestack-hub-flusher")

    async def close_sockets(self) -> None:
        """Close every socket with 1001 (going away), and refuse new ones. Idempotent.
        The app calls it as shutdown begins; the bus stays up until `close` (the
        app's cleanup, after in-flight requests and the fan-out worker), so what
        they commit meanwhile still reaches the other processes."""
        if self._closed:
            return
        self._closed = True
        for sock in [s for socks in self.sockets.values() for s in socks]:
            self._close(sock, CLOSE_SHUTDOWN, "server shutting down")
        for ws in list(self._authenticating):  # else they would hold shutdown until their auth timeout
            task = asyncio.create_task(close_websocket(ws, CLOSE_SHUTDOWN, b"server shutting down"))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)
        if self._closers:
            await asyncio.wait(self._closers, timeout=CLOSE_TIMEOUT + 1)

    async def close(self) -> None:
        """Close the sockets (if not yet), stop flushing, and close the bus, which
        first sends what it still holds. Idempotent."""
        await self.close_sockets()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
            await self.bus.close()

    # -- what services call ------------------------------------------------

    def users_changed(self, user_ids: Iterable[uuid.UUID]) -> None:
        self._publish(Change(users=set(user_ids)))

    def workspace_changed(self, workspace_id: uuid.UUID) -> None:
        self._publish(Change(workspaces={workspace_id}))

    def notification_sent(self, notification_id: uuid.UUID) -> None:
        self._publish(Change(notifications={notification_id}))

    def broadcast_delivered(self, notification_id: uuid.UUID, members: tuple[uuid.UUID, uuid.UUID]) -> None:
        self._publish(Change(chunks={(notification_id, *members)}))

    def session_revoked(self, session_id: uuid.UUID) -> None:
        self._publish(Change(sessions={session_id}))

    def receipts_changed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID]) -> None:
        self._publish_listed(user_id, notification_ids, removed=False)

    def receipts_removed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID]) -> None:
        self._publish_listed(user_id, notification_ids, removed=True)

    def _publish_listed(self, user_id: uuid.UUID, notification_ids: Collection[uuid.UUID], *, removed: bool) -> None:
        """One user's receipts, as Change.receipts or Change.removed; past CHANGED_MAX the frame
        would be `refresh`, so a refresh it is, without carrying the ids."""
        ids = set(notification_ids)
        if len(ids) > CHANGED_MAX:
            self.inboxes_replaced([user_id])
        else:
            pairs = {(user_id, i) for i in ids}
            self._publish(Change(removed=pairs) if removed else Change(receipts=pairs))

    def notification_retracted(self, workspace_id: uuid.UUID, notification_id: uuid.UUID) -> None:
        self._publish(Change(retracted={(workspace_id, notification_id)}))

    def inboxes_replaced(self, user_ids: Iterable[uuid.UUID]) -> None:
        self._publish(Change(refresh=set(user_ids)))

    def _publish(self, change: Change) -> None:
        self._apply(change)
        self.bus.publish(change)

    def _apply(self, change: Change) -> None:
        """Note a change (ours or another process's) for the next flush."""
        if change.sessions:
            self.session_cache.forget(change.sessions)
        for session_id in change.sessions:
            for sock in [s for socks in self.sockets.values() for s in socks if s.session_id == session_id]:
                self._close(sock, CLOSE_UNAUTHORIZED, "token revoked")
        self._pending.merge(replace(change, sessions=set()))
        if self._pending:
            self._wake.set()

    def _apply_heard(self, change: Change) -> None:
        """Another process's change. A notification or chunk heard before (a payload sent again
        after its publisher failed) is left out: pushed and counted twice otherwise."""
        news: list[uuid.UUID | Chunk] = [*change.notifications, *change.chunks]
        repeated = {key for key in news if key in self._heard}
        for key in news:
            self._heard[key] = None
        while len(self._heard) > HEARD_MAX:
            self._heard.popitem(last=False)
        if repeated:
            change = replace(change, notifications=change.notifications - repeated, chunks=change.chunks - repeated)
        self._apply(change)

    def _refresh_everyone(self) -> None:
        self.session_cache.clear()  # revocations may have been missed too
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
                      request: web.Request, *, expires_at: datetime, heartbeat_s: int) -> Socket:
        """Register the socket, read its user's state, send `ready`.

        No double delivery: a notification that `ready` counted never reaches
        this socket as a `notification` frame, though its frame may still be
        on its way (the flush of a send that committed just before the count,
        or another process's NOTIFY of it, which may come any time later).

        - The rule. The statement that counts also reads, in the SAME
          snapshot, the user's receipts created after `since` (RECENT_WINDOW
          ago): their ids, newest first, at most RECENT_MAX
          (hub_queries.get_connect_state). The socket never gets the frame of
          a notification in that set (`recent`), nor of one created at or
          before `floor`: `since`, or, when the limit may have cut the set
          short, the time of its oldest entry (`Socket.owed`).
        - Why it is exact. `ready` counts only receipts in its snapshot, and
          the set holds every one of them created after `floor`; so each
          counted one is in the set or at or before `floor`, and stays
          blocked for the socket's whole life, however late its flush comes:
          after RECENT_WINDOW the set folds into `floor` (its newest time),
          which still covers all of it.
        - Nothing is missed instead. A notification outside the snapshot
          (committed after it) is neither counted nor in the set, and created
          after `floor` (unless more than RECENT_WINDOW before the connect, or
          the server clocks disagree by that much: then only its count is
          pushed). A flush pushes its frame after `ready`; or, if the flush
          ran while the count was in flight, it kept the frame for this socket
          (`held`), and the frame follows `ready` under the same rule.
        - Cost: one short index range more in the connect's statement
          (receipts_inbox_idx), and per socket, for RECENT_WINDOW, the ids it
          read (usually a handful; at most RECENT_MAX).
        """
        assert request.transport is not None and request.writer is not None  # an open connection
        if self._closed:  # shutting down: close_sockets has run
            raise RealtimeUnavailable("server shutting down")
        sock = Socket(ws, user_id, session_id, request.transport, request.writer.drain, held=[])
        self.sockets.setdefault(user_id, set()).add(sock)
        since = utcnow() - RECENT_WINDOW
        try:
            state = await hub_queries.get_connect_state(self.db, user_id, since=since, limit=RECENT_MAX)
        except BaseException:
            self.disconnect(sock)
            raise
        if sock.closing:
            return sock
        recent = state.recent
        sock.recent = b"".join(notification_id.bytes for notification_id in recent)
        sock.floor = since if len(recent) < RECENT_MAX else min(recent.values())
        sock.recent_newest = max(recent.values(), default=sock.floor)
        sock.forget_at = asyncio.get_running_loop().time() + RECENT_WINDOW.total_seconds()
        sock.counts, sock.counted_at = unread_frame(state.counts), utcnow()
        ready = ReadyFrame(user_id=user_id, unread=state.counts, server_time=utcnow(), heartbeat_s=heartbeat_s,
                           token_expires_at=expires_at)
        frames = [wire_frame(ready.model_dump_json())]
        held, sock.held = sock.held or [], None
        if sock.held_overflow:
            frames.append(REFRESH_FRAME)
        else:
            now = asyncio.get_running_loop().time()
            for frame in held:
                frames.extend(sock.owed([frame], now) if isinstance(frame, News) else [frame])
        self._deliver(sock, *frames)
        sock.ready = True
        # Recount at the next flush: a change that raced with the count above
        # then reaches this socket (and any tab whose last counts differ).
        self._apply(Change(users={user_id}))
        return sock

    def disconnect(self, sock: Socket) -> None:
        socks = self.sockets.get(sock.user_id)
        if socks is not None:
            socks.discard(sock)
            if not socks:
                del self.sockets[sock.user_id]
        if sock.sender is not None:
            sock.sender.cancel()

    def expire(self, sock: Socket) -> None:
        self._close(sock, CLOSE_UNAUTHORIZED, "token expired")

    def send(self, sock: Socket, frame: dict) -> None:
        self._deliver(sock, wire_frame(dumps(frame)))

    def _deliver(self, sock: Socket, *frames: bytes) -> None:
        """Write frames now (in one write), or queue them behind a backed-up transport."""
        if not frames or sock.closing or sock.transport.is_closing():
            return  # nothing to send, or going away (its handler unregisters it)
        if sock.backlog is None:
            if sock.transport.get_write_buffer_size() <= sock.transport.get_write_buffer_limits()[1]:
                sock.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
                metrics.WS_FRAMES_SENT.inc(len(frames))
                return
            sock.backlog = deque()
            sock.sender = asyncio.create_task(self._send_backlog(sock), name="pulsestack-ws-backlog")
        if len(sock.backlog) + len(frames) > self.send_queue:
            log.info("closing a slow websocket of user %s: %d frames unsent", sock.user_id, len(sock.backlog))
            self._close(sock, CLOSE_SLOW, "too slow; reconnect for fresh state")
            return
        sock.backlog.extend(frames)
        metrics.WS_FRAMES_SENT.inc(len(frames))

    def _hold(self, sock: Socket, frames: list[News | bytes]) -> None:
        """Keep a flush's frames for a socket whose `ready` is not out yet (bounded: past
        send_queue of them, one `refresh` after `ready` says it all)."""
        if sock.held is None or sock.held_overflow or not frames:
            return
        if len(sock.held) + len(frames) > self.send_queue:
            sock.held.clear()
            sock.held_overflow = True
            return
        sock.held.extend(frames)

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
        sock.close_code = code
        metrics.ws_closed(code)
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
                started = time.perf_counter()
                with gc_paused():
                    await self.flush(change)
                metrics.HUB_FLUSH_SECONDS.observe(time.perf_counter() - started)
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
        """Query everything the change needs, then send, one user at a time:
        their new notifications, then `changed` or `refresh`, then new counts."""
        connected = list(self.sockets)
        if not connected:
            return
        self.flushes += 1
        lap = Laps()
        live = self.sockets.keys()
        listed: dict[uuid.UUID, set[uuid.UUID]] = {}  # per user: receipts whose state changed
        gone: dict[uuid.UUID, set[uuid.UUID]] = {}  # per user: receipts that are gone
        retracted: dict[uuid.UUID, set[uuid.UUID]] = {}  # per workspace: notifications deleted
        if change.everyone:  # anything may have changed: recount everyone, and a list edit would not do
            refresh, dirty, workspaces = set(connected), set(connected), set[uuid.UUID]()
        else:
            refresh, dirty = change.refresh & live, change.users & live
            for pairs, into in ((change.receipts, listed), (change.removed, gone)):
                for user_id, notification_id in pairs:
                    if user_id in live and user_id not in refresh:
                        into.setdefault(user_id, set()).add(notification_id)
            for workspace_id, notification_id in change.retracted:
                retracted.setdefault(workspace_id, set()).add(notification_id)
            workspaces = change.workspaces | retracted.keys()
        refresh |= {u for u in listed.keys() | gone.keys() if len(listed.get(u, set()) | gone.get(u, set())) > CHANGED_MAX}
        members, news, states = await asyncio.gather(  # independent: on several connections at once
            self._connected_members(workspaces, connected),
            self._new_notifications(change.notifications, change.chunks, connected),
            self._receipt_states({u: ids for u, ids in listed.items() if u not in refresh}))
        lap("members, notifications and receipts")
        for workspace_id, user_id in members:
            dirty.add(user_id)
            if workspace_id in retracted and user_id not in refresh:
                gone.setdefault(user_id, set()).update(retracted[workspace_id])
        edits: dict[uuid.UUID, bytes] = {}  # each user's `changed` frame
        for user_id in listed.keys() | gone.keys():
            if user_id in refresh:
                continue
            found = states.get(user_id, {})
            removed = gone.get(user_id, set()) | (listed.get(user_id, set()) - found.keys())
            items = [item for notification_id, item in found.items() if notification_id not in removed]
            if len(items) + len(removed) > CHANGED_MAX:
                refresh.add(user_id)
            else:
                edits[user_id] = wire_frame(changed_frame(items, removed))
        dirty |= listed.keys() | gone.keys() | refresh
        now_at = utcnow()
        bumped = {user_id: window for user_id in news.keys() - dirty
                  if (window := self._bump_window(news[user_id], now_at)) and self._bumpable(user_id, window)}
        dirty |= news.keys()
        dirty &= self.sockets.keys()
        recount = dirty - bumped.keys()
        self.bumps += len(bumped)
        counts = await self._count(recount) if recount else {}
        counted_at = utcnow()
        lap("count")
        encoded: dict[str, bytes] = {}  # one `unread` frame per distinct state
        interned: dict[str, str] = {}
        bumps: dict[tuple[str, int], str] = {}  # bump's memo
        now = asyncio.get_running_loop().time()
        for user_id in dirty:
            socks = self.sockets.get(user_id)
            if not socks:
                continue
            owed = news.get(user_id, [])
            lists = [REFRESH_FRAME] if user_id in refresh else [edits[user_id]] if user_id in edits else []
            recounted: str | None = None  # the user's recounted `unread` text; None: each socket's bumped one
            if user_id not in bumped:
                recounted = unread_frame(counts.get(user_id, NO_UNREAD))
                recounted = interned.setdefault(recounted, recounted)  # sockets in the same state share one string
            for sock in list(socks):
                if not sock.ready:  # its `ready` is being prepared: it counts for itself
                    self._hold(sock, [*owed, *lists])
                    continue
                if recounted is None:
                    if not bumpable(sock, bumped[user_id]):
                        # Connected while the others were counted: its `ready` may hold the news,
                        # and the recount its connect asked for is on its way.
                        self._deliver(sock, *sock.owed(owed, now), *lists)
                        continue
                    assert sock.counts is not None  # bumpable checked
                    text = bump(sock.counts, owed, bumps)
                else:
                    text, sock.counted_at = recounted, counted_at
                if sock.counts != text:
                    sock.counts = text
                    if text not in encoded:
                        encoded[text] = wire_frame(text)
                    self._deliver(sock, *sock.owed(owed, now), *lists, encoded[text])
                else:
                    self._deliver(sock, *sock.owed(owed, now), *lists)
        lap("send")
        metrics.HUB_FLUSH_USERS.observe(len(dirty))
        log.debug("hub: flush %d: %d of %d connected users dirty, %d got notifications (%d counts bumped), "
                  "%d list edits, %d refreshed; %s",
                  self.flushes, len(dirty), len(connected), len(news), len(bumped), len(edits), len(refresh), lap)

    @staticmethod
    def _bump_window(news: list[News], now: datetime) -> tuple[datetime, datetime] | None:
        """When a socket's counts must have been counted for it to be bumped for `news`: after
        BUMP_MAX_AGE ago and BUMP_MARGIN before the oldest of them; None when that is empty."""
        window = (now - BUMP_MAX_AGE, min(n.created_at for n in news) - BUMP_MARGIN)
        return window if window[0] < window[1] else None

    def _bumpable(self, user_id: uuid.UUID, window: tuple[datetime, datetime]) -> bool:
        """Whether every socket of the user may get its counts bumped rather than recounted."""
        return all(bumpable(s, window) for s in self.sockets.get(user_id, ()))

    async def _connected_members(self, workspace_ids: set[uuid.UUID],
                                 connected: list[uuid.UUID]) -> list[hub_queries.Membership]:
        if not workspace_ids:
            return []
        return await hub_queries.list_connected_members(self.db, workspace_ids, connected)

    async def _new_notifications(self, notification_ids: set[uuid.UUID], chunks: set[Chunk],
                                 connected: list[uuid.UUID]) -> dict[uuid.UUID, list[News]]:
        """The `notification` frames owed to each connected recipient, oldest first: every
        recipient of `notification_ids`, and of each chunk those in its member range."""
        spans: dict[uuid.UUID, list[tuple[int, int]] | None] = dict.fromkeys(notification_ids)  # None: everyone
        for notification_id, after, upto in chunks:
            ranges = spans.setdefault(notification_id, [])
            if ranges is not None:
                ranges.append((after.int, upto.int))
        if not spans:
            return {}
        if any(ranges is None for ranges in spans.values()):
            asked: Collection[uuid.UUID] = connected
        else:  # only the connected users in some chunk's range: sorted once, each range a slice
            order = sorted(connected, key=lambda u: u.int)
            keys = [u.int for u in order]
            asked = {u for ranges in spans.values() for after, upto in ranges or ()
                     for u in order[bisect.bisect_right(keys, after):bisect.bisect_right(keys, upto)]}
            if not asked:
                return {}
        new_receipts = await hub_queries.list_new_receipts(self.db, spans.keys(), asked)
        if not new_receipts:
            return {}
        items = await hub_queries.list_notifications_by_ids(self.db, spans.keys())
        order_of = {item.id: i for i, item in enumerate(items)}  # oldest first
        frames = [News(item.id, item.workspace_id, item.created_at, wire_frame(notification_frame(item)))
                  for item in items]
        owed: dict[uuid.UUID, list[int]] = {}
        for r in new_receipts:
            ranges = spans.get(r.notification_id)
            # A receipt outside this flush's chunks of its notification was pushed with an earlier chunk.
            if r.notification_id in order_of and (ranges is None or any(a < r.user_id.int <= b for a, b in ranges)):
                owed.setdefault(r.user_id, []).append(order_of[r.notification_id])
        # One list per distinct set of notifications, shared by the users who get that set (a
        # broadcast's recipients all get the same one), so `bump` can key its memo by identity.
        shared: dict[tuple[int, ...], list[News]] = {}
        for positions in owed.values():
            positions.sort()
        return {user_id: shared.setdefault(tuple(positions), [frames[i] for i in positions])
                for user_id, positions in owed.items()}

    async def _receipt_states(self, listed: dict[uuid.UUID, set[uuid.UUID]]) -> dict[uuid.UUID, dict[uuid.UUID, ChangedItem]]:
        """The state now of each listed receipt that still exists, by user and notification:
        one query for all of them (its rows for pairs that were not listed are left out)."""
        if not listed:
            return {}
        rows = await hub_queries.list_receipt_states(self.db, listed.keys(), set().union(*listed.values()))
        found: dict[uuid.UUID, dict[uuid.UUID, ChangedItem]] = {}
        for r in rows:
            if r.notification_id in listed.get(r.user_id, ()):
                found.setdefault(r.user_id, {})[r.notification_id] = r.item()
        return found

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


async def close_websocket(ws: web.WebSocketResponse, code: int, message: bytes) -> None:
    """Close a websocket the hub holds no Socket for (one still authenticating, or refused),
    counted by its code unless the client hung up first. (A held one: `UnreadHub._close`.)"""
    if not ws.closed:
        metrics.ws_closed(code)
    await ws.close(code=code, message=message)


def parse_client_frame(text: str) -> dict | None:
    """A client's frame as a dict, or None when it is not a JSON object."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return frame if isinstance(frame, dict) else None

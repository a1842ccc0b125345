"""How change events travel between server processes.

A `Change` says what may have changed: some users' receipts, every member's
of some workspaces, new notifications, revoked sessions, or (after a lost
connection) anything for anyone. The hub applies its own changes at once and
publishes them; a bus delivers other processes' changes to `on_change`.

- `InProcessBus` (SQLite: one server process per database file) delivers
  nothing: there is no other process.
- `PostgresBus` uses LISTEN/NOTIFY on one channel. The publisher coalesces
  the changes of one interval into as few NOTIFYs as fit under Postgres's
  8000-byte payload limit, sent from its own connection after the data has
  committed, so the cluster-wide NOTIFY lock never sits on the write path.
  The listener reconnects after the database restarts or its connection is
  killed, then calls `on_reconnect`, because notifications sent meanwhile
  are lost. It tries again soon and often (`reconnect_delay`: 0.05 s,
  doubling to at most 1 s): every moment it is away is a moment other
  processes' changes do not reach this one's websockets.

The interface is small so a deployment that outgrows LISTEN/NOTIFY can move
it to Redis or NATS pub/sub without touching the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHANNEL = "pulsestack_changes"
PAYLOAD_LIMIT = 7900  # Postgres refuses NOTIFY payloads of 8000 bytes or more
# Beyond this many users (a big workspace deleted), "everyone connected"
# says it in one payload, where the list would take hundreds.
MAX_LISTED_USERS = 1000
RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 1.0
RECONNECT_JITTER = 0.25  # up to this share of a delay is taken off at random


def reconnect_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1 = the first after
    the connection was lost): RECONNECT_FIRST_S doubling up to RECONNECT_MAX_S,
    shortened by up to RECONNECT_JITTER at random, so the processes that lost
    the database together do not all knock at the same instant."""
    base = RECONNECT_FIRST_S * 2 ** min(attempt - 1, 10)
    return min(base, RECONNECT_MAX_S) * (1 - RECONNECT_JITTER * rand())


@dataclass
class Change:
    users: set[uuid.UUID] = field(default_factory=set)
    workspaces: set[uuid.UUID] = field(default_factory=set)
    notifications: set[uuid.UUID] = field(default_factory=set)
    sessions: set[uuid.UUID] = field(default_factory=set)
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.workspaces or self.notifications or self.sessions or self.everyone)

    def merge(self, other: "Change") -> None:
        self.users |= other.users
        self.workspaces |= other.workspaces
        self.notifications |= other.notifications
        self.sessions |= other.sessions
        self.everyone |= other.everyone

    def payloads(self, origin: str) -> list[str]:
        """JSON payloads, each under PAYLOAD_LIMIT; ids are split across as many as needed."""
        everyone = self.everyone or len(self.users) > MAX_LISTED_USERS
        users = set() if everyone else self.users
        items = [(k, str(i)) for k, ids in (("u", users), ("w", self.workspaces), ("n", self.notifications),
                                            ("s", self.sessions)) for i in ids]
        out: list[str] = []
        current: dict[str, list[str]] = {}
        size = 0
        base = len(json.dumps({"o": origin, "e": True})) + 16
        for key, value in items:
            if size + len(value) + 8 > PAYLOAD_LIMIT - base:
                out.append(json.dumps({"o": origin, **current}))
                current, size = {}, 0
            current.setdefault(key, []).append(value)
            size += len(value) + 8
        if current or everyone:
            out.append(json.dumps({"o": origin, **current, **({"e": True} if everyone else {})}))
        return out

    @classmethod
    def from_payload(cls, payload: str) -> tuple[str, "Change"]:
        data = json.loads(payload)

        def ids(key: str) -> set[uuid.UUID]:
            return {uuid.UUID(v) for v in data.get(key, [])}

        return data.get("o", ""), cls(ids("u"), ids("w"), ids("n"), ids("s"), bool(data.get("e")))


class EventBus:
    """Delivers other processes' changes to the hub. The base delivers nothing."""

    async def start(self, on_change: Callable[[Change], None], on_reconnect: Callable[[], None]) -> None:
        pass

    def publish(self, change: Change) -> None:
        pass

    async def close(self) -> None:
        pass


class InProcessBus(EventBus):
    """SQLite: one server process per database file, so no other process to hear."""


class PostgresBus(EventBus):
    def __init__(self, dsn: str, interval_s: float = 0.05):
        self.dsn = dsn
        self.interval_s = interval_s
        self.origin = secrets.token_hex(8)
        self._pending = Change()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._listener = None
        self._on_change: Callable[[Change], None] = lambda c: None
        self._on_reconnect: Callable[[], None] = lambda: None
        self.connected = asyncio.Event()  # set while the listener is connected (tests wait on it)

    async def start(self, on_change: Callable[[Change], None], on_reconnect: Callable[[], None]) -> None:
        self._on_change, self._on_reconnect = on_change, on_reconnect
        self._tasks = [asyncio.create_task(self._listen_forever(), name="pulsestack-bus-listener"),
                       asyncio.create_task(self._publish_forever(), name="pulsestack-bus-publisher")]

    def publish(self, change: Change) -> None:
        self._pending.merge(change)
        self._wake.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    def _received(self, connection, pid, channel, payload: str) -> None:
        try:
            origin, change = Change.from_payload(payload)
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring a malformed %s payload", CHANNEL)
            return
        if origin != self.origin:  # our own changes were applied when published
            self._on_change(change)

    async def _listen_forever(self) -> None:
        import asyncpg

        attempt = 0  # reconnect attempts since the listener was last connected
        first = True
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                conn.add_termination_listener(lambda c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._received)
                self._listener, attempt = conn, 0
                self.connected.set()
                if not first:
                    log.info("event bus: listening again; refreshing every connected user")
                    self._on_reconnect()
                first = False
                while not conn.is_closed() and not lost.is_set():
                    # Termination is reported by the listener above; the poll
                    # also notices a connection that died without a word.
                    try:
                        await asyncio.wait_for(lost.wait(), 5)
                    except TimeoutError:
                        try:
                            await asyncio.wait_for(conn.execute("SELECT 1"), 5)
                        except Exception:
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event bus: listener connection failed: %s", exc)
            self.connected.clear()
            if self._listener is not None:
                self._listener.terminate()
                self._listener = None
            attempt += 1
            await asyncio.sleep(reconnect_delay(attempt))

    async def _publish_forever(self) -> None:
        import asyncpg

        conn = None
        try:
            while True:
                await self._wake.wait()
                await asyncio.sleep(self.interval_s)  # coalesce one interval's changes
                self._wake.clear()
                change, self._pending = self._pending, Change()
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, timeout=5)
                    for payload in change.payloads(self.origin):
                        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("event bus: could not publish a change, retrying: %s", exc)
                    if conn is not None:
                        conn.terminate()
                    conn = None
                    self.publish(change)  # not lost: back in line for the next attempt
                    await asyncio.sleep(1.0)
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()  # no await: this runs while the task is being cancelled

"""The Postgres event bus: LISTEN/NOTIFY on one channel (see eventbus.py).

The publisher coalesces the changes of one interval into as few NOTIFYs as
fit under Postgres's 8000-byte payload limit, sent from its own connection
after the data has committed, so the cluster-wide NOTIFY lock never sits on
the write path. A payload leaves the queue once its NOTIFY has run: after a
failure only the rest is sent again (the one in flight too, maybe twice;
the hub drops a repeat), and on close what is left goes out before the
connections close. The listener holds one more connection; it reconnects after
the database restarts or its connection is killed, then asks the hub to
refresh everyone. Both connections are the bus's own, outside the pool:
a LISTEN lives as long as its connection. They carry an application_name
(LISTENER_NAME, PUBLISHER_NAME) so a DBA can tell them apart from the pool's
in pg_stat_activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import asyncpg

from .. import metrics
from ..eventbus import Change, EventBus, reconnect_delay

log = logging.getLogger("pulsestack.eventbus")

CHANNEL = "pulsestack_changes"
CLOSE_SEND_S = 3.0  # on close, how long the last payloads may take to go out
LISTENER_NAME = "pulsestack event bus listener"
PUBLISHER_NAME = "pulsestack event bus publisher"


class PostgresBus(EventBus):
    def __init__(self, dsn: str, interval_s: float = 0.05):
        self.dsn = dsn
        self.interval_s = interval_s
        self.origin = secrets.token_hex(8)
        self._pending = Change()
        self._unsent: list[str] = []  # payloads taken from _pending and not yet sent, oldest first
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._listener: asyncpg.Connection | None = None
        self._on_change: Callable[[Change], None] = lambda c: None
        self._on_reconnect: Callable[[], None] = lambda: None
        self.connected = asyncio.Event()  # set while the listener is connected (tests wait on it)

    async def start(self, on_change: Callable[[Change], None], on_reconnect: Callable[[], None]) -> None:
        self._on_change, self._on_reconnect = on_change, on_reconnect
        metrics.watch_bus(self)
        self._tasks = [asyncio.create_task(self._listen_forever(), name="pulsestack-bus-listener"),
                       asyncio.create_task(self._publish_forever(), name="pulsestack-bus-publisher")]

    def publish(self, change: Change) -> None:
        self._pending.merge(change)
        self._wake.set()

    async def announce(self, change: Change) -> bool:
        """One NOTIFY per payload from a connection of its own, closed at once;
        every listening server process applies the change (origin is ours, so
        none takes it for its own)."""
        conn = await self._connect(PUBLISHER_NAME)
        try:
            for payload in change.payloads(self.origin):
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        finally:
            await conn.close()
        return True

    async def close(self) -> None:
        metrics.LIVE.buses.discard(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._send_leftovers()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    async def _send_leftovers(self) -> None:
        """What was published and not yet sent (the last interval's changes, a
        chunk committed as the server stopped) still reaches the other
        processes, within CLOSE_SEND_S: their users would otherwise miss it."""
        self._take_pending()
        if not self._unsent:
            return
        try:
            async with asyncio.timeout(CLOSE_SEND_S):
                conn = await self._connect(PUBLISHER_NAME)
                try:
                    await self._send_unsent(conn)
                finally:
                    await conn.close()
        except Exception as exc:
            log.warning("event bus: %d change payloads not sent before closing: %s", len(self._unsent), exc)

    def _take_pending(self) -> None:
        self._unsent += self._pending.payloads(self.origin)
        self._pending = Change()

    async def _send_unsent(self, conn: asyncpg.Connection) -> None:
        """Send the unsent payloads in order, each dropped once its NOTIFY has run, so a
        failure resends only what may not have gone (the listeners drop a repeat)."""
        while self._unsent:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._unsent[0])
            del self._unsent[0]

    async def _connect(self, name: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=5, server_settings={"application_name": name})

    def _received(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            origin, change = Change.from_payload(payload)
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring a malformed %s payload", CHANNEL)
            return
        if origin != self.origin:  # our own changes were applied when published
            self._on_change(change)

    async def _listen_forever(self) -> None:
        attempt = 0  # reconnect attempts since the listener was last connected
        first = True
        while True:
            lost = asyncio.Event()
            try:
                conn = await self._connect(LISTENER_NAME)
                conn.add_termination_listener(lambda c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._received)
                self._listener, attempt = conn, 0
                self.connected.set()
                if not first:
                    metrics.EVENTBUS_RECONNECTS.inc()
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
        conn: asyncpg.Connection | None = None
        try:
            while True:
                await self._wake.wait()
                await asyncio.sleep(self.interval_s)  # coalesce one interval's changes
                self._wake.clear()
                if not self._unsent:  # (while a retry is due, new changes keep merging in _pending)
                    self._take_pending()
                try:
                    if conn is None or conn.is_closed():
                        conn = await self._connect(PUBLISHER_NAME)
                    await self._send_unsent(conn)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("event bus: could not publish a change, retrying: %s", exc)
                    if conn is not None:
                        conn.terminate()
                    conn = None
                    self._wake.set()  # not lost: what is unsent goes first at the next attempt
                    await asyncio.sleep(1.0)
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()  # no await: this runs while the task is being cancelled

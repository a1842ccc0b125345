"""The Postgres event bus's listener: how soon it tries again after losing
its connection, and that it comes back (and asks for a refresh) once the
database answers again. And what a change's NOTIFY payloads carry: every
kind survives its round trip, each payload stays under Postgres's limit, and
what does not fit a list is said more broadly, never dropped.

The outage is a TCP proxy in front of the shared Postgres server that the
test cuts (every connection dropped, new ones refused) and restores; the
server itself is never touched. The delays checked are the ones the bus
chose, never measured durations; every wait is bounded by a hang guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from helpers import PostgresServer, poll, with_database

from pulsestack import eventbus
from pulsestack.db.postgres_bus import CHANNEL, PUBLISHER_NAME, PostgresBus
from pulsestack.eventbus import Change
from pulsestack.metrics import REGISTRY

HANG_GUARD_S = 30.0
LISTENER = "pulsestack-bus-listener"  # the name of the bus's listening task


# --- the schedule -------------------------------------------------------------------------------

def test_reconnect_delays_start_short_double_and_stop_at_one_second():
    without_jitter = [eventbus.reconnect_delay(n, rand=lambda: 0.0) for n in range(1, 10)]
    assert without_jitter == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert eventbus.reconnect_delay(10_000, rand=lambda: 0.0) == 1.0  # no overflow, however long the outage


def test_reconnect_delays_jitter_a_little_and_only_downwards():
    for n in (1, 3, 6, 50):
        plain = eventbus.reconnect_delay(n, rand=lambda: 0.0)
        most_jittered = eventbus.reconnect_delay(n, rand=lambda: 1.0)
        assert 0.75 * plain <= most_jittered < plain


# --- an outage ----------------------------------------------------------------------------------

class CuttableProxy:
    """A TCP proxy to Postgres. `cut()` drops every connection and refuses
    new ones (counting them) until `restore()`."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.is_cut = False
        self.refused = 0
        self.accepted = 0
        self._transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self.refused += 1
            client_writer.transport.abort()
            return
        self.accepted += 1
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._transports |= {client_writer.transport, server_writer.transport}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    def cut(self) -> None:
        self.is_cut = True
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    def restore(self) -> None:
        self.is_cut = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{port}"))


async def test_the_listener_reconnects_within_a_second_of_attempts_and_asks_for_a_refresh(
        postgres_server: PostgresServer, postgres_database: str, monkeypatch):
    url = with_database(postgres_server.url, postgres_database)
    target = urlsplit(url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    bus = PostgresBus(through(url, await proxy.start()))
    changes: list[Change] = []
    refreshed = asyncio.Event()
    delays: list[float] = []  # what the listener chose to sleep between attempts
    real_sleep = asyncio.sleep

    async def recording_sleep(delay, *args, **kwargs):
        task = asyncio.current_task()
        if task is not None and task.get_name() == LISTENER:
            delays.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    notifier = await asyncpg.connect(url)  # straight to Postgres, as another process would
    try:
        await bus.start(changes.append, refreshed.set)
        await asyncio.wait_for(bus.connected.wait(), HANG_GUARD_S)

        async def heard(user: uuid.UUID) -> None:
            payload = json.dumps({"o": "another-process", "u": [str(user)]})
            await notifier.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            await poll(lambda: any(user in c.users for c in changes), f"the bus to deliver {user}", HANG_GUARD_S)

        await heard(uuid.uuid4())

        reconnects = REGISTRY.get_sample_value("pulsestack_eventbus_reconnects_total")
        assert REGISTRY.get_sample_value("pulsestack_eventbus_connected") == 1
        proxy.cut()
        await poll(lambda: not bus.connected.is_set(), "the listener to notice the cut", HANG_GUARD_S)
        assert REGISTRY.get_sample_value("pulsestack_eventbus_connected") == 0
        # A long enough outage for the backoff to reach its cap (six refused attempts).
        await poll(lambda: proxy.refused >= 6, "six refused reconnect attempts", HANG_GUARD_S)
        assert not refreshed.is_set()
        accepted_before = proxy.accepted
        proxy.restore()

        await asyncio.wait_for(refreshed.wait(), HANG_GUARD_S)
        assert proxy.accepted == accepted_before + 1, "the first attempt after the restore connects"
        assert delays, "the listener never waited between attempts"
        assert max(delays) <= 1.0, f"the listener waited {max(delays)} s between attempts: {delays}"
        assert delays[0] <= 0.05, f"first retry after {delays[0]} s"
        await heard(uuid.uuid4())  # listening again
        assert REGISTRY.get_sample_value("pulsestack_eventbus_reconnects_total") == reconnects + 1
        assert REGISTRY.get_sample_value("pulsestack_eventbus_connected") == 1
    finally:
        await bus.close()
        await notifier.close()
        await proxy.close()


# --- the publisher: nothing lost, nothing sent twice ------------------------------------------------

class Observer:
    """Another process's listener: every payload on the channel, as it comes."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    def users(self) -> set[uuid.UUID]:
        return {u for p in self.payloads for u in Change.from_payload(p)[1].users}


@contextlib.asynccontextmanager
async def observing(url: str) -> AsyncIterator[Observer]:
    observer = Observer()
    conn = await asyncpg.connect(url)
    try:
        await conn.add_listener(CHANNEL, lambda c, pid, channel, payload: observer.payloads.append(payload))
        yield observer
    finally:
        await conn.close()


async def test_what_was_published_just_before_close_still_goes_out(postgres_server: PostgresServer,
                                                                   postgres_database: str):
    """A change published as the server stops (the last interval's, a chunk committed during the
    shutdown) is sent by close, not dropped with the publisher's task."""
    url = with_database(postgres_server.url, postgres_database)
    bus = PostgresBus(url, interval_s=60)  # the publisher is still waiting out its interval at close
    user = uuid.uuid4()
    async with observing(url) as observer:
        await bus.start(lambda change: None, lambda: None)
        bus.publish(Change(users={user}))
        await bus.close()
        await poll(observer.users, "the payload", HANG_GUARD_S)
        assert observer.users() == {user}


async def test_a_failed_publish_sends_again_only_what_may_not_have_gone(postgres_server: PostgresServer,
                                                                      postgres_database: str, monkeypatch):
    """The publisher's connection fails at the change's second payload: the first, sent already,
    is not sent again; the second and the rest are, once the publisher reconnects."""
    url = with_database(postgres_server.url, postgres_database)
    bus = PostgresBus(url, interval_s=0.01)
    users = set(ids(600))
    change = Change(users=users)
    expected = len(change.payloads(bus.origin))
    assert expected >= 3
    real_connect = bus._connect
    notifies = 0

    class FailsAtTheSecondNotify:
        def __init__(self, conn: asyncpg.Connection):
            self.conn = conn

        async def execute(self, *args: object) -> str:
            nonlocal notifies
            notifies += 1
            if notifies == 2:
                raise ConnectionResetError("connection lost")
            return await self.conn.execute(*args)

        def __getattr__(self, name: str) -> object:
            return getattr(self.conn, name)

    async def connect(name: str) -> object:  # the publisher's connections only (not the listener's)
        conn = await real_connect(name)
        return FailsAtTheSecondNotify(conn) if name == PUBLISHER_NAME else conn

    monkeypatch.setattr(bus, "_connect", connect)
    async with observing(url) as observer:
        await bus.start(lambda change: None, lambda: None)
        try:
            bus.publish(change)
            await poll(lambda: observer.users() == users, "every user of the change", HANG_GUARD_S)
        finally:
            await bus.close()
        assert notifies == expected + 1  # the failed one was tried again: a retry ran
        assert len(observer.payloads) == expected  # none twice


# --- the payloads of a change (eventbus.Change) ---------------------------------------------------

def ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def heard(payloads: list[str], origin: str = "me") -> Change:
    """What a listener makes of the payloads: their changes, merged; each payload under the limit."""
    merged = Change()
    for payload in payloads:
        assert len(payload.encode()) < eventbus.PAYLOAD_LIMIT < 8000, len(payload.encode())
        sender, change = Change.from_payload(payload)
        assert sender == origin
        merged.merge(change)
    return merged


def test_every_kind_of_change_survives_its_payload():
    users, workspaces, notifications, sessions, refresh = ids(3), ids(2), ids(4), ids(1), ids(2)
    change = Change(users=set(users), workspaces=set(workspaces), notifications=set(notifications),
                    sessions=set(sessions), refresh=set(refresh),
                    receipts={(users[0], notifications[0]), (users[0], notifications[1]), (users[1], notifications[0])},
                    removed={(users[2], notifications[2])},
                    retracted={(workspaces[0], notifications[3])})

    payloads = change.payloads("me")

    assert len(payloads) == 1
    assert heard(payloads) == change


def test_each_new_kind_alone_makes_one_payload_and_is_a_change():
    a, b = uuid.uuid4(), uuid.uuid4()
    for change in (Change(receipts={(a, b)}), Change(removed={(a, b)}), Change(retracted={(a, b)}), Change(refresh={a})):
        assert change
        [payload] = change.payloads("me")
        assert heard([payload]) == change
    assert not Change()
    assert Change().payloads("me") == []


def test_a_payload_of_an_older_process_is_read_with_the_new_kinds_empty():
    user, notification = uuid.uuid4(), uuid.uuid4()
    old = json.dumps({"o": "older", "u": [str(user)], "n": [str(notification)], "e": True})

    origin, change = Change.from_payload(old)

    assert origin == "older"
    assert change == Change(users={user}, notifications={notification}, everyone=True)
    assert change.receipts == change.removed == change.retracted == change.refresh == set()


def test_many_pairs_are_split_across_payloads_none_over_the_limit_and_none_lost():
    users, notifications = ids(300), ids(eventbus.CHANGED_MAX)
    change = Change(receipts={(u, n) for u in users[:200] for n in notifications[:30]},
                    removed={(u, n) for u in users[200:] for n in notifications[30:60]},
                    retracted={(w, n) for w in ids(50) for n in notifications[:3]},
                    refresh=set(ids(eventbus.MAX_LISTED_USERS)), users=set(ids(500)))

    payloads = change.payloads("me")

    assert len(payloads) > 100
    assert heard(payloads) == change


def test_a_user_with_more_listed_receipts_than_a_changed_frame_holds_becomes_a_refresh():
    crowded, busy, calm = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    notifications = ids(eventbus.CHANGED_MAX + 1)
    change = Change(receipts={(crowded, n) for n in notifications} | {(calm, notifications[0])}
                    | {(busy, n) for n in notifications[:60]},
                    removed={(busy, n) for n in notifications[50:]})  # 60 + 51, 10 of them in both: 101 distinct

    got = heard(change.payloads("me"))

    assert got.refresh == {crowded, busy}  # nothing dropped: they refetch their lists
    assert got.receipts == {(calm, notifications[0])}
    assert got.removed == set()
    exactly_max = Change(receipts={(calm, n) for n in notifications[:eventbus.CHANGED_MAX]})
    assert heard(exactly_max.payloads("me")) == exactly_max


def test_too_many_users_to_refresh_become_everyone_keeping_notifications_and_sessions():
    notification, session = uuid.uuid4(), uuid.uuid4()
    change = Change(refresh=set(ids(eventbus.MAX_LISTED_USERS + 1)), notifications={notification},
                    sessions={session}, receipts={(uuid.uuid4(), uuid.uuid4())}, retracted={(uuid.uuid4(), notification)})

    [payload] = change.payloads("me")

    assert heard([payload]) == Change(notifications={notification}, sessions={session}, everyone=True)
    just_enough = Change(refresh=set(ids(eventbus.MAX_LISTED_USERS)))
    assert heard(just_enough.payloads("me")) == just_enough


@pytest.mark.parametrize("bad", [{"o": "x", "c": ["not-a-pair"]}, {"o": "x", "d": [["only-one"]]}, {"o": "x", "x": [[1, 2]]}])
def test_a_malformed_pair_is_refused_like_any_malformed_payload(bad):
    with pytest.raises((ValueError, TypeError, AttributeError)):  # what PostgresBus._received catches, logs and skips
        Change.from_payload(json.dumps(bad))

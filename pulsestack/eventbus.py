"""How change events travel between server processes.

A `Change` says what may have changed: some users' receipts, every member's
of some workspaces, new notifications, revoked sessions, or (after a lost
connection) anything for anyone. The hub applies its own changes at once and
publishes them; a bus delivers other processes' changes to `on_change`.

- `InProcessBus` (SQLite: one server process per database file) delivers
  nothing: there is no other process.
- `PostgresBus` (db/postgres_bus.py, beside the driver it needs) uses
  LISTEN/NOTIFY. `Database.event_bus()` picks the bus for its dialect.

A bus that loses its connection reconnects after `reconnect_delay` (0.05 s,
doubling to at most 1 s: every moment it is away is a moment other
processes' changes do not reach this one's websockets), then calls
`on_reconnect`, because changes published meanwhile are lost.

The interface is small so a deployment that outgrows LISTEN/NOTIFY can move
it to Redis or NATS pub/sub without touching the hub.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

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
    base = RECONNECT_FIRST_S * 2.0 ** min(attempt - 1, 10)
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

    def merge(self, other: Change) -> None:
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
    def from_payload(cls, payload: str) -> tuple[str, Change]:
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

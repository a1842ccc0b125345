"""How change events travel between server processes.

A `Change` says what may have changed: some users' counts, every member's
of some workspaces, new notifications, revoked sessions, which receipts
changed state or went away, which inboxes changed too much to list, or
(after a lost connection) anything for anyone. The hub applies its own
changes at once and publishes them; a bus delivers other processes' changes
to `on_change`.

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
# Beyond this many users to recount or refresh (a big workspace deleted),
# "everyone connected" says it in one payload, where the list would take hundreds.
MAX_LISTED_USERS = 1000
# A `changed` frame names at most this many receipts (items and removed
# together); a user with more changes in one go is sent `refresh` instead.
CHANGED_MAX = 100
RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 1.0
RECONNECT_JITTER = 0.25  # up to this share of a delay is taken off at random


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def reconnect_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1 = the first after
    the connection was lost): RECONNECT_FIRST_S doubling up to RECONNECT_MAX_S,
    shortened by up to RECONNECT_JITTER at random, so the processes that lost
    the database together do not all knock at the same instant."""
    base = RECONNECT_FIRST_S * 2.0 ** min(attempt - 1, 10)
    return min(base, RECONNECT_MAX_S) * (1 - RECONNECT_JITTER * rand())


Pair = tuple[uuid.UUID, uuid.UUID]
# (notification, after, upto): the receipts of one chunk of a large broadcast,
# written for the members whose user id is in (after, upto].
Chunk = tuple[uuid.UUID, uuid.UUID, uuid.UUID]


@dataclass
class Change:
    """What may have changed, as sets, so that changes merge by union.

    - `users`: these users' unread counts.
    - `workspaces`: the counts of every member of these workspaces.
    - `notifications`: new notifications; each recipient gets its frame.
    - `chunks`: (notification, after, upto): a large broadcast's receipts for
      the members with user ids in (after, upto] were written; each of those
      recipients gets its frame.
    - `sessions`: revoked tokens; their sockets close.
    - `receipts`: (user, notification) receipts whose state changed (read,
      unread, archive, unarchive): a `changed` frame with their state now.
    - `removed`: (user, notification) receipts that are gone (dismissed).
    - `retracted`: (workspace, notification): a notification deleted with all
      its receipts; `removed` for the members of the workspace.
    - `refresh`: users whose inbox changed too much to list: `refresh`.
    - `everyone`: anything may have changed for anyone (changes were lost
      while a bus was away): recount and refresh every connected user.

    Every kind but `sessions` also means new counts for the users concerned.
    """

    users: set[uuid.UUID] = field(default_factory=set)
    workspaces: set[uuid.UUID] = field(default_factory=set)
    notifications: set[uuid.UUID] = field(default_factory=set)
    sessions: set[uuid.UUID] = field(default_factory=set)
    everyone: bool = False
    receipts: set[Pair] = field(default_factory=set)
    removed: set[Pair] = field(default_factory=set)
    retracted: set[Pair] = field(default_factory=set)
    refresh: set[uuid.UUID] = field(default_factory=set)
    chunks: set[Chunk] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.workspaces or self.notifications or self.sessions or self.everyone
                    or self.receipts or self.removed or self.retracted or self.refresh or self.chunks)

    def merge(self, other: Change) -> None:
        self.users |= other.users
        self.workspaces |= other.workspaces
        self.notifications |= other.notifications
        self.sessions |= other.sessions
        self.everyone |= other.everyone
        self.receipts |= other.receipts
        self.removed |= other.removed
        self.retracted |= other.retracted
        self.refresh |= other.refresh
        self.chunks |= other.chunks

    def condensed(self) -> Change:
        """The same change, said in fewer ids where lists would outgrow what
        the frames or the payloads carry, never by dropping anything: a user
        with more than CHANGED_MAX changed or removed receipts becomes a
        `refresh` of that user (the frame would be a refresh anyway); more
        than MAX_LISTED_USERS users to recount or refresh become `everyone`.
        `everyone` says all that `users`, `workspaces`, `receipts`,
        `removed`, `retracted` and `refresh` could say."""
        listed: dict[uuid.UUID, set[uuid.UUID]] = {}
        for user_id, notification_id in (*self.receipts, *self.removed):
            listed.setdefault(user_id, set()).add(notification_id)
        refresh = self.refresh | {user_id for user_id, ids in listed.items() if len(ids) > CHANGED_MAX}
        everyone = self.everyone or len(self.users) > MAX_LISTED_USERS or len(refresh) > MAX_LISTED_USERS
        if everyone:
            return Change(notifications=set(self.notifications), sessions=set(self.sessions), everyone=True,
                          chunks=set(self.chunks))
        return Change(users=set(self.users), workspaces=set(self.workspaces), notifications=set(self.notifications),
                      sessions=set(self.sessions), receipts={p for p in self.receipts if p[0] not in refresh},
                      removed={p for p in self.removed if p[0] not in refresh}, retracted=set(self.retracted),
                      refresh=refresh, chunks=set(self.chunks))

    def payloads(self, origin: str) -> list[str]:
        """JSON payloads, each under PAYLOAD_LIMIT; ids are split across as many as needed.
        Ids are strings; a pair is a two-string list. Keys: u users, w workspaces, n
        notifications, s sessions, c changed receipts, d removed receipts, x retracted
        notifications, r refresh, k chunks (three strings), e everyone (true)."""
        change = self.condensed()
        items: list[tuple[str, str | list[str]]] = [
            (key, str(i)) for key, ids in (("u", change.users), ("w", change.workspaces), ("n", change.notifications),
                                           ("s", change.sessions), ("r", change.refresh)) for i in ids]
        items += [(key, [str(a), str(b)]) for key, pairs in (("c", change.receipts), ("d", change.removed),
                                                              ("x", change.retracted)) for a, b in pairs]
        items += [("k", [str(n), str(a), str(b)]) for n, a, b in change.chunks]
        out: list[str] = []
        current: dict[str, list] = {}
        size = 0
        # Room for the origin, the everyone flag and each key's `"k":[],` (at most 10 keys).
        room = PAYLOAD_LIMIT - len(_compact({"o": origin, "e": True})) - 10 * 8
        for key, value in items:
            cost = len(_compact(value)) + 2  # the value and its comma, with a byte to spare
            if size + cost > room:
                out.append(_compact({"o": origin, **current}))
                current, size = {}, 0
            current.setdefault(key, []).append(value)
            size += cost
        if current or change.everyone:
            out.append(_compact({"o": origin, **current, **({"e": True} if change.everyone else {})}))
        return out

    @classmethod
    def from_payload(cls, payload: str) -> tuple[str, Change]:
        """(origin, change) of a payload; a key it does not have (an older
        process's payload) is an empty set."""
        data = json.loads(payload)

        def ids(key: str) -> set[uuid.UUID]:
            return {uuid.UUID(v) for v in data.get(key, [])}

        def pairs(key: str) -> set[Pair]:
            return {(uuid.UUID(a), uuid.UUID(b)) for a, b in data.get(key, [])}

        return data.get("o", ""), cls(users=ids("u"), workspaces=ids("w"), notifications=ids("n"), sessions=ids("s"),
                                      everyone=bool(data.get("e")), receipts=pairs("c"), removed=pairs("d"),
                                      retracted=pairs("x"), refresh=ids("r"),
                                      chunks={(uuid.UUID(n), uuid.UUID(a), uuid.UUID(b)) for n, a, b in data.get("k", [])})


class EventBus:
    """Delivers other processes' changes to the hub. The base delivers nothing."""

    async def start(self, on_change: Callable[[Change], None], on_reconnect: Callable[[], None]) -> None:
        pass

    def publish(self, change: Change) -> None:
        pass

    async def announce(self, change: Change) -> bool:
        """Tell the running server processes about a change made outside any
        of them (`pulsestack prune`), now, without starting the bus. False
        when this bus cannot reach another process (SQLite)."""
        return False

    async def close(self) -> None:
        pass


class InProcessBus(EventBus):
    """SQLite: one server process per database file, so no other process to hear."""

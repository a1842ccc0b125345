"""The token → session cache of one server process: authenticate's shortcut.

Without it every authenticated request looks its bearer token up in
`sessions` (get_session_user), a database round trip of its own before the
request's real work; for GET /api/notifications/unread-count that is half of
its round trips. The cache keeps, per token hash (never the token itself),
the principal a lookup found, so a client that polls pays the lookup once per
TTL_S instead of once per request.

What keeps it honest:
- A hit is served only while the token has not expired, by the same test as
  the SQL (`expires_at > now`): a token stops working at its expiry, cached
  or not.
- Logout drops its entry in its own process at once (services/accounts.py);
  every process drops it when its hub applies the revocation
  (`Change.sessions`, its own or another process's through the event bus),
  and a bus reconnect, after which revocations may have been missed, clears
  everything (hub.py).
- A revocation or clear that lands while a lookup is in flight keeps that
  lookup's answer out of the cache (`epoch`): a row read just before its
  delete committed cannot come back after the revocation was applied.
- Anything that ends a session without telling the hub (a row deleted by
  hand, a NOTIFY lost while the listener stayed connected) is served at most
  TTL_S longer; so is a user's changed system role (`create-admin`
  promoting an account).
- Failed lookups are not cached: a wrong or revoked token always costs its
  query, and never blocks a session created a moment later.
- At most MAX_ENTRIES entries, the oldest dropped first.

It must never hold a raw token, nor answer for a session past its expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from .queries.sessions import SessionUser

# How long an entry is believed without asking the database again: the bound
# on how late a revocation that never reached this process (no event) takes
# effect. Short enough to be invisible to a user who logged out by hand;
# long enough that a client polling every second or two, or a burst of
# requests from one page, costs one session lookup, not one per request.
TTL_S = 5.0
# Memory bound: an entry is a principal (user and session) under a 64-character
# key, ~1.2 KiB measured, so ~12 MiB at most per process. 10,000 tokens active
# within TTL_S is more than one process serves; beyond it the oldest go, and
# their next request simply looks its token up again.
MAX_ENTRIES = 10_000


class _Entry(NamedTuple):
    principal: SessionUser
    fresh_until: float  # on the cache's clock: after this, the database is asked again


class SessionCache:
    """Principals by token hash, for TTL_S at most, revocable by session id."""

    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock  # monotonic seconds; tests replace it to step past TTL_S without sleeping
        self._entries: dict[str, _Entry] = {}  # insertion order: the oldest first
        self._by_session: dict[UUID, str] = {}  # session id -> its token hash, to revoke by id
        # Bumped by every revocation and clear: a lookup that began under another
        # epoch may have read a row that is gone now, so its answer is not kept.
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str, now: datetime) -> SessionUser | None:
        """The cached principal of this token, unless the token expired by `now`
        or the entry is older than TTL_S; None means: ask the database."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry.principal.expires_at <= now or self.clock() >= entry.fresh_until:
            self._drop(token_hash)
            return None
        return entry.principal

    def put(self, token_hash: str, principal: SessionUser, epoch: int) -> None:
        """Keep what a lookup found, if nothing was revoked since it began (`epoch`
        as it was then)."""
        if epoch != self.epoch:
            return
        if token_hash in self._entries:
            self._drop(token_hash)  # re-inserted below, as the newest
        elif len(self._entries) >= self.max_entries:
            self._drop(next(iter(self._entries)))
        self._entries[token_hash] = _Entry(principal, self.clock() + self.ttl_s)
        self._by_session[principal.session_id] = token_hash

    def forget(self, session_ids: Iterable[UUID]) -> None:
        """These sessions were revoked: their tokens are looked up again (and refused)."""
        self.epoch += 1
        for session_id in session_ids:
            token_hash = self._by_session.get(session_id)
            if token_hash is not None:
                self._drop(token_hash)

    def clear(self) -> None:
        """Forget everything (revocations may have been missed)."""
        self.epoch += 1
        self._entries.clear()
        self._by_session.clear()

    def _drop(self, token_hash: str) -> None:
        entry = self._entries.pop(token_hash)
        del self._by_session[entry.principal.session_id]

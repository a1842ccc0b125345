"""The hourly purge (pulsestack/housekeeping.py) on both databases: it deletes
what has expired, and nothing that is still live."""

from __future__ import annotations

from datetime import timedelta

from helpers import make_members, make_user, make_workspace

from pulsestack import housekeeping
from pulsestack.housekeeping import Purged, purge_once
from pulsestack.ids import new_id, utcnow
from pulsestack.queries import idempotency, mutes, sessions
from pulsestack.services.notifications import IDEMPOTENCY_TTL


async def test_purge_deletes_expired_sessions_keys_and_mutes_and_keeps_live_ones(db, monkeypatch):
    user = await make_user(db)
    ws = await make_workspace(db, user)
    muted_long_ago, muted_now = await make_members(db, ws.id, 2)
    now = utcnow()
    for name, expires in (("gone", now - timedelta(seconds=1)), ("live", now + timedelta(hours=1))):
        await sessions.create_session(db, id=new_id(), user_id=user.id, token_hash=name, created_at=now, expires_at=expires)
    await idempotency.create_idempotency_key(db, user.id, "old", "{}", now - IDEMPOTENCY_TTL - timedelta(seconds=1))
    await idempotency.create_idempotency_key(db, user.id, "new", "{}", now)
    # Mutes are written with a future `until` (as the API insists), then the clock is moved on.
    await mutes.add_mute(db, ws.id, muted_long_ago, types=["billing", "chat"], until=now + timedelta(minutes=1), created_at=now)
    await mutes.add_mute(db, ws.id, muted_now, types=None, until=now + timedelta(days=1), created_at=now)
    later = now + timedelta(minutes=2)

    monkeypatch.setattr(housekeeping, "utcnow", lambda: later)
    assert await purge_once(db) == Purged(sessions=1, idempotency_keys=1, mutes=2)
    assert await purge_once(db) == Purged(0, 0, 0)

    assert await sessions.get_session_user(db, "live", later) is not None
    assert await idempotency.get_idempotent_response(db, user.id, "new", now - IDEMPOTENCY_TTL) == "{}"
    assert (await mutes.get_mute(db, ws.id, muted_now, later)).muted
    assert not (await mutes.get_mute(db, ws.id, muted_long_ago, now)).muted  # its rows are gone

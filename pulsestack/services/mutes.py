"""Mutes: a member silences a workspace, or some notification types in it.

A mute is the caller's own, per membership: any member may read, replace
or delete theirs, and nobody else's. To a non-member the workspace does
not exist (404), as everywhere else. A mute names type prefixes (whole
dot-separated segments: `billing` covers `billing.invoice`, never
`billingx`), or every type; it lasts until `until`, or until deleted.

Sends honour mutes in their fan-out (sql/receipts.sql): a muted member gets
no receipt at all, unless the send is `critical` (admin or owner only).
Setting a mute replaces the previous one in one transaction.
"""

from __future__ import annotations

from ..db import Database, ForeignKeyViolation
from ..errors import NotFound, ValidationFailed
from ..ids import utcnow
from ..models.requests import MuteSettings
from ..models.resources import Mute
from ..queries import mutes
from .accounts import Principal
from .workspaces import access


def _membership_gone() -> NotFound:
    # A system admin who is not a member, or a member who left after the access check.
    return NotFound("no such workspace membership: only a member has a mute", {"slug": "not a member"})


async def get(db: Database, principal: Principal, slug: str) -> Mute:
    acc = await access(db, principal, slug)
    return await mutes.get_mute(db, acc.id, principal.id, utcnow())


async def replace(db: Database, principal: Principal, slug: str, settings: MuteSettings) -> Mute:
    acc = await access(db, principal, slug)
    now = utcnow()
    if settings.until is not None and settings.until <= now:
        raise ValidationFailed("`until` must be in the future", {"until": "must be in the future"})
    try:
        async with db.transaction() as tx:
            if await mutes.lock_member_for_mute(tx, acc.id, principal.id) is None:
                raise _membership_gone()
            await mutes.delete_mute(tx, acc.id, principal.id)
            await mutes.add_mute(tx, acc.id, principal.id, types=settings.types, until=settings.until, created_at=now)
            return await mutes.get_mute(tx, acc.id, principal.id, now)
    except ForeignKeyViolation:  # the membership went between the lock (a plain read on SQLite) and the insert
        raise _membership_gone() from None


async def delete(db: Database, principal: Principal, slug: str) -> None:
    acc = await access(db, principal, slug)
    await mutes.delete_mute(db, acc.id, principal.id)

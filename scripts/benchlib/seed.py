"""Seed a benchmark database set-based, through the product's own Database
adapter and, for receipts, mostly through its own fan-out.

What gets built (sizes from the command line; defaults in brackets):

- sender S: a system user who owns every bench workspace and sends every
  broadcast; a session token for it.
- the crowd [10,000 users]: members of `crowd`; `crowd_unread` [100]
  broadcasts to it go through the product's `fan_out_broadcast` named query,
  one transaction each (create_notification + fan_out_broadcast, exactly what
  a send commits), so every crowd user holds that many unread receipts
  [1,000,000 receipts]. Crowd users are added in groups so that the first
  n of them form workspace `ws-<n>` for each smaller websocket size.
  Each crowd user has a session token (the websocket clients).
- hot user H: member of `hot` only, the inbox and unread-count subject,
  seeded to look like a used inbox: `hot_read` [30,000] notifications it
  has read (marked with the product's mark_all_read), of which two in every
  three are archived, interleaved in time with the third that stays in the
  inbox (ARCHIVE_KEEP_EVERY); then `hot_unread` [1,000] unread ones, with
  the membership's seen_until (the product's mark_seen) at the middle one,
  so half of them are unseen. The default inbox (archived excluded) thus
  holds hot_read / 3 + hot_unread receipts, and every page of its read part
  lies between archived ones that a walk of the whole inbox index would
  have to step over.
- the typical user (the first crowd user, the throughput target's caller):
  seen_until set halfway through the crowd broadcasts, so its unread count
  runs the unseen range too.
- the fan-out users [100,000]: in groups, so that `fan-<n>` holds the first
  n of them for each fan-out size [1,000, 5,000, 10,000, 100,000];
  receipts for these come only from the fan-out measurement itself.
- the pair (other users' writes during a large fan-out): workspace `pair`,
  owned by its own sender, with one member; a session token for each. The
  sender sends to the member, who marks it read, in a loop.

Users, members and the hot notifications are written with recursive-CTE
INSERT ... SELECT statements (they run on both dialects; see
tests/test_explain.py). Sessions are the product's create_session query run
with executemany: their token hashes are SHA-256, which SQLite cannot compute.
Archiving is one UPDATE that sets what the product's archive_receipt sets
(archived_at, is_read, read_at), over the seconds of the read history
picked by a recursive CTE. Nothing loops over receipts in Python.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from pulsestack.db import Database, NamedQuery
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.queries import members, notifications, receipts, workspaces
from pulsestack.security import hash_token, new_token

UUID_EXPR = {
    "postgres": "gen_random_uuid()",
    "sqlite": "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a'"
              " || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))",
}
# created_at of the i-th seeded notification: `:base` plus i seconds.
SECONDS_AFTER = {
    "postgres": "CAST(:base AS timestamptz) + s.i * interval '1 second'",
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%f', :base, '+' || s.i || ' seconds') || '000Z'",
}
SERIES = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :count) "
EMAIL_DOMAIN = "@bench.example"
SESSION_TTL = timedelta(days=30)
SEED_BATCH = 10  # crowd broadcasts per seeding transaction
ARCHIVE_KEEP_EVERY = 3  # of the hot user's read history, every third stays in the inbox, the other two are archived


def hot_archived(hot_read: int) -> int:
    """How many of the hot user's `hot_read` read receipts the seed archives."""
    return hot_read - hot_read // ARCHIVE_KEEP_EVERY


def hot_active(hot_read: int, hot_unread: int) -> int:
    """How many receipts the hot user's default inbox (archived excluded) holds."""
    return hot_read - hot_archived(hot_read) + hot_unread


def hot_unseen(hot_unread: int) -> int:
    """How many of the hot user's unread receipts the seed leaves unseen."""
    return hot_unread - hot_unread // 2


@dataclass
class Sizes:
    fanout_members: list[int]
    ws_clients: list[int]
    crowd_unread: int
    hot_read: int
    hot_unread: int

    @property
    def crowd(self) -> int:
        return max(self.ws_clients)


@dataclass
class Seeded:
    sender_id: UUID
    sender_token: str
    hot_id: UUID
    hot_token: str
    typical_id: UUID  # the first crowd user: the throughput target's caller
    typical_unseen: int
    crowd_tokens: list[str]  # in join order: the first n are the members of ws-<n>
    ws_slugs: dict[int, str]  # websocket size -> workspace whose members are the first n crowd users
    ws_ids: dict[int, UUID]
    fan_slugs: dict[int, str]  # fan-out size -> workspace with that many members besides S
    fan_ids: dict[int, UUID]
    pair_slug: str  # a workspace of two: its owner sends to the member, who marks it read
    pair_sender_token: str
    pair_member_id: UUID
    pair_member_token: str
    receipts: int = 0
    hot_archived: int = 0
    hot_unseen: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def _groups(sizes: list[int]) -> list[tuple[int, int]]:
    """[(size, users new at this size)] for ascending sizes: 1k,10k,100k -> (1k,1k),(10k,9k),(100k,90k)."""
    out, prev = [], 0
    for size in sorted(set(sizes)):
        out.append((size, size - prev))
        prev = size
    return out


async def _users(db: Database, tag: str, count: int) -> None:
    if count <= 0:
        return
    await db.execute(NamedQuery.dynamic("bench_seed_users", SERIES +
        "INSERT INTO users (id, email, password_hash, system_role, created_at) "
        f"SELECT {UUID_EXPR[db.dialect]}, 'u' || s.i || '-' || CAST(:tag AS text) || '{EMAIL_DOMAIN}', 'x', 'user', :now FROM s",
        "exec"), count=count, tag=tag, now=utcnow())


async def _join(db: Database, workspace_id: UUID, tag: str) -> int:
    return await db.execute(NamedQuery.dynamic("bench_seed_members",
        "INSERT INTO workspace_members (id, workspace_id, user_id, role, joined_at) "
        f"SELECT {UUID_EXPR[db.dialect]}, :workspace_id, u.id, 'member', :now FROM users AS u "
        "WHERE u.email LIKE '%-' || CAST(:tag AS text) || :domain",
        "exec"), workspace_id=workspace_id, tag=tag, domain=EMAIL_DOMAIN, now=utcnow())


async def _ids(db: Database, tag: str) -> list[UUID]:
    rows = await db.fetch_all(NamedQuery.dynamic("bench_seed_ids",
        "SELECT id FROM users WHERE email LIKE '%-' || CAST(:tag AS text) || :domain ORDER BY id", "many"),
        tag=tag, domain=EMAIL_DOMAIN)
    return [r["id"] for r in rows]


async def _sessions(db: Database, user_ids: list[UUID]) -> list[str]:
    """One fresh token per user (the product's create_session query, in one transaction)."""
    now = utcnow()
    tokens = [new_token() for _ in user_ids]
    async with db.transaction() as tx:
        await tx.execute_many("create_session", [
            {"id": new_id(), "user_id": u, "token_hash": hash_token(t), "created_at": now, "expires_at": now + SESSION_TTL}
            for u, t in zip(user_ids, tokens)])
    return tokens


async def _workspace(db: Database, owner_id: UUID, slug: str) -> UUID:
    now = utcnow()
    async with db.transaction() as tx:
        ws = await workspaces.create_workspace(tx, id=new_id(), name=slug, slug=slug, owner_id=owner_id, created_at=now)
        await members.add_member(tx, id=new_id(), workspace_id=ws.id, user_id=owner_id, role="owner", joined_at=now)
    return ws.id


async def broadcasts_via_product(db: Database, workspace_id: UUID, sender_id: UUID, count: int) -> list[int]:
    """What a broadcast writes (services/notifications.py): the notification
    row and the fan_out_broadcast INSERT ... SELECT, `count` times, in one
    transaction (seeding commits a batch at once; the fan-out measurement
    commits each broadcast on its own)."""
    out = []
    async with db.transaction() as tx:
        for _ in range(count):
            now = utcnow()
            nid = new_id()
            await notifications.create_notification(tx, id=nid, workspace_id=workspace_id, sender_id=sender_id,
                                                    title=f"Seeded broadcast {nid}", message="seeded by scripts/bench",
                                                    type="info", broadcast=True, created_at=now)
            out.append(await notifications.fan_out_broadcast(tx, notification_id=nid, workspace_id=workspace_id,
                                                             sender_id=sender_id, created_at=now,
                                                             type_prefixes=type_prefixes("info"), critical=False))
    return out


async def _hot_batch(db: Database, workspace_id: UUID, sender_id: UUID, count: int, base) -> int:
    """`count` notifications to `hot`, one second apart from `base`, and their receipts, set-based."""
    if count <= 0:
        return 0
    await db.execute(NamedQuery.dynamic("bench_seed_hot_notifications", SERIES +
        "INSERT INTO notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at) "
        f"SELECT {UUID_EXPR[db.dialect]}, :workspace_id, :sender_id, 'Seeded ' || s.i, 'seeded by scripts/bench', "
        f"'info', true, {SECONDS_AFTER[db.dialect]} FROM s", "exec"),
        count=count, workspace_id=workspace_id, sender_id=sender_id, base=base)
    return await db.execute(NamedQuery.dynamic("bench_seed_hot_receipts",
        "INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at) "
        f"SELECT {UUID_EXPR[db.dialect]}, n.id, m.user_id, n.workspace_id, false, n.created_at "
        "FROM notifications AS n JOIN workspace_members AS m ON m.workspace_id = n.workspace_id "
        "WHERE n.workspace_id = :workspace_id AND m.user_id <> n.sender_id AND n.created_at > :base",
        "exec"), workspace_id=workspace_id, base=base)


async def _archive_interleaved(db: Database, user_id: UUID, count: int, base, now) -> int:
    """Archive the user's receipts created `base` + i seconds for i in 1..count
    except every ARCHIVE_KEEP_EVERY-th: what archive_receipt sets, set-based."""
    # The series sits inside the IN (...): sqlite3 reports no row count for a statement that starts with WITH.
    return await db.execute(NamedQuery.dynamic("bench_seed_archive",
        "UPDATE notification_receipts SET archived_at = :now, is_read = true, read_at = coalesce(read_at, :now) "
        "WHERE user_id = :user_id AND archived_at IS NULL "
        f"AND created_at IN ({SERIES}SELECT {SECONDS_AFTER[db.dialect]} FROM s WHERE s.i % {ARCHIVE_KEEP_EVERY} <> 0)",
        "exec"), count=count, base=base, user_id=user_id, now=now)


async def _hot_states(db: Database, user_id: UUID) -> dict[str, int]:
    """The hot user's receipts by state, for the seed's invariants."""
    row = await db.fetch_one(NamedQuery.dynamic("bench_seed_hot_states",
        "SELECT count(*) AS total, "
        "coalesce(sum(CASE WHEN archived_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS archived, "
        "coalesce(sum(CASE WHEN archived_at IS NOT NULL AND NOT is_read THEN 1 ELSE 0 END), 0) AS archived_unread "
        "FROM notification_receipts WHERE user_id = :user_id", "one"), user_id=user_id)
    assert row is not None
    return {k: int(row[k]) for k in ("total", "archived", "archived_unread")}


async def _check_counts(db: Database, user_id: UUID, who: str, unread: int, unseen: int) -> None:
    rows = await receipts.count_unread_by_workspace(db, [user_id])
    got = (sum(r.unread for r in rows), sum(r.unseen for r in rows))
    if got != (unread, unseen):
        raise RuntimeError(f"{who} holds {got[0]} unread, {got[1]} unseen; expected {unread}, {unseen}")


async def seed(db: Database, sizes: Sizes, log) -> Seeded:
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, t0: float) -> float:
        steps[name] = time.perf_counter() - t0
        log(f"  seed: {name} {steps[name]:.1f} s")
        return time.perf_counter()

    t = time.perf_counter()
    await _users(db, "sender", 1)
    await _users(db, "hot", 1)
    sender_id, hot_id = (await _ids(db, "sender"))[0], (await _ids(db, "hot"))[0]
    sender_token, hot_token = (await _sessions(db, [sender_id]))[0], (await _sessions(db, [hot_id]))[0]

    # The crowd: groups so that ws-<n> is the first n crowd users.
    ws_ids: dict[int, UUID] = {n: await _workspace(db, sender_id, f"ws-{n}") for n in sorted(set(sizes.ws_clients))}
    crowd_tokens: list[str] = []
    for g, (size, new) in enumerate(_groups(sizes.ws_clients)):
        tag = f"c{g}"
        await _users(db, tag, new)
        for n, wid in ws_ids.items():
            if n >= size:
                await _join(db, wid, tag)
        crowd_tokens += await _sessions(db, await _ids(db, tag))
    t = step(f"{sizes.crowd:,} crowd users, members, sessions", t)

    # The fan-out workspaces: fan-<n> holds the first n fan users.
    fan_ids: dict[int, UUID] = {n: await _workspace(db, sender_id, f"fan-{n}") for n in sorted(set(sizes.fanout_members))}
    for g, (size, new) in enumerate(_groups(sizes.fanout_members)):
        tag = f"f{g}"
        await _users(db, tag, new)
        for n, wid in fan_ids.items():
            if n >= size:
                await _join(db, wid, tag)
    t = step(f"{max(sizes.fanout_members):,} fan-out users and members", t)

    # Crowd receipts through the product's fan-out, in batches of broadcasts.
    # SQLite: this (harness-only) writer connection gets a page cache that
    # holds the receipt indexes, or a million random index inserts thrash
    # the default 2 MB cache; the measured server keeps its own defaults.
    if db.dialect == "sqlite":
        await db.execute(NamedQuery.dynamic("bench_seed_cache", "PRAGMA cache_size = -1000000", "exec"))
    crowd_id = ws_ids[sizes.crowd]
    done, seen_at, seen_done = 0, None, 0
    while done < sizes.crowd_unread:
        batch = min(SEED_BATCH, sizes.crowd_unread - done)
        counts = await broadcasts_via_product(db, crowd_id, sender_id, batch)
        if any(c != sizes.crowd for c in counts):
            raise RuntimeError(f"seed broadcasts reached {counts} members, expected {sizes.crowd}")
        done += batch
        if seen_at is None and done >= sizes.crowd_unread // 2:
            seen_at, seen_done = utcnow(), done  # the typical user looked at its bell here
    # The typical user (the first crowd user, by id, as crowd_tokens are):
    # its seen cut-off halfway through, by the product's mark_seen.
    typical_id = (await _ids(db, "c0"))[0]
    assert seen_at is not None
    await members.mark_seen(db, typical_id, seen_at)
    typical_unseen = sizes.crowd_unread - seen_done
    await _check_counts(db, typical_id, "the typical user", sizes.crowd_unread, typical_unseen)
    t = step(f"{sizes.crowd_unread} broadcasts x {sizes.crowd:,} crowd members (product fan-out)", t)

    # The hot user: read history, marked read by the product, two in three of
    # it archived (interleaved), then unread ones, half of them seen.
    # Whole seconds, so seen_until can be exactly a receipt's created_at.
    hot_ws = await _workspace(db, sender_id, "hot")
    await _join(db, hot_ws, "hot")
    now = utcnow().replace(microsecond=0)
    unread_base = now - timedelta(seconds=sizes.hot_unread + 60)
    read_base = unread_base - timedelta(seconds=sizes.hot_read + 60)
    await _hot_batch(db, hot_ws, sender_id, sizes.hot_read, read_base)
    await receipts.mark_all_read(db, hot_id, now)
    archived = await _archive_interleaved(db, hot_id, sizes.hot_read, read_base, now)
    if archived != hot_archived(sizes.hot_read):
        raise RuntimeError(f"archived {archived} of the hot user's read receipts, expected {hot_archived(sizes.hot_read)}")
    await _hot_batch(db, hot_ws, sender_id, sizes.hot_unread, unread_base)
    # Seen up to and including the (hot_unread // 2)-th unread receipt.
    await members.mark_seen(db, hot_id, unread_base + timedelta(seconds=sizes.hot_unread // 2))
    await _check_counts(db, hot_id, "the hot user", sizes.hot_unread, hot_unseen(sizes.hot_unread))
    states = await _hot_states(db, hot_id)
    expected = {"total": sizes.hot_read + sizes.hot_unread, "archived": hot_archived(sizes.hot_read), "archived_unread": 0}
    if states != expected:
        raise RuntimeError(f"hot user's receipts are {states}, expected {expected}")
    t = step(f"hot user: {sizes.hot_read:,} read ({archived:,} of them archived, interleaved) + "
             f"{sizes.hot_unread:,} unread ({hot_unseen(sizes.hot_unread):,} unseen)", t)

    # The pair: a sender (owner, so an admin of `pair`) and one member, apart from every other workspace.
    await _users(db, "pairsender", 1)
    await _users(db, "pairmember", 1)
    pair_sender_id, pair_member_id = (await _ids(db, "pairsender"))[0], (await _ids(db, "pairmember"))[0]
    pair_ws = await _workspace(db, pair_sender_id, "pair")
    await _join(db, pair_ws, "pairmember")
    pair_sender_token, pair_member_token = await _sessions(db, [pair_sender_id, pair_member_id])

    # Statistics (and on Postgres the visibility map that index-only scans
    # need), as autovacuum would have left them on a live system.
    await db.execute(NamedQuery.dynamic("bench_analyze", "VACUUM ANALYZE" if db.dialect == "postgres" else "ANALYZE", "exec"))
    # Write the bulk load out now, so no checkpoint of it lands in a measurement.
    if db.dialect == "postgres":
        try:
            await db.execute(NamedQuery.dynamic("bench_checkpoint", "CHECKPOINT", "exec"))
        except Exception as exc:  # needs superuser or pg_checkpoint; without it autovacuum and the checkpointer catch up later
            log(f"  seed: CHECKPOINT skipped ({exc})")
    else:
        await db.execute(NamedQuery.dynamic("bench_checkpoint", "PRAGMA wal_checkpoint(TRUNCATE)", "exec"))
        await db.execute(NamedQuery.dynamic("bench_seed_cache_off", "PRAGMA cache_size = -2000", "exec"))
    total = await db.fetch_value(NamedQuery.dynamic("bench_count_receipts", "SELECT count(*) FROM notification_receipts", "scalar"))
    step("analyze", t)
    return Seeded(
        sender_id=sender_id, sender_token=sender_token, hot_id=hot_id, hot_token=hot_token,
        typical_id=typical_id, typical_unseen=typical_unseen,
        crowd_tokens=crowd_tokens, ws_slugs={n: f"ws-{n}" for n in ws_ids}, ws_ids=ws_ids,
        fan_slugs={n: f"fan-{n}" for n in fan_ids}, fan_ids=fan_ids,
        pair_slug="pair", pair_sender_token=pair_sender_token, pair_member_id=pair_member_id,
        pair_member_token=pair_member_token,
        receipts=int(total), hot_archived=archived, hot_unseen=hot_unseen(sizes.hot_unread),
        seconds=time.perf_counter() - started, steps=steps,
    )

"""Scenario 1: broadcasts of 1,000 / 5,000 / 10,000 / 100,000 members,
through the server and bare, and other users' writes while the largest one
fans out.

Since issue 14 (docs/design.md, "Large broadcasts") a broadcast to more than
`fanout.chunk` members (5,000, the default, which procs.py pins for the
measured server) answers 201 before its receipts exist, with
`"delivery": {"state": "fanning_out" | "done", "delivered": k}`, and a worker
in the server commits the receipts in chunks of members in user-id order. A
smaller one answers "done" with every receipt committed, as before. An
answer without `delivery` (the code before issue 14, which answered after
its commit) counts as "done".

Timed per broadcast through the server (POST /api/workspaces/fan-<n>/notifications
`{"broadcast": true}` as the workspace owner; recipient_count must be n):

- post_s: from sending the request to the last byte of the 201.
- done_s: from sending the request to the moment the harness sees the last
  receipt committed. When the 201 says "done" that is post_s. Otherwise the
  harness's own database connection (the bare runner's) looks up, every
  POLL_S (2 ms), the receipt of the audience's last member in user-id order:
  one probe of notification_receipts_notification_id_user_id_key. The chunks
  commit in that order, so that receipt is the last one. Not GET
  .../notifications/{id}: its answer also counts every receipt of the
  notification (count_notification_receipts: 100,000 index entries, on
  Postgres heap rows too), so polling it every few ms would put that count
  on the two shared cores, slowing the fan-out it times and the writes
  measured beside it. Afterwards, untimed: the receipts are counted (all n
  must be there, else the order assumption is wrong and the run fails), and
  GET .../notifications/{id} is polled every 5 ms until its `delivery` says
  "done" (state_done_s, in the details: when the product says so).

Bare, on the same database and schema, in the same run: the harness's own
driver connection (asyncpg / sqlite3, set up as the server's writer is:
WAL, synchronous=NORMAL, foreign_keys=ON) runs BEGIN; the product's
create_notification; the product's fan_out_broadcast INSERT ... SELECT
(the same named SQL, compiled by the product's own dialect compiler); COMMIT.
That is the least any implementation of the receipt pattern has to pay.
Both statements get their parameters by name from one dict
(fan_out_params), which may hold more names than the statement takes:
each dialect binds exactly the names the product declares for the query,
so a parameter the product's statement gains is one line there.

Per size: one untimed warm-up of each, then `reps` alternating repetitions
(server first on even ones, bare first on odd), so both see the same table
growth and checkpoints. Medians; ratio = median done_s / median bare.

Other users' writes, at the largest size only: a pair is the `pair`
workspace's sender POSTing a direct send `{"recipients": [its member]}`,
then the member POSTing /api/notifications/{id}/read of it, timed from
sending the first request to the last byte of the second answer (a 201 and
a 200 expected; anything else is counted as failed), one pair at a time,
each user on its own keep-alive connection. First the baseline: pairs in a
loop with no fan-out running, for as long as that size's median done_s (at
least 1 s). Then `reps` more broadcasts of that size, each with the pair
loop running from just before its POST until its last receipt is seen;
every pair started in that window counts. Those broadcasts' own times are
in `windows` (details), not in the medians above, which the pairs' writes
would lengthen.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp

from pulsestack.db import NamedQuery
from pulsestack.ids import new_id, utcnow
from pulsestack.queries.notifications import ALL_MEMBERS

from .seed import Seeded
from .stats import summary


def _notification(workspace_id: UUID, sender_id: UUID) -> dict:
    return {"id": new_id(), "workspace_id": workspace_id, "sender_id": sender_id, "title": "Bare fan-out",
            "message": "scripts/bench", "type": "info", "broadcast": True, "created_at": utcnow(),
            "url": None, "data": None}


def fan_out_params(n: dict) -> dict:
    """fan_out_broadcast's parameters for notification `n`, by name. Each bare
    runner binds only the names the product declares for the statement, so
    this may name more. `critical` and `type_prefixes` are for the mute
    anti-join (a POST broadcast is not critical; a mute of "" covers every
    type, one of "info" the bench's only type); the member key range is the
    whole of it (ALL_MEMBERS): the bare statement writes every receipt at
    once, as one chunk as large as the workspace."""
    after, upto = ALL_MEMBERS
    return {"notification_id": n["id"], "workspace_id": n["workspace_id"], "sender_id": n["sender_id"],
            "created_at": n["created_at"], "critical": False, "type_prefixes": ["", n["type"]],
            "after_user_id": after, "upto_user_id": upto}


def _names(query: NamedQuery, params: dict) -> tuple[str, ...]:
    """The parameters `query` declares; all of them must be in `params`, which may hold more."""
    if missing := [name for name in query.params if name not in params]:
        raise RuntimeError(f"scripts/bench: the bare {query.name} lacks parameter(s) {', '.join(missing)}; "
                           f"add them to scripts/benchlib/fanout.py")
    return query.params


# The probes behind done_s (portable SQL; `?` becomes `$n` on Postgres). Member
# order is the database's own order of user ids, as the product's chunks use it.
# (Postgres 15 has no max(uuid); the ordered LIMIT 1 reads one entry of workspace_members_workspace_id_user_id_key.)
LAST_MEMBER = "SELECT user_id FROM workspace_members WHERE workspace_id = ? AND user_id <> ? ORDER BY user_id DESC LIMIT 1"
HAS_RECEIPT = "SELECT 1 FROM notification_receipts WHERE notification_id = ? AND user_id = ?"
COUNT_RECEIPTS = "SELECT count(*) FROM notification_receipts WHERE notification_id = ?"


def _numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's $1, $2, ..."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


class BarePostgres:
    def __init__(self, url: str, queries: dict[str, NamedQuery]):
        from pulsestack.db.postgres import compile_postgres

        self.url = url
        self.queries = queries
        self.notification = compile_postgres(queries["create_notification"].sql)
        self.fan_out = compile_postgres(queries["fan_out_broadcast"].sql)
        self.conn = None

    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.url)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def run(self, workspace_id: UUID, sender_id: UUID) -> tuple[float, int]:
        n = _notification(workspace_id, sender_id)
        params = fan_out_params(n)
        _names(self.queries["fan_out_broadcast"], params)  # a clear error if the statement takes a name not given
        # compile_postgres names the $n in order: only the names the statement uses are bound.
        (nsql, norder), (fsql, forder) = self.notification, self.fan_out
        nargs, fargs = [n[k] for k in norder], [params[k] for k in forder]
        started = time.perf_counter()
        async with self.conn.transaction():
            await self.conn.execute(nsql, *nargs)
            status = await self.conn.execute(fsql, *fargs)
        return time.perf_counter() - started, int(status.rsplit(" ", 1)[-1])

    # Probes for done_s and its checks, on the same connection (never while a bare run is under way).

    async def last_member(self, workspace_id: UUID, sender_id: UUID):
        return await self.conn.fetchval(_numbered(LAST_MEMBER), workspace_id, sender_id)

    async def has_receipt(self, notification_id: UUID, user_id) -> bool:
        return await self.conn.fetchval(_numbered(HAS_RECEIPT), notification_id, user_id) is not None

    async def count_receipts(self, notification_id: UUID) -> int:
        return await self.conn.fetchval(_numbered(COUNT_RECEIPTS), notification_id)


class BareSQLite:
    def __init__(self, path: Path, queries: dict[str, NamedQuery]):
        from pulsestack.db.sqlite import compile_sqlite, to_sqlite

        self.path = path
        self.to_sqlite = to_sqlite
        self.queries = queries
        self.notification = compile_sqlite(queries["create_notification"].sql)
        self.fan_out = compile_sqlite(queries["fan_out_broadcast"].sql)
        self.conn: sqlite3.Connection | None = None
        self.probe: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("busy_timeout = 5000", "foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL"):
            self.conn.execute(f"PRAGMA {pragma}")
        # The probes run on a worker thread (asyncio.to_thread), so a wait for a
        # lock never stalls the event loop that times the pairs.
        self.probe = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.probe.execute("PRAGMA busy_timeout = 5000")

    async def close(self) -> None:
        for conn in (self.conn, self.probe):
            if conn is not None:
                conn.close()

    async def _probe(self, sql: str, *params):
        def one():
            assert self.probe is not None
            row = self.probe.execute(sql, [self.to_sqlite(p) for p in params]).fetchone()
            return None if row is None else row[0]
        return await asyncio.to_thread(one)

    async def last_member(self, workspace_id: UUID, sender_id: UUID):
        return await self._probe(LAST_MEMBER, workspace_id, sender_id)

    async def has_receipt(self, notification_id: UUID, user_id) -> bool:
        return await self._probe(HAS_RECEIPT, notification_id, user_id) is not None

    async def count_receipts(self, notification_id: UUID) -> int:
        return await self._probe(COUNT_RECEIPTS, notification_id)

    def _bind(self, query: str, params: dict) -> dict:
        """Only the names the product declares for `query`, as SQLite stores them (lists as JSON, for json_each)."""
        return {k: self.to_sqlite(params[k]) for k in _names(self.queries[query], params)}

    async def run(self, workspace_id: UUID, sender_id: UUID) -> tuple[float, int]:
        raw = _notification(workspace_id, sender_id)
        n, params = self._bind("create_notification", raw), self._bind("fan_out_broadcast", fan_out_params(raw))
        conn = self.conn
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self.notification, n)
            count = conn.execute(self.fan_out, params).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return time.perf_counter() - started, count


POLL_S = 0.002  # the last-receipt probe
STATE_POLL_S = 0.005  # GET .../notifications/{id}, untimed, after the last receipt is seen
DONE_TIMEOUT_S = 300.0
PAIR_BASELINE_MIN_S = 1.0


def delivery_of(answer: dict) -> dict:
    """An answer's delivery; one without (the code before issue 14) answered after its commit: done."""
    return answer.get("delivery") or {"state": "done", "delivered": answer["recipient_count"]}


class Pair:
    """The other users' writes: the `pair` sender's direct send to its member, then the member's mark-read."""

    def __init__(self, base_url: str, seeded: Seeded):
        self.seeded = seeded
        timeout = aiohttp.ClientTimeout(total=60)
        self.sender = aiohttp.ClientSession(base_url, timeout=timeout,
                                            headers={"Authorization": f"Bearer {seeded.pair_sender_token}"})
        self.member = aiohttp.ClientSession(base_url, timeout=timeout,
                                            headers={"Authorization": f"Bearer {seeded.pair_member_token}"})

    async def close(self) -> None:
        await self.sender.close()
        await self.member.close()

    async def once(self) -> tuple[float, bool]:
        """(seconds, ok): send to last byte of the mark-read's answer."""
        body = {"title": "Pair", "message": "scripts/bench: a write beside the fan-out",
                "recipients": [str(self.seeded.pair_member_id)]}
        started = time.perf_counter()
        async with self.sender.post(f"/api/workspaces/{self.seeded.pair_slug}/notifications", json=body) as resp:
            data = await resp.read()
        if resp.status != 201:
            return time.perf_counter() - started, False
        nid = json.loads(data)["notification"]["id"]
        async with self.member.post(f"/api/notifications/{nid}/read") as resp:
            await resp.read()
        return time.perf_counter() - started, resp.status == 200

    async def loop(self, stop: asyncio.Event) -> tuple[list[float], int]:
        """Pairs one after another until `stop`; (latencies, failed)."""
        seconds, failed = [], 0
        while not stop.is_set():
            elapsed, ok = await self.once()
            seconds.append(elapsed)
            failed += not ok
        return seconds, failed

    async def for_seconds(self, duration: float) -> tuple[list[float], int]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(duration, stop.set)
        return await self.loop(stop)


async def _broadcast(http: aiohttp.ClientSession, bare, slug: str, size: int, last_member, pair: Pair | None = None) -> dict:
    """One broadcast through the server: post_s, done_s (see the module docstring), the 201's delivery state, and
    the pairs run meanwhile when `pair` is given."""
    body = {"title": "Bench broadcast", "message": "scripts/bench fan-out", "broadcast": True}
    stop = asyncio.Event()
    pairs = asyncio.create_task(pair.loop(stop)) if pair is not None else None
    try:
        started = time.perf_counter()
        async with http.post(f"/api/workspaces/{slug}/notifications", json=body) as resp:
            data = await resp.read()
        post_s = time.perf_counter() - started
        if resp.status != 201:
            raise RuntimeError(f"broadcast to {slug} answered {resp.status}: {data[:300]!r}")
        answer = json.loads(data)
        if answer["recipient_count"] != size:
            raise RuntimeError(f"broadcast to {slug} reached {answer['recipient_count']} members, expected {size}")
        delivery = delivery_of(answer)
        answered = delivery["state"]
        nid = UUID(answer["notification"]["id"])
        done_s = post_s
        if answered != "done":
            while not await bare.has_receipt(nid, last_member):
                if time.perf_counter() - started > DONE_TIMEOUT_S:
                    raise RuntimeError(f"broadcast to {slug}: no receipt for its last member after {DONE_TIMEOUT_S:.0f} s")
                await asyncio.sleep(POLL_S)
            done_s = time.perf_counter() - started
    finally:
        stop.set()
        pair_result = await pairs if pairs is not None else None
    # Untimed checks: every receipt is there, and the product says done.
    count = await bare.count_receipts(nid)
    if count != size:
        raise RuntimeError(f"broadcast to {slug}: {count} of {size} receipts when "
                           + ("its 201 said done" if answered == "done" else "its last member's receipt was committed")
                           + ("" if answered == "done" else "; the chunks are not committed in user-id order, so "
                              "scripts/benchlib/fanout.py's done probe must change"))
    state_done_s = post_s if answered == "done" else await _state_done(http, slug, nid, started)
    out = {"post_s": post_s, "done_s": done_s, "answered": answered, "delivered": delivery["delivered"],
           "state_done_s": state_done_s}
    if pair_result is not None:
        out["pair_s"], out["pair_failed"] = pair_result
    return out


async def _state_done(http: aiohttp.ClientSession, slug: str, nid: UUID, started: float) -> float:
    """Seconds from `started` until GET .../notifications/{nid} says delivery done."""
    while True:
        async with http.get(f"/api/workspaces/{slug}/notifications/{nid}") as resp:
            data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {slug}/notifications/{nid} answered {resp.status}: {data[:300]!r}")
        if delivery_of(json.loads(data))["state"] == "done":
            return time.perf_counter() - started
        if time.perf_counter() - started > DONE_TIMEOUT_S:
            raise RuntimeError(f"{slug}/notifications/{nid} still fanning out after {DONE_TIMEOUT_S:.0f} s")
        await asyncio.sleep(STATE_POLL_S)


async def measure(base_url: str, bare, seeded: Seeded, sizes: list[int], reps: int, log) -> dict:
    headers = {"Authorization": f"Bearer {seeded.sender_token}"}
    out: dict = {}
    await bare.open()
    pair = Pair(base_url, seeded)
    try:
        async with aiohttp.ClientSession(base_url, headers=headers, timeout=aiohttp.ClientTimeout(total=300)) as http:
            await pair.once()  # warm-up
            for size in sorted(sizes):
                out[size] = await _size(http, bare, pair if size == max(sizes) else None, seeded, size, reps, log)
    finally:
        await pair.close()
        await bare.close()
    return out


async def _size(http: aiohttp.ClientSession, bare, pair: Pair | None, seeded: Seeded, size: int, reps: int, log) -> dict:
    """One broadcast size: server and bare alternating; then, given `pair`, the other users' writes beside it."""
    slug, wid = seeded.fan_slugs[size], seeded.fan_ids[size]
    last = await bare.last_member(wid, seeded.sender_id)

    async def bare_once() -> float:
        seconds, count = await bare.run(wid, seeded.sender_id)
        if count != size:
            raise RuntimeError(f"bare fan-out wrote {count} receipts, expected {size}")
        return seconds

    await _broadcast(http, bare, slug, size, last)  # warm-up: plans, caches, pool
    await bare_once()
    server, direct = [], []
    for rep in range(reps):
        if rep % 2 == 0:
            server.append(await _broadcast(http, bare, slug, size, last))
            direct.append(await bare_once())
        else:
            direct.append(await bare_once())
            server.append(await _broadcast(http, bare, slug, size, last))
        await asyncio.sleep(0)
    f: dict[str, Any] = {"post_s": [x["post_s"] for x in server], "done_s": [x["done_s"] for x in server],
         "state_done_s": [x["state_done_s"] for x in server], "answered": [x["answered"] for x in server],
         "delivered": [x["delivered"] for x in server], "bare_s": direct}
    f.update(post_median_s=statistics.median(f["post_s"]), done_median_s=statistics.median(f["done_s"]),
             bare_median_s=statistics.median(direct))
    f["ratio"] = f["done_median_s"] / f["bare_median_s"]
    log(f"  fan-out {size:,}: 201 {f['post_median_s'] * 1000:.1f} ms, last receipt {f['done_median_s'] * 1000:.1f} ms, "
        f"bare {f['bare_median_s'] * 1000:.1f} ms, ratio {f['ratio']:.2f}, "
        f"fanning_out at the 201 in {f['answered'].count('fanning_out')} of {reps}")
    if pair is None:
        return f

    # Other users' writes: first with no fan-out running, then during `reps` more broadcasts of this size.
    baseline_s = max(PAIR_BASELINE_MIN_S, f["done_median_s"])
    quiet, quiet_failed = await pair.for_seconds(baseline_s)
    windows = [await _broadcast(http, bare, slug, size, last, pair) for _ in range(reps)]
    during = [s for w in windows for s in w["pair_s"]]
    p = f["pairs"] = {
        "baseline": summary(quiet), "baseline_failed": quiet_failed, "baseline_s": baseline_s,
        "during": summary(during), "during_failed": sum(w["pair_failed"] for w in windows),
        "windows": [{k: v for k, v in w.items() if k != "pair_s"} | {"pairs": len(w["pair_s"])} for w in windows],
    }
    log(f"  other users' writes beside fan-out {size:,}: p50 {p['during']['p50_ms'] or 0:.1f} ms, "
        f"p99 {p['during']['p99_ms'] or 0:.1f} ms, n {p['during']['n']}, failed {p['during_failed']}; "
        f"with no fan-out: p50 {p['baseline']['p50_ms'] or 0:.1f} ms, p99 {p['baseline']['p99_ms'] or 0:.1f} ms, "
        f"n {p['baseline']['n']}")
    return f

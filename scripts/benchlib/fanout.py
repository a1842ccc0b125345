"""Scenario 1: a broadcast to 1k / 10k / 100k members, through the server and bare.

Through the server: POST /api/workspaces/fan-<n>/notifications with
{"broadcast": true} as the workspace owner, timed from sending the request
to the last byte of the 201 (the service answers after its transaction has
committed, so the receipts are committed); the answer's recipient_count
must be n.

Bare, on the same database and schema, in the same run: the harness's own
driver connection (asyncpg / sqlite3, set up as the server's writer is:
WAL, synchronous=NORMAL, foreign_keys=ON) runs BEGIN; the product's
create_notification; the product's fan_out_broadcast INSERT ... SELECT
(the same named SQL, compiled by the product's own dialect compiler); COMMIT.
That is the least any implementation of the receipt pattern has to pay.

The two alternate (server first on even repetitions, bare first on odd), so
both see the same table growth and the same checkpoints; each size gets one
untimed warm-up of each. Medians are reported.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import time
from pathlib import Path
from uuid import UUID

import aiohttp

from pulsestack.db import NamedQuery
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes

from .seed import Seeded


def _notification(workspace_id: UUID, sender_id: UUID) -> dict:
    return {"id": new_id(), "workspace_id": workspace_id, "sender_id": sender_id, "title": "Bare fan-out",
            "message": "scripts/bench", "type": "info", "broadcast": True, "created_at": utcnow(),
            "url": None, "data": None}


class BarePostgres:
    def __init__(self, url: str, queries: dict[str, NamedQuery]):
        from pulsestack.db.postgres import compile_postgres

        self.url = url
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
        params = {"notification_id": n["id"], "workspace_id": workspace_id, "sender_id": sender_id, "created_at": n["created_at"],
                  "type_prefixes": type_prefixes(n["type"]), "critical": False}
        (nsql, norder), (fsql, forder) = self.notification, self.fan_out
        started = time.perf_counter()
        async with self.conn.transaction():
            await self.conn.execute(nsql, *(n[k] for k in norder))
            status = await self.conn.execute(fsql, *(params[k] for k in forder))
        return time.perf_counter() - started, int(status.rsplit(" ", 1)[-1])


class BareSQLite:
    def __init__(self, path: Path, queries: dict[str, NamedQuery]):
        from pulsestack.db.sqlite import compile_sqlite, to_sqlite

        self.path = path
        self.to_sqlite = to_sqlite
        self.notification = compile_sqlite(queries["create_notification"].sql)
        self.fan_out = compile_sqlite(queries["fan_out_broadcast"].sql)
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("busy_timeout = 5000", "foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL"):
            self.conn.execute(f"PRAGMA {pragma}")

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    async def run(self, workspace_id: UUID, sender_id: UUID) -> tuple[float, int]:
        n = {k: self.to_sqlite(v) for k, v in _notification(workspace_id, sender_id).items()}
        params = {"notification_id": n["id"], "workspace_id": n["workspace_id"], "sender_id": n["sender_id"],
                  "created_at": n["created_at"], "type_prefixes": self.to_sqlite(type_prefixes(n["type"])),
                  "critical": self.to_sqlite(False)}
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


async def _post(http: aiohttp.ClientSession, slug: str, expected: int) -> float:
    body = {"title": "Bench broadcast", "message": "scripts/bench fan-out", "broadcast": True}
    started = time.perf_counter()
    async with http.post(f"/api/workspaces/{slug}/notifications", json=body) as resp:
        data = await resp.read()
    elapsed = time.perf_counter() - started
    if resp.status != 201:
        raise RuntimeError(f"broadcast to {slug} answered {resp.status}: {data[:300]!r}")
    count = json.loads(data)["recipient_count"]
    if count != expected:
        raise RuntimeError(f"broadcast to {slug} reached {count} members, expected {expected}")
    return elapsed


async def measure(base_url: str, bare, seeded: Seeded, sizes: list[int], reps: int, log) -> dict:
    headers = {"Authorization": f"Bearer {seeded.sender_token}"}
    out: dict = {}
    await bare.open()
    try:
        async with aiohttp.ClientSession(base_url, headers=headers, timeout=aiohttp.ClientTimeout(total=300)) as http:
            for size in sorted(sizes):
                slug, wid = seeded.fan_slugs[size], seeded.fan_ids[size]

                async def bare_once() -> float:
                    seconds, count = await bare.run(wid, seeded.sender_id)
                    if count != size:
                        raise RuntimeError(f"bare fan-out wrote {count} receipts, expected {size}")
                    return seconds

                await _post(http, slug, size)  # warm-up: plans, caches, pool
                await bare_once()
                server, direct = [], []
                for rep in range(reps):
                    if rep % 2 == 0:
                        server.append(await _post(http, slug, size))
                        direct.append(await bare_once())
                    else:
                        direct.append(await bare_once())
                        server.append(await _post(http, slug, size))
                    await asyncio.sleep(0)
                med_server, med_bare = statistics.median(server), statistics.median(direct)
                out[size] = {"server_s": server, "bare_s": direct, "server_median_s": med_server,
                             "bare_median_s": med_bare, "ratio": med_server / med_bare}
                log(f"  fan-out {size:,}: server {med_server * 1000:.1f} ms, bare {med_bare * 1000:.1f} ms, "
                    f"ratio {med_server / med_bare:.2f}")
    finally:
        await bare.close()
    return out

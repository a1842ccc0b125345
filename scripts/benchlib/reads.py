"""Scenario 2: the unread count and the inbox page of the hot user (1,000
unread among ~1,000,000 receipts), in the database and over HTTP.

Database time: the product's own query functions (receipts.count_unread_by_workspace,
receipts.list_inbox) through its Database adapter, from the harness process,
timed around the call (so it includes the driver and, on SQLite, aiosqlite's
thread hop). On Postgres also EXPLAIN ANALYZE's server-side execution time.
HTTP time: GET /api/notifications/unread-count and GET
/api/notifications?limit=20 against the running server, one keep-alive
connection, one request at a time, timed from send to the last body byte.

Inbox depth d means the page reached by following next_cursor d times, as a
client scrolling down would; the cursor is the product's own.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from uuid import UUID

import aiohttp

from pulsestack.db import Database, NamedQuery
from pulsestack.queries import receipts

from .seed import Seeded
from .stats import summary

PAGE = 20
WARMUP = 20
EXPLAIN_RUNS = 30


def _index_names(plan: dict) -> list[str]:
    """Every 'Node Type using Index' in a Postgres JSON plan."""
    out = []
    if "Index Name" in plan:
        out.append(f"{plan['Node Type']} using {plan['Index Name']}")
    for child in plan.get("Plans", []):
        out += _index_names(child)
    return out


async def _explain_analyze(db: Database, query: NamedQuery, params: dict) -> dict:
    """Median server-side execution and planning time of `query` (Postgres)."""
    explain = NamedQuery.dynamic(f"bench_explain_{len(query.sql)}", "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query.sql, "many")
    execution, planning, plan = [], [], None
    for _ in range(EXPLAIN_RUNS):
        rows = await db.fetch_all(explain, **params)
        doc = next(iter(rows[0].values()))
        doc = json.loads(doc) if isinstance(doc, str) else doc
        execution.append(doc[0]["Execution Time"])
        planning.append(doc[0]["Planning Time"])
        plan = doc[0]["Plan"]
    execution.sort()
    planning.sort()
    return {"execution_ms": execution[len(execution) // 2], "planning_ms": planning[len(planning) // 2],
            "indexes": _index_names(plan or {})}


async def _plan(db: Database, query: NamedQuery, params: dict) -> dict:
    if db.dialect == "postgres":
        return await _explain_analyze(db, query, params)
    text = await db.explain(query, **params)
    return {"plan": text.replace("\n", "; ")}


async def _time(n: int, call) -> list[float]:
    for _ in range(min(WARMUP, n)):
        await call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


async def measure(db: Database, base_url: str, seeded: Seeded, depths: list[int], iterations: int,
                  expect_unread: int, log) -> dict:
    hot = seeded.hot_id
    result: dict = {"iterations": iterations}

    # -- unread count ------------------------------------------------------
    async def db_count():
        rows = await receipts.count_unread_by_workspace(db, [hot])
        assert sum(r.unread for r in rows) == expect_unread, rows

    count_query = db.queries["count_unread_by_workspace"]
    result["unread_db"] = summary(await _time(iterations, db_count))
    result["unread_plan"] = await _plan(db, count_query, {"user_ids": [hot]})

    headers = {"Authorization": f"Bearer {seeded.hot_token}"}
    async with aiohttp.ClientSession(base_url, headers=headers, connector=aiohttp.TCPConnector(limit=1)) as http:
        async def http_count():
            async with http.get("/api/notifications/unread-count") as resp:
                body = await resp.read()
                if resp.status != 200 or json.loads(body)["total"] != expect_unread:
                    raise RuntimeError(f"unread-count answered {resp.status}: {body[:200]!r}")

        result["unread_http"] = summary(await _time(iterations, http_count))
        log(f"  unread count: db p50 {result['unread_db']['p50_ms']:.3f} ms, http p50 {result['unread_http']['p50_ms']:.3f} ms")

        # -- inbox: walk next_cursor down to the deepest page asked for ------
        cursors: dict[int, str | None] = {0: None}
        befores: dict[int, tuple[datetime, UUID] | None] = {0: None}
        cursor = None
        for page in range(1, max(depths) + 1):
            async with http.get("/api/notifications", params={"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}) as resp:
                data = await resp.json()
            if resp.status != 200 or len(data["items"]) != PAGE or not data["next_cursor"]:
                raise RuntimeError(f"inbox page {page} answered {resp.status} with {len(data.get('items', []))} items")
            cursor = data["next_cursor"]
            if page in depths:
                last = data["items"][-1]
                cursors[page] = cursor
                befores[page] = (datetime.fromisoformat(last["created_at"]), UUID(last["id"]))

        result["inbox"] = {}
        for depth in depths:
            params = {"limit": str(PAGE), **({"cursor": cursors[depth]} if cursors[depth] else {})}

            async def http_page():
                async with http.get("/api/notifications", params=params) as resp:
                    body = await resp.read()
                    if resp.status != 200 or len(json.loads(body)["items"]) != PAGE:
                        raise RuntimeError(f"inbox answered {resp.status}: {body[:200]!r}")

            async def db_page():
                rows = await receipts.list_inbox(db, hot, limit=PAGE + 1, before=befores[depth])
                assert len(rows) == PAGE + 1

            query = receipts.inbox_query(workspace=False, status="all", type_=False, cursor=befores[depth] is not None,
                                         archived="exclude", after=False)
            qparams: dict = {"user_id": hot, "limit": PAGE + 1}
            if befores[depth] is not None:
                qparams["before_created_at"], qparams["before_id"] = befores[depth]
            entry = {"http": summary(await _time(iterations, http_page)),
                     "db": summary(await _time(iterations, db_page)),
                     "plan": await _plan(db, query, qparams)}
            result["inbox"][depth] = entry
            log(f"  inbox depth {depth}: db p50 {entry['db']['p50_ms']:.3f} ms, http p50 {entry['http']['p50_ms']:.3f} ms")
    return result

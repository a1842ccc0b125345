"""Scenario 2: the unread count and the inbox page of the hot user (1,000
unread among ~1,000,000 receipts), in the database and over HTTP.

The hot user's inbox is seeded as a used one (seed.py): two in three of its
read history archived, interleaved in time with the rest, and a seen
cut-off halfway through its unread receipts.

Unread count: the product's count_unread_by_workspace, which returns the
unread AND the unseen count per workspace (the unseen range runs because
seen_until is set); both are checked against the seed, in the database
and in GET /api/notifications/unread-count's `total` and `unseen.total`.

Inbox: the default page, archived excluded (GET /api/notifications with no
`archived`, and receipts.list_inbox with archived="exclude"), which the
product serves from the partial receipts_inbox_active_idx; every item
must come back unarchived. The plan of each depth is recorded, and whether
it names the intended index.

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
UNREAD_INDEX = "receipts_unread_idx"
INBOX_INDEX = "receipts_inbox_active_idx"  # the default inbox: archived excluded


def _index_names(plan: dict) -> list[str]:
    """Every 'Node Type [Backward] using Index' and every sort in a Postgres
    JSON plan, with how often it ran when that was not once."""
    out = []
    if "Index Name" in plan or "Sort" in plan["Node Type"]:
        backward = " Backward" if plan.get("Scan Direction") == "Backward" else ""
        name = f"{plan['Node Type']}{backward}" + (f" using {plan['Index Name']}" if "Index Name" in plan else "")
        loops = plan.get("Actual Loops", 1)
        out.append(name + ("" if loops == 1 else " (never executed)" if loops == 0 else f" ({loops} loops)"))
    for child in plan.get("Plans", []):
        out += _index_names(child)
    return out


def _removed(plan: dict) -> int:
    """Receipts the plan read and then dropped by a filter (per loop, as EXPLAIN reports them): what a
    walk that steps over archived receipts, or over other users' ones, would show."""
    own = (plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
           if plan.get("Relation Name") == "notification_receipts" else 0)
    return own + sum(_removed(child) for child in plan.get("Plans", []))


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
            "indexes": _index_names(plan or {}), "rows_removed": _removed(plan or {})}


async def _plan(db: Database, query: NamedQuery, params: dict, intended: str) -> dict:
    """The plan (Postgres: with EXPLAIN ANALYZE's times) and whether it names the `intended` index."""
    if db.dialect == "postgres":
        out = await _explain_analyze(db, query, params)
        out["uses_intended"] = any(f" using {intended}" in x for x in out["indexes"])
    else:
        text = (await db.explain(query, **params)).replace("\n", "; ")
        out = {"plan": text, "uses_intended": f"INDEX {intended} " in f"{text} "}
    out["intended"] = intended
    return out


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
                  expect_unread: int, expect_unseen: int, log) -> dict:
    hot = seeded.hot_id
    result: dict = {"iterations": iterations, "unseen": expect_unseen, "archived": seeded.hot_archived}

    # -- unread count: unread + unseen -------------------------------------
    async def db_count():
        rows = await receipts.count_unread_by_workspace(db, [hot])
        counts = (sum(r.unread for r in rows), sum(r.unseen for r in rows))
        assert counts == (expect_unread, expect_unseen), rows

    count_query = db.queries["count_unread_by_workspace"]
    result["unread_db"] = summary(await _time(iterations, db_count))
    result["unread_plan"] = await _plan(db, count_query, {"user_ids": [hot]}, UNREAD_INDEX)

    headers = {"Authorization": f"Bearer {seeded.hot_token}"}
    async with aiohttp.ClientSession(base_url, headers=headers, connector=aiohttp.TCPConnector(limit=1)) as http:
        async def http_count():
            async with http.get("/api/notifications/unread-count") as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"unread-count answered {resp.status}: {body[:200]!r}")
                data = json.loads(body)
                if (data["total"], data["unseen"]["total"]) != (expect_unread, expect_unseen):
                    raise RuntimeError(f"unread-count answered {body[:200]!r}, expected total {expect_unread}, "
                                       f"unseen total {expect_unseen}")

        result["unread_http"] = summary(await _time(iterations, http_count))
        log(f"  unread + unseen count: db p50 {result['unread_db']['p50_ms']:.3f} ms, "
            f"http p50 {result['unread_http']['p50_ms']:.3f} ms")

        # -- inbox, archived excluded (the default): walk next_cursor down --
        def check_page(status: int, data: dict, what: str) -> None:
            items = data.get("items", []) if isinstance(data, dict) else []
            if status != 200 or len(items) != PAGE:
                raise RuntimeError(f"{what} answered {status} with {len(items)} items")
            if any(item["archived"] for item in items):
                raise RuntimeError(f"{what} holds archived items, though the default inbox excludes them")

        cursors: dict[int, str | None] = {0: None}
        befores: dict[int, tuple[datetime, UUID] | None] = {0: None}
        cursor = None
        for page in range(1, max(depths) + 1):
            async with http.get("/api/notifications", params={"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}) as resp:
                data = await resp.json()
            check_page(resp.status, data, f"inbox page {page}")
            if not data["next_cursor"]:
                raise RuntimeError(f"inbox page {page} has no next_cursor")
            cursor = data["next_cursor"]
            if page in depths:
                last = data["items"][-1]
                cursors[page] = cursor
                befores[page] = (datetime.fromisoformat(last["created_at"]), UUID(last["id"]))

        result["inbox"] = {}
        for depth in depths:
            params = {"limit": str(PAGE), **({"cursor": cursors[depth]} if cursors[depth] else {})}

            async def http_page(params=params, depth=depth):
                async with http.get("/api/notifications", params=params) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"inbox answered {resp.status}: {body[:200]!r}")
                    check_page(resp.status, json.loads(body), f"inbox depth {depth}")

            async def db_page(before=befores[depth]):
                rows = await receipts.list_inbox(db, hot, limit=PAGE + 1, before=before, archived="exclude")
                assert len(rows) == PAGE + 1 and not any(r.archived for r in rows)

            query = receipts.inbox_query(workspace=False, status="all", type_=False, cursor=befores[depth] is not None,
                                         archived="exclude", after=False)
            qparams: dict = {"user_id": hot, "limit": PAGE + 1}
            if befores[depth] is not None:
                qparams["before_created_at"], qparams["before_id"] = befores[depth]
            entry = {"http": summary(await _time(iterations, http_page)),
                     "db": summary(await _time(iterations, db_page)),
                     "plan": await _plan(db, query, qparams, INBOX_INDEX)}
            result["inbox"][depth] = entry
            log(f"  inbox depth {depth} (archived excluded): db p50 {entry['db']['p50_ms']:.3f} ms, "
                f"http p50 {entry['http']['p50_ms']:.3f} ms"
                + ("" if entry["plan"]["uses_intended"] else f"; its plan does not use {INBOX_INDEX}"))
    if not result["unread_plan"]["uses_intended"]:
        log(f"  unread count: its plan does not use {UNREAD_INDEX}")
    return result

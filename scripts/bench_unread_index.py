#!/usr/bin/env python3
"""Measure the unread-count index: partial (user_id, workspace_id, is_read)
WHERE NOT is_read against composite (user_id, is_read, workspace_id), on
SQLite and Postgres, with 1,000,000 receipts and one user holding 1,000
unread (the others 10% unread). Run: .venv/bin/python scripts/bench_unread_index.py
Needs the Postgres server of scripts/test; creates and drops database idxbench.
The result chose the partial index (see sql/receipts.sql)."""
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid

import psycopg
N_USERS, PER_USER, HOT_UNREAD = 2000, 500, 1000
WS = [str(uuid.uuid4()) for _ in range(20)]
hot = str(uuid.uuid4())
def rows():
    rnd = random.Random(1)
    for i in range(HOT_UNREAD):
        yield (str(uuid.uuid4()), hot, WS[i % 20], 0)
    for u in range(N_USERS - 2):
        uid = str(uuid.uuid4())
        for j in range(PER_USER):
            yield (str(uuid.uuid4()), uid, WS[j % 20], 0 if rnd.random() < 0.1 else 1)
data = list(rows()); print(len(data), "receipts")
Q = "SELECT user_id, workspace_id, count(*) FROM r WHERE user_id IN (SELECT value FROM json_each(?)) AND NOT is_read GROUP BY user_id, workspace_id"
IDX = {"partial": "CREATE INDEX i ON r (user_id, workspace_id, is_read) WHERE NOT is_read",
       "composite": "CREATE INDEX i ON r (user_id, is_read, workspace_id)"}
def p(ts): ts=sorted(ts); return f"p50 {statistics.median(ts)*1000:.3f} ms  p99 {ts[int(len(ts)*0.99)]*1000:.3f} ms"
for name, ddl in IDX.items():
    path=f"{tempfile.gettempdir()}/pulsestack-idxbench-{name}.db"
    if os.path.exists(path): os.remove(path)
    c=sqlite3.connect(path); c.execute("CREATE TABLE r (id TEXT PRIMARY KEY, user_id TEXT, workspace_id TEXT, is_read INTEGER)")
    c.executemany("INSERT INTO r VALUES (?,?,?,?)", data); c.execute(ddl); c.commit(); c.execute("ANALYZE")
    ts=[]
    for _ in range(300):
        t=time.perf_counter(); c.execute(Q, (f'["{hot}"]',)).fetchall(); ts.append(time.perf_counter()-t)
    t=time.perf_counter(); c.execute("UPDATE r SET is_read = 1 WHERE user_id = ? AND NOT is_read", (hot,)); c.rollback(); upd=time.perf_counter()-t
    print("sqlite", name, p(ts), f"read-all-1000 {upd*1000:.1f} ms")
PGQ = "SELECT user_id, workspace_id, count(*) FROM r WHERE user_id = ANY(%s::uuid[]) AND NOT is_read GROUP BY user_id, workspace_id"
admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
admin.execute("DROP DATABASE IF EXISTS idxbench"); admin.execute("CREATE DATABASE idxbench")
c = psycopg.connect("postgresql://postgres@127.0.0.1:5432/idxbench", autocommit=True)
c.execute("CREATE TABLE r (id uuid PRIMARY KEY, user_id uuid, workspace_id uuid, is_read boolean)")
with c.cursor().copy("COPY r FROM STDIN") as cp:
    for row in data: cp.write_row((row[0], row[1], row[2], bool(row[3])))
for name, ddl in IDX.items():
    c.execute("DROP INDEX IF EXISTS i"); c.execute(ddl); c.execute("VACUUM ANALYZE r")
    size = c.execute("SELECT pg_size_pretty(pg_relation_size('i'))").fetchone()[0]
    ts=[]
    for _ in range(300):
        t=time.perf_counter(); c.execute(PGQ, ([hot],)).fetchall(); ts.append(time.perf_counter()-t)
    ex = c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + PGQ, ([hot],)).fetchone()[0][0]
    print("postgres", name, p(ts), "size", size, "server exec", ex["Execution Time"], "ms", ex["Plan"]["Plans"][0]["Node Type"] if "Plans" in ex["Plan"] else ex["Plan"]["Node Type"])
c.close(); admin.execute("DROP DATABASE idxbench")

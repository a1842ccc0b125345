"""Two real server processes on one Postgres database (docs/websocket.md,
"How it scales": events cross instances through LISTEN/NOTIFY, `changed`
and `refresh` frames too, and a listener that lost its connection recounts
and refreshes everyone once it is back).

Postgres only. Process A and process B are `python -m pulsestack serve`
subprocesses; B connects as its own login role, so the test can find B's
listener connection in pg_stat_activity and keep B from reconnecting for a
while (ALTER ROLE ... NOLOGIN) to make "a change while B's listener was
down" certain rather than a race against its 0.05 s reconnect.

Every wait is a bounded poll or a frame read with a hang guard; nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psycopg
import pytest
from helpers import (
    CHANGED_ITEM_KEYS,
    DB_PREFIX,
    HANG_GUARD_S,
    PASSWORD,
    SERVING_ON,
    Conn,
    PostgresServer,
    _pid_alive,
    clean_env,
    counts,
    expect_close,
    poll,
)
from psycopg import sql

from pulsestack.db.migrate import apply_migrations
from pulsestack.db.postgres_bus import CHANNEL, LISTENER_NAME

READY_LIMIT_S = 20.0
ROLE_PREFIX = DB_PREFIX + "role_"


@pytest.fixture
def shared_database(postgres_server: PostgresServer) -> Iterator[tuple[str, str, str, str]]:
    """A migrated database of its own and a login role for process B: (dbname, url, role, password)."""
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        for (old,) in admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (ROLE_PREFIX + "%",)).fetchall():
            pid = old[len(ROLE_PREFIX):].split("_")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):  # left behind by a killed run
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(old)))
    name = postgres_server.new_name()
    role = f"{ROLE_PREFIX}{postgres_server.run_id[len(DB_PREFIX):]}_b"
    password = secrets.token_hex(12)
    url = postgres_server.create(name)
    try:
        apply_migrations(url)
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}").format(sql.Identifier(role)))
        yield name, url, role, password
    finally:
        postgres_server.drop(name)
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def as_role(url: str, role: str, password: str) -> str:
    """`url` with another user and password."""
    parts = urlsplit(url)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


class Server:
    """`python -m pulsestack serve --no-migrate` on a port the system picks (`--port 0`: its
    `serving on` line names it); stderr goes to a file (no pipe to fill)."""

    def __init__(self, cwd: Path, name: str, database_url: str):
        self.base = ""  # known once the server has logged `serving on`
        self.log_path = cwd / f"{name}.log"
        self.terminated = False
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulsestack", "serve", "--no-migrate", "--port", "0"],
            cwd=cwd, env=clean_env(PULSESTACK_DATABASE_URL=database_url),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        """Wait for the `serving on` line, then poll /readyz until it answers 200 (bounded;
        readiness, not timing)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_LIMIT_S
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode} before it was ready:\n{self.log()}")
            if not self.base:
                serving = SERVING_ON.search(self.log())
                if serving is None:
                    await asyncio.sleep(0.05)
                    continue
                self.base = serving.group(1)
            try:
                async with http.get(self.base + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        pytest.fail(f"server did not answer /readyz within {READY_LIMIT_S} s:\n{self.log()}")

    def terminate(self) -> None:
        """One SIGTERM: a graceful shutdown. (A second one during the shutdown
        makes aiohttp's run_app exit at once, with status 1.)"""
        if not self.terminated and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    async def stop(self) -> int:
        """SIGTERM (unless sent already), wait; SIGKILL only as a last resort (and then fail)."""
        self.terminate()
        try:
            return await asyncio.to_thread(self.proc.wait, 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"server did not exit within 15 s of SIGTERM:\n{self.log()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


async def call(http: aiohttp.ClientSession, method: str, url: str, status: int, token: str | None = None,
               body: dict | None = None) -> dict | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None) if resp.status != 204 else None
        assert resp.status == status, f"{method} {url}: expected {status}, got {resp.status}: {data}"
        return data


async def ws_connect(http: aiohttp.ClientSession, base: str, token: str) -> Conn:
    ws = await http.ws_connect(base + "/ws")
    await ws.send_json({"type": "auth", "token": token})
    ready = await ws.receive_json(timeout=HANG_GUARD_S)
    assert ready["type"] == "ready", ready
    return Conn(ws, ready)


async def listeners_of(admin: asyncpg.Connection, dbname: str, role: str) -> list[int]:
    """Backends of `role` on `dbname` that are B's event-bus listener, found by
    the application_name the bus gives it (the pool's connections and the
    publisher's carry other names), once it has sent its LISTEN (before its
    first query a backend's `query` is empty)."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND application_name = $3"
        " AND query <> ''", dbname, role, LISTENER_NAME)
    return [r["pid"] for r in rows]


async def test_two_processes_share_changes_and_recover_from_a_lost_listener(shared_database, postgres_server, tmp_path):
    dbname, url_a, role, password = shared_database
    url_b = as_role(url_a, role, password)
    a = Server(tmp_path, "a", url_a)
    b = Server(tmp_path, "b", url_b)
    admin = await asyncpg.connect(postgres_server.url)
    observer = await asyncpg.connect(url_a)  # sees every NOTIFY on the channel
    notifies: list[dict] = []
    await observer.add_listener(CHANNEL, lambda conn, pid, channel, payload: notifies.append(json.loads(payload)))
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(a.wait_ready(http), b.wait_ready(http))
            A, B = a.base, b.base

            owner = await call(http, "POST", A + "/api/auth/register", 201,
                               body={"email": "owner@example.com", "password": PASSWORD})
            alice = await call(http, "POST", A + "/api/auth/register", 201,
                               body={"email": "alice@example.com", "password": PASSWORD})
            ws = await call(http, "POST", A + "/api/workspaces", 201, owner["token"], {"name": "Two Processes"})
            slug = ws["slug"]
            await call(http, "POST", f"{A}/api/workspaces/{slug}/members", 201, owner["token"],
                       {"email": "alice@example.com"})

            async def broadcast(title: str) -> dict:
                body = await call(http, "POST", f"{A}/api/workspaces/{slug}/notifications", 201, owner["token"],
                                  {"title": title, "broadcast": True})
                return body["notification"]

            async def http_counts(base: str) -> dict:
                return await call(http, "GET", base + "/api/notifications/unread-count", 200, alice["token"])

            on_b = await ws_connect(http, B, alice["token"])
            on_a = await ws_connect(http, A, alice["token"])
            assert on_b.ready["unread"] == counts({})

            async def b_listening() -> bool:
                return len(await listeners_of(admin, dbname, role)) == 1

            await poll(b_listening, "B's listener to connect")

            # 1. A change made through A reaches a client of B.
            n1 = await broadcast("first")
            assert (await on_b.until_notification(n1["id"]))["title"] == "first"
            assert await on_b.until_unread(1) == counts({ws["id"]: 1})
            assert await on_a.until_unread(1) == on_b.state
            assert await http_counts(B) == on_b.state

            # ... and one made through B reaches a client of A: its counts, and the receipt's state as
            # `changed`, as the HTTP API shows it.
            async def receipt_state(base: str, notification_id: str) -> dict:
                page = await call(http, "GET", base + "/api/notifications?status=all&archived=include", 200,
                                  alice["token"])
                [item] = [i for i in page["items"] if i["id"] == notification_id]
                return {key: item[key] for key in CHANGED_ITEM_KEYS}

            await call(http, "POST", f"{B}/api/notifications/{n1['id']}/read", 200, alice["token"])
            read_state = await receipt_state(A, n1["id"])
            assert read_state["is_read"] is True
            for conn in (on_a, on_b):
                assert await conn.until_type("changed") == {"type": "changed", "items": [read_state], "removed": []}
            assert await on_a.until_unread(0) == counts({})
            assert await on_b.until_unread(0) == counts({})

            # The other way: a change made through A reaches the socket on B as `changed`.
            await call(http, "POST", f"{A}/api/notifications/{n1['id']}/unread", 200, alice["token"])
            unread_state = await receipt_state(B, n1["id"])
            assert unread_state["is_read"] is False and unread_state["read_at"] is None
            for conn in (on_b, on_a):  # made through A
                assert await conn.until_type("changed") == {"type": "changed", "items": [unread_state], "removed": []}
                assert await conn.until_unread(1) == counts({ws["id"]: 1})
            await call(http, "POST", f"{A}/api/notifications/read-all", 200, alice["token"], {})
            for conn in (on_b, on_a):
                assert (await conn.until_type("changed"))["items"] == [await receipt_state(B, n1["id"])]
                assert await conn.until_unread(0) == counts({})

            # Leaving a workspace through A: `refresh` on B too, and to nobody else.
            side = await call(http, "POST", A + "/api/workspaces", 201, owner["token"], {"name": "Side"})
            await call(http, "POST", f"{A}/api/workspaces/{side['slug']}/members", 201, owner["token"],
                       {"email": "alice@example.com"})
            owner_on_b = await ws_connect(http, B, owner["token"])
            await call(http, "DELETE", f"{A}/api/workspaces/{side['slug']}/members/{alice['user']['id']}", 204,
                       alice["token"])
            for conn in (on_b, on_a):
                assert await conn.until_type("refresh") == {"type": "refresh"}
            await owner_on_b.ping()
            assert [f["type"] for f in owner_on_b.frames] == ["ready", "pong"]

            # 2. B's listener dies and cannot come back for now.
            await admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
            [pid] = await listeners_of(admin, dbname, role)
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

            async def b_not_listening() -> bool:
                return not await listeners_of(admin, dbname, role)

            await poll(b_not_listening, "B's listener to be gone")

            # A change meanwhile: its NOTIFY goes out (the observer sees it), and B cannot hear it.
            n2 = await broadcast("while B is deaf")
            await poll(lambda: any(n2["id"] in p.get("n", []) for p in notifies), "A's NOTIFY of the second send")

            # 3. B may log in again: its listener reconnects and B recounts every connected user, and tells
            # each to refresh their lists (changes may have been missed), before the new counts.
            mark = len(on_b.frames)
            await admin.execute(f'ALTER ROLE "{role}" LOGIN')
            await poll(b_listening, "B's listener to reconnect")
            assert await on_b.until_unread(1, strict=False) == counts({ws["id"]: 1})
            assert {"type": "refresh"} in on_b.frames[mark:], on_b.frames[mark:]
            assert await http_counts(B) == on_b.state
            assert await owner_on_b.until_type("refresh") == {"type": "refresh"}

            # 4. Changes flow to B again.
            n3 = await broadcast("after the reconnect")
            assert (await on_b.until_notification(n3["id"]))["title"] == "after the reconnect"
            assert await on_b.until_unread(2) == counts({ws["id"]: 2})
            assert await on_a.until_unread(2, strict=False) == on_b.state
            assert await http_counts(A) == await http_counts(B) == on_b.state

            # 5. Logging a token out through A closes that token's socket on B, not the other token's.
            second = await call(http, "POST", A + "/api/auth/login", 200,
                                body={"email": "alice@example.com", "password": PASSWORD})
            doomed = await ws_connect(http, B, second["token"])
            await call(http, "POST", A + "/api/auth/logout", 204, second["token"])
            assert await doomed.closed() == 4401
            await on_b.ping()

            # 6. SIGTERM: each process closes its websockets with 1001 and exits 0.
            a.terminate()
            b.terminate()
            assert await expect_close(on_a.ws) == 1001
            assert await expect_close(on_b.ws) == 1001
        codes = await asyncio.gather(a.stop(), b.stop())
        assert codes == [0, 0], f"exit codes {codes}\n--- A ---\n{a.log()}\n--- B ---\n{b.log()}"
        for server in (a, b):
            assert "Traceback" not in server.log(), server.log()
    finally:
        a.kill()
        b.kill()
        await observer.close()
        await admin.close()


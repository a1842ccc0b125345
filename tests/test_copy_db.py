"""`pulsestack copy-db`, run as a real subprocess between real SQLite files
and real Postgres databases (each test creates and drops its own).

The source is filled through the real HTTP API (create_app on an SQLite
file): users with passwords and sessions, a workspace with members and
seen_until, notifications with url and data, receipts read, unread and
archived, a mute, an idempotency key. After the copy, the app on the copy
answers the same reads with the same bytes, and old credentials still work.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from helpers import bearer, json_of, register, run_cli, sqlite_url

from pulsestack.app import create_app
from pulsestack.config import load_config
from pulsestack.db import open_database
from pulsestack.db.migrate import apply_migrations, apply_migrations_up_to

EMPTY_TOML = Path(__file__).with_name("empty.toml")
PASSWORD = "correct horse battery staple"
TABLES = ["users", "sessions", "workspaces", "workspace_members", "workspace_mutes", "notifications",
          "notification_receipts", "fanout_jobs", "idempotency_keys"]


def one_line_failure(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("pulsestack: error: copy-db: "), last
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    return last


def copy(tmp_path: Path, src: str, dst: str, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(tmp_path, "copy-db", "--from", src, "--to", dst, *extra)


def checksums(result: subprocess.CompletedProcess) -> dict[str, str]:
    """{table: "rows sha256:..."} from copy-db's stdout."""
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert list(lines) == TABLES
    return lines


@pytest.fixture
def pg(postgres_server):
    """A factory of new empty Postgres databases, dropped at the end."""
    names: list[str] = []

    def make() -> str:
        name = postgres_server.new_name()
        names.append(name)
        return postgres_server.create(name)

    yield make
    for name in names:
        postgres_server.drop(name)


async def serve(aiohttp_client, url: str):
    db = open_database(url)
    await db.connect()
    config = load_config(EMPTY_TOML, env={"PULSESTACK_DATABASE_URL": url})
    client = await aiohttp_client(create_app(config, db=db))
    return client, db


async def fill(aiohttp_client, url: str) -> dict:
    """Real data through the HTTP API; what the checks after the copy need."""
    client, db = await serve(aiohttp_client, url)
    try:
        alice, a = await register(client, "alice@example.com", PASSWORD)
        bob, b = await register(client, "bob@example.com", PASSWORD)
        carol, c = await register(client, "carol@example.com", PASSWORD)
        ws = await json_of(await client.post("/api/workspaces", json={"name": "Ops"}, headers=a), 201)
        slug = ws["slug"]
        for email in ("bob@example.com", "carol@example.com"):
            await json_of(await client.post(f"/api/workspaces/{slug}/members", json={"email": email}, headers=a), 201)
        await json_of(await client.put(f"/api/workspaces/{slug}/mute", json={"types": ["billing"]}, headers=c), 200)
        sent = []
        for i in range(7):
            payload = {"title": f"note {i} ✓", "message": "ünïcode & \"quotes\"", "broadcast": True,
                       "type": "billing.invoice" if i == 3 else "deploy",
                       "url": f"/deploys/{i}", "data": {"a": [1, None, True], "z": i, "nested": {"k": "v"}}}
            if i == 5:  # keys in an order jsonb would not keep (it stores shorter keys first); json does
                payload["data"] = {"zzz": 1, "a": {"y": 2, "b": None}}
            headers = {**a, "Idempotency-Key": f"key-{i}"}
            resp = await client.post(f"/api/workspaces/{slug}/notifications", json=payload, headers=headers)
            sent.append(await json_of(resp, 201))
        bob_inbox = await json_of(await client.get("/api/notifications", params={"limit": 100}, headers=b), 200)
        ids = [item["id"] for item in bob_inbox["items"]]
        await json_of(await client.post(f"/api/notifications/{ids[0]}/read", headers=b), 200)
        await json_of(await client.post(f"/api/notifications/{ids[1]}/archive", headers=b), 200)
        await json_of(await client.post("/api/notifications/seen", json={}, headers=c), 200)
        return {"slug": slug, "a": a, "b": b, "c": c, "alice": alice, "bob": bob, "carol": carol,
                "first_send": sent[0]}
    finally:
        await client.close()
        await db.close()


async def answers(aiohttp_client, url: str, seeded: dict) -> dict[str, bytes]:
    """The bytes of every read the copy must answer the same."""
    client, db = await serve(aiohttp_client, url)
    try:
        out: dict[str, bytes] = {}
        for who in ("a", "b", "c"):
            headers = seeded[who]
            for archived in ("exclude", "include", "only"):
                cursor, page = None, 0
                while True:  # several pages
                    params = {"limit": 2, "archived": archived, **({"cursor": cursor} if cursor else {})}
                    resp = await client.get("/api/notifications", params=params, headers=headers)
                    assert resp.status == 200
                    body = await resp.read()
                    out[f"inbox {who} {archived} {page}"] = body
                    cursor = (await resp.json())["next_cursor"]
                    page += 1
                    if cursor is None:
                        break
            resp = await client.get("/api/notifications/unread-count", headers=headers)
            out[f"unread {who}"] = await resp.read()
            out[f"me {who}"] = await (await client.get("/api/me", headers=headers)).read()
        cursor, page = None, 0
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            resp = await client.get(f"/api/workspaces/{seeded['slug']}/notifications", params=params, headers=seeded["a"])
            assert resp.status == 200
            out[f"history {page}"] = await resp.read()
            cursor = (await resp.json())["next_cursor"]
            page += 1
            if cursor is None:
                break
        out["members"] = await (await client.get(f"/api/workspaces/{seeded['slug']}/members", headers=seeded["a"])).read()
        out["mute"] = await (await client.get(f"/api/workspaces/{seeded['slug']}/mute", headers=seeded["c"])).read()
        return out
    finally:
        await client.close()
        await db.close()


def assert_same_answers(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """Byte for byte, `data` objects (keys in the order sent) included."""
    assert list(after) == list(before)
    for key, body in before.items():
        assert after[key] == body, key


@pytest.fixture
async def source(tmp_path, aiohttp_client) -> tuple[str, dict]:
    url = sqlite_url(tmp_path / "source.db")
    apply_migrations(url)
    return url, await fill(aiohttp_client, url)


async def test_round_trip_sqlite_postgres_sqlite_answers_the_same(tmp_path, source, pg, aiohttp_client):
    src, seeded = source
    before = await answers(aiohttp_client, src, seeded)
    to_pg = pg()
    first = copy(tmp_path, src, to_pg)
    sums = checksums(first)
    assert sums["notification_receipts"].startswith("13\t")  # 7 broadcasts to bob and carol, less the muted one
    assert "copied and verified" in first.stderr
    for table in TABLES:  # stderr is no terminal: a progress line per table (rows, time, rows/s)
        assert f"copy-db: {table}: " in first.stderr
    back = sqlite_url(tmp_path / "back.db")
    assert checksums(copy(tmp_path, to_pg, back)) == sums
    assert checksums(copy(tmp_path, src, back, "--verify-only")) == sums
    # Same dialect too.
    assert checksums(copy(tmp_path, to_pg, pg())) == sums

    for copied in (to_pg, back):
        assert_same_answers(before, await answers(aiohttp_client, copied, seeded))

    client, db = await serve(aiohttp_client, to_pg)
    try:
        # The old password logs in, the old token works.
        login = await client.post("/api/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
        token = (await json_of(login, 200))["token"]
        assert (await json_of(await client.get("/api/me", headers=bearer(token)), 200))["user"]["id"] == seeded["bob"]["id"]
        wrong = await client.post("/api/auth/login", json={"email": "bob@example.com", "password": "not it at all"})
        assert wrong.status == 401
        # An idempotent retry replays the first answer and sends nothing.
        payload = {"title": "note 0 ✓", "message": "ünïcode & \"quotes\"", "broadcast": True, "type": "deploy",
                   "url": "/deploys/0", "data": {"a": [1, None, True], "z": 0, "nested": {"k": "v"}}}
        resp = await client.post(f"/api/workspaces/{seeded['slug']}/notifications", json=payload,
                                 headers={**seeded["a"], "Idempotency-Key": "key-0"})
        assert resp.status == 201
        assert resp.headers.get("Idempotent-Replayed") == "true"
        assert await resp.json() == seeded["first_send"]
        history = await json_of(await client.get(f"/api/workspaces/{seeded['slug']}/notifications",
                                                 params={"limit": 100}, headers=seeded["a"]), 200)
        assert len(history["items"]) == 7
    finally:
        await client.close()
        await db.close()


async def test_a_non_empty_target_is_refused_and_left_unchanged(tmp_path, source, pg):
    src, _ = source
    target = pg()
    checksums(copy(tmp_path, src, target))
    with psycopg.connect(target) as conn:
        conn.execute("DELETE FROM idempotency_keys")  # still not empty: users, receipts...
        before = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    last = one_line_failure(copy(tmp_path, src, target), "not empty", "users", "recreate the target")
    assert "nothing was changed" in last
    with psycopg.connect(target) as conn:
        assert {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES} == before
    # An SQLite target with rows, too: byte for byte the same afterwards.
    sqlite_target = tmp_path / "full.db"
    checksums(copy(tmp_path, src, sqlite_url(sqlite_target)))
    content = sqlite_target.read_bytes()
    one_line_failure(copy(tmp_path, target, sqlite_url(sqlite_target)), "not empty")
    assert sqlite_target.read_bytes() == content


def test_the_target_is_migrated_to_the_sources_step_only(tmp_path, pg):
    src_path = tmp_path / "old.db"
    apply_migrations_up_to(sqlite_url(src_path), "0004_workspace_name_order")
    with sqlite3.connect(src_path) as conn:
        conn.execute("INSERT INTO users (id, email, password_hash, system_role, created_at) VALUES"
                     " ('0b3a8c1e-2d4f-4a6b-8c9d-0e1f2a3b4c5d', 'old@example.com', 'x', 'user', '2026-01-02T03:04:05.123456Z')")
    target = pg()
    result = copy(tmp_path, sqlite_url(src_path), target)
    assert result.returncode == 0, result.stderr
    sums = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert sums["users"].startswith("1\t") and "workspace_mutes" not in sums
    with psycopg.connect(target) as conn:
        steps = [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY migration_id")]
        assert steps[-1] == "0004_workspace_name_order"
        assert conn.execute("SELECT created_at::text FROM users").fetchone()[0] == "2026-01-02 03:04:05.123456+00"


def test_an_unreachable_database_is_one_line(tmp_path, sqlite_template):
    unreachable = "postgresql://postgres:secret@127.0.0.1:1/postgres"
    last = one_line_failure(copy(tmp_path, sqlite_url(sqlite_template), unreachable), "cannot open --to", "cannot connect")
    assert "secret" not in last
    one_line_failure(copy(tmp_path, unreachable, sqlite_url(tmp_path / "new.db")), "cannot open --from")
    assert not (tmp_path / "new.db").exists()
    one_line_failure(copy(tmp_path, sqlite_url(sqlite_template), sqlite_url(sqlite_template)), "the same database")


def test_a_source_that_is_not_pulsestack_is_one_line(tmp_path, pg):
    target = pg()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    one_line_failure(copy(tmp_path, sqlite_url(empty), target), "not a PulseStack database")
    random = tmp_path / "random.db"
    random.write_bytes(b"this is not an SQLite file at all" * 100)
    one_line_failure(copy(tmp_path, sqlite_url(random), target), "--from")
    one_line_failure(copy(tmp_path, sqlite_url(tmp_path / "missing.db"), target), "--from", "no such file")
    one_line_failure(copy(tmp_path, "mysql://x/y", target), "unknown database scheme")
    with psycopg.connect(target) as conn:  # nothing was created in the target
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


async def test_a_corrupted_row_is_detected_naming_the_table(tmp_path, source, pg):
    src, _ = source
    target = pg()
    checksums(copy(tmp_path, src, target))
    assert copy(tmp_path, src, target, "--verify-only").returncode == 0
    with psycopg.connect(target) as conn:
        conn.execute("UPDATE notification_receipts SET is_read = NOT is_read, read_at = CASE WHEN is_read THEN NULL"
                     " ELSE read_at END WHERE id = (SELECT id FROM notification_receipts ORDER BY id LIMIT 1)")
    one_line_failure(copy(tmp_path, src, target, "--verify-only"), "verification failed", "notification_receipts")
    with psycopg.connect(target) as conn:
        conn.execute("DELETE FROM workspace_mutes")
    last = one_line_failure(copy(tmp_path, src, target, "--verify-only"), "workspace_mutes", "rows: 1")
    assert "users" not in last


async def test_a_source_at_a_newer_step_is_refused(tmp_path, source, pg):
    src, _ = source
    with sqlite3.connect(tmp_path / "source.db") as conn:
        conn.execute("INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc)"
                     " VALUES ('f00', '0099_from_the_future', '2999-01-01 00:00:00')")
    target = pg()
    one_line_failure(copy(tmp_path, src, target), "0099_from_the_future", "newer")
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


async def test_an_interrupted_copy_is_refused_on_rerun_and_the_clean_up_works(tmp_path, source, pg, postgres_server,
                                                                               monkeypatch):
    """A copy stopped in the middle of a table (here: the writer fails on the
    fourth batch of receipts, as a kill or a lost connection would stop it)
    leaves the tables before it committed and that one empty; a rerun is
    refused with the clean-up; after the clean-up the rerun succeeds."""
    from pulsestack.db import copy as copy_module

    src, _ = source
    target = pg()
    monkeypatch.setattr(copy_module, "BATCH_ROWS", 3)
    real_write = copy_module.PostgresSide.write

    async def failing_write(self, table, columns, batches):
        if table != "notification_receipts":
            return await real_write(self, table, columns, batches)

        async def some_then_fail():
            n = 0
            async for batch in batches:
                n += 1
                if n == 4:
                    raise KeyboardInterrupt
                yield batch

        return await real_write(self, table, columns, some_then_fail())

    monkeypatch.setattr(copy_module.PostgresSide, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        await copy_module.copy_db(src, target, bar=False)
    with psycopg.connect(target) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert counts["users"] == 3 and counts["notifications"] == 7
    assert counts["notification_receipts"] == 0  # the table under way rolled back whole
    last = one_line_failure(copy(tmp_path, src, target), "not empty", "DROP DATABASE and CREATE DATABASE", "rerun")
    assert "notification_receipts" not in last  # only tables that hold rows are named
    # The documented clean-up: recreate the target, run again.
    name = target.rsplit("/", 1)[1]
    postgres_server.drop(name)
    postgres_server.create(name)
    assert checksums(copy(tmp_path, src, target))["notification_receipts"].startswith("13\t")

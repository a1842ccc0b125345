"""Fixtures: every data test runs twice, on SQLite and on PostgreSQL.

Each dialect is migrated once per run. SQLite: a template file that each
test copies (a file copy is cheap). Postgres: one database for the run,
created and migrated at the start and dropped at the end; after each test
every table is emptied (a few DELETEs take under a millisecond, where
cloning a database per test took ~0.6 s). The Postgres server is
$PULSESTACK_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
When it does not answer, the Postgres half is skipped with a loud warning,
except under CI=true, where every Postgres test fails instead.

On the test's database, `client` is the whole app on a real aiohttp test
server; `api` is the same with a RecordingHub (the `hub` fixture, which keeps
every hub call) and fails a test that provoked a 5xx. Helpers that are not
fixtures (PostgresServer among them) are in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import CHROMIUM_HINT, LiveServer, PostgresServer, RecordingHub, chromium_path, with_database
from psycopg import sql

from pulsestack.app import create_app
from pulsestack.config import Config, load_config
from pulsestack.db import Database, open_database
from pulsestack.db.migrate import apply_migrations

PG_SERVER_URL = os.environ.get("PULSESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
DIALECTS = ("sqlite", "postgres")

_postgres_problem: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> None:
    """argon2 with its production cost takes ~0.1 s a hash; the suite hashes hundreds."""
    from argon2 import PasswordHasher

    from pulsestack import security

    security.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    try:
        psycopg.connect(PG_SERVER_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL at {PG_SERVER_URL} is unreachable: {str(exc).strip().splitlines()[0]}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the Postgres half must run)", pytrace=False)
        if not _postgres_problem:
            _postgres_problem.append(reason)
        pytest.skip(f"POSTGRES HALF SKIPPED: {reason}")
    server = PostgresServer(PG_SERVER_URL)
    server.drop_leftovers()
    return server


def pytest_terminal_summary(terminalreporter) -> None:
    if _postgres_problem:
        terminalreporter.write_sep("!", "POSTGRES TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_postgres_problem[0], red=True)
        terminalreporter.write_line("Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start", red=True)


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The name of this run's migrated Postgres database."""
    name = f"{postgres_server.run_id}_db"
    url = postgres_server.create(name)
    try:
        apply_migrations(url)
        yield name
    finally:
        postgres_server.drop(name)


def empty_all_tables(url: str) -> None:
    """Delete every row of every PulseStack table (not yoyo's), whatever the foreign keys."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE %s AND tablename <> 'yoyo_lock'",
            ("\\_yoyo%",))]
        with conn.transaction():
            # replica role: no foreign-key triggers, so the order of the deletes does not matter.
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("SET LOCAL lock_timeout = '10s'")
            for table in tables:
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    apply_migrations(f"sqlite:///{path}")
    return path


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_database_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.new_name()
    url = server.create(name)
    try:
        yield url
    finally:
        server.drop(name)


@pytest.fixture
def database_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database with no rows, for this test alone."""
    if dialect == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = with_database(server.url, request.getfixturevalue("postgres_database"))
    try:
        yield url
    finally:
        empty_all_tables(url)


@pytest.fixture
def locale_database_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database that sorts text as a production database might:
    Postgres collated by the ICU locale en-US (case-insensitive first, then
    case), SQLite as SQLite always does."""
    if dialect == "sqlite":
        yield request.getfixturevalue("database_url")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.new_name()
    url = server.create(name, icu_locale="en-US")
    try:
        apply_migrations(url)
        yield url
    finally:
        server.drop(name)


@pytest.fixture
def config(database_url: str) -> Config:
    """Default settings (no config file, none of the caller's environment) on this test's database."""
    return load_config(Path(__file__).with_name("empty.toml"), env={"PULSESTACK_DATABASE_URL": database_url})


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with open_database(database_url) as database:
        yield database


@pytest.fixture
async def client(aiohttp_client, config: Config, db: Database):
    """A real aiohttp test server running the whole app on this test's database."""
    return await aiohttp_client(create_app(config, db=db))


@pytest.fixture
def hub() -> RecordingHub:
    return RecordingHub()


@pytest.fixture
async def api(aiohttp_client, config, db, hub):
    """A real test server on this test's database, with the recording hub; no response may be a 5xx."""
    app = create_app(config, db=db, hub=hub)
    server_errors: list[str] = []

    async def watch(request, response) -> None:
        if response.status >= 500:
            server_errors.append(f"{request.method} {request.path_qs} -> {response.status}")

    app.on_response_prepare.append(watch)
    client = await aiohttp_client(app)
    yield client
    assert not server_errors, f"the server answered 5xx: {server_errors}"


# --- browser tests (tests/test_browser_*.py) ----------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by playwright (sync API; the browser tests are plain functions).
    Without chromium or playwright the browser tests are skipped with the way to get them, except
    under CI=true, where they fail: CI must run them."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        path, problem = None, "playwright is not installed (scripts/test installs the test extras)"
    else:
        problem = CHROMIUM_HINT
    if path is None:
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: the browser tests must run)", pytrace=False)
        pytest.skip(problem)
    with sync_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """`pulsestack serve` on this test's migrated database (both dialects), on a port of its own."""
    server = LiveServer(tmp_path, database_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""The `pulsestack` command, run as a real subprocess (`python -m pulsestack`).

Each command runs in a tmp_path (so no ./config.toml is picked up) with the
caller's PULSESTACK_* variables removed. A failure a user can fix exits
non-zero with one `pulsestack: ...` line on stderr, never a traceback; log
lines also go to stderr, so error cases look at the last line.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Server, clean_env, free_port, http_status, run_cli, sqlite_url

APP_TABLES = {"users", "sessions", "workspaces", "workspace_members", "notifications", "notification_receipts"}
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/postgres"
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "sqlite"  # the same steps as postgres/


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_failure(result: subprocess.CompletedProcess, *needles: str, only_line: bool = False) -> str:
    """Non-zero exit, no traceback, a last stderr line `pulsestack: ...` naming every needle."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = stderr_lines(result)
    assert lines, "nothing on stderr"
    if only_line:
        assert len(lines) == 1, f"expected exactly one stderr line, got:\n{result.stderr}"
    last = lines[-1]
    assert last.startswith("pulsestack: "), last
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    return last


def tables_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def users_in(path: Path) -> list[dict]:
    conn = sqlite3.connect(path)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM users ORDER BY email")]
    finally:
        conn.close()


# --- bad configuration: one line, no traceback ------------------------------


@pytest.mark.parametrize("command", [["migrate"], ["serve"], ["create-admin", "--email", "a@example.com", "--password-stdin"]])
def test_unknown_database_scheme_is_one_line(tmp_path, command):
    result = run_cli(tmp_path, *command, env=clean_env(PULSESTACK_DATABASE_URL="mysql://root@localhost/pulse"))
    line = assert_one_line_failure(result, "database.url", "mysql", only_line=True)
    assert "configuration" in line


def test_unreadable_config_file_is_one_line(tmp_path):
    result = run_cli(tmp_path, "--config", "/nonexistent.toml", "migrate")
    assert_one_line_failure(result, "/nonexistent.toml", only_line=True)


def test_config_file_from_pulsestack_config_that_is_missing_is_one_line(tmp_path):
    missing = tmp_path / "missing.toml"
    result = run_cli(tmp_path, "migrate", env=clean_env(PULSESTACK_CONFIG=str(missing)))
    assert_one_line_failure(result, str(missing), only_line=True)


def test_port_not_a_number_is_one_line(tmp_path):
    result = run_cli(tmp_path, "serve", env=clean_env(PULSESTACK_PORT="abc", PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "x.db")))
    assert_one_line_failure(result, "server.port", "PULSESTACK_PORT", "abc", only_line=True)
    assert not (tmp_path / "x.db").exists()


def test_serve_port_option_not_a_number_is_one_line(tmp_path):
    result = run_cli(tmp_path, "serve", "--port", "abc", env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "x.db")))
    assert_one_line_failure(result, "server.port", "abc", only_line=True)


def test_invalid_toml_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = = 1\n", encoding="utf-8")
    result = run_cli(tmp_path, "--config", str(bad), "migrate")
    assert_one_line_failure(result, str(bad), "TOML", only_line=True)


def test_unknown_key_in_config_file_is_one_line(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text("[server]\nprot = 9000\n", encoding="utf-8")
    result = run_cli(tmp_path, "--config", str(path), "migrate")
    assert_one_line_failure(result, "server.prot", only_line=True)


# --- migrate ----------------------------------------------------------------


def test_migrate_creates_tables_is_idempotent_and_rolls_back(tmp_path):
    db = tmp_path / "x.db"
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db))

    first = run_cli(tmp_path, "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert APP_TABLES <= tables_in(db)

    again = run_cli(tmp_path, "migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert APP_TABLES <= tables_in(db)

    steps = [p for p in MIGRATIONS.glob("*.sql") if not p.stem.endswith(".rollback")]
    last_steps = run_cli(tmp_path, "migrate", "--rollback", str(len(steps) - 1), env=env)
    assert last_steps.returncode == 0, last_steps.stderr
    assert "idempotency_keys" not in tables_in(db)  # every step after 0001 undone
    assert "users" in tables_in(db)  # 0001 kept

    rollback = run_cli(tmp_path, "migrate", "--rollback", "99", env=env)
    assert rollback.returncode == 0, rollback.stderr
    assert "Traceback" not in rollback.stderr
    assert not APP_TABLES & tables_in(db)

    # And forward again: the rollback left yoyo's bookkeeping consistent.
    forward = run_cli(tmp_path, "migrate", env=env)
    assert forward.returncode == 0, forward.stderr
    assert APP_TABLES <= tables_in(db)


def test_migrate_rollback_of_more_steps_than_are_applied_says_so(tmp_path, empty_database_url):
    env = clean_env(PULSESTACK_DATABASE_URL=empty_database_url)
    assert run_cli(tmp_path, "migrate", env=env).returncode == 0

    steps = sorted((p.stem for p in MIGRATIONS.glob("*.sql") if not p.stem.endswith(".rollback")), reverse=True)
    more = run_cli(tmp_path, "migrate", "--rollback", str(len(steps) + 2), env=env)
    assert more.returncode == 0, more.stderr
    [line] = stderr_lines(more)
    assert f" WARNING pulsestack migrate: only {len(steps)} migration steps are applied; rolled back {len(steps)} " in line, line
    assert ", ".join(steps) in line

    nothing = run_cli(tmp_path, "migrate", "--rollback", "1", env=env)
    assert nothing.returncode == 0, nothing.stderr
    [line] = stderr_lines(nothing)
    assert " WARNING pulsestack migrate: nothing to roll back: no migration steps are applied " in line, line

    # Every step was undone: migrate applies them all again.
    again = run_cli(tmp_path, "migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert f" migrate: applied {', '.join(reversed(steps))} " in again.stderr


def test_migrate_status_lists_each_step_applied_or_pending(tmp_path, empty_database_url):
    env = clean_env(PULSESTACK_DATABASE_URL=empty_database_url)
    steps = sorted(p.stem for p in MIGRATIONS.glob("*.sql") if not p.stem.endswith(".rollback"))

    fresh = run_cli(tmp_path, "migrate", "--status", env=env)
    assert fresh.returncode == 0, fresh.stderr
    *lines, total = fresh.stdout.splitlines()
    assert lines == [f"{step}  pending" for step in steps]
    assert total.startswith(f"0 applied, {len(steps)} pending on ")

    assert run_cli(tmp_path, "migrate", env=env).returncode == 0
    assert run_cli(tmp_path, "migrate", "--rollback", "2", env=env).returncode == 0
    partial = run_cli(tmp_path, "migrate", "--status", env=env)
    assert partial.returncode == 0, partial.stderr
    assert "Traceback" not in partial.stderr
    *lines, total = partial.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == steps
    for line in lines[:-2]:
        assert re.fullmatch(r"\S+  applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", line), line
    assert lines[-2:] == [f"{steps[-2]}  pending", f"{steps[-1]}  pending"]
    assert total.startswith(f"{len(steps) - 2} applied, 2 pending on ")

    # --status changed nothing: migrate applies exactly the two pending steps.
    again = run_cli(tmp_path, "migrate", env=env)
    assert f" migrate: applied {steps[-2]}, {steps[-1]} " in again.stderr


def test_migrate_status_of_a_missing_sqlite_file_is_all_pending_and_creates_no_file(tmp_path):
    db = tmp_path / "missing.db"
    result = run_cli(tmp_path, "migrate", "--status", env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    assert result.returncode == 0, result.stderr
    assert all(line.endswith("  pending") for line in result.stdout.splitlines()[:-1])
    assert list(tmp_path.iterdir()) == []


def test_migrate_status_against_unreachable_postgres_is_one_line(tmp_path):
    result = run_cli(tmp_path, "migrate", "--status", env=clean_env(PULSESTACK_DATABASE_URL=UNREACHABLE_POSTGRES))
    assert_one_line_failure(result, "127.0.0.1", "migration status", only_line=True)


def test_migrate_status_and_rollback_together_is_a_usage_error(tmp_path):
    result = run_cli(tmp_path, "migrate", "--status", "--rollback", "1",
                     env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "x.db")))
    assert result.returncode == 2
    assert "not allowed with" in result.stderr


def test_migrate_reads_the_url_from_a_config_file(tmp_path):
    db = tmp_path / "from-file.db"
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url(db)}"\n', encoding="utf-8")
    result = run_cli(tmp_path, "--config", str(cfg), "migrate")
    assert result.returncode == 0, result.stderr
    assert APP_TABLES <= tables_in(db)


def test_migrate_against_unreachable_postgres_is_one_line(tmp_path):
    result = run_cli(tmp_path, "migrate", env=clean_env(PULSESTACK_DATABASE_URL=UNREACHABLE_POSTGRES))
    assert_one_line_failure(result, "127.0.0.1")


def test_migrate_does_not_print_the_database_password(tmp_path):
    url = "postgresql://postgres:hunter2secret@127.0.0.1:1/postgres"
    result = run_cli(tmp_path, "migrate", env=clean_env(PULSESTACK_DATABASE_URL=url))
    assert_one_line_failure(result)
    assert "hunter2secret" not in result.stderr + result.stdout


# --- create-admin -------------------------------------------------------------


@pytest.fixture
def migrated_db(tmp_path: Path) -> Path:
    db = tmp_path / "admin.db"
    result = run_cli(tmp_path, "migrate", env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    assert result.returncode == 0, result.stderr
    return db


def test_create_admin_creates_an_admin_with_an_argon2_hash(tmp_path, migrated_db):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(migrated_db))
    password = "correct horse battery"
    result = run_cli(tmp_path, "create-admin", "--email", "Admin@Example.COM", "--password-stdin",
                     env=env, stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "admin@example.com" in result.stdout
    assert password not in result.stdout + result.stderr

    rows = users_in(migrated_db)
    assert len(rows) == 1
    row = rows[0]
    assert row["email"] == "admin@example.com"
    assert row["system_role"] == "admin"
    assert row["password_hash"].startswith("$argon2id$")
    assert password not in row["password_hash"]


def test_create_admin_promotes_an_existing_user_without_asking_for_a_password(tmp_path, migrated_db):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(migrated_db))
    created = run_cli(tmp_path, "create-admin", "--email", "ann@example.com", "--password-stdin",
                      env=env, stdin="first password\n")
    assert created.returncode == 0, created.stderr
    with sqlite3.connect(migrated_db) as conn:
        conn.execute("UPDATE users SET system_role = 'user' WHERE email = 'ann@example.com'")
    before = users_in(migrated_db)[0]
    assert before["system_role"] == "user"

    # No --password-stdin and stdin not a terminal: a new account would be
    # refused, an existing one is promoted without reading a password.
    promoted = run_cli(tmp_path, "create-admin", "--email", " ANN@example.com ", env=env)
    assert promoted.returncode == 0, promoted.stderr
    assert "Traceback" not in promoted.stderr
    assert "ann@example.com" in promoted.stdout

    rows = users_in(migrated_db)
    assert len(rows) == 1
    after = rows[0]
    assert after["system_role"] == "admin"
    assert after["id"] == before["id"]
    assert after["password_hash"] == before["password_hash"]


def test_create_admin_rejects_a_short_password(tmp_path, migrated_db):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(migrated_db))
    result = run_cli(tmp_path, "create-admin", "--email", "bob@example.com", "--password-stdin",
                     env=env, stdin="short7c\n")
    assert_one_line_failure(result, "password", only_line=True)
    assert users_in(migrated_db) == []


def test_create_admin_without_a_terminal_or_password_stdin_is_one_clear_line(tmp_path, migrated_db):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(migrated_db))
    result = run_cli(tmp_path, "create-admin", "--email", "carol@example.com", env=env, stdin="a password\n")
    line = assert_one_line_failure(result, "--password-stdin", only_line=True)
    assert "terminal" in line
    assert users_in(migrated_db) == []


def test_create_admin_with_empty_stdin_is_one_line(tmp_path, migrated_db):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(migrated_db))
    result = run_cli(tmp_path, "create-admin", "--email", "dan@example.com", "--password-stdin", env=env, stdin="")
    assert_one_line_failure(result, "password", only_line=True)
    assert users_in(migrated_db) == []


def test_create_admin_rejects_an_invalid_email(tmp_path, migrated_db):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(migrated_db))
    result = run_cli(tmp_path, "create-admin", "--email", "not-an-email", "--password-stdin",
                     env=env, stdin="long enough password\n")
    assert_one_line_failure(result, "email", only_line=True)
    assert users_in(migrated_db) == []


def test_create_admin_on_an_unmigrated_database_is_one_line(tmp_path):
    # A user can fix this (run `pulsestack migrate`): one line, no traceback.
    db = tmp_path / "unmigrated.db"
    sqlite3.connect(db).close()  # an empty database file, no tables
    result = run_cli(tmp_path, "create-admin", "--email", "frank@example.com", "--password-stdin",
                     env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)), stdin="long enough password\n")
    assert_one_line_failure(result, "pulsestack migrate")


def test_create_admin_on_a_missing_sqlite_file_is_one_line_and_creates_no_file(tmp_path):
    db = tmp_path / "missing.db"
    result = run_cli(tmp_path, "create-admin", "--email", "grace@example.com", "--password-stdin",
                     env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)), stdin="long enough password\n")
    assert_one_line_failure(result, str(db), "does not exist", "pulsestack migrate", only_line=True)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a -wal or -shm beside it


def test_create_admin_against_unreachable_postgres_is_one_line(tmp_path):
    result = run_cli(tmp_path, "create-admin", "--email", "eve@example.com", "--password-stdin",
                     env=clean_env(PULSESTACK_DATABASE_URL=UNREACHABLE_POSTGRES), stdin="long enough password\n")
    assert_one_line_failure(result)


# --- serve --------------------------------------------------------------------


def test_serve_migrates_answers_health_checks_and_stops_on_sigterm(tmp_path):
    db = tmp_path / "serve.db"
    server = Server(tmp_path, "--port", "0", env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    try:
        base = server.serving_base()
        server.wait_ready(base)
        assert http_status(base + "/readyz") == 200
        assert APP_TABLES <= tables_in(db)
        code, err = server.stop()
    finally:
        server.kill()
    assert code == 0, err
    assert "Traceback" not in err


def test_serve_port_option_wins_over_the_environment(tmp_path):
    db = tmp_path / "serve.db"
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db), PULSESTACK_PORT="1")
    server = Server(tmp_path, "--port", "0", env=env)  # 0: a free port the system picks
    try:
        base = server.serving_base()
        assert not base.endswith(":1")
        server.wait_ready(base)
        code, err = server.stop()
    finally:
        server.kill()
    assert code == 0, err


def test_serve_no_migrate_on_a_missing_sqlite_file_is_one_line_and_creates_no_file(tmp_path):
    db = tmp_path / "nomigrate.db"
    result = run_cli(tmp_path, "serve", "--no-migrate", "--port", "0",
                     env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    assert_one_line_failure(result, str(db), "does not exist", "pulsestack migrate")
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that another socket listens on, for as long as the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


def test_serve_on_a_port_in_use_is_one_line_before_anything_is_migrated(tmp_path):
    db = tmp_path / "busy.db"
    with taken_port() as port:
        result = run_cli(tmp_path, "serve", "--port", str(port), env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    line = assert_one_line_failure(result, only_line=True)
    assert line == f"pulsestack: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.returncode == 1
    assert not db.exists(), "the database was opened (migrated) although the server could not listen"


def test_serve_on_a_metrics_port_in_use_is_one_line_before_anything_is_migrated(tmp_path):
    db = tmp_path / "busy.db"
    with taken_port() as metrics_port:
        result = run_cli(tmp_path, "serve", "--port", "0",
                         env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db), PULSESTACK_METRICS_PORT=str(metrics_port)))
    line = assert_one_line_failure(result, only_line=True)
    assert line == f"pulsestack: error: cannot listen on 127.0.0.1:{metrics_port} (metrics.port): Address already in use"
    assert result.returncode == 1
    assert not db.exists(), "the database was opened (migrated) although the server could not listen"


def test_serve_with_a_metrics_port_serves_metrics_there_only_and_stops_on_sigterm(tmp_path):
    metrics_port = free_port()  # (metrics.port 0 means "on the main port")
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "serve.db"), PULSESTACK_METRICS_PORT=str(metrics_port))
    server = Server(tmp_path, "--port", "0", env=env)
    try:
        line = server.wait_for_line(" serving on ")
        server.serving_base()
        port = server.port
        # Both listeners answer once `serving on` is written: no polling.
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        assert 'pulsestack_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
        assert "process_cpu_seconds_total" in text
        assert http_status(f"http://127.0.0.1:{port}/metrics") == 404
        assert http_status(f"http://127.0.0.1:{metrics_port}/healthz") == 404
        code, err = server.stop()
    finally:
        server.kill()
    assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in err
    assert f"serving on http://127.0.0.1:{port} " in line
    assert code == 0, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith(" INFO pulsestack stopped")


def test_serve_says_serving_on_once_the_port_answers(tmp_path):
    db = tmp_path / "serve.db"
    server = Server(tmp_path, "--port", "0", env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    try:
        line = server.wait_for_line(" serving on ")
        server.serving_base()
        port = server.port
        # Once, at once: no polling. The line means the port answers now.
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        code, err = server.stop()
    finally:
        server.kill()
    assert f" INFO pulsestack serving on http://127.0.0.1:{port} (database {sqlite_url(db)})" in line
    assert code == 0, err
    lines = err.splitlines()
    assert [i for i, l in enumerate(lines) if " migrate: applied " in l] < [i for i, l in enumerate(lines) if " serving on " in l]


def test_serve_no_migrate_on_an_unopenable_sqlite_file_is_one_line(tmp_path):
    # The directory does not exist: the database cannot be opened at startup.
    db = tmp_path / "no-such-dir" / "x.db"
    result = run_cli(tmp_path, "serve", "--no-migrate", "--port", "0",
                     env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(db)))
    assert_one_line_failure(result, str(db))


def test_serve_against_unreachable_postgres_is_one_line(tmp_path):
    # serve migrates first; an unreachable database fails that step cleanly.
    result = run_cli(tmp_path, "serve", "--port", "0",
                     env=clean_env(PULSESTACK_DATABASE_URL=UNREACHABLE_POSTGRES))
    assert_one_line_failure(result, "127.0.0.1")


def test_an_idle_server_stops_on_sigterm_on_both_databases(live_server):
    """Postgres adds the event bus's connections and the pool to what shutdown closes."""
    assert http_status(live_server.base + "/readyz") == 200
    server = live_server.server
    assert server is not None
    code, err = server.stop()  # SIGTERM; fails past a 10 s hang guard
    assert code == 0, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith(" INFO pulsestack stopped"), err

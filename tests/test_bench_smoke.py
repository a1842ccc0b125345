"""scripts/bench at a tiny size, so the benchmark harness cannot rot.

Runs the harness (scripts/benchlib, what scripts/bench executes after
setting up .venv) with --tiny on each dialect, writing its report to a temp
path, and checks that it exits 0, cleans up after itself, and that the
report holds every row and every target scripts/bench checks (docs/design.md,
"Performance targets"). Benchmarks are not tests: nothing here looks at a
single timing (the timeout is a hang guard).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 180

ROWS = [
    "| 1 broadcast fan-out | POST → 201 / POST → last receipt committed, medians",
    "| 1 other users' writes | direct send + mark-read p50 / p99 (n), during the fan-out",
    "| 1 other users' writes | direct send + mark-read p50 / p99 (n), no fan-out running",
    "| 2 unread count | unread + unseen: database p50 / p99",
    "| 2 unread count | unread + unseen: HTTP p50 / p99",
    "| 2 inbox page of 20 | depth 0 pages, archived excluded",
    "| 2 inbox page of 20 | depth 2 pages, archived excluded",
    "| 2 inbox page of 20 | depth 5 pages, archived excluded",
    "| 3 websocket push | POST sent → unread frame p50 / p99 / max; lost",
    "| 4 memory per idle websocket | server VmRSS delta / N",
    "| 5 HTTP throughput | unread-count with auth vs bare aiohttp hello",
]
TARGETS = [
    "Broadcast to 100,000 members, POST → 201",
    "Broadcast to 100,000 members, POST → last receipt committed",
    "Other users' writes (direct send + mark-read) during a 100,000-member fan-out",
    "Broadcast to ≤ 5,000 members, POST → 201 with every receipt committed",
    "Unread count, 1,000 unread among 1,000,000 receipts, unseen included",
    "Inbox page of 20 at 1,000,000 receipts, any depth, archived excluded",
    "10,000 websockets, broadcast",
    "Memory per idle authenticated websocket",
    "GET /api/notifications/unread-count req/s vs bare hello",
]


def test_scripts_bench_is_an_executable_entry_point():
    script = ROOT / "scripts" / "bench"
    assert os.access(script, os.X_OK)
    assert "benchlib" in script.read_text()


def test_bench_runs_at_a_tiny_size(dialect: str, request: pytest.FixtureRequest, tmp_path: Path):
    args = [sys.executable, "-m", "benchlib", "--tiny", "--dialect", dialect, "--output", str(tmp_path / "performance.md"),
            "--json", str(tmp_path / "results.json")]
    if dialect == "postgres":
        server = request.getfixturevalue("postgres_server")  # skips loudly (or fails under CI) without Postgres
        # The suite's prefix: a database left by a killed run is dropped by the next one.
        database = f"{server.run_id}_bench"
        args += ["--postgres-url", server.url, "--pg-database", database]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSESTACK_")}
    env["PYTHONPATH"] = str(ROOT / "scripts") + os.pathsep + env.get("PYTHONPATH", "")
    scratch = tmp_path / "scratch"  # the harness's temp directory goes here (TMPDIR)
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-4000:]

    report = (tmp_path / "performance.md").read_text()
    name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[dialect]
    assert f"## {name}" in report
    for row in ROWS:
        assert row in report, f"missing row {row!r} in:\n{report}"
    for target in TARGETS:
        assert any(line.startswith(f"| {target}") and f"| {name} |" in line for line in report.splitlines()), target
    # The hot user's inbox is a used one (archived receipts between its pages, a
    # seen cut-off among its unread), and the reads say so, with their plans.
    assert "archived interleaved" in report and "unseen" in report
    assert "- inbox p50 by depth, archived excluded: depth 0 / 2 / 5:" in report
    assert "- unread + unseen count plan:" in report
    # Every broadcast size has its row, the one above fanout.chunk too (5,001: chunked behind the 201 since issue 14).
    for size in ("10", "50", "5,001"):
        assert f"| {size} members, 2 reps |" in report, size
    assert "fanout.chunk 5000" in report
    machine = next(line for line in report.splitlines() if line.startswith("| machine |"))
    assert " cores, " in machine  # cores and CPU model
    assert "| date |" in report
    assert report.rstrip().splitlines()[-1] and "\n## copy-db\n" in report  # scripts/bench_copy_db's figure, kept
    assert (tmp_path / "results.json").exists()
    # The printed table carries the same rows.
    assert "5 HTTP throughput" in result.stdout

    # Cleaned up: the temp directory (database file, logs) is gone, and so is the bench database.
    assert list(scratch.iterdir()) == []
    if dialect == "postgres":
        with psycopg.connect(server.url, autocommit=True) as conn:
            left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        assert left is None


def test_bench_copy_db_runs_at_a_tiny_size(postgres_server, tmp_path: Path):
    script = ROOT / "scripts" / "bench_copy_db"
    assert os.access(script, os.X_OK)
    database = f"{postgres_server.run_id}_copybench"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSESTACK_")}
    env["PYTHONPATH"] = str(ROOT / "scripts") + os.pathsep + env.get("PYTHONPATH", "")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)
    result = subprocess.run([sys.executable, "-m", "benchlib.copydb", "--crowd", "20", "--broadcasts", "3",
                             "--postgres-url", postgres_server.url, "--pg-database", database],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "(460 receipts) copied and verified in" in result.stdout, result.stdout  # 20 x 3 crowd, 400 hot
    assert "peak RSS" in result.stdout
    assert list(scratch.iterdir()) == []
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None

"""Benchmark of `pulsestack copy-db`: SQLite (1,000,000 receipts) to a fresh Postgres database.

Seeds an SQLite file with benchlib/seed.py (the same set-based seeding as
scripts/bench: `crowd_unread` broadcasts to `crowd` members through the
product's own fan-out, plus a small hot user), then runs `python -m
pulsestack copy-db --from sqlite:///... --to postgresql://.../<db>` as a
child process and reports its wall time and peak RSS
(resource.getrusage(RUSAGE_CHILDREN) after it exits: the copy is the only
child waited for by then, the seeding runs in this process). Target (see
docs/operations.md): at most 60 s for a million receipts, memory flat (the
peak stays the same whatever the size: batches of 10,000 rows).

    scripts/bench_copy_db                     # 10,000 users x 100 broadcasts = 1,000,000 receipts
    scripts/bench_copy_db --crowd 1000        # 100,000 receipts: a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import procs, seed




async def seed_sqlite(url: str, crowd: int, broadcasts: int) -> int:
    from pulsestack.db import open_database

    sizes = seed.Sizes(fanout_members=[10], ws_clients=[crowd], crowd_unread=broadcasts, hot_read=300, hot_unread=100)
    db = open_database(url)
    await db.connect()
    try:
        seeded = await seed.seed(db, sizes, lambda line: print(line, file=sys.stderr))
        return seeded.receipts
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_copy_db", description=__doc__.splitlines()[0])
    parser.add_argument("--crowd", type=int, default=10_000, help="crowd members (default 10,000)")
    parser.add_argument("--broadcasts", type=int, default=100, help="broadcasts to the crowd (default 100)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pg-database", default="pulsestack_bench_copy")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pulsestack-copy-bench-") as tmp:
        path = Path(tmp) / "source.db"
        src = f"sqlite:///{path}"
        dst = procs.with_database(args.postgres_url, args.pg_database)
        env = procs.clean_env()
        from pulsestack.db.migrate import apply_migrations

        apply_migrations(src)  # in this process: the copy is the only child whose peak RSS is read
        t = time.perf_counter()
        receipts = asyncio.run(seed_sqlite(src, args.crowd, args.broadcasts))
        print(f"seeded {receipts:,} receipts in {time.perf_counter() - t:.1f} s "
              f"({path.stat().st_size / 2**20:.0f} MiB SQLite file)", file=sys.stderr)
        drop = f'DROP DATABASE IF EXISTS "{args.pg_database}" WITH (FORCE)'
        asyncio.run(procs.pg_admin(args.postgres_url, drop, f'CREATE DATABASE "{args.pg_database}"'))
        try:
            rss_file = Path(tmp) / "rss"
            timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if Path("/usr/bin/time").exists() else []
            t = time.perf_counter()
            result = subprocess.run([*timer, sys.executable, "-m", "pulsestack", "copy-db", "--from", src, "--to", dst],
                                    env=env, cwd=tmp, capture_output=True, text=True)
            seconds = time.perf_counter() - t
            if timer:
                peak_kib = int(rss_file.read_text().split()[-1])
            else:  # an overestimate when the child was vforked (see above)
                peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            sys.stderr.write(result.stderr)
            if result.returncode != 0:
                print(f"copy-db failed (exit {result.returncode})", file=sys.stderr)
                return 1
            rows = {line.split("\t")[0]: int(line.split("\t")[1]) for line in result.stdout.splitlines()}
            print(f"copy-db SQLite -> Postgres: {sum(rows.values()):,} rows "
                  f"({rows['notification_receipts']:,} receipts) copied and verified in {seconds:.1f} s, "
                  f"peak RSS {peak_kib / 1024:.0f} MiB")
        finally:
            asyncio.run(procs.pg_admin(args.postgres_url, drop))
    return 0


if __name__ == "__main__":
    sys.exit(main())

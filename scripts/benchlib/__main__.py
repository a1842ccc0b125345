"""scripts/bench: measure PulseStack against its performance targets
(docs/design.md) on SQLite and Postgres, print a table and write
docs/performance.md.

    scripts/bench                       # both dialects, default sizes (< 10 min on 2 cores)
    scripts/bench --dialect sqlite
    scripts/bench --quick --scenarios fanout,websockets --output /tmp/perf.md   # a minute or two; every path
    scripts/bench --tiny --output /tmp/perf.md   # seconds; what the smoke test runs

--quick and --tiny measure at sizes below the targets' (the report says "not
measured" for those); never commit the docs/performance.md they write.

Everything it starts is stopped, the Postgres bench database dropped and the
temp directory removed, also when a step fails or the run is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from . import fanout, procs, reads, report, seed, throughput, websockets

DEFAULTS = {
    "fanout_members": "1000,5000,10000,100000", "fanout_reps": 5,
    "ws_clients": "1000,10000", "ws_workers": 4, "crowd_unread": 100,
    "hot_read": 30_000, "hot_unread": 1000, "inbox_depths": "0,50,500", "iterations": 500,
    "throughput_seconds": 10.0, "settle": 2.0, "deadline": 10.0,
}
# Every path at a fraction of the cost: one broadcast size above fanout.chunk
# (chunked behind the 201 since issue 14), the rest small.
QUICK = {
    "fanout_members": "1000,5000,20000", "fanout_reps": 3,
    "ws_clients": "2000", "ws_workers": 2, "crowd_unread": 100,
    "hot_read": 3000, "hot_unread": 100, "inbox_depths": "0,5,20", "iterations": 100,
    "throughput_seconds": 3.0, "settle": 1.0, "deadline": 10.0,
}
TINY = {
    "fanout_members": "10,50,5001", "fanout_reps": 2,  # 5,001: the smallest broadcast above fanout.chunk
    "ws_clients": "20", "ws_workers": 2, "crowd_unread": 100,
    "hot_read": 300, "hot_unread": 50, "inbox_depths": "0,2,5", "iterations": 30,
    "throughput_seconds": 1.0, "settle": 0.3, "deadline": 10.0,
}
SCENARIOS = ("reads", "throughput", "websockets", "fanout")
PG_DEFAULT = os.environ.get("PULSESTACK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def int_list(text: str) -> list[int]:
    try:
        values = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Defaults in brackets are the full run's; --quick or --tiny replaces each one not given.")
    p.add_argument("--dialect", choices=("sqlite", "postgres", "both"), default="both", help="[both]")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="reduced sizes that run every path in a few minutes (broadcasts of 1,000, 5,000 and 20,000 "
                           "members, 2,000 websockets); most targets then read \"not measured\"")
    size.add_argument("--tiny", action="store_true", help="small sizes that finish in seconds (the smoke test)")
    p.add_argument("--output", type=Path, default=procs.ROOT / "docs" / "performance.md", help="[docs/performance.md]")
    p.add_argument("--json", type=Path, help="also write the raw results as JSON")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)} [all]")
    g = p.add_argument_group("sizes")
    g.add_argument("--fanout-members", type=int_list, help=f"broadcast sizes [{DEFAULTS['fanout_members']}]; "
                   "other users' writes are measured beside the largest")
    g.add_argument("--fanout-reps", type=int, help=f"repetitions per size, and broadcasts of the largest size with "
                   f"other users' writes beside them [{DEFAULTS['fanout_reps']}]")
    g.add_argument("--ws-clients", type=int_list, help=f"connected websocket clients per round [{DEFAULTS['ws_clients']}]")
    g.add_argument("--ws-workers", type=int, help=f"load-generator processes holding them [{DEFAULTS['ws_workers']}]")
    g.add_argument("--crowd-unread", type=int, help=f"unread each websocket user already holds [{DEFAULTS['crowd_unread']}]; "
                   "with the largest --ws-clients this makes the receipts (10,000 x 100 = 1,000,000)")
    g.add_argument("--hot-read", type=int, help=f"read receipts of the inbox/unread-count user [{DEFAULTS['hot_read']}]; "
                   f"{seed.ARCHIVE_KEEP_EVERY - 1} in every {seed.ARCHIVE_KEEP_EVERY} of them archived, interleaved in time "
                   "with the ones left in the inbox")
    g.add_argument("--hot-unread", type=int, help=f"unread receipts of that user [{DEFAULTS['hot_unread']}]; "
                   "the older half of them seen")
    g.add_argument("--inbox-depths", type=int_list, help=f"inbox pages deep to measure [{DEFAULTS['inbox_depths']}]")
    g.add_argument("--iterations", type=int, help=f"samples per read measurement [{DEFAULTS['iterations']}]")
    g.add_argument("--throughput-seconds", type=float, help=f"length of each throughput run [{DEFAULTS['throughput_seconds']}]")
    g.add_argument("--settle", type=float, help=f"seconds of idle before reading memory [{DEFAULTS['settle']}]")
    g.add_argument("--deadline", type=float, help=f"seconds a websocket client may wait for its frame before it counts as lost [{DEFAULTS['deadline']}]")
    g.add_argument("--connections", type=int, default=64, help="throughput connections [64]")
    g.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="throughput load generator: wrk if installed, else a Python one [auto]")
    e = p.add_argument_group("environment")
    e.add_argument("--postgres-url", default=PG_DEFAULT, help=f"a Postgres server to create the bench database on [{PG_DEFAULT}]")
    e.add_argument("--pg-database", default="pulsestack_bench", help="name of the database created and dropped [pulsestack_bench]")
    e.add_argument("--server-log-level", default="info", help="the measured server's log level [info, its default]")
    e.add_argument("--keep-temp", action="store_true", help="keep the temp directory (database file, server logs)")
    e.add_argument("--render", type=Path, metavar="JSON",
                   help="measure nothing: write the report again from a run's --json file (after editing findings.py)")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    base = TINY if args.tiny else QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, int_list(value) if isinstance(value, str) else value)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if bad := [s for s in args.scenarios if s not in SCENARIOS]:
        raise SystemExit(f"scripts/bench: unknown scenario(s) {', '.join(bad)}; choose from {', '.join(SCENARIOS)}")
    active = seed.hot_active(args.hot_read, args.hot_unread)
    if (max(args.inbox_depths) + 1) * reads.PAGE >= active:
        raise SystemExit(f"scripts/bench: inbox depth {max(args.inbox_depths)} needs more than "
                         f"{(max(args.inbox_depths) + 1) * reads.PAGE} receipts in the hot user's inbox (archived excluded), "
                         f"which --hot-read {args.hot_read:,} and --hot-unread {args.hot_unread:,} make {active:,}; "
                         "raise --hot-read")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.pg_database):
        raise SystemExit("scripts/bench: --pg-database must be a lower-case SQL identifier")
    if min(args.ws_clients) < 1 or min(args.fanout_members) < 1 or args.fanout_reps < 1:
        raise SystemExit("scripts/bench: sizes must be at least 1")
    return args


# -- machine -----------------------------------------------------------------

def machine_info(args: argparse.Namespace, pg_version: str | None) -> dict:
    import aiohttp

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(["git", "-C", str(procs.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(procs.ROOT), "status", "--porcelain", "--", "pulsestack", "sql", "migrations"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit = head + (" with uncommitted changes to pulsestack/, sql/ or migrations/" if dirty else "")
    software = (f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, SQLite {sqlite3.sqlite_version}"
                + (f", PostgreSQL {pg_version}" if pg_version else ""))
    tool = throughput.pick(args.loadgen) if "throughput" in args.scenarios else "-"
    if tool == "wrk":
        with contextlib.suppress(OSError):
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout or ""
            m = re.search(r"wrk (\S+)", out)
            software += f", wrk {m.group(1) if m else ''}".rstrip()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"date": date, "cores": cores, "cpu": cpu, "memory": memory, "os": f"{platform.system()} {platform.release()}",
            "software": software, "commit": commit, "server_log_level": args.server_log_level,
            "fanout_chunk": procs.FANOUT_CHUNK,
            "summary": f"{date}, {cores} cores, {cpu}, {software}"}


# -- Postgres bench database ---------------------------------------------------



# -- one dialect ---------------------------------------------------------------

async def run_dialect(dialect: str, args: argparse.Namespace, tmp: Path, log) -> dict:
    from pulsestack.db import open_database

    sizes = seed.Sizes(fanout_members=args.fanout_members, ws_clients=args.ws_clients, crowd_unread=args.crowd_unread,
                       hot_read=args.hot_read, hot_unread=args.hot_unread)
    log(f"{report.DIALECT_NAMES[dialect]}:")
    async with contextlib.AsyncExitStack() as stack:
        if dialect == "sqlite":
            path = tmp / "bench.db"
            url = f"sqlite:///{path}"
            described = "SQLite file in a temp directory (WAL, synchronous=NORMAL)"
        else:
            name = args.pg_database
            await procs.pg_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
            stack.push_async_callback(procs.pg_admin, args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            url = procs.with_database(args.postgres_url, name)
            described = f"Postgres database `{name}` on {urlsplit(args.postgres_url).hostname}"
        env = procs.clean_env(PULSESTACK_DATABASE_URL=url)
        await procs.run([sys.executable, "-m", "pulsestack", "migrate"], env=env, cwd=tmp)

        db = open_database(url)
        await db.connect()
        stack.push_async_callback(db.close)
        t0 = time.perf_counter()
        seeded = await seed.seed(db, sizes, log)
        log(f"  seeded {seeded.receipts:,} receipts in {time.perf_counter() - t0:.0f} s")
        results: dict = {}
        servers: list[procs.PulseStackServer] = []

        async def stop_servers() -> None:
            for s in servers:
                await s.stop()

        stack.push_async_callback(stop_servers)

        if "reads" in args.scenarios or "throughput" in args.scenarios:
            server = await procs.start_pulsestack(f"{dialect}-server-reads", url, tmp, args.server_log_level)
            servers.append(server)
            if "reads" in args.scenarios:
                results["reads"] = await reads.measure(db, server.base, seeded, sorted(set(args.inbox_depths)),
                                                       args.iterations, args.hot_unread, seeded.hot_unseen, log)
            if "throughput" in args.scenarios:
                callers = {"a typical user": (seeded.crowd_tokens[0], args.crowd_unread, seeded.typical_unseen),
                           "the hot user": (seeded.hot_token, args.hot_unread, seeded.hot_unseen)}
                results["throughput"] = await throughput.measure(server, callers, args.throughput_seconds,
                                                                 args.connections, args.loadgen, tmp, log)
            await server.stop()
        if "websockets" in args.scenarios or "fanout" in args.scenarios:
            # A fresh server: the memory baseline must not carry the reads' history.
            server = await procs.start_pulsestack(f"{dialect}-server-push", url, tmp, args.server_log_level)
            servers.append(server)
            if "websockets" in args.scenarios:
                results["websockets"] = await websockets.measure(server, seeded, args.ws_clients, args.ws_workers, tmp,
                                                                 args.settle, args.deadline, log)
            if "fanout" in args.scenarios:
                bare = (fanout.BareSQLite(path, db.queries) if dialect == "sqlite"
                        else fanout.BarePostgres(url, db.queries))
                results["fanout"] = await fanout.measure(server.base, bare, seeded, args.fanout_members, args.fanout_reps, log)
            await server.stop()
    return {
        "database": described,
        "seed": {"receipts": seeded.receipts, "seconds": seeded.seconds, "steps": seeded.steps,
                 "crowd": sizes.crowd, "crowd_unread": sizes.crowd_unread, "hot_unread": sizes.hot_unread,
                 "hot_total": sizes.hot_read + sizes.hot_unread, "hot_archived": seeded.hot_archived,
                 "hot_active": seed.hot_active(sizes.hot_read, sizes.hot_unread), "hot_unseen": seeded.hot_unseen,
                 "typical_unseen": seeded.typical_unseen, "fanout_members": sizes.fanout_members},
        "results": results,
    }


async def main_async(args: argparse.Namespace) -> int:
    # SIGTERM ends the run like Ctrl-C: the cleanup below still runs.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    dialects = ["sqlite", "postgres"] if args.dialect == "both" else [args.dialect]
    # Each websocket is a file descriptor in the server and one in a worker:
    # every child inherits the limit raised here.
    needed = max(args.ws_clients) + 1024 if "websockets" in args.scenarios else 4096
    soft, hard = procs.raise_open_files(needed)
    if soft < needed:
        log(f"scripts/bench: the open-files limit is {soft} (hard {hard}); {max(args.ws_clients):,} websockets need "
            f"about {needed}. Raise it (ulimit -n {needed}) or pass smaller --ws-clients.")
        return 2
    pg_version = None
    if "postgres" in dialects:
        try:
            pg_version = (await procs.pg_admin(args.postgres_url)).split()[0]
        except Exception as exc:
            log(f"scripts/bench: cannot reach Postgres at {args.postgres_url}: {exc}. Start it, pass --postgres-url, "
                f"or run --dialect sqlite.")
            return 2
    machine = machine_info(args, pg_version)
    tmp = Path(tempfile.mkdtemp(prefix="pulsestack-bench-"))
    started = time.perf_counter()
    runs: dict[str, dict] = {}
    failed = True
    try:
        for dialect in dialects:
            runs[dialect] = await run_dialect(dialect, args, tmp, log)
        failed = False
    except Exception as exc:
        log(f"scripts/bench: FAILED: {type(exc).__name__}: {exc}")
        for logfile in sorted(tmp.glob("*.log")):
            tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-10:])
            if tail:
                log(f"--- last lines of {logfile.name} ---\n{tail}")
        raise
    finally:
        if args.keep_temp:
            log(f"scripts/bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if failed:
            log("scripts/bench: cleaned up (servers stopped, bench database dropped, temp files removed)")
    log(f"scripts/bench: done in {time.perf_counter() - started:.0f} s")
    print(report.console(machine, runs))
    command = "scripts/bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.markdown(machine, command.strip(), runs))
    log(f"scripts/bench: wrote {args.output}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "command": command.strip(), "runs": runs}, indent=1, default=str))
    return 0


def _int_keys(value):
    """JSON turned the size keys of the results into strings; turn them back."""
    if isinstance(value, dict):
        return {(int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_int_keys(v) for v in value]
    return value


def render(args: argparse.Namespace) -> int:
    data = _int_keys(json.loads(args.render.read_text()))
    print(report.console(data["machine"], data["runs"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.markdown(data["machine"], data.get("command", "scripts/bench"), data["runs"]))
    print(f"scripts/bench: wrote {args.output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = resolve(build_parser().parse_args(argv))
    if args.render:
        return render(args)
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("scripts/bench: interrupted; cleaned up", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `pulsestack` command (also `python -m pulsestack`).

    pulsestack [--config PATH] serve [--no-migrate] [--host H] [--port P]
    pulsestack [--config PATH] migrate [--rollback N | --status]
    pulsestack [--config PATH] prune [--read-older-than DAYS] [--older-than DAYS] [--dry-run]
    pulsestack [--config PATH] create-admin --email E [--password-stdin]
    pulsestack openapi
    pulsestack copy-db --from URL --to URL [--verify-only]

A failure a user can fix (bad configuration, database unreachable, port in
use, bad input) exits non-zero with one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import __version__, logs
from .config import Config, ConfigError, load_config
from .errors import ApiError, first_line

log = logging.getLogger("pulsestack")


class CommandError(Exception):
    """A failure to report as one line and exit 1."""


def redact(url: str) -> str:
    """A database URL fit for a log line: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def migrate(config: Config, rollback: int | None = None) -> None:
    from .db.migrate import apply_migrations, rollback_migrations

    url = config.database.url
    try:
        if rollback is not None:
            undone = rollback_migrations(url, rollback)
            if not undone:
                log.warning("migrate: nothing to roll back: no migration steps are applied on %s", redact(url))
            elif len(undone) < rollback:
                applied = "1 migration step is" if len(undone) == 1 else f"{len(undone)} migration steps are"
                log.warning("migrate: only %s applied; rolled back %d (%s) on %s",
                            applied, len(undone), ", ".join(undone), redact(url))
            else:
                log.info("migrate: rolled back %s on %s", ", ".join(undone), redact(url))
            return
        result = apply_migrations(url)
    except Exception as exc:  # psycopg, sqlite3 and yoyo each raise their own kinds
        reason = first_line(exc)
        raise CommandError(f"cannot migrate {redact(url)}: {reason}") from exc
    if result.applied:
        log.info("migrate: applied %s on %s", ", ".join(result.applied), redact(url))
    else:
        log.info("migrate: %s is up to date", redact(url))


def migrate_status(config: Config) -> None:
    """Each migration step of the dialect, applied (when) or pending, on stdout."""
    from .db.migrate import migration_status

    url = config.database.url
    try:
        steps = migration_status(url)
    except Exception as exc:  # psycopg, sqlite3 and yoyo each raise their own kinds
        reason = first_line(exc)
        raise CommandError(f"cannot read the migration status of {redact(url)}: {reason}") from exc
    for step in steps:
        when = f"applied {step.applied_at:%Y-%m-%d %H:%M:%S} UTC" if step.applied_at else "pending"
        print(f"{step.id}  {when}")
    pending = sum(1 for step in steps if step.applied_at is None)
    print(f"{len(steps) - pending} applied, {pending} pending on {redact(url)}")


def bind(host: str, port: int, what: str = "") -> list[socket.socket]:
    """Sockets bound to every address of host:port, as aiohttp would bind
    them, but not listening yet (aiohttp listens once it serves). Port 0:
    the system picks a free one, the same for every address. `what` names
    the setting in the error, for a port other than server.port."""
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(
                socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = port or sock.getsockname()[1]
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise CommandError(f"cannot listen on {host}:{port}{what}: {exc.strerror or exc}") from exc
    return sockets


def metrics_listener(sockets: list[socket.socket], where: str) -> Callable[[Any], AsyncIterator[None]]:
    """A cleanup context serving /metrics alone on `sockets` (metrics.port, at
    `where`), started with the app, so it answers before `serving on` is logged."""
    from aiohttp import web

    from .metrics import metrics_app

    async def listen(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(metrics_app(), access_log=None)
        await runner.setup()
        try:
            for sock in sockets:
                await web.SockSite(runner, sock).start()
        except OSError as exc:  # another server bound the port meanwhile
            await runner.cleanup()
            raise CommandError(f"cannot listen on {where} (metrics.port): {exc.strerror or exc}") from exc
        yield
        await runner.cleanup()

    return listen


def serve(config: Config, *, run_migrations: bool) -> None:
    from aiohttp import web

    from .app import create_app
    from .db import DatabaseUnavailable

    host, port = config.server.host, config.server.port
    metrics_port = config.metrics.port if config.metrics.enabled else 0
    # The ports first: when one is taken, say so before touching the database.
    sockets = bind(host, port)
    port = sockets[0].getsockname()[1]  # the one the system picked, for port 0
    metrics_sockets: list[socket.socket] = []
    try:
        if metrics_port:
            metrics_sockets = bind(host, metrics_port, " (metrics.port)")
        if run_migrations:
            migrate(config)
        app = create_app(config)
        app.cleanup_ctx.append(logs.flush_periodically)
        if metrics_sockets:
            app.cleanup_ctx.append(metrics_listener(metrics_sockets, f"{host}:{metrics_port}"))

        def serving(_banner: str) -> None:
            # run_app's `print`: called once every socket is listening and served.
            if metrics_port:
                log.info("metrics on http://%s:%d/metrics", host, metrics_port)
            log.info("serving on http://%s:%d (database %s)", host, port, redact(config.database.url))
            logs.flush()

        # run_app turns SIGINT and SIGTERM into a graceful shutdown: stop
        # accepting, finish in-flight requests, run cleanup (close the database).
        web.run_app(app, sock=sockets, print=serving, access_log=None, shutdown_timeout=10, handle_signals=True)
    except DatabaseUnavailable as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:  # listen() can still fail: another server bound server.port meanwhile
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    finally:
        for sock in sockets + metrics_sockets:
            sock.close()
    log.info("stopped")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CommandError("standard input is not a terminal; pass the password with --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CommandError("the passwords differ")
    return first


def database_error(exc: Exception) -> CommandError:
    """A database failure of a command, as its one line: unreachable as it is,
    anything else most likely an unmigrated database."""
    from .db import DatabaseUnavailable

    if isinstance(exc, DatabaseUnavailable):
        return CommandError(str(exc))
    return CommandError(f"{exc} (is the database migrated? run: pulsestack migrate)")


async def _create_admin(config: Config, email: str, password_stdin: bool) -> None:
    from pydantic import ValidationError

    from .app import database_for
    from .db import DatabaseError
    from .models import problems
    from .models.requests import AdminAccount
    from .services.accounts import create_admin, find_user_by_email

    try:
        account = AdminAccount(email=email)
        async with database_for(config) as db:
            if await find_user_by_email(db, account.email) is None:
                account = AdminAccount(email=email, password=read_password(password_stdin))
            result = await create_admin(db, account)
    except ValidationError as exc:
        raise CommandError("; ".join(f"{k} {v}" for k, v in problems(exc).items())) from exc
    except DatabaseError as exc:
        raise database_error(exc) from exc
    except ApiError as exc:
        detail = "; ".join(f"{k} {v}" for k, v in exc.details.items())
        raise CommandError(f"{exc.message}{': ' + detail if detail else ''}") from exc
    verb = "created" if result.created else "promoted existing user (password unchanged) to"
    print(f"{verb} admin {result.user.email} ({result.user.id})")


async def _prune(config: Config, read_older_than: int | None, older_than: int | None, dry_run: bool,
                 batch: int | None = None) -> None:
    from .app import database_for
    from .db import DatabaseError
    from .eventbus import Change
    from .services.retention import BATCH, prune

    try:
        async with database_for(config) as db:
            pruned = await prune(db, read_older_than_days=read_older_than, older_than_days=older_than,
                                 dry_run=dry_run, batch=batch or BATCH)
            pushed = False
            if pruned.users:
                # Postgres: the running servers LISTEN and refresh those users.
                # SQLite: no other process to reach (docs/operations.md, "Retention").
                pushed = await db.event_bus(0).announce(Change(refresh=pruned.users))
    except DatabaseError as exc:
        raise database_error(exc) from exc
    except OSError as exc:  # the NOTIFY connection
        raise CommandError(f"pruned, but could not tell the running servers: {exc}") from exc
    verb = "would delete" if dry_run else "deleted"
    print(f"notification_receipts: {verb} {pruned.receipts}")
    print(f"notifications: {verb} {pruned.notifications}")
    if pruned.users:
        where = "pushed to the running servers" if pushed else "not pushed: SQLite servers pick them up at the next change"
        log.info("prune: %d users have new unread counts (%s)", len(pruned.users), where)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    config_help = "config file (default: $PULSESTACK_CONFIG, else ./config.toml if present)"
    parser = argparse.ArgumentParser(prog="pulsestack", description="PulseStack: in-app notifications with live unread counts.")
    parser.add_argument("--config", metavar="PATH", help=config_help)
    parser.add_argument("--version", action="version", version=f"pulsestack {__version__}")
    # --config is also accepted after the command (scripts/serve --config X).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("serve", parents=[common], help="apply pending migrations, then serve HTTP and websockets")
    p.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations first")
    p.add_argument("--host", help="override server.host")
    p.add_argument("--port", help="override server.port")

    p = commands.add_parser("migrate", parents=[common], help="apply pending migrations and exit")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rollback", type=positive_int, metavar="N", help="roll back the last N applied migrations instead")
    which.add_argument("--status", action="store_true",
                       help="list each migration step, applied (when) or pending; change nothing")

    p = commands.add_parser("prune", parents=[common], help="delete old receipts and notifications (retention)")
    p.add_argument("--read-older-than", type=positive_int, metavar="DAYS",
                   help="delete read receipts read more than DAYS days ago")
    p.add_argument("--older-than", type=positive_int, metavar="DAYS",
                   help="delete every receipt and notification created more than DAYS days ago")
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument("--batch", type=positive_int, metavar="N", help=argparse.SUPPRESS)  # tests: small batches

    p = commands.add_parser("create-admin", parents=[common], help="create a system admin (or promote an existing user)")
    p.add_argument("--email", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of standard input")

    commands.add_parser("openapi", parents=[common], help="print the OpenAPI document (what GET /api/openapi.json serves)")

    p = commands.add_parser("copy-db", parents=[common],
                            help="copy every row of one database into a new empty one (e.g. SQLite to Postgres), then verify")
    p.add_argument("--from", dest="from_url", required=True, metavar="URL", help="the database to copy (read only)")
    p.add_argument("--to", dest="to_url", required=True, metavar="URL",
                   help="an empty database: migrated to --from's step, then filled")
    p.add_argument("--verify-only", action="store_true", help="copy nothing; compare row counts and checksums of every table")
    return parser


def copy_db(from_url: str, to_url: str, *, verify_only: bool) -> None:
    """copy-db: fill an empty database from another (any dialect to any), then
    verify every table's row count and checksum; or, with --verify-only,
    only compare two databases. db/copy.py holds the steps and the why."""
    from .db.copy import CLEAN_UP, CopyError
    from .db.copy import copy_db as run_copy
    from .db.copy import verify_only as run_verify

    log.info("copy-db: %s %s -> %s", "verifying" if verify_only else "copying", redact(from_url), redact(to_url))
    try:
        reports = asyncio.run(run_verify(from_url, to_url) if verify_only else run_copy(from_url, to_url))
    except CopyError as exc:
        raise CommandError(f"copy-db: {exc}") from exc
    except KeyboardInterrupt:
        if not verify_only:  # the tables copied so far are committed, the one under way rolled back
            log.warning("copy-db: interrupted; the target may hold some tables already: %s", CLEAN_UP)
        raise
    except Exception as exc:  # a dropped connection, a full disk: one line, never a traceback
        reason = first_line(exc)
        raise CommandError(f"copy-db: {type(exc).__name__}: {reason}") from exc
    for r in reports:
        print(f"{r.table}\t{r.rows}\tsha256:{r.checksum}")
    total = sum(r.rows for r in reports)
    log.info("copy-db: %s: %d tables, %d rows, every count and checksum equal",
             "verified" if verify_only else "copied and verified", len(reports), total)


def print_openapi(config: Config) -> None:
    from .api.openapi import DOCUMENT
    from .app import create_app

    sys.stdout.buffer.write(create_app(config)[DOCUMENT])  # built from the routes; nothing connects


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "prune" and args.read_older_than is None and args.older_than is None:
        print("usage: pulsestack prune [--read-older-than DAYS] [--older-than DAYS] [--dry-run]", file=sys.stderr)
        print("pulsestack prune: error: give --read-older-than DAYS, --older-than DAYS or both", file=sys.stderr)
        return 2
    try:
        overrides = {}
        if args.command == "serve":  # --host/--port win over the file and the environment
            overrides = {k: v for k, v in (("server.host", args.host), ("server.port", args.port)) if v}
        config = load_config(args.config, overrides=overrides)
        logs.setup(config.log)
        if args.command == "serve":
            serve(config, run_migrations=not args.no_migrate)
        elif args.command == "migrate" and args.status:
            migrate_status(config)
        elif args.command == "migrate":
            migrate(config, args.rollback)
        elif args.command == "prune":
            asyncio.run(_prune(config, args.read_older_than, args.older_than, args.dry_run, args.batch))
        elif args.command == "create-admin":
            asyncio.run(_create_admin(config, args.email, args.password_stdin))
        elif args.command == "openapi":
            print_openapi(config)
        elif args.command == "copy-db":
            copy_db(args.from_url, args.to_url, verify_only=args.verify_only)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", 2)
    except CommandError as exc:
        return _fail(f"error: {exc}", 1)
    except KeyboardInterrupt:
        return 130
    return 0


def _fail(message: str, status: int) -> int:
    logs.flush()  # the log lines written before the failure come before its line
    print(f"pulsestack: {message}", file=sys.stderr)
    return status


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()

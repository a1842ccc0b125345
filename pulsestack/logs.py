"""The server's log output: one line per event, written to stderr in batches.

Two formats (`log.format`): `text`, as FORMAT below, and `json`, one JSON
object per line (`JsonFormatter`). Either way a line logged while a request
is handled carries its request id: the middleware sets `request_id` (a
context variable, so it follows the request's task and nothing else) for as
long as the request runs, a websocket's whole life included.

One line per event holds only if nothing a client sends can end a line:
`printable()` escapes what clients control (paths, methods, request ids)
wherever it reaches a log, and `MalformedRequestsOneLine` turns aiohttp's
record of a request it could not parse, a traceback quoting the client's
bytes over several lines, into one escaped line.

Writing each access-log line on its own costs a write(2) per request, about
5% of a loaded server's CPU (py-spy, Postgres, wrk with 64 connections).
`BatchingStreamHandler` keeps lines until 256 are waiting, a warning or worse
arrives (which goes out at once, after the lines before it), `flush()` is
called, or the process exits (logging flushes its handlers then). `serve`
flushes every `FLUSH_INTERVAL_S`, so a quiet server's last lines are never
more than that late.

A record costs less, too: the line names no source file, so logging does not
walk the stack to find the caller (the logging HOWTO's `_srcfile = None`),
and `LineFormatter` formats a second's timestamp once, not once a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

if TYPE_CHECKING:
    from .config import LogConfig

FLUSH_INTERVAL_S = 0.2
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
ACCESS_LOGGER = "pulsestack.access"
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}

# The id of the request being handled, for every line logged meanwhile (None outside requests).
request_id: ContextVar[str | None] = ContextVar("pulsestack_request_id", default=None)
# A named query that takes at least this long is a warning (log.slow_query_ms; db/base.py reads
# it). Infinite until setup() applies the setting: code that uses the package without setting up its
# logging (the bench's seeding, tests) is not told about every big insert it makes.
slow_query_s = float("inf")
# Whether lines are JSON (log.format), so hot paths build their `extra` fields only when written.
structured = False
# Loggers of the drivers: their debug lines are theirs, not the operator's.
QUIET_BELOW_WARNING = ("yoyo", "aiosqlite", "asyncpg")


def printable(text: str) -> str:
    """`text` fit for one log line: control characters and every other
    unprintable one (NUL, NEL, line and paragraph separators, lone
    surrogates) escaped as in a Python string literal. Backslashes are
    escaped too, so an escaped newline cannot be faked with a literal one."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(ch if ch.isprintable() and ch != "\\" else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class MalformedRequestsOneLine(logging.Filter):
    """For the `aiohttp.server` logger. A request aiohttp cannot parse (bad
    bytes in a header, an over-long URL, an invalid request line) is logged
    by web_protocol's `RequestHandler.handle_error` as an ERROR with the
    parser's traceback, the message quoting the client's bytes over several
    lines. It is the client's mistake, not the server's: one escaped line at
    INFO, like the access-log line of any other 400. Records of anything
    else, a real server bug included, pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        said = printable(record.getMessage())
        record.msg, record.args = "%s: %s: %s", (said, type(exc).__name__, printable(" ".join(str(exc).split())))
        record.exc_info, record.exc_text = None, None
        if record.levelno > logging.INFO:  # aiohttp logs some at DEBUG already (non-HTTP traffic); those stay
            record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


class PerSecond:
    """A time's whole seconds, formatted by `pattern`, once per second: strftime
    costs more than the rest of a line."""

    def __init__(self, pattern: str, convert: Callable[[float], time.struct_time]):
        self.pattern, self.convert = pattern, convert
        self._second, self._text = -1, ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self.pattern, self.convert(second))
        return self._text


class LineFormatter(logging.Formatter):
    """FORMAT, with `asctime` as logging spells it (2026-12-01 23:07:30,659),
    the seconds part formatted once per second. A line logged during a
    request has the request id in brackets before its message, except the
    access line, which starts with it."""

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._in_request = logging.PercentStyle(FORMAT.replace("%(message)s", "[%(request_id)s] %(message)s"))
        self._stamp = PerSecond(self.default_time_format, self.converter)

    def formatMessage(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        if rid is None or record.name == ACCESS_LOGGER:
            return super().formatMessage(record)
        record.request_id = printable(rid)
        return self._in_request.format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self._stamp(record.created)},{int(record.msecs):03d}"  # logging's default_msec_format, "%s,%03d"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601, milliseconds), level,
    logger, message, request_id (null outside a request), then whichever of
    FIELDS the line was logged with (`extra=`), and a traceback when there is
    one. JSON escapes every control character and, ASCII only, U+2028 and
    the like too, so a line is always one line."""

    FIELDS = ("client", "method", "path", "status", "duration_ms", "user_id", "close_code",
              "query", "rows")

    def __init__(self) -> None:
        super().__init__()
        self._stamp = PerSecond("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        # Formatted as it is logged (handlers emit synchronously), so the context is the logging call's.
        entry: dict[str, Any] = {"time": f"{self._stamp(record.created)}.{int(record.msecs):03d}Z", "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage(), "request_id": request_id.get()}
        fields = record.__dict__
        for name in self.FIELDS:
            if name in fields:
                entry[name] = fields[name]
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class BatchingStreamHandler(logging.StreamHandler):
    def __init__(self, stream: TextIO | None = None, capacity: int = 256):
        super().__init__(stream)
        self.capacity = capacity
        self.pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append(self.format(record) + self.terminator)
            if len(self.pending) >= self.capacity or record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        assert self.lock is not None  # made by Handler.__init__
        with self.lock:
            if self.pending:
                text = "".join(self.pending)
                self.pending.clear()
                self.stream.write(text)
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()


def setup(config: LogConfig, stream: TextIO | None = None) -> None:
    """Log at `config.level` and above to stderr (or `stream`), in batches,
    in `config.format`; slow queries are those over `config.slow_query_ms`."""
    global slow_query_s, structured
    slow_query_s = config.slow_query_ms / 1000
    structured = config.format == "json"
    handler = BatchingStreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else LineFormatter())
    logging._srcfile = None  # no line shows where it was logged from
    logging.basicConfig(level=config.level.upper(), handlers=[handler], force=True)
    for name in QUIET_BELOW_WARNING:  # one line per migration and per query is ours to log
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUESTS)  # once, however often setup runs


_MALFORMED_REQUESTS = MalformedRequestsOneLine()


def flush() -> None:
    """Write out every line logged so far."""
    for handler in logging.getLogger().handlers:
        handler.flush()


async def flush_periodically(app: web.Application) -> AsyncIterator[None]:
    """An aiohttp cleanup context: flush the log handlers every FLUSH_INTERVAL_S."""

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            flush()

    task = asyncio.create_task(flush_forever(), name="pulsestack-log-flusher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

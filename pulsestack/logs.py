"""The server's log output: one line per event, written to stderr in batches.

Writing each access-log line on its own costs a write(2) per request, about
5% of a loaded server's CPU (py-spy, Postgres, wrk with 64 connections).
`BatchingStreamHandler` keeps lines until 256 are waiting, a warning or worse
arrives (which goes out at once, after the lines before it), `flush()` is
called, or the process exits (logging flushes its handlers then). `serve`
flushes every `FLUSH_INTERVAL_S`, so a quiet server's last lines are never
more than that late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

FLUSH_INTERVAL_S = 0.2
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class BatchingStreamHandler(logging.StreamHandler):
    def __init__(self, stream=None, capacity: int = 256):
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
        with self.lock:
            if self.pending:
                text = "".join(self.pending)
                self.pending.clear()
                self.stream.write(text)
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()


def setup(level: str) -> None:
    """Log at `level` and above to stderr, in batches."""
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("yoyo").setLevel(logging.WARNING)  # one line per migration is ours to log


def flush() -> None:
    """Write out every line logged so far."""
    for handler in logging.getLogger().handlers:
        handler.flush()


async def flush_periodically(app) -> AsyncIterator[None]:
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

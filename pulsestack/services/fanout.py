"""Large broadcasts: their receipts, written in committed chunks after the
send has answered.

A broadcast whose audience is larger than `fanout.chunk` members commits its
notification and a job row (services/notifications.py `send`) and answers at
once. `run_chunk` then writes the receipts of the next `chunk` members, in
user-id order, in one short transaction: it claims the oldest job, locks
the workspace against a member removal as a send does, finds where the
chunk ends, writes the chunk's receipts with the broadcast's own INSERT ...
SELECT over that key range, and moves the job's cursor (or deletes the job
after its last chunk), all or nothing. So:

- other writes run between chunks (on SQLite the single writer is released
  after each one, and the next waiter goes first);
- each chunk's receipts land in key order, so the per-user indexes are
  written in order rather than all over;
- a crash loses at most the chunk in flight, which rolls back and runs
  again; a chunk that runs twice adds nothing (ON CONFLICT DO NOTHING);
- a retraction deletes the job with its notification (on Postgres it waits
  for a chunk in flight), and the next claim finds nothing;
- the audience is the members at send time: members who joined after it
  are left out by the statement, and a member removed meanwhile has no
  receipt (removed before their chunk: not a member; after: the removal
  deletes it).

The hub hears about each chunk after it commits, with its key range, and
pushes the notification and new counts to that chunk's connected recipients.

`FanOutWorker` runs `run_chunk` in each server process until no job is
left, woken by a send in its own process, and every POLL_S anyway, for jobs
a stopped or crashed process left (on start, it resumes at once). On
Postgres every process runs one; FOR UPDATE SKIP LOCKED keeps them from
running the same chunk.

How big a chunk: `fanout.chunk` members on Postgres, where a chunk holds
only its job's row and a share lock on its workspace's row (other users'
writes do not wait for it; a member removal in that workspace does). On
SQLite a chunk holds the one writer, so its length is what another user's
send or mark-read waits, and it is cut shorter: a receipt costs 50-150
microseconds there on a 2-core machine once the receipts table is large
(each per-user index entry lands on a page of its own), so 5,000 of them
would hold the writer for up to 0.7 s. The SQLite worker starts at
FIRST_CHUNK members and sizes each next chunk from the last one's time, so
that it takes about CHUNK_S (between half and twice the last size, between
1 and `fanout.chunk`): writes never wait long behind a broadcast, while
each chunk stays large enough that the transaction's own cost (a handful of
statements and a commit, about 10 ms) is small beside its receipts'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import NamedTuple

from .. import metrics
from ..db import Database, DatabaseError
from ..hub import Hub
from ..ids import utcnow
from ..models.fields import type_prefixes
from ..queries import fanout, notifications, workspaces
from ..queries.notifications import ALL_MEMBERS

log = logging.getLogger(__name__)

POLL_S = 5.0  # how often an idle worker looks for a job another process left
RETRY_S = 1.0  # pause after a chunk failed (the database is away, say) before trying again
CHUNK_S = 0.03  # what a chunk should take; see "How big a chunk"
FIRST_CHUNK = 256  # a worker's first chunk size, before it has timed one


class Written(NamedTuple):
    """What one chunk did: receipts written, and whether it was its job's last."""

    written: int
    done: bool


async def run_chunk(db: Database, hub: Hub, chunk: int) -> Written | None:
    """Write the next chunk (at most `chunk` members) of the oldest job; None when there is
    no job (to run here)."""
    async with db.transaction() as tx:
        job = await fanout.lock_next_fanout_job(tx)
        if job is None:
            return None
        await workspaces.lock_workspace_for_fan_out(tx, job.workspace_id)
        after = job.after_user_id or ALL_MEMBERS[0]
        end = await fanout.get_chunk_end(tx, job.workspace_id, after, chunk)
        members = (after, end or ALL_MEMBERS[1])
        written = await notifications.fan_out_broadcast(
            tx, notification_id=job.notification_id, workspace_id=job.workspace_id, sender_id=job.sender_id,
            created_at=job.created_at, type_prefixes=type_prefixes(job.type), critical=job.critical, members=members)
        if end is None:
            await fanout.delete_fanout_job(tx, job.notification_id)
        else:
            await fanout.update_fanout_job(tx, job.notification_id, end, written)
        tx.after_commit(lambda: hub.broadcast_delivered(job.notification_id, members))
    metrics.FANOUT_RECEIPTS.inc(written)
    if end is None:
        metrics.FANOUT_DURATION.observe((utcnow() - job.created_at).total_seconds())
    log.debug("fan-out of %s: %d receipts written%s", job.notification_id, written, " (done)" if end is None else "")
    return Written(written, done=end is None)


class FanOutWorker:
    """Runs the fan-out jobs in one server process (see the module docstring)."""

    def __init__(self, db: Database, hub: Hub, chunk: int):
        self.db = db
        self.hub = hub
        self.chunk = chunk  # the most members in one chunk (and the largest broadcast written at once)
        # The next chunk's members, between 1 and `chunk`: sized by time on SQLite only (see "How big a chunk").
        self.timed = db.dialect == "sqlite"
        self.size = min(chunk, FIRST_CHUNK) if self.timed else chunk
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="pulsestack-fanout")

    async def close(self) -> None:
        """Stop after the chunk in flight, if any, is done or rolled back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """A job was just committed: start on it now rather than at the next poll."""
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until a pass has found no job left to run (for tests)."""
        await self._idle.wait()

    async def _run_chunk(self) -> bool:
        """One chunk of `size` members; then the next size, towards CHUNK_S. False when no job is left."""
        started = time.perf_counter()
        ran = await run_chunk(self.db, self.hub, self.size)
        took = time.perf_counter() - started
        if ran is None:
            return False
        if self.timed:
            scale = min(2.0, max(0.5, CHUNK_S / max(took, 1e-6)))
            self.size = min(self.chunk, max(1, round(self.size * scale)))
        if ran.done:
            await self._count_backlog()
        return True

    async def _count_backlog(self) -> None:
        """The jobs under way, for the metrics (on start, when woken, and as each job ends)."""
        metrics.FANOUT_BACKLOG.set(await fanout.count_fanout_jobs(self.db))

    async def _run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._count_backlog()
                while await self._run_chunk():
                    metrics.FANOUT_JOBS_RUNNING.set(1)
            except DatabaseError as exc:
                log.warning("fan-out: a chunk failed, retrying in %g s: %s", RETRY_S, exc)
                await asyncio.sleep(RETRY_S)
                continue
            except Exception:
                log.exception("fan-out: a chunk failed, retrying in %g s", RETRY_S)
                await asyncio.sleep(RETRY_S)
                continue
            finally:
                metrics.FANOUT_JOBS_RUNNING.set(0)
            if not self._wake.is_set():
                self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

"""SQLite reads: inline on the event loop's thread when quick, on a reader
thread when not (pulsestack/db/sqlite.py)."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import make_user

from pulsestack.db import DatabaseError, NamedQuery
from pulsestack.db.sqlite import InlineReader
from pulsestack.queries import users

pytestmark = pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)

# Counts to three million in SQL: far past the inline budget.
SLOW = NamedQuery.dynamic(
    "count_slowly",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) SELECT count(*) AS n FROM c",
    "one",
)


@pytest.fixture
def inline_answers(monkeypatch) -> list[bool]:
    """One entry per inline attempt: True when it answered, False when it handed the read on."""
    outcomes: list[bool] = []
    original = InlineReader.fetch

    def spy(self, sql, bound):
        rows = original(self, sql, bound)
        outcomes.append(rows is not None)
        return rows

    monkeypatch.setattr(InlineReader, "fetch", spy)
    return outcomes


async def test_a_quick_read_is_answered_inline(db, inline_answers):
    user = await make_user(db, "inline@example.com")
    inline_answers.clear()
    assert await users.get_user(db, user.id) == user  # typed as the writer's RETURNING row: UUID, datetime
    assert inline_answers == [True]


async def test_a_slow_read_is_interrupted_and_answered_by_a_reader_thread(db, inline_answers):
    assert await db.fetch_one(SLOW, n=3_000_000) == {"n": 3_000_000}
    assert inline_answers == [False]
    # the inline connection is usable again at once
    user = await make_user(db, "after@example.com")
    inline_answers.clear()
    assert (await users.get_user(db, user.id)).email == "after@example.com"
    assert inline_answers == [True]


async def test_reads_inside_a_transaction_never_go_inline(db, inline_answers):
    user = await make_user(db, "tx@example.com")
    inline_answers.clear()
    async with db.transaction() as tx:
        assert (await users.get_user(tx, user.id)).email == "tx@example.com"
    assert inline_answers == []


def failing_connection(code: int, message: str):
    """A stand-in for the inline connection whose every statement fails as sqlite3 would."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # as sqlite3 sets it

    class Failing:
        def execute(self, *args):
            raise error

    return Failing()


async def test_a_busy_database_hands_the_read_to_a_reader_thread(db, inline_answers, monkeypatch):
    user = await make_user(db, "busy@example.com")
    monkeypatch.setattr(db._inline, "conn", failing_connection(sqlite3.SQLITE_BUSY, "database is locked"))
    inline_answers.clear()
    assert await users.get_user(db, user.id) == user  # a reader thread's connection converts types too
    assert inline_answers == [False]


async def test_other_sqlite_errors_are_not_retried(db, monkeypatch):
    monkeypatch.setattr(db._inline, "conn", failing_connection(sqlite3.SQLITE_ERROR, "no such table: users"))
    with pytest.raises(DatabaseError, match="no such table"):
        await db.fetch_one(SLOW, n=1)

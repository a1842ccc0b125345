"""Identifiers and clocks the application makes itself.

Ids are UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random
bits. Time-ordered ids land at the right-hand edge of B-tree indexes, so
inserts stay cheap, and paging by id follows creation order. Timestamps are
UTC-aware and kept at microsecond precision, the precision both databases
store, so a timestamp the API returns compares equal to its row.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


def new_id() -> uuid.UUID:
    """A fresh UUIDv7."""
    ms = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def utcnow() -> datetime:
    """Now, UTC-aware, microsecond precision."""
    return datetime.now(UTC)


def isoformat_z(moment: datetime) -> str:
    """`2026-01-02T03:04:05.123456Z`: the API's (and SQLite's) timestamp
    spelling, fixed width for every year 1-9999, so text order is time order."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

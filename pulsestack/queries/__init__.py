"""Query functions, one module per table family.

Each function runs one named query from sql/ and returns typed rows: the
shapes of models/resources.py, or a small dataclass for rows only the
services see. No permission checks, no business rules (services/ decides),
no driver imports (db/ adapts). Every function takes an `Executor`: the
`Database` itself or an open `Transaction`, so a service chooses the
transaction boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from ..db import Row

R = TypeVar("R")


def _maker(kind: type[R]) -> Callable[[Row], R]:
    if issubclass(kind, BaseModel):
        return kind.model_validate
    return lambda row: kind(**row)


def one(kind: type[R], row: Row | None) -> R | None:
    """`row` as a `kind`, or None."""
    return None if row is None else _maker(kind)(row)


def many(kind: type[R], rows: Iterable[Row]) -> list[R]:
    make = _maker(kind)
    return [make(row) for row in rows]


def column(rows: Iterable[Row], name: str) -> list[Any]:
    return [row[name] for row in rows]

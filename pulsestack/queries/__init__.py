"""Query functions, one module per table family.

Each function runs one named query from sql/ and returns typed rows: the
shapes of models/resources.py, or a small named tuple or dataclass for rows
only the services see. A model is validated from its row (pydantic-core
does it in about a microsecond, faster than `model_construct`, which is
Python), so a row that does not fit its shape fails here, by name. No permission checks, no business rules (services/ decides),
no driver imports (db/ adapts). Every function takes an `Executor`: the
`Database` itself or an open `Transaction`, so a service chooses the
transaction boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from ..db import Row

R = TypeVar("R")


def make(kind: type[R], row: Row) -> R:
    """`row` as a `kind`: a model of models/resources.py, or a named tuple or dataclass."""
    if issubclass(kind, BaseModel):  # cached by ABCMeta after the first call of each kind
        return kind.model_validate(row)
    return kind(**row)


def one(kind: type[R], row: Row | None) -> R | None:
    """`row` as a `kind`, or None."""
    return None if row is None else make(kind, row)


def many(kind: type[R], rows: Iterable[Row]) -> list[R]:
    return [make(kind, row) for row in rows]


def column(rows: Iterable[Row], name: str) -> list[Any]:
    return [row[name] for row in rows]

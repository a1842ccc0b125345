"""Where the SQL files and migrations are, installed or in a checkout.

In a wheel they travel inside the package (pyproject.toml force-includes the
top-level sql/ and migrations/ as pulsestack/sql and pulsestack/migrations);
in a source checkout or an editable install they are the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"PulseStack's {name}/ folder is missing (looked in {_PACKAGE} and {_PACKAGE.parent})")


def sql_dir() -> Path:
    return _find("sql")


def migrations_dir(dialect: str) -> Path:
    return _find("migrations") / dialect

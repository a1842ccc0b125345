"""Named SQL: parse the `.sql` files of sql/ into `NamedQuery` objects.

A file holds any number of queries, each opened by a header line

    -- name: count_unread_by_workspace(user_ids) :many

followed by doc comment lines and the statement. The header declares the
parameters and the result shape (`:one`, `:many`, `:scalar`, `:exec`); the
loader refuses a parameter the SQL uses but the header does not declare, and
one the header declares but the SQL never uses.

`sql/*.sql` holds the portable queries; `sql/<dialect>/*.sql` may override a
portable query of the same name, with the same parameters and shape, where the
dialects need different SQL. Nothing here knows a driver: the adapters turn a
`NamedQuery` into their own placeholder style (see `scan_placeholders`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SHAPES = ("one", "many", "scalar", "exec")

_HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*\((?P<params>[^)]*)\)\s*:(?P<shape>\w+)\s*$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `IN (:ids)` marks a list parameter; each dialect spells it its own way.
_LIST_IN = re.compile(r"(?P<not>\bNOT\s+)?\bIN\s*\(\s*:(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\)", re.IGNORECASE)
_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


class SQLFileError(ValueError):
    """A malformed or inconsistent SQL file; the message names file and line."""


@dataclass(frozen=True)
class NamedQuery:
    name: str
    params: tuple[str, ...]
    shape: str
    sql: str
    doc: str = ""
    source: str = "<dynamic>"

    @cached_property  # these run on every call: scan the SQL once
    def list_params(self) -> frozenset[str]:
        """Parameters written as `IN (:name)`: they take a sequence."""
        return frozenset(m.group("name") for m in _LIST_IN.finditer(blank_out_literals(self.sql)))

    @cached_property
    def writes(self) -> bool:
        """True when the statement may write; such statements go to the writer."""
        return bool(_WRITE.search(blank_out_literals(self.sql)))

    @classmethod
    def dynamic(cls, name: str, sql: str, shape: str) -> NamedQuery:
        """A query built at run time (pypika), checked like a file's query."""
        used = tuple(dict.fromkeys(n for _, _, n in scan_placeholders(sql)))
        return _checked(cls(name=name, params=used, shape=shape, sql=sql.strip().rstrip(";"), source="<dynamic>"))


def scan_placeholders(sql: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every `:name` placeholder in `sql`.

    Skips quoted strings, quoted identifiers, comments and `::` casts, so
    `'a:b'`, `-- at :noon` and `x::text` are never taken for parameters.
    """
    found: list[tuple[int, int, str]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = sql.find(c, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == c:  # doubled quote
                end = sql.find(c, end + 2)
            i = n if end == -1 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif sql.startswith("::", i):
            i += 2
        elif c == ":":
            m = _IDENT.match(sql, i + 1)
            if m:
                found.append((i, m.end(), m.group()))
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return found


def blank_out_literals(sql: str) -> str:
    """`sql` with comments and string literals replaced by spaces (same length)."""
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        start = i
        if sql[i] == "'":
            end = sql.find("'", i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == "'":
                end = sql.find("'", end + 2)
            i = n if end == -1 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        else:
            i += 1
            continue
        out[start:i] = " " * (i - start)
    return "".join(out)


def _checked(query: NamedQuery) -> NamedQuery:
    if query.shape not in SHAPES:
        expected = ", ".join(":" + s for s in SHAPES)
        raise SQLFileError(f"{query.source}: {query.name}: unknown shape :{query.shape} (expected one of {expected})")
    if not query.sql:
        raise SQLFileError(f"{query.source}: {query.name}: no SQL after the header")
    used = {name for _, _, name in scan_placeholders(query.sql)}
    declared = set(query.params)
    if len(declared) != len(query.params):
        raise SQLFileError(f"{query.source}: {query.name}: a parameter is declared twice")
    if undeclared := used - declared:
        raise SQLFileError(f"{query.source}: {query.name}: parameter(s) used but not declared: {', '.join(sorted(undeclared))}")
    if unused := declared - used:
        raise SQLFileError(f"{query.source}: {query.name}: parameter(s) declared but not used: {', '.join(sorted(unused))}")
    return query


def parse_sql(text: str, source: str) -> list[NamedQuery]:
    """Every named query of one file's text, in file order."""
    queries: list[NamedQuery] = []
    current: dict | None = None

    def finish() -> None:
        if current is None:
            return
        sql = "\n".join(current["body"]).strip()
        if sql.endswith(";"):
            sql = sql[:-1].rstrip()
        if ";" in blank_out_literals(sql):
            raise SQLFileError(f"{current['source']}: {current['name']}: one statement per query")
        queries.append(_checked(NamedQuery(
            name=current["name"], params=current["params"], shape=current["shape"],
            sql=sql, doc="\n".join(current["doc"]).strip(), source=current["source"],
        )))

    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("--") and re.match(r"^--\s*name:", stripped):
            m = _HEADER.match(stripped)
            if not m:
                raise SQLFileError(f"{source}:{lineno}: malformed header {stripped!r}; "
                                   "expected '-- name: verb_noun(param, ...) :shape'")
            finish()
            params = tuple(p.strip() for p in m.group("params").split(",") if p.strip())
            for p in params:
                if not _IDENT.fullmatch(p):
                    raise SQLFileError(f"{source}:{lineno}: bad parameter name {p!r}")
            current = {"name": m.group("name"), "params": params, "shape": m.group("shape"),
                       "doc": [], "body": [], "source": f"{source}:{lineno}"}
        elif current is None:
            if stripped and not stripped.startswith("--"):
                raise SQLFileError(f"{source}:{lineno}: SQL before the first '-- name:' header")
        elif stripped.startswith("--") and not current["body"]:
            current["doc"].append(stripped[2:].strip())
        elif stripped or current["body"]:
            current["body"].append(line)
    finish()
    return queries


def _load_dir(folder: Path) -> dict[str, NamedQuery]:
    queries: dict[str, NamedQuery] = {}
    for path in sorted(folder.glob("*.sql")):
        for q in parse_sql(path.read_text(encoding="utf-8"), f"{folder.name}/{path.name}"):
            if q.name in queries:
                raise SQLFileError(f"{q.source}: {q.name} is already defined at {queries[q.name].source}")
            queries[q.name] = q
    return queries


def load_queries(sql_dir: Path, dialect: str) -> dict[str, NamedQuery]:
    """The portable queries of `sql_dir`, with `sql_dir/<dialect>/` overrides applied."""
    queries = _load_dir(sql_dir)
    overrides = _load_dir(sql_dir / dialect) if (sql_dir / dialect).is_dir() else {}
    for name, q in overrides.items():
        base = queries.get(name)
        if base is None:
            raise SQLFileError(f"{q.source}: {name} overrides no portable query (define it in sql/*.sql first)")
        if (set(q.params), q.shape) != (set(base.params), base.shape):
            raise SQLFileError(f"{q.source}: {name} must keep the parameters and shape of {base.source}")
        queries[name] = q
    return queries


def rewrite_list_params(sql: str, in_list: Callable[[str], str], not_in_list: Callable[[str], str]) -> str:
    """Replace every `IN (:name)` / `NOT IN (:name)` with the dialect's spelling."""
    def sub(m: re.Match[str]) -> str:
        return (not_in_list if m.group("not") else in_list)(m.group("name"))
    # Only rewrite outside literals: match on the blanked text, splice into the original.
    blanked = blank_out_literals(sql)
    parts, last = [], 0
    for m in _LIST_IN.finditer(blanked):
        parts.append(sql[last:m.start()])
        parts.append(sub(m))
        last = m.end()
    parts.append(sql[last:])
    return "".join(parts)

"""Named SQL: the file format's rules, and every query of sql/ compiling on both dialects."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsestack.db.postgres import compile_postgres
from pulsestack.db.sqlfile import NamedQuery, SQLFileError, load_queries, parse_sql, scan_placeholders
from pulsestack.db.sqlite import compile_sqlite
from pulsestack.resources import sql_dir


def test_header_declares_name_params_shape_and_doc():
    [q] = parse_sql(
        "-- A file comment.\n\n"
        "-- name: get_user(user_id) :one\n"
        "-- Fetch one user.\n"
        "-- Second doc line.\n"
        "SELECT id\n  FROM users\n WHERE id = :user_id;\n",
        "users.sql",
    )
    assert (q.name, q.params, q.shape) == ("get_user", ("user_id",), "one")
    assert q.doc == "Fetch one user.\nSecond doc line."
    assert q.sql == "SELECT id\n  FROM users\n WHERE id = :user_id"
    assert q.source == "users.sql:3"
    assert not q.writes


def test_several_queries_per_file():
    qs = parse_sql("-- name: a() :scalar\nSELECT 1;\n\n-- name: b(x) :exec\nDELETE FROM t WHERE x = :x;\n", "f.sql")
    assert [(q.name, q.shape, q.writes) for q in qs] == [("a", "scalar", False), ("b", "exec", True)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("-- name: q(a) :one\nSELECT :a, :b;", "used but not declared: b"),
        ("-- name: q(a, b) :one\nSELECT :a;", "declared but not used: b"),
        ("-- name: q(a, a) :one\nSELECT :a;", "declared twice"),
        ("-- name: q() :rows\nSELECT 1;", "unknown shape :rows"),
        ("-- name: q() :one\n", "no SQL after the header"),
        ("-- name: q() :one\nSELECT 1; SELECT 2;", "one statement per query"),
        ("-- name: Bad Name() :one\nSELECT 1;", "malformed header"),
        ("SELECT 1;\n-- name: q() :one\nSELECT 1;", "SQL before the first"),
    ],
)
def test_malformed_files_are_refused_with_file_and_line(text, message):
    with pytest.raises(SQLFileError, match=message) as err:
        parse_sql(text, "bad.sql")
    assert "bad.sql:" in str(err.value)


def test_placeholders_skip_strings_comments_and_casts():
    text = "SELECT ':not_a', \"col:x\", x::text, :real -- :comment\n /* :block */ , :other"
    assert [name for _, _, name in scan_placeholders(text)] == ["real", "other"]


def test_postgres_placeholders_are_numbered_once_per_name():
    sql, order = compile_postgres("SELECT x::int FROM t WHERE a = :a AND b = :b OR a > :a AND s = ':a'")
    assert sql == "SELECT x::int FROM t WHERE a = $1 AND b = $2 OR a > $1 AND s = ':a'"
    assert order == ("a", "b")


def test_list_parameters_are_spelled_per_dialect():
    text = "SELECT 1 FROM t WHERE a IN (:ids) AND b NOT IN ( :skip ) AND c = 'IN (:x)'"
    q = NamedQuery.dynamic("q", text, "many")
    assert q.list_params == {"ids", "skip"}
    assert compile_postgres(text)[0] == "SELECT 1 FROM t WHERE a = ANY($1) AND b <> ALL($2) AND c = 'IN (:x)'"
    assert compile_sqlite(text) == (
        "SELECT 1 FROM t WHERE a IN (SELECT value FROM json_each(:ids)) "
        "AND b NOT IN (SELECT value FROM json_each(:skip)) AND c = 'IN (:x)'"
    )


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_dialect_folder_overrides_a_portable_query(tmp_path):
    _write(tmp_path, "a.sql", "-- name: now_text() :scalar\nSELECT 'portable';\n")
    _write(tmp_path / "sqlite", "a.sql", "-- name: now_text() :scalar\n-- Why it differs.\nSELECT 'sqlite';\n")
    assert load_queries(tmp_path, "sqlite")["now_text"].sql == "SELECT 'sqlite'"
    assert load_queries(tmp_path, "postgres")["now_text"].sql == "SELECT 'portable'"


@pytest.mark.parametrize(
    "override, message",
    [
        ("-- name: other() :scalar\nSELECT 1;\n", "overrides no portable query"),
        ("-- name: q(x) :scalar\nSELECT :x;\n", "must keep the parameters and shape"),
        ("-- name: q() :one\nSELECT 1;\n", "must keep the parameters and shape"),
    ],
)
def test_overrides_must_match_a_portable_query(tmp_path, override, message):
    _write(tmp_path, "a.sql", "-- name: q() :scalar\nSELECT 1;\n")
    _write(tmp_path / "postgres", "a.sql", override)
    with pytest.raises(SQLFileError, match=message):
        load_queries(tmp_path, "postgres")


def test_a_name_is_defined_once(tmp_path):
    _write(tmp_path, "a.sql", "-- name: q() :scalar\nSELECT 1;\n")
    _write(tmp_path, "b.sql", "-- name: q() :scalar\nSELECT 2;\n")
    with pytest.raises(SQLFileError, match=r"already defined at \S*a\.sql:1"):
        load_queries(tmp_path, "sqlite")


def test_every_query_has_a_verb_first_name_and_a_doc_or_obvious_shape():
    queries = load_queries(sql_dir(), "postgres")
    verbs = ("get_", "list_", "count_", "create_", "add_", "update_", "set_", "rename_", "delete_", "remove_", "fan_out_", "mark_", "lock_", "archive_", "unarchive_")
    assert queries, "sql/ holds no queries"
    for q in queries.values():
        assert q.name.startswith(verbs), f"{q.source}: {q.name} should start with a verb"


async def test_every_named_query_prepares(db):
    """Each query of sql/ (with this dialect's overrides) compiles against the migrated schema."""
    assert db.queries
    for name in db.queries:
        await db.prepare(name)


async def test_preparing_a_broken_query_fails(db):
    with pytest.raises(Exception):
        await db.prepare(NamedQuery.dynamic("broken", "SELECT no_such_column FROM users", "many"))

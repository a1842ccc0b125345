-- depends: 0003_declared_types
-- Workspace names sort by Unicode code point, whatever the database's locale.
--
-- GET /api/workspaces and GET /api/me list workspaces by name, and page by
-- (name, id). Under a database's default collation (en_US.UTF-8, an ICU
-- locale) Postgres would sort "alpha" before "Beta", while SQLite (BINARY)
-- sorts "Beta" first: the same data would page in a different order on each.
-- "C" compares the UTF-8 bytes, which is code point order, exactly SQLite's
-- BINARY; no index is built on name, so nothing is rebuilt.
ALTER TABLE workspaces ALTER COLUMN name TYPE text COLLATE "C";

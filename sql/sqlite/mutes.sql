-- SQLite spellings of mutes.sql queries: a list parameter is bound as JSON
-- text (db/sqlite.py), which json_each turns into rows.

-- name: add_mute_prefixes(workspace_id, user_id, type_prefixes, until, created_at) :exec
INSERT INTO workspace_mutes (workspace_id, user_id, type_prefix, until, created_at)
SELECT :workspace_id, :user_id, p.value, :until, :created_at
  FROM json_each(:type_prefixes) AS p;

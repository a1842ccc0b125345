-- Mutes: a member silences a workspace, or some notification types in it,
-- until a moment or until they delete the mute. One row per muted type
-- prefix; the prefix '' mutes every type. The fan-out (sql/receipts.sql)
-- skips a member with a live row whose prefix covers the send's type, an
-- anti-join inside its one INSERT ... SELECT. Every statement here reads or
-- writes one member's rows: a range of workspace_mutes_pkey (workspace_id,
-- user_id, type_prefix). A mute belongs to the membership: the rows go with
-- it (ON DELETE CASCADE).

-- name: lock_member_for_mute(workspace_id, user_id) :scalar
-- Replacing a mute (delete, then insert) starts here, so two replacements
-- by the same member take turns instead of colliding on the primary key;
-- no row when the membership is gone. Postgres locks the member row
-- (sql/postgres/mutes.sql); here it is a plain read, because SQLite's
-- single writer already runs these transactions one at a time. Served by
-- workspace_members_workspace_id_user_id_key.
SELECT user_id
  FROM workspace_members
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id;

-- name: list_mute_prefixes(workspace_id, user_id, now) :many
-- The member's live mute: one row per muted prefix with the shared end;
-- none when there is no mute or its `until` has passed (at or before now).
SELECT type_prefix, until
  FROM workspace_mutes
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id
   AND (until IS NULL OR until > :now);

-- name: delete_mute(workspace_id, user_id) :exec
-- Every row of the member's mute, live or expired.
DELETE FROM workspace_mutes
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id;

-- name: add_mute_prefixes(workspace_id, user_id, type_prefixes, until, created_at) :exec
-- One row per prefix of the list, written by one set-based statement: the
-- array parameter unnested (Postgres); sql/sqlite/mutes.sql reads the
-- list's JSON text with json_each. The prefixes are distinct (the request
-- model drops repeats), so the primary key holds.
INSERT INTO workspace_mutes (workspace_id, user_id, type_prefix, until, created_at)
SELECT :workspace_id, :user_id, p.type_prefix, :until, :created_at
  FROM unnest(CAST(:type_prefixes AS text[])) AS p (type_prefix);

-- name: delete_expired_mutes(now) :exec
-- Housekeeping: a mute whose `until` has passed mutes nothing, and goes.
-- A scan of this small table once an hour (members mute rarely); no index
-- on `until`, which would cost every mute write for an hourly delete.
DELETE FROM workspace_mutes
 WHERE until <= :now;

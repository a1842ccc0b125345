-- Postgres spelling of mutes.sql's member lock (see lock_member_for_mute there).

-- name: lock_member_for_mute(workspace_id, user_id) :scalar
-- FOR NO KEY UPDATE: a second replacement of the same member's mute waits
-- for the first to commit, while the FOR KEY SHARE of foreign-key checks
-- (the mute rows' own, a receipt's) never waits for it. Served by
-- workspace_members_workspace_id_user_id_key.
SELECT user_id
  FROM workspace_members
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id
   FOR NO KEY UPDATE;

-- Postgres spellings of workspaces.sql queries: the row locks that make a
-- broadcast and a member removal in the same workspace take turns (see
-- lock_workspace_for_fan_out in sql/workspaces.sql). Under READ COMMITTED a
-- fan-out would otherwise read a member that a concurrent removal has
-- already deleted, along with receipts the fan-out had not yet written.

-- name: lock_workspace_for_fan_out(workspace_id) :scalar
-- FOR SHARE: sends in one workspace do not wait for each other, but a
-- removal's FOR NO KEY UPDATE waits for every send in flight, and a send
-- for a removal in flight. Served by workspaces_pkey.
SELECT id
  FROM workspaces
 WHERE id = :workspace_id
   FOR SHARE;

-- name: lock_workspace_for_member_removal(workspace_id) :scalar
-- FOR NO KEY UPDATE conflicts with a send's FOR SHARE, but not with the FOR
-- KEY SHARE that foreign-key checks take, so inserting a notification or a
-- member elsewhere in the workspace does not wait for it. Served by
-- workspaces_pkey.
SELECT id
  FROM workspaces
 WHERE id = :workspace_id
   FOR NO KEY UPDATE;

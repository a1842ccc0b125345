-- Workspace members and their roles (owner, admin, member). The owner is
-- also a member row with role 'owner'; there is exactly one per workspace.
-- Lists page by user_id (ids are time-ordered UUIDs), which the unique
-- index (workspace_id, user_id) serves directly: no sort, any depth.

-- name: add_member(id, workspace_id, user_id, role, joined_at) :exec
-- Fails with workspace_members_workspace_id_user_id_key for an existing member.
INSERT INTO workspace_members (id, workspace_id, user_id, role, joined_at)
VALUES (:id, :workspace_id, :user_id, :role, :joined_at);

-- name: get_member(workspace_id, user_id) :one
SELECT m.user_id, u.email, m.role, m.joined_at
  FROM workspace_members AS m
  JOIN users AS u ON u.id = m.user_id
 WHERE m.workspace_id = :workspace_id
   AND m.user_id = :user_id;

-- name: list_members(workspace_id, limit) :many
-- The first page.
SELECT m.user_id, u.email, m.role, m.joined_at
  FROM workspace_members AS m
  JOIN users AS u ON u.id = m.user_id
 WHERE m.workspace_id = :workspace_id
 ORDER BY m.user_id
 LIMIT :limit;

-- name: list_members_after(workspace_id, after_user_id, limit) :many
-- A later page: members after the last user_id of the previous one.
SELECT m.user_id, u.email, m.role, m.joined_at
  FROM workspace_members AS m
  JOIN users AS u ON u.id = m.user_id
 WHERE m.workspace_id = :workspace_id
   AND m.user_id > :after_user_id
 ORDER BY m.user_id
 LIMIT :limit;

-- name: list_member_ids_among(workspace_id, user_ids) :many
-- Which of the given users are members; a direct send refuses the rest.
SELECT m.user_id
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id IN (:user_ids);

-- name: update_member_role(workspace_id, user_id, role) :exec
-- Never changes the owner: ownership is not a role to hand out here.
UPDATE workspace_members
   SET role = :role
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id
   AND role <> 'owner';

-- name: remove_member(workspace_id, user_id) :exec
-- The owner row is never removed; the service answers 409 before this.
DELETE FROM workspace_members
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id
   AND role <> 'owner';

-- name: list_member_user_ids(workspace_id) :many
-- Everyone in a workspace, for telling the hub whose counts a workspace
-- deletion changes (read before the rows cascade away).
SELECT user_id
  FROM workspace_members
 WHERE workspace_id = :workspace_id;

-- name: mark_seen(user_id, until) :exec
-- The user opened the bell: every membership's seen cut-off moves forward
-- to `until`, never back. One row per membership, never one per receipt.
UPDATE workspace_members
   SET seen_until = :until
 WHERE user_id = :user_id
   AND (seen_until IS NULL OR seen_until < :until);

-- name: mark_seen_in(workspace_id, user_id, until) :exec
-- The same for one workspace.
UPDATE workspace_members
   SET seen_until = :until
 WHERE workspace_id = :workspace_id
   AND user_id = :user_id
   AND (seen_until IS NULL OR seen_until < :until);

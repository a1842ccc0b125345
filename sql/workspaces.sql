-- Workspaces: tenants. Every path under /api/workspaces/{slug} first looks
-- the workspace up together with the caller's membership, so a non-member
-- and a missing workspace look the same (404).

-- name: create_workspace(id, name, slug, owner_id, created_at) :one
-- Fails with workspaces_slug_key when the slug is taken.
INSERT INTO workspaces (id, name, slug, owner_id, created_at)
VALUES (:id, :name, :slug, :owner_id, :created_at)
RETURNING id, name, slug, owner_id, created_at;

-- name: get_workspace_by_slug(slug) :one
SELECT id, name, slug, owner_id, created_at
  FROM workspaces
 WHERE slug = :slug;

-- name: get_workspace_membership(slug, user_id) :one
-- The workspace and the user's role in it; no row when either is missing.
-- Served by workspaces_slug_key, then workspace_members_workspace_id_user_id_key.
SELECT w.id, w.name, w.slug, w.owner_id, w.created_at, m.role
  FROM workspaces AS w
  JOIN workspace_members AS m ON m.workspace_id = w.id
 WHERE w.slug = :slug
   AND m.user_id = :user_id;

-- name: list_workspaces_for_user(user_id) :many
-- Every workspace the user belongs to, with their role (GET /api/me);
-- served by workspace_members_user_idx.
SELECT w.id, w.name, w.slug, m.role
  FROM workspace_members AS m
  JOIN workspaces AS w ON w.id = m.workspace_id
 WHERE m.user_id = :user_id
 ORDER BY w.name, w.id;

-- name: list_workspaces_page(user_id, limit) :many
-- GET /api/workspaces, first page: by name, then id (a user belongs to few
-- workspaces, so the sort is small).
SELECT w.id, w.name, w.slug, w.owner_id, w.created_at, m.role
  FROM workspace_members AS m
  JOIN workspaces AS w ON w.id = m.workspace_id
 WHERE m.user_id = :user_id
 ORDER BY w.name, w.id
 LIMIT :limit;

-- name: list_workspaces_page_after(user_id, after_name, after_id, limit) :many
-- A later page: after the (name, id) of the previous page's last row.
SELECT w.id, w.name, w.slug, w.owner_id, w.created_at, m.role
  FROM workspace_members AS m
  JOIN workspaces AS w ON w.id = m.workspace_id
 WHERE m.user_id = :user_id
   AND (w.name, w.id) > (:after_name, :after_id)
 ORDER BY w.name, w.id
 LIMIT :limit;

-- name: rename_workspace(workspace_id, name) :one
UPDATE workspaces
   SET name = :name
 WHERE id = :workspace_id
RETURNING id, name, slug, owner_id, created_at;

-- name: lock_workspace_for_fan_out(workspace_id) :scalar
-- A send's transaction runs this just before its fan-out reads the members,
-- and a member removal's runs lock_workspace_for_member_removal before it
-- deletes, so the two take turns: a removal either commits before the
-- fan-out reads the members, or waits until the send has committed and then
-- deletes its receipt too. Never a receipt (and an unread count) for someone
-- who has left. Postgres locks the row (sql/postgres/workspaces.sql); here
-- it is a plain read, because SQLite's single writer already runs these
-- transactions one at a time. Served by workspaces_pkey.
SELECT id
  FROM workspaces
 WHERE id = :workspace_id;

-- name: lock_workspace_for_member_removal(workspace_id) :scalar
-- The removal's side of lock_workspace_for_fan_out; no row when the
-- workspace is gone. Served by workspaces_pkey.
SELECT id
  FROM workspaces
 WHERE id = :workspace_id;

-- name: delete_workspace(workspace_id) :exec
-- Members, notifications and (through notifications) receipts cascade.
DELETE FROM workspaces
 WHERE id = :workspace_id;

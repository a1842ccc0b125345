-- Notifications: the content, stored once per send. Delivery state lives in
-- notification_receipts (receipts.sql).

-- name: create_notification(id, workspace_id, sender_id, title, message, type, broadcast, created_at, url, data) :exec
INSERT INTO notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at, url, data)
VALUES (:id, :workspace_id, :sender_id, :title, :message, :type, :broadcast, :created_at, :url, :data);

-- name: get_notification(workspace_id, notification_id) :one
SELECT id, workspace_id, sender_id, title, message, type, broadcast, created_at, url, data
  FROM notifications
 WHERE workspace_id = :workspace_id
   AND id = :notification_id;

-- name: get_visible_created_at(user_id, notification_id) :scalar
-- When a notification of one of the user's workspaces was created (the
-- catch-up bound of GET /api/notifications?after=); nothing for anyone
-- else's. Served by notifications' primary key and the members' unique key.
SELECT n.created_at
  FROM notifications AS n
  JOIN workspace_members AS m ON m.workspace_id = n.workspace_id
 WHERE n.id = :notification_id
   AND m.user_id = :user_id;

-- name: list_workspace_notifications(workspace_id, limit) :many
-- A workspace's history, newest first: the first page. Served by
-- notifications_workspace_created_idx, read backwards.
SELECT id, workspace_id, sender_id, title, message, type, broadcast, created_at, url, data
  FROM notifications
 WHERE workspace_id = :workspace_id
 ORDER BY created_at DESC, id DESC
 LIMIT :limit;

-- name: list_workspace_notifications_before(workspace_id, before_created_at, before_id, limit) :many
-- A later page: strictly older than the last row of the previous page.
SELECT id, workspace_id, sender_id, title, message, type, broadcast, created_at, url, data
  FROM notifications
 WHERE workspace_id = :workspace_id
   AND (created_at, id) < (:before_created_at, :before_id)
 ORDER BY created_at DESC, id DESC
 LIMIT :limit;

-- name: count_notification_receipts(notification_id) :one
-- How many received a notification and how many have read it; served by
-- notification_receipts_notification_id_user_id_key.
SELECT count(*) AS recipient_count,
       coalesce(sum(CASE WHEN is_read THEN 1 ELSE 0 END), 0) AS read_count
  FROM notification_receipts
 WHERE notification_id = :notification_id;

-- name: delete_notification(notification_id) :exec
-- Retraction: the receipts go with it (ON DELETE CASCADE).
DELETE FROM notifications
 WHERE id = :notification_id;

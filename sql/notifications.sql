-- Notifications: the content, stored once per send. Delivery state lives in
-- notification_receipts (receipts.sql).

-- name: create_notification(id, workspace_id, sender_id, title, message, type, broadcast, created_at) :exec
INSERT INTO notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at)
VALUES (:id, :workspace_id, :sender_id, :title, :message, :type, :broadcast, :created_at);

-- name: get_notification(workspace_id, notification_id) :one
SELECT id, workspace_id, sender_id, title, message, type, broadcast, created_at
  FROM notifications
 WHERE workspace_id = :workspace_id
   AND id = :notification_id;

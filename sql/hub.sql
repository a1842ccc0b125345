-- The websocket hub's queries. Each runs once per flush for all the
-- affected users connected to one server process, never once per user.

-- name: list_connected_members(workspace_ids, user_ids) :many
-- Which connected users belong to the changed workspaces. Served by
-- workspace_members_workspace_id_user_id_key.
SELECT DISTINCT m.user_id
  FROM workspace_members AS m
 WHERE m.workspace_id IN (:workspace_ids)
   AND m.user_id IN (:user_ids);

-- name: list_new_receipts(notification_ids, user_ids) :many
-- Which connected users received the new notifications. Served by
-- notification_receipts_notification_id_user_id_key.
SELECT r.notification_id, r.user_id
  FROM notification_receipts AS r
 WHERE r.notification_id IN (:notification_ids)
   AND r.user_id IN (:user_ids);

-- name: list_notifications_by_ids(notification_ids) :many
-- The content of new notifications, oldest first so frames go out in the
-- order they were sent. The hub adds the receipt's state fresh from the send
-- (unread, unseen, not archived) to
-- make each an inbox item fresh from the send: a literal column would have
-- no declared type, and SQLite would return false as 0. Served by
-- notifications' primary key.
SELECT n.id, n.workspace_id, n.sender_id, n.title, n.message, n.type, n.broadcast, n.created_at, n.url, n.data,
       w.slug AS workspace_slug
  FROM notifications AS n
  JOIN workspaces AS w ON w.id = n.workspace_id
 WHERE n.id IN (:notification_ids)
 ORDER BY n.created_at, n.id;

-- The websocket hub's queries. Each runs once per flush for all the
-- affected users connected to one server process, never once per user.

-- name: list_connected_members(workspace_ids, user_ids) :many
-- Which connected users belong to the changed workspaces, and to which of
-- them (a retraction names its notification to its workspace's members).
-- Served by workspace_members_workspace_id_user_id_key.
SELECT m.workspace_id, m.user_id
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

-- name: list_receipt_states(user_ids, notification_ids) :many
-- The state now of the receipts that changed, for a `changed` frame: every
-- receipt of these users and these notifications (the hub keeps the pairs
-- that changed; a pair with no row is a receipt that is gone). Served by
-- notification_receipts_notification_id_user_id_key.
SELECT r.user_id, r.notification_id, r.is_read, r.read_at, r.archived_at
  FROM notification_receipts AS r
 WHERE r.notification_id IN (:notification_ids)
   AND r.user_id IN (:user_ids);

-- name: list_recent_receipts(user_ids, since, limit) :many
-- A connecting user's receipts created after `since`, newest first: the
-- notifications its `ready` already shows, never to be pushed to that
-- socket again. Never run alone: queries/hub.py runs it in one statement
-- with count_unread_by_workspace, so both read one snapshot. Served by
-- receipts_inbox_idx (user_id, created_at, notification_id), index only.
SELECT r.notification_id, r.created_at
  FROM notification_receipts AS r
 WHERE r.user_id IN (:user_ids)
   AND r.created_at > :since
 ORDER BY r.created_at DESC
 LIMIT :limit;

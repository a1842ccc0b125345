-- SQLite spellings of receipts.sql queries. SQLite has no UUID function, so
-- receipt ids are built from randomblob() as canonical version-4 UUID text
-- (8-4-4-4-12, version nibble 4, variant 8/9/a/b), all in SQL: no per-row
-- Python.

-- name: fan_out_broadcast(notification_id, workspace_id, sender_id, created_at) :exec
INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       :notification_id, m.user_id, m.workspace_id, false, :created_at
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id <> :sender_id;

-- name: fan_out_direct(notification_id, workspace_id, user_ids, created_at) :exec
INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       :notification_id, m.user_id, m.workspace_id, false, :created_at
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id IN (:user_ids);

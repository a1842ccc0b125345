-- SQLite spellings of receipts.sql queries. SQLite has no UUID function, so
-- receipt ids are built in SQL, no per-row Python: version-7 UUID text whose
-- 48-bit millisecond head is the notification's own (a UUIDv7 made by the
-- application), then '7' and 74 random bits from randomblob() with the
-- variant nibble 8/9/a/b. Every receipt of a send lands in one narrow,
-- recent stretch of the primary key's B-tree instead of a random leaf page.

-- name: fan_out_broadcast(notification_id, workspace_id, sender_id, created_at, type_prefixes, critical, after_user_id, upto_user_id) :exec
INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at)
SELECT substr(:notification_id, 1, 14) || '7' || lower(substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       :notification_id, m.user_id, m.workspace_id, false, :created_at
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id > :after_user_id
   AND m.user_id <= :upto_user_id
   AND m.user_id <> :sender_id
   AND m.joined_at <= :created_at
   AND (:critical
        OR NOT EXISTS (SELECT 1
                         FROM workspace_mutes AS u
                        WHERE u.workspace_id = m.workspace_id
                          AND u.user_id = m.user_id
                          AND u.type_prefix IN (:type_prefixes)
                          AND (u.until IS NULL OR u.until > :created_at)))
    ON CONFLICT (notification_id, user_id) DO NOTHING;

-- name: fan_out_direct(notification_id, workspace_id, user_ids, created_at, type_prefixes, critical) :exec
INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at)
SELECT substr(:notification_id, 1, 14) || '7' || lower(substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       :notification_id, m.user_id, m.workspace_id, false, :created_at
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id IN (:user_ids)
   AND (:critical
        OR NOT EXISTS (SELECT 1
                         FROM workspace_mutes AS u
                        WHERE u.workspace_id = m.workspace_id
                          AND u.user_id = m.user_id
                          AND u.type_prefix IN (:type_prefixes)
                          AND (u.until IS NULL OR u.until > :created_at)));

-- Retention: `pulsestack prune` and housekeeping's retention.* settings
-- (pulsestack/services/retention.py). Every delete removes at most :batch
-- rows, picked by a LIMIT subquery over an index, in its own short
-- transaction, so no statement holds SQLite's one writer (or Postgres
-- locks) for long. Each count is the same filter without the LIMIT.

-- name: delete_read_receipts_before(cutoff, batch) :many
-- Read receipts read before the cut-off. Served by receipts_read_at_idx
-- (partial: receipts with a read_at). Returns what went, for the pushes and the
-- orphan check.
DELETE FROM notification_receipts
 WHERE id IN (SELECT id
                FROM notification_receipts
               WHERE is_read AND read_at < :cutoff
               LIMIT :batch)
RETURNING user_id, notification_id, is_read;

-- name: count_read_receipts_before(cutoff, kept_since) :scalar
-- --dry-run of delete_read_receipts_before, leaving out receipts created
-- before :kept_since (--older-than counted them already). receipts_read_at_idx.
SELECT count(*)
  FROM notification_receipts
 WHERE is_read AND read_at < :cutoff AND created_at >= :kept_since;

-- name: delete_receipts_of_notifications_before(cutoff, batch) :many
-- Every receipt (read or not) of notifications created before the cut-off:
-- notifications_created_idx walks the old notifications oldest first,
-- notification_receipts_notification_id_user_id_key finds their receipts.
-- A notification emptied by one batch is deleted before the next (see
-- delete_orphans_among), so each walk starts at receipts still to delete.
DELETE FROM notification_receipts
 WHERE id IN (SELECT r.id
                FROM notifications AS n
                JOIN notification_receipts AS r ON r.notification_id = n.id
               WHERE n.created_at < :cutoff
               LIMIT :batch)
RETURNING user_id, notification_id, is_read;

-- name: count_receipts_of_notifications_before(cutoff) :scalar
-- --dry-run of delete_receipts_of_notifications_before.
SELECT count(*)
  FROM notifications AS n
  JOIN notification_receipts AS r ON r.notification_id = n.id
 WHERE n.created_at < :cutoff;

-- name: delete_orphans_among(notification_ids, cutoff) :exec
-- Of these notifications (whose receipts a batch just deleted), those
-- created before the cut-off that have no receipt left. The cut-off keeps a
-- notification whose fan-out is still in flight. Primary key and
-- notification_receipts_notification_id_user_id_key.
DELETE FROM notifications
 WHERE id IN (:notification_ids)
   AND created_at < :cutoff
   AND NOT EXISTS (SELECT 1 FROM notification_receipts AS r WHERE r.notification_id = notifications.id);

-- name: delete_notifications_before(cutoff, batch) :exec
-- --older-than, after its receipts are gone: notifications created before
-- the cut-off with no receipt (every one of them by then, and those that
-- never had one or lost them all to dismissals). notifications_created_idx.
DELETE FROM notifications
 WHERE id IN (SELECT n.id
                FROM notifications AS n
               WHERE n.created_at < :cutoff
                 AND NOT EXISTS (SELECT 1 FROM notification_receipts AS r WHERE r.notification_id = n.id)
               LIMIT :batch);

-- name: count_notifications_before(cutoff) :scalar
-- --dry-run of --older-than: every notification created before the
-- cut-off goes (its receipts would all be deleted first).
SELECT count(*)
  FROM notifications
 WHERE created_at < :cutoff;

-- name: count_orphans_after_read_prune(cutoff, kept_since) :scalar
-- --dry-run of --read-older-than: notifications whose every receipt is a
-- read one read before the cut-off (they would be left with none).
SELECT count(*)
  FROM notifications AS n
 WHERE n.created_at < :cutoff AND n.created_at >= :kept_since
   AND EXISTS (SELECT 1 FROM notification_receipts AS r WHERE r.notification_id = n.id)
   AND NOT EXISTS (SELECT 1 FROM notification_receipts AS r
                    WHERE r.notification_id = n.id AND NOT (r.is_read AND r.read_at < :cutoff));

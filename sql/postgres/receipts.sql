-- Postgres spellings of receipts.sql queries.

-- name: mark_all_read(user_id, workspace_id, before, now) :exec
-- Postgres cannot infer a parameter's type from `:x IS NULL` alone, so the
-- optional filters carry explicit casts.
UPDATE notification_receipts
   SET is_read = true, read_at = :now
 WHERE user_id = :user_id
   AND NOT is_read
   AND (CAST(:workspace_id AS uuid) IS NULL OR workspace_id = :workspace_id)
   AND (CAST(:before AS timestamptz) IS NULL OR created_at <= :before);

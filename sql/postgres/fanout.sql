-- Postgres spellings of fanout.sql queries.

-- name: lock_next_fanout_job() :one
-- The oldest job no other process is working on: FOR UPDATE SKIP LOCKED
-- locks its row until the chunk's transaction ends, so any number of server
-- processes share the jobs and each chunk runs once; a process that dies
-- mid-chunk releases the lock with its connection and the chunk rolls back.
-- A retraction (deleting the notification, hence the job) waits for a
-- chunk in flight. Served by fanout_jobs_created_idx.
SELECT j.notification_id, j.workspace_id, j.sender_id, j.created_at, j.critical, j.after_user_id, n.type
  FROM fanout_jobs AS j
  JOIN notifications AS n ON n.id = j.notification_id
 ORDER BY j.created_at, j.notification_id
 LIMIT 1
   FOR UPDATE OF j SKIP LOCKED;

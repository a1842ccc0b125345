-- Postgres spellings of fanout.sql queries.

-- name: lock_next_fanout_job() :one
-- The oldest job no other process is working on: FOR UPDATE SKIP LOCKED
-- locks its row until the chunk's transaction ends, so any number of server
-- processes share the jobs and each chunk runs once; a process that dies
-- mid-chunk releases the lock with its connection and the chunk rolls back.
-- A retraction (deleting the notification, hence the job) waits for a
-- chunk in flight. Served by fanout_jobs_created_idx; the type by notifications_pkey.
SELECT j.notification_id, j.workspace_id, j.sender_id, j.created_at, j.critical, j.after_user_id,
       (SELECT n.type FROM notifications AS n WHERE n.id = j.notification_id) AS type
  FROM fanout_jobs AS j
 ORDER BY j.created_at, j.notification_id
 LIMIT 1
   FOR UPDATE SKIP LOCKED;

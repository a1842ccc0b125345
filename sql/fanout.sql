-- Fan-out jobs: a large broadcast's receipts, written in chunks after the
-- send has answered (services/fanout.py; the table is explained in
-- migrations/postgres/0007_fanout_jobs.sql). A chunk is one transaction:
-- lock_next_fanout_job, lock_workspace_for_fan_out, get_chunk_end, the
-- receipts receipts.sql fan_out_broadcast writes for the range, then
-- update_fanout_job (or, for the last chunk, delete_fanout_job).

-- name: create_fanout_job(notification_id, workspace_id, sender_id, created_at, critical, audience) :exec
-- In the send's transaction, beside its notification row.
INSERT INTO fanout_jobs (notification_id, workspace_id, sender_id, created_at, critical, audience)
VALUES (:notification_id, :workspace_id, :sender_id, :created_at, :critical, :audience);

-- name: lock_next_fanout_job() :one
-- The oldest job, with what a chunk needs (the type, for the mutes). Here a
-- plain read: SQLite's single writer runs one chunk at a time.
-- sql/postgres/fanout.sql locks the row, skipping one another process is
-- working on. Served by fanout_jobs_created_idx; the type by notifications_pkey (a
-- join instead lets SQLite's planner walk every notification for a handful of jobs).
SELECT j.notification_id, j.workspace_id, j.sender_id, j.created_at, j.critical, j.after_user_id,
       (SELECT n.type FROM notifications AS n WHERE n.id = j.notification_id) AS type
  FROM fanout_jobs AS j
 ORDER BY j.created_at, j.notification_id
 LIMIT 1;

-- name: get_chunk_end(workspace_id, after_user_id, skip) :scalar
-- The last member key of the next chunk: the (skip + 1)-th member after
-- after_user_id, in key order; no row when fewer are left (the last
-- chunk). A range of (workspace_id, user_id): the unique key or
-- workspace_members_audience_idx, either serves. It reads
-- at most skip + 1 index entries, however far into the workspace the job
-- is.
SELECT m.user_id
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id > :after_user_id
 ORDER BY m.user_id
 LIMIT 1 OFFSET :skip;

-- name: update_fanout_job(notification_id, after_user_id, written) :exec
-- In the chunk's transaction: the chunk is done exactly when this commits.
UPDATE fanout_jobs
   SET after_user_id = :after_user_id,
       delivered = delivered + :written
 WHERE notification_id = :notification_id;

-- name: delete_fanout_job(notification_id) :exec
-- The last chunk's end: no row means fully delivered.
DELETE FROM fanout_jobs
 WHERE notification_id = :notification_id;

-- name: delete_workspace_fanout_jobs(workspace_id) :exec
-- A workspace's jobs, deleted before the workspace itself (which would
-- cascade to them) so that its deletion locks a job row before the
-- workspace row, as a chunk does. The table holds only jobs under way, a
-- few rows: no index on workspace_id.
DELETE FROM fanout_jobs
 WHERE workspace_id = :workspace_id;

-- name: get_fanout_progress(notification_id) :one
-- A job still under way: its audience and receipts written so far. No row:
-- done (or never a job). Served by fanout_jobs_pkey.
SELECT j.audience, j.delivered
  FROM fanout_jobs AS j
 WHERE j.notification_id = :notification_id;

-- name: count_fanout_jobs() :scalar
-- Jobs under way, for the metrics' backlog gauge.
SELECT count(*)
  FROM fanout_jobs;

-- depends: 0006_retention_indexes
-- Large broadcasts: durable fan-out jobs.
--
-- A broadcast whose audience is larger than `fanout.chunk` members commits
-- its notification and one row here, and answers. A worker in a server
-- process (services/fanout.py) then writes the receipts in committed
-- chunks, each one INSERT ... SELECT over the next range of members in
-- user-id order (sql/fanout.sql), and moves `after_user_id` and
-- `delivered` forward in the same transaction as the chunk's receipts: a
-- chunk is done exactly when its cursor moved. The row is deleted with
-- the last chunk; a notification with no row here is fully delivered.
--
-- notification_id: the job's key; a retraction (or the workspace's
--   deletion, through notifications) deletes the job with it, which stops it.
-- sender_id: the member the broadcast leaves out. A copy, without a foreign
--   key: the notification's own sender_id becomes null if the sender's
--   account is deleted, but they still must not get a receipt.
-- critical: a critical send reaches members who muted it.
-- audience: the members the broadcast was for, counted at send time, mutes
--   applied (the answer's recipient_count).
-- delivered: receipts written so far.
-- after_user_id: the last member key the written chunks cover; null
--   before the first chunk.
--
-- The worker takes the oldest job first (fanout_jobs_created_idx), and on
-- Postgres claims it with FOR UPDATE SKIP LOCKED, so any number of server
-- processes share the work and each chunk runs once.
CREATE TABLE fanout_jobs (
    notification_id uuid PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL,
    sender_id       uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    critical        boolean NOT NULL,
    audience        integer NOT NULL,
    delivered       integer NOT NULL DEFAULT 0,
    after_user_id   uuid
);
CREATE INDEX fanout_jobs_created_idx ON fanout_jobs (created_at, notification_id);

-- workspace_members_audience_idx: a broadcast's audience is the members who
-- joined by its send (joined_at <= created_at), now that a large one's
-- receipts are written after it. With joined_at beside the unique key's
-- (workspace_id, user_id), counting a workspace's audience and reading each
-- chunk's members never leave the index: on SQLite, counting 100,000
-- members through the unique key and a row lookup each for joined_at took
-- 150 ms, through this index 15 ms. Memberships change rarely; this index
-- costs them one entry more.
CREATE INDEX workspace_members_audience_idx ON workspace_members (workspace_id, user_id, joined_at);

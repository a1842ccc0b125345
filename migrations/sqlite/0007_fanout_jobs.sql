-- depends: 0006_retention_indexes
-- Large broadcasts: durable fan-out jobs, and the members' audience index
-- (SQLite). migrations/postgres/0007_fanout_jobs.sql explains each column
-- and the index; this step declares the same ones with SQLite's types.
CREATE TABLE fanout_jobs (
    notification_id UUID TEXT NOT NULL,
    workspace_id    UUID TEXT NOT NULL,
    sender_id       UUID TEXT NOT NULL,
    created_at      TIMESTAMPTZ TEXT NOT NULL,
    critical        BOOLEAN NOT NULL,
    audience        INTEGER NOT NULL,
    delivered       INTEGER NOT NULL DEFAULT 0,
    after_user_id   UUID TEXT,
    CONSTRAINT fanout_jobs_pkey PRIMARY KEY (notification_id),
    CONSTRAINT fanout_jobs_notification_id_fkey FOREIGN KEY (notification_id)
        REFERENCES notifications (id) ON DELETE CASCADE
);
CREATE INDEX fanout_jobs_created_idx ON fanout_jobs (created_at, notification_id);
CREATE INDEX workspace_members_audience_idx ON workspace_members (workspace_id, user_id, joined_at);

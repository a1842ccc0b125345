-- depends: 0004_workspace_name_order
-- Inbox states: links and data on notifications, seen and archived state,
-- mutes (SQLite). migrations/postgres/0005_inbox_states.sql explains each
-- column and index; this step declares the same ones with SQLite's types.
ALTER TABLE notifications ADD COLUMN url TEXT;
ALTER TABLE notifications ADD COLUMN data JSON TEXT;
ALTER TABLE workspace_members ADD COLUMN seen_until TIMESTAMPTZ TEXT;
DROP INDEX workspace_members_user_idx;
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id, workspace_id, seen_until);
ALTER TABLE notification_receipts ADD COLUMN archived_at TIMESTAMPTZ TEXT;

DROP INDEX receipts_unread_idx;
CREATE INDEX receipts_unread_idx
    ON notification_receipts (user_id, workspace_id, created_at, is_read)
    WHERE NOT is_read;

CREATE INDEX receipts_inbox_active_idx
    ON notification_receipts (user_id, created_at, notification_id)
    WHERE archived_at IS NULL;
CREATE INDEX receipts_inbox_archived_idx
    ON notification_receipts (user_id, created_at, notification_id)
    WHERE archived_at IS NOT NULL;

CREATE TABLE workspace_mutes (
    workspace_id UUID TEXT NOT NULL,
    user_id      UUID TEXT NOT NULL,
    type_prefix  TEXT NOT NULL,
    until        TIMESTAMPTZ TEXT,
    created_at   TIMESTAMPTZ TEXT NOT NULL,
    CONSTRAINT workspace_mutes_pkey PRIMARY KEY (workspace_id, user_id, type_prefix),
    CONSTRAINT workspace_mutes_workspace_id_user_id_fkey FOREIGN KEY (workspace_id, user_id)
        REFERENCES workspace_members (workspace_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;

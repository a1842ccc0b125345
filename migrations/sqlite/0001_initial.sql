-- PulseStack initial schema (SQLite).
-- The same step as migrations/postgres/, spelled for SQLite: UUIDs are TEXT in
-- canonical form, timestamps TEXT in fixed-width UTC ISO-8601
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ, so they sort as text), booleans INTEGER 0/1.
-- 0003_declared_types rebuilds every table with declared types (UUID TEXT,
-- TIMESTAMPTZ TEXT, BOOLEAN), from which the adapter takes each result
-- column's Python type, and with Postgres' constraint names. A test checks
-- that both dialects end with the same tables, columns, types, index and
-- constraint names.
--
-- The receipt pattern: a notification's content lives once in
-- notifications; each recipient's delivery state is one row in
-- notification_receipts, written for a whole workspace by one
-- INSERT ... SELECT (sql/receipts.sql, fan_out_broadcast).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    system_role   TEXT NOT NULL DEFAULT 'user',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_system_role_check CHECK (system_role IN ('user', 'admin'))
);

-- API tokens: only the SHA-256 (hex) of a token is stored; logout deletes
-- the row, expiry is checked on every lookup.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    expires_at TEXT NOT NULL,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- A workspace's owner cannot simply vanish: deleting a user who still owns
-- a workspace is refused (no silent cascade of a whole tenant).
CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);
CREATE INDEX workspaces_owner_idx ON workspaces (owner_id);

-- (workspace_id, user_id) is unique and also serves the broadcast fan-out,
-- which reads every member of one workspace.
CREATE TABLE workspace_members (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    joined_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT workspace_members_workspace_id_user_id_key UNIQUE (workspace_id, user_id),
    CONSTRAINT workspace_members_role_check CHECK (role IN ('owner', 'admin', 'member'))
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE notifications (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    sender_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    title        TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL DEFAULT 'info',
    broadcast    INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT notifications_broadcast_check CHECK (broadcast IN (0, 1))
);
CREATE INDEX notifications_workspace_created_idx
    ON notifications (workspace_id, created_at, id);
CREATE INDEX notifications_sender_idx ON notifications (sender_id);

-- workspace_id and created_at are copied from the notification (neither ever
-- changes) so that per-workspace unread counts, the inbox's order and paging,
-- its workspace filter and member removal read receipts alone, without a
-- join per row. workspace_id has no foreign key of its own on purpose: the
-- copy is written in the same statement as the receipt, the notification's
-- cascade already removes the row with its workspace, and a second cascade
-- path would need one more index on the hottest write path (the fan-out).
CREATE TABLE notification_receipts (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL,
    is_read         INTEGER NOT NULL DEFAULT 0,
    read_at         TEXT,
    created_at      TEXT NOT NULL,
    CONSTRAINT notification_receipts_notification_id_user_id_key UNIQUE (notification_id, user_id),
    CONSTRAINT notification_receipts_is_read_check CHECK (is_read IN (0, 1)),
    CONSTRAINT notification_receipts_read_at_check CHECK (is_read OR read_at IS NULL)
);
-- The inbox: one user's receipts newest first, keyset on (created_at, notification_id).
CREATE INDEX receipts_inbox_idx
    ON notification_receipts (user_id, created_at, notification_id);
-- Unread counts: only unread rows are in this index, grouped by workspace;
-- a count never visits a read receipt. is_read is carried in the index
-- (always false there) because SQLite answers from the index alone only
-- when every column the query names is in it; Postgres does either way.
CREATE INDEX receipts_unread_idx
    ON notification_receipts (user_id, workspace_id, is_read)
    WHERE NOT is_read;

-- PulseStack initial schema (PostgreSQL).
-- The same step exists in migrations/sqlite/ with SQLite spellings; a test
-- checks that both dialects end with the same tables, columns, types, index
-- and constraint names. The column types are what the application reads:
-- asyncpg returns uuid as uuid.UUID, timestamptz as an aware UTC datetime,
-- boolean as bool (SQLite declares the same types from 0003 on).
--
-- The receipt pattern: a notification's content lives once in
-- notifications; each recipient's delivery state is one row in
-- notification_receipts, written for a whole workspace by one
-- INSERT ... SELECT (sql/receipts.sql, fan_out_broadcast).

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    system_role   text NOT NULL DEFAULT 'user',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_system_role_check CHECK (system_role IN ('user', 'admin'))
);

-- API tokens: only the SHA-256 (hex) of a token is stored; logout deletes
-- the row, expiry is checked on every lookup.
CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- A workspace's owner cannot simply vanish: deleting a user who still owns
-- a workspace is refused (no silent cascade of a whole tenant).
CREATE TABLE workspaces (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    slug       text NOT NULL,
    owner_id   uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);
CREATE INDEX workspaces_owner_idx ON workspaces (owner_id);

-- (workspace_id, user_id) is unique and also serves the broadcast fan-out,
-- which reads every member of one workspace.
CREATE TABLE workspace_members (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL,
    joined_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workspace_members_workspace_id_user_id_key UNIQUE (workspace_id, user_id),
    CONSTRAINT workspace_members_role_check CHECK (role IN ('owner', 'admin', 'member'))
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE notifications (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    sender_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    title        text NOT NULL,
    message      text NOT NULL DEFAULT '',
    type         text NOT NULL DEFAULT 'info',
    broadcast    boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
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
    id              uuid PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL,
    is_read         boolean NOT NULL DEFAULT false,
    read_at         timestamptz,
    created_at      timestamptz NOT NULL,
    CONSTRAINT notification_receipts_notification_id_user_id_key UNIQUE (notification_id, user_id),
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

-- Undo 0003_declared_types: rebuild every table as 0001 and 0002 spelled it
-- (TEXT and INTEGER columns, unnamed primary and foreign keys, named 0/1
-- checks), keeping every row. The same documented rebuild as the step, with
-- the same guard: foreign keys must be off.

CREATE TEMP TABLE migration_0003_guard (
    foreign_keys        INTEGER CONSTRAINT run_with_foreign_keys_off CHECK (foreign_keys = 0),
    broken_references   INTEGER CONSTRAINT foreign_keys_still_hold CHECK (broken_references = 0)
);
INSERT INTO migration_0003_guard (foreign_keys, broken_references)
SELECT foreign_keys, 0 FROM pragma_foreign_keys;

CREATE TABLE old_users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    system_role   TEXT NOT NULL DEFAULT 'user',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_system_role_check CHECK (system_role IN ('user', 'admin'))
);
INSERT INTO old_users (id, email, password_hash, system_role, created_at)
SELECT id, email, password_hash, system_role, created_at FROM users;
DROP TABLE users;
ALTER TABLE old_users RENAME TO users;

CREATE TABLE old_sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    expires_at TEXT NOT NULL,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
INSERT INTO old_sessions (id, user_id, token_hash, created_at, expires_at)
SELECT id, user_id, token_hash, created_at, expires_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE old_sessions RENAME TO sessions;
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE old_workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);
INSERT INTO old_workspaces (id, name, slug, owner_id, created_at)
SELECT id, name, slug, owner_id, created_at FROM workspaces;
DROP TABLE workspaces;
ALTER TABLE old_workspaces RENAME TO workspaces;
CREATE INDEX workspaces_owner_idx ON workspaces (owner_id);

CREATE TABLE old_workspace_members (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    joined_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT workspace_members_workspace_id_user_id_key UNIQUE (workspace_id, user_id),
    CONSTRAINT workspace_members_role_check CHECK (role IN ('owner', 'admin', 'member'))
);
INSERT INTO old_workspace_members (id, workspace_id, user_id, role, joined_at)
SELECT id, workspace_id, user_id, role, joined_at FROM workspace_members;
DROP TABLE workspace_members;
ALTER TABLE old_workspace_members RENAME TO workspace_members;
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE old_notifications (
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
INSERT INTO old_notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at)
SELECT id, workspace_id, sender_id, title, message, type, broadcast, created_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE old_notifications RENAME TO notifications;
CREATE INDEX notifications_workspace_created_idx
    ON notifications (workspace_id, created_at, id);
CREATE INDEX notifications_sender_idx ON notifications (sender_id);

CREATE TABLE old_notification_receipts (
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
INSERT INTO old_notification_receipts (id, notification_id, user_id, workspace_id, is_read, read_at, created_at)
SELECT id, notification_id, user_id, workspace_id, is_read, read_at, created_at FROM notification_receipts;
DROP TABLE notification_receipts;
ALTER TABLE old_notification_receipts RENAME TO notification_receipts;
CREATE INDEX receipts_inbox_idx
    ON notification_receipts (user_id, created_at, notification_id);
CREATE INDEX receipts_unread_idx
    ON notification_receipts (user_id, workspace_id, is_read)
    WHERE NOT is_read;

CREATE TABLE old_idempotency_keys (
    sender_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    response        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (sender_id, key)
);
INSERT INTO old_idempotency_keys (sender_id, key, response, created_at)
SELECT sender_id, key, response, created_at FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE old_idempotency_keys RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

UPDATE migration_0003_guard
   SET broken_references = (SELECT count(*) FROM pragma_foreign_key_check);
DROP TABLE migration_0003_guard;

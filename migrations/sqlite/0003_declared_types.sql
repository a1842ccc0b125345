-- depends: 0002_idempotency_keys
-- Declared column types and constraint names (SQLite).
--
-- SQLite keeps each column's declared type name, and the adapter
-- (pulsestack/db/sqlite.py) gives a result column its Python type from that
-- name, never from the column's name:
--
--   declared here       Python value                 Postgres column
--   UUID TEXT           uuid.UUID                    uuid
--   TIMESTAMPTZ TEXT    aware UTC datetime           timestamptz
--   BOOLEAN             bool                         boolean
--   TEXT                str                          text
--   INTEGER             int                          integer
--   JSON TEXT           the decoded value            json
--
-- Python's sqlite3 picks the converter by the first word of the type. A type
-- name containing TEXT has TEXT affinity, so UUIDs stay canonical text and
-- timestamps fixed-width UTC ISO-8601 text (YYYY-MM-DDTHH:MM:SS.ffffffZ,
-- so text order is time order), stored exactly as before. BOOLEAN holds 0
-- or 1; its CHECK (x IN (0, 1)) is part of SQLite's spelling of the type, so
-- it is a column constraint without a name (Postgres' boolean needs none).
--
-- Constraints now carry the names Postgres gives the same constraints
-- (<table>_pkey, <table>_<column>_fkey, and the unique and check names of
-- 0001), so both dialects have the same constraint names, and the adapter
-- reports a violated primary key or unique constraint by its declared name.
--
-- SQLite cannot change a column's type in place, so each table is rebuilt
-- the documented way (https://sqlite.org/lang_altertable.html#otheralter):
-- create new_X, copy every row, drop X, rename new_X to X, create X's
-- indexes again. Rows, constraints, foreign keys and indexes are kept; there
-- are no triggers or views. yoyo runs the whole step in one transaction.
--
-- Foreign keys must be off while tables are dropped: with them on, DROP
-- TABLE deletes the rows first, and ON DELETE CASCADE would empty the
-- tables that refer to it. PRAGMA foreign_keys cannot change inside a
-- transaction; yoyo's connection has them off (SQLite's default), and the
-- guard below refuses to run otherwise (by hand: PRAGMA foreign_keys = OFF
-- first).

CREATE TEMP TABLE migration_0003_guard (
    foreign_keys        INTEGER CONSTRAINT run_with_foreign_keys_off CHECK (foreign_keys = 0),
    broken_references   INTEGER CONSTRAINT foreign_keys_still_hold CHECK (broken_references = 0)
);
INSERT INTO migration_0003_guard (foreign_keys, broken_references)
SELECT foreign_keys, 0 FROM pragma_foreign_keys;

CREATE TABLE new_users (
    id            UUID TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    system_role   TEXT NOT NULL DEFAULT 'user',
    created_at    TIMESTAMPTZ TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_system_role_check CHECK (system_role IN ('user', 'admin'))
);
INSERT INTO new_users (id, email, password_hash, system_role, created_at)
SELECT id, email, password_hash, system_role, created_at FROM users;
DROP TABLE users;
ALTER TABLE new_users RENAME TO users;

CREATE TABLE new_sessions (
    id         UUID TEXT NOT NULL,
    user_id    UUID TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    expires_at TIMESTAMPTZ TEXT NOT NULL,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
INSERT INTO new_sessions (id, user_id, token_hash, created_at, expires_at)
SELECT id, user_id, token_hash, created_at, expires_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE new_sessions RENAME TO sessions;
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE new_workspaces (
    id         UUID TEXT NOT NULL,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL,
    owner_id   UUID TEXT NOT NULL,
    created_at TIMESTAMPTZ TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT workspaces_pkey PRIMARY KEY (id),
    CONSTRAINT workspaces_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id),
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);
INSERT INTO new_workspaces (id, name, slug, owner_id, created_at)
SELECT id, name, slug, owner_id, created_at FROM workspaces;
DROP TABLE workspaces;
ALTER TABLE new_workspaces RENAME TO workspaces;
CREATE INDEX workspaces_owner_idx ON workspaces (owner_id);

CREATE TABLE new_workspace_members (
    id           UUID TEXT NOT NULL,
    workspace_id UUID TEXT NOT NULL,
    user_id      UUID TEXT NOT NULL,
    role         TEXT NOT NULL,
    joined_at    TIMESTAMPTZ TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT workspace_members_pkey PRIMARY KEY (id),
    CONSTRAINT workspace_members_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE,
    CONSTRAINT workspace_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT workspace_members_workspace_id_user_id_key UNIQUE (workspace_id, user_id),
    CONSTRAINT workspace_members_role_check CHECK (role IN ('owner', 'admin', 'member'))
);
INSERT INTO new_workspace_members (id, workspace_id, user_id, role, joined_at)
SELECT id, workspace_id, user_id, role, joined_at FROM workspace_members;
DROP TABLE workspace_members;
ALTER TABLE new_workspace_members RENAME TO workspace_members;
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE new_notifications (
    id           UUID TEXT NOT NULL,
    workspace_id UUID TEXT NOT NULL,
    sender_id    UUID TEXT,
    title        TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL DEFAULT 'info',
    broadcast    BOOLEAN NOT NULL DEFAULT 0 CHECK (broadcast IN (0, 1)),
    created_at   TIMESTAMPTZ TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT notifications_pkey PRIMARY KEY (id),
    CONSTRAINT notifications_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE,
    CONSTRAINT notifications_sender_id_fkey FOREIGN KEY (sender_id) REFERENCES users (id) ON DELETE SET NULL
);
INSERT INTO new_notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at)
SELECT id, workspace_id, sender_id, title, message, type, broadcast, created_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE new_notifications RENAME TO notifications;
CREATE INDEX notifications_workspace_created_idx
    ON notifications (workspace_id, created_at, id);
CREATE INDEX notifications_sender_idx ON notifications (sender_id);

-- workspace_id has no foreign key of its own on purpose (see 0001).
CREATE TABLE new_notification_receipts (
    id              UUID TEXT NOT NULL,
    notification_id UUID TEXT NOT NULL,
    user_id         UUID TEXT NOT NULL,
    workspace_id    UUID TEXT NOT NULL,
    is_read         BOOLEAN NOT NULL DEFAULT 0 CHECK (is_read IN (0, 1)),
    read_at         TIMESTAMPTZ TEXT,
    created_at      TIMESTAMPTZ TEXT NOT NULL,
    CONSTRAINT notification_receipts_pkey PRIMARY KEY (id),
    CONSTRAINT notification_receipts_notification_id_fkey FOREIGN KEY (notification_id) REFERENCES notifications (id) ON DELETE CASCADE,
    CONSTRAINT notification_receipts_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT notification_receipts_notification_id_user_id_key UNIQUE (notification_id, user_id),
    CONSTRAINT notification_receipts_read_at_check CHECK (is_read OR read_at IS NULL)
);
INSERT INTO new_notification_receipts (id, notification_id, user_id, workspace_id, is_read, read_at, created_at)
SELECT id, notification_id, user_id, workspace_id, is_read, read_at, created_at FROM notification_receipts;
DROP TABLE notification_receipts;
ALTER TABLE new_notification_receipts RENAME TO notification_receipts;
CREATE INDEX receipts_inbox_idx
    ON notification_receipts (user_id, created_at, notification_id);
CREATE INDEX receipts_unread_idx
    ON notification_receipts (user_id, workspace_id, is_read)
    WHERE NOT is_read;

-- `response` is the first answer's exact JSON text (a replay returns these
-- bytes), so it stays TEXT, not JSON TEXT.
CREATE TABLE new_idempotency_keys (
    sender_id       UUID TEXT NOT NULL,
    key             TEXT NOT NULL,
    response        TEXT NOT NULL,
    created_at      TIMESTAMPTZ TEXT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (sender_id, key),
    CONSTRAINT idempotency_keys_sender_id_fkey FOREIGN KEY (sender_id) REFERENCES users (id) ON DELETE CASCADE
);
INSERT INTO new_idempotency_keys (sender_id, key, response, created_at)
SELECT sender_id, key, response, created_at FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE new_idempotency_keys RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Step 10 of the rebuild: every reference still finds its row.
UPDATE migration_0003_guard
   SET broken_references = (SELECT count(*) FROM pragma_foreign_key_check);
DROP TABLE migration_0003_guard;

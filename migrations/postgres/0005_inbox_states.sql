-- depends: 0004_workspace_name_order
-- Inbox states: links and data on notifications, seen and archived state,
-- mutes. The same step exists in migrations/sqlite/ with SQLite spellings.
--
-- notifications.url / data: where a notification leads (an http(s) URL or
-- a path) and a small JSON object for the client's own use; both optional.
-- data is json, not jsonb: it is never searched, only handed back, and json
-- keeps the text as sent (key order included), as SQLite's JSON TEXT does,
-- so both dialects answer the same bytes.
ALTER TABLE notifications ADD COLUMN url text;
ALTER TABLE notifications ADD COLUMN data json;

-- workspace_members.seen_until: the member last opened the bell at this
-- moment; an unread receipt created after it is "unseen" (null: never).
-- One write per opening of the bell, never one per receipt.
ALTER TABLE workspace_members ADD COLUMN seen_until timestamptz;
-- The user's memberships, now with the workspace and the cut-off: the
-- unread and unseen count reads a user's memberships from this index alone,
-- and the inbox's per-row seen_until lookup finds (user, workspace) in it.
-- Still serves GET /api/me, the workspace list and user deletion (user_id first).
DROP INDEX workspace_members_user_idx;
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id, workspace_id, seen_until);

-- notification_receipts.archived_at: archived (hidden from the default
-- inbox) at this moment; archiving also marks the receipt read, so the
-- unread badge never counts what the default inbox hides.
ALTER TABLE notification_receipts ADD COLUMN archived_at timestamptz;

-- Unread and unseen counts: created_at joins the partial index, so both
-- counts per (user, workspace) are answered from it alone: unread is the
-- user's entries under one workspace, unseen the ones after seen_until.
DROP INDEX receipts_unread_idx;
CREATE INDEX receipts_unread_idx
    ON notification_receipts (user_id, workspace_id, created_at, is_read)
    WHERE NOT is_read;

-- The default inbox (archived excluded) walks only unarchived receipts, so
-- a page costs the same however many archived ones lie between; the
-- archived-only view has its own. The full receipts_inbox_idx still serves
-- `archived=include`, member removal and user deletion. Fan-out writes
-- unarchived receipts, so it updates the first of these two, never the second.
CREATE INDEX receipts_inbox_active_idx
    ON notification_receipts (user_id, created_at, notification_id)
    WHERE archived_at IS NULL;
CREATE INDEX receipts_inbox_archived_idx
    ON notification_receipts (user_id, created_at, notification_id)
    WHERE archived_at IS NOT NULL;

-- Mutes: one row per (member, muted type prefix); the prefix '' mutes every
-- type. A send's fan-out skips a member with a live row (until null or
-- later than the send) whose prefix is '' or a whole-segment prefix of the
-- send's type: an anti-join on this primary key inside the one
-- INSERT ... SELECT. A mute belongs to a membership and goes with it.
CREATE TABLE workspace_mutes (
    workspace_id uuid NOT NULL,
    user_id      uuid NOT NULL,
    type_prefix  text NOT NULL,
    until        timestamptz,
    created_at   timestamptz NOT NULL,
    CONSTRAINT workspace_mutes_pkey PRIMARY KEY (workspace_id, user_id, type_prefix),
    CONSTRAINT workspace_mutes_workspace_id_user_id_fkey FOREIGN KEY (workspace_id, user_id)
        REFERENCES workspace_members (workspace_id, user_id) ON DELETE CASCADE
);

-- Receipts: one row per (notification, recipient), holding read state.
-- A broadcast writes all of its receipts with ONE INSERT ... SELECT from
-- workspace_members; nothing ever loops over members in Python.
-- workspace_id and created_at are copied from the notification so that the
-- counts and the inbox read this table alone.

-- name: fan_out_broadcast(notification_id, workspace_id, sender_id, created_at, type_prefixes, critical, after_user_id, upto_user_id) :exec
-- Every member with a user id in (after_user_id, upto_user_id] who joined
-- at or before the send, but the sender, gets an unread receipt. A small
-- broadcast passes the whole key range (queries/notifications.py
-- ALL_MEMBERS) and writes every receipt in the request's transaction; a
-- large one's job (services/fanout.py) passes one chunk's range at a time.
-- ON CONFLICT DO NOTHING: a chunk that runs again adds no second receipt.
-- A member is left out if they
-- muted the workspace or the notification's type: an anti-join on a live
-- mute (until null or later than the send) whose type_prefix is one of
-- type_prefixes (`''` and each whole-segment prefix of the type, from
-- models/fields.py type_prefixes). A critical send skips the anti-join.
-- Reads the members (and their joined_at) through
-- workspace_members_audience_idx (workspace_id, user_id, joined_at) and
-- probes each one's mutes through workspace_mutes_pkey (workspace_id,
-- user_id, type_prefix): at most one index probe per prefix. Receipt ids are
-- version-7 UUIDs: the notification id's 48-bit millisecond head (it is a
-- UUIDv7 made by the application), '7', then the random rest of a
-- gen_random_uuid() (74 random bits, variant included). A send's receipts
-- thus land together at the recent end of the primary key's B-tree, not in
-- a random leaf page each. gen_random_uuid() is Postgres;
-- sql/sqlite/receipts.sql spells the id for SQLite.
INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at)
SELECT CAST(left(CAST(CAST(:notification_id AS uuid) AS text), 14) || '7' || substr(CAST(gen_random_uuid() AS text), 16) AS uuid),
       :notification_id, m.user_id, m.workspace_id, false, :created_at
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id > :after_user_id
   AND m.user_id <= :upto_user_id
   AND m.user_id <> :sender_id
   AND m.joined_at <= :created_at
   AND (CAST(:critical AS boolean)
        OR NOT EXISTS (SELECT 1
                         FROM workspace_mutes AS u
                        WHERE u.workspace_id = m.workspace_id
                          AND u.user_id = m.user_id
                          AND u.type_prefix IN (:type_prefixes)
                          AND (u.until IS NULL OR u.until > :created_at)))
    ON CONFLICT (notification_id, user_id) DO NOTHING;

-- name: count_broadcast_audience(workspace_id, sender_id, created_at, type_prefixes, critical) :scalar
-- How many receipts fan_out_broadcast writes over the whole key range: the
-- members it would reach less those of them with a live mute of one of
-- type_prefixes (none when critical). A send runs it, after locking the
-- workspace, to choose between writing the receipts at once and a fan-out
-- job, and answers it as recipient_count. Counted as a difference so that
-- the mutes come from the workspace's own mute rows (a range of
-- workspace_mutes_pkey, usually a handful), not from a probe per member:
-- the members are one range of workspace_members_audience_idx, which holds
-- their joined_at (no row lookup per member).
SELECT (SELECT count(*)
          FROM workspace_members AS m
         WHERE m.workspace_id = :workspace_id
           AND m.user_id <> :sender_id
           AND m.joined_at <= :created_at)
     - (SELECT count(DISTINCT u.user_id)
          FROM workspace_mutes AS u
          JOIN workspace_members AS m ON m.workspace_id = u.workspace_id AND m.user_id = u.user_id
         WHERE u.workspace_id = :workspace_id
           AND NOT CAST(:critical AS boolean)
           AND u.type_prefix IN (:type_prefixes)
           AND (u.until IS NULL OR u.until > :created_at)
           AND u.user_id <> :sender_id
           AND m.joined_at <= :created_at) AS audience;

-- name: fan_out_direct(notification_id, workspace_id, user_ids, created_at, type_prefixes, critical) :exec
-- The same statement shape for a direct send: only the listed members (the
-- service has already refused any id that is not a member), and the same
-- anti-join on their mutes: a muted member gets no receipt.
INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at)
SELECT CAST(left(CAST(CAST(:notification_id AS uuid) AS text), 14) || '7' || substr(CAST(gen_random_uuid() AS text), 16) AS uuid),
       :notification_id, m.user_id, m.workspace_id, false, :created_at
  FROM workspace_members AS m
 WHERE m.workspace_id = :workspace_id
   AND m.user_id IN (:user_ids)
   AND (CAST(:critical AS boolean)
        OR NOT EXISTS (SELECT 1
                         FROM workspace_mutes AS u
                        WHERE u.workspace_id = m.workspace_id
                          AND u.user_id = m.user_id
                          AND u.type_prefix IN (:type_prefixes)
                          AND (u.until IS NULL OR u.until > :created_at)));

-- name: count_unread_by_workspace(user_ids) :many
-- Unread and unseen receipts per (user, workspace) for the given users,
-- only where something is unread. Unseen = unread and created after the
-- membership's seen_until (all unread while it is null). Each count is an
-- index-only range of the partial index receipts_unread_idx (user_id,
-- workspace_id, created_at, is_read) WHERE NOT is_read, which never holds
-- a read receipt; the memberships come from workspace_members_user_idx.
-- The unseen range runs only when seen_until is set (CASE evaluates lazily).
-- MATERIALIZED keeps each membership's unread count computed once: a
-- planner that inlined c would repeat its subquery for every reference.
-- Partial beat composite (user_id, is_read, workspace_id), measured by
-- scripts/bench_unread_index.py (1,000,000 receipts, a user with 1,000
-- unread, 2 cores): SQLite p50 0.15 ms vs 0.36 ms; Postgres 0.15 ms vs
-- 0.20 ms server time, and the partial index is a quarter of the size.
WITH c AS MATERIALIZED (
    SELECT m.user_id, m.workspace_id, m.seen_until,
           (SELECT count(*)
              FROM notification_receipts AS r
             WHERE r.user_id = m.user_id
               AND r.workspace_id = m.workspace_id
               AND NOT r.is_read) AS unread
      FROM workspace_members AS m
     WHERE m.user_id IN (:user_ids)
)
SELECT c.user_id, c.workspace_id, c.unread,
       CASE WHEN c.seen_until IS NULL THEN c.unread
            ELSE (SELECT count(*)
                    FROM notification_receipts AS r
                   WHERE r.user_id = c.user_id
                     AND r.workspace_id = c.workspace_id
                     AND NOT r.is_read
                     AND r.created_at > c.seen_until)
       END AS unseen
  FROM c
 WHERE c.unread > 0;

-- name: delete_member_receipts(workspace_id, user_id) :exec
-- A removed member loses the workspace's receipts; served by
-- receipts_inbox_idx (user_id first).
DELETE FROM notification_receipts
 WHERE user_id = :user_id
   AND workspace_id = :workspace_id;

-- name: get_inbox_item(user_id, notification_id) :one
-- One notification as the user's inbox shows it; nothing unless the user
-- holds a receipt for it. Served by the unique (notification_id, user_id).
-- is_seen: read, or created at or before the membership's seen_until (so
-- the unseen count is exactly the unread items with is_seen false). The
-- same columns as the inbox page (queries/receipts.py, inbox_query).
SELECT n.id, n.workspace_id, n.sender_id, n.title, n.message, n.type, n.broadcast, n.created_at, n.url, n.data,
       r.is_read, r.read_at,
       CASE WHEN r.is_read OR r.created_at <= (SELECT m.seen_until
                                                 FROM workspace_members AS m
                                                WHERE m.workspace_id = r.workspace_id
                                                  AND m.user_id = r.user_id)
            THEN true ELSE false END AS is_seen,
       r.archived_at IS NOT NULL AS archived, r.archived_at,
       (SELECT w.slug FROM workspaces AS w WHERE w.id = r.workspace_id) AS workspace_slug
  FROM notification_receipts AS r
  JOIN notifications AS n ON n.id = r.notification_id
 WHERE r.notification_id = :notification_id
   AND r.user_id = :user_id;

-- name: mark_read(user_id, notification_id, now) :exec
-- Only an unread receipt changes, so read_at keeps the first time it was read.
UPDATE notification_receipts
   SET is_read = true, read_at = :now
 WHERE notification_id = :notification_id
   AND user_id = :user_id
   AND NOT is_read;

-- name: mark_unread(user_id, notification_id) :exec
UPDATE notification_receipts
   SET is_read = false, read_at = NULL
 WHERE notification_id = :notification_id
   AND user_id = :user_id
   AND is_read;

-- name: mark_read_many(user_id, notification_ids, now) :many
-- Bulk read: only this user's receipts, only those still unread; returns
-- the ids that changed (at most the 1,000 asked for). Served by the unique
-- (notification_id, user_id).
UPDATE notification_receipts
   SET is_read = true, read_at = :now
 WHERE notification_id IN (:notification_ids)
   AND user_id = :user_id
   AND NOT is_read
RETURNING notification_id;

-- name: list_unread_ids(user_id, workspace_id, before, limit) :many
-- The first `limit` receipts mark_all_read would change, read just before
-- it in the same transaction: up to 100 of them are named in the
-- websockets' `changed` frame, more make it a `refresh`.
SELECT notification_id
  FROM notification_receipts
 WHERE user_id = :user_id
   AND NOT is_read
   AND workspace_id = coalesce(:workspace_id, workspace_id)
   AND created_at <= coalesce(:before, created_at)
 LIMIT :limit;

-- name: mark_all_read(user_id, workspace_id, before, now) :exec
-- Read-all, optionally for one workspace (NULL: all) and only for what was
-- created at or before `before` (NULL: everything), so a notification that
-- arrived after the user looked stays unread. Served by receipts_unread_idx.
-- The optional filters are spelled `= coalesce(:x, column)`, which both
-- dialects type from the column (Postgres cannot from `:x IS NULL` alone),
-- as list_unread_ids spells them: the same rows, one spelling.
UPDATE notification_receipts
   SET is_read = true, read_at = :now
 WHERE user_id = :user_id
   AND NOT is_read
   AND workspace_id = coalesce(:workspace_id, workspace_id)
   AND created_at <= coalesce(:before, created_at);

-- name: delete_receipt(user_id, notification_id) :exec
-- Dismiss: the user's own receipt only.
DELETE FROM notification_receipts
 WHERE notification_id = :notification_id
   AND user_id = :user_id;

-- name: archive_receipt(user_id, notification_id, now) :exec
-- Archive one receipt; it is read from then on (read_at keeps the first
-- read), so the unread badge never counts what the default inbox hides.
UPDATE notification_receipts
   SET archived_at = :now, is_read = true, read_at = coalesce(read_at, :now)
 WHERE notification_id = :notification_id
   AND user_id = :user_id
   AND archived_at IS NULL;

-- name: unarchive_receipt(user_id, notification_id) :exec
-- Back in the inbox, and still read.
UPDATE notification_receipts
   SET archived_at = NULL
 WHERE notification_id = :notification_id
   AND user_id = :user_id
   AND archived_at IS NOT NULL;

-- name: archive_receipts(user_id, notification_ids, now) :many
-- Bulk archive: this user's receipts not yet archived; returns the ids
-- that changed. Served by the unique (notification_id, user_id).
UPDATE notification_receipts
   SET archived_at = :now, is_read = true, read_at = coalesce(read_at, :now)
 WHERE notification_id IN (:notification_ids)
   AND user_id = :user_id
   AND archived_at IS NULL
RETURNING notification_id;

-- name: list_archivable_ids(user_id, workspace_id, before, only_read, limit) :many
-- The first `limit` receipts archive_all would change (see list_unread_ids).
SELECT notification_id
  FROM notification_receipts
 WHERE user_id = :user_id
   AND archived_at IS NULL
   AND (is_read OR NOT :only_read)
   AND workspace_id = coalesce(:workspace_id, workspace_id)
   AND created_at <= coalesce(:before, created_at)
 LIMIT :limit;

-- name: archive_all_receipts(user_id, workspace_id, before, only_read, now) :exec
-- Archive-all, optionally for one workspace, up to `before`, and only what
-- is read (only_read) or everything (marking it read). Served by
-- receipts_inbox_active_idx, which holds only unarchived receipts.
UPDATE notification_receipts
   SET archived_at = :now, is_read = true, read_at = coalesce(read_at, :now)
 WHERE user_id = :user_id
   AND archived_at IS NULL
   AND (is_read OR NOT :only_read)
   AND workspace_id = coalesce(:workspace_id, workspace_id)
   AND created_at <= coalesce(:before, created_at);

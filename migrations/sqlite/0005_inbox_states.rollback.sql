-- Undo 0005_inbox_states.
DROP TABLE workspace_mutes;
DROP INDEX receipts_inbox_archived_idx;
DROP INDEX receipts_inbox_active_idx;
DROP INDEX receipts_unread_idx;
CREATE INDEX receipts_unread_idx
    ON notification_receipts (user_id, workspace_id, is_read)
    WHERE NOT is_read;
ALTER TABLE notification_receipts DROP COLUMN archived_at;
DROP INDEX workspace_members_user_idx;
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);
ALTER TABLE workspace_members DROP COLUMN seen_until;
ALTER TABLE notifications DROP COLUMN data;
ALTER TABLE notifications DROP COLUMN url;

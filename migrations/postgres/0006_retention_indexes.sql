-- depends: 0005_inbox_states
-- Retention (`pulsestack prune`, housekeeping's retention.*): two indexes
-- so that each bounded delete batch finds its rows without a table scan.
--
-- notifications_created_idx: `--older-than` walks notifications created
-- before the cut-off, oldest first, and reaches their receipts through
-- notification_receipts_notification_id_user_id_key. An index on
-- notifications, not on notification_receipts.created_at: it costs one
-- entry per notification sent, where a receipt index would cost one per
-- recipient on the fan-out, the hottest write path.
CREATE INDEX notifications_created_idx ON notifications (created_at);

-- receipts_read_at_idx: `--read-older-than` finds read receipts by read_at.
-- Partial (receipts with a read_at: the read ones): the fan-out writes
-- unread receipts, so it never touches this index; marking a receipt read
-- (or unread) adds (or removes) one entry. The predicate is on read_at, not
-- is_read, on purpose: a query that filters on is_read (the inbox, archive
-- all) must not be planned as a walk of this index; only a comparison on
-- read_at implies it.
CREATE INDEX receipts_read_at_idx ON notification_receipts (read_at) WHERE read_at IS NOT NULL;

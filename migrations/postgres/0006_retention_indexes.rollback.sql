-- Undo 0006_retention_indexes.
DROP INDEX receipts_read_at_idx;
DROP INDEX notifications_created_idx;

-- Undo 0002_idempotency_keys.
DROP TABLE idempotency_keys;

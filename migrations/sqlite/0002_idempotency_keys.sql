-- depends: 0001_initial
-- Idempotency-Key support for POST /api/workspaces/{slug}/notifications.
-- A retried send with the same key by the same sender within 24 hours
-- returns the stored first answer and sends nothing. Keeping the keys in the
-- database (in the send's own transaction) means a retry after a restart, or
-- one that lands on another server process, is still recognised. `response`
-- is the first answer's JSON body, so a replay needs no other row: it stays
-- the same even if the notification is later retracted. 0003_declared_types
-- rebuilds this table with declared types and a named foreign key.

CREATE TABLE idempotency_keys (
    sender_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    response        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (sender_id, key)
);
-- Expired keys are purged by age.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

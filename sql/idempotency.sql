-- Idempotency keys of notification sends: the first answer, kept 24 hours.

-- name: get_idempotent_response(sender_id, key, since) :scalar
-- The stored answer of an earlier send with this key, if it is recent enough.
SELECT response
  FROM idempotency_keys
 WHERE sender_id = :sender_id
   AND key = :key
   AND created_at > :since;

-- name: create_idempotency_key(sender_id, key, response, created_at) :exec
-- In the send's own transaction. A live key of the same name makes this
-- fail with idempotency_keys_pkey (a concurrent retry won the race), and
-- the caller answers with the stored response instead.
INSERT INTO idempotency_keys (sender_id, key, response, created_at)
VALUES (:sender_id, :key, :response, :created_at);

-- name: delete_expired_idempotency_key(sender_id, key, before) :exec
-- Frees an expired key for reuse, just before a new send claims it.
DELETE FROM idempotency_keys
 WHERE sender_id = :sender_id
   AND key = :key
   AND created_at <= :before;

-- name: delete_expired_idempotency_keys(before) :exec
-- Housekeeping; served by idempotency_keys_created_idx.
DELETE FROM idempotency_keys
 WHERE created_at <= :before;

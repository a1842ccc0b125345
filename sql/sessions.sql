-- Sessions: API tokens. Only the SHA-256 (hex) of a token is stored, so a
-- leaked table grants nothing. A session is valid while expires_at is in
-- the future; logout deletes it.

-- name: create_session(id, user_id, token_hash, created_at, expires_at) :exec
INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at)
VALUES (:id, :user_id, :token_hash, :created_at, :expires_at);

-- name: get_session_user(token_hash, now) :one
-- The user behind a bearer token, if the token exists and has not expired.
-- Served by sessions_token_hash_key.
SELECT s.id AS session_id, s.expires_at,
       u.id, u.email, u.system_role, u.created_at
  FROM sessions AS s
  JOIN users AS u ON u.id = s.user_id
 WHERE s.token_hash = :token_hash
   AND s.expires_at > :now;

-- name: delete_session(session_id) :exec
-- Logout: the token stops working at once.
DELETE FROM sessions
 WHERE id = :session_id;

-- name: delete_expired_sessions(now) :exec
-- Housekeeping; served by sessions_expires_idx.
DELETE FROM sessions
 WHERE expires_at <= :now;

-- Users: accounts that log in. Emails are stored trimmed and lower-cased
-- (the service normalises them; a CHECK constraint refuses anything else).

-- name: create_user(id, email, password_hash, system_role, created_at) :one
-- A new account. Fails with users_email_key when the email is taken.
INSERT INTO users (id, email, password_hash, system_role, created_at)
VALUES (:id, :email, :password_hash, :system_role, :created_at)
RETURNING id, email, system_role, created_at;

-- name: get_user(user_id) :one
SELECT id, email, system_role, created_at
  FROM users
 WHERE id = :user_id;

-- name: get_user_credentials_by_email(email) :one
-- For login only: the one query that reads password_hash.
SELECT id, email, password_hash, system_role, created_at
  FROM users
 WHERE email = :email;

-- name: update_password_hash(user_id, password_hash) :exec
-- Rehash on login when the argon2 parameters changed.
UPDATE users
   SET password_hash = :password_hash
 WHERE id = :user_id;

-- name: set_system_role(user_id, system_role) :exec
UPDATE users
   SET system_role = :system_role
 WHERE id = :user_id;

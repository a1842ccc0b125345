"""Accounts over HTTP (docs/api.md "Accounts"): register, login, logout, /api/me, bearer tokens.

Every test runs on SQLite and on PostgreSQL through a real aiohttp test server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import uuid
from datetime import timedelta

import pytest
from helpers import (
    BODY_MAX,
    EMAIL_MAX,
    PASSWORD,
    PASSWORD_MAX,
    PASSWORD_MIN,
    USER_KEYS,
    bearer,
    create_workspace,
    expect_error,
    json_of,
    login,
    parse_ts,
    poll,
    register,
    unique_email,
)

from pulsestack import security
from pulsestack.app import create_app
from pulsestack.appkeys import LOGIN_LIMITER, REGISTRATION_LIMITER
from pulsestack.db import NamedQuery
from pulsestack.ids import utcnow
from pulsestack.queries import users
from pulsestack.services import accounts
from pulsestack.services.accounts import LoginLimiter, RegistrationLimiter

USER_ROW = NamedQuery.dynamic("user_row", "SELECT id, email, password_hash, system_role FROM users WHERE email = :email", "one")
COUNT_USERS = NamedQuery.dynamic("count_users", "SELECT count(*) FROM users", "scalar")
SESSION_ROWS = NamedQuery.dynamic("session_rows", "SELECT * FROM sessions", "many")
EXPIRE_SESSIONS = NamedQuery.dynamic("expire", "UPDATE sessions SET expires_at = :t", "exec")


# --- register -----------------------------------------------------------------------------------

async def test_register_answers_201_with_user_token_and_expiry(client, db):
    resp = await client.post("/api/auth/register", json={"email": "ann@example.com", "password": PASSWORD})

    body = await json_of(resp, 201)
    assert set(body) == {"user", "token", "expires_at"}
    user = body["user"]
    assert set(user) == USER_KEYS
    assert user["email"] == "ann@example.com"
    assert user["system_role"] == "user"
    uuid.UUID(user["id"])
    created_at, expires_at = parse_ts(user["created_at"]), parse_ts(body["expires_at"])
    # Default token_ttl_hours is 720 (30 days).
    assert timedelta(hours=719) < expires_at - created_at < timedelta(hours=721)
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    row = await db.fetch_one(USER_ROW, email="ann@example.com")
    assert str(row["id"]) == user["id"]


async def test_register_token_works_on_authenticated_endpoints(client):
    user, headers = await register(client)

    body = await json_of(await client.get("/api/me", headers=headers), 200)

    assert body["user"] == user


async def test_register_never_returns_the_password_hash(client):
    resp = await client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD})

    text = await resp.text()
    assert resp.status == 201
    assert "password" not in text
    assert "argon2" not in text


async def test_register_stores_an_argon2_hash_never_the_password(client, db):
    email = unique_email()
    await register(client, email)

    row = await db.fetch_one(USER_ROW, email=email)

    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]


async def test_register_normalises_the_email(client, db):
    resp = await client.post("/api/auth/register", json={"email": "  Ann.Smith@Example.COM \n", "password": PASSWORD})

    body = await json_of(resp, 201)
    assert body["user"]["email"] == "ann.smith@example.com"
    assert (await db.fetch_one(USER_ROW, email="ann.smith@example.com")) is not None


@pytest.mark.parametrize("second", ["ann@example.com", "ANN@Example.com", "  ann@EXAMPLE.com  "])
async def test_register_taken_email_is_409(client, db, second):
    await register(client, "ann@example.com")

    resp = await client.post("/api/auth/register", json={"email": second, "password": PASSWORD + "!"})

    body = await expect_error(resp, 409, "conflict")
    assert "email" in body["error"]["details"]
    assert await db.fetch_value(COUNT_USERS) == 1


@pytest.mark.parametrize("email", ["", "   ", "not-an-email", "a@b", "ann@", "@example.com", "a b@example.com",
                                   "x" * (EMAIL_MAX - 11) + "@example.com", 42, None, ["ann@example.com"]])
async def test_register_bad_email_is_422_naming_email(client, db, email):
    resp = await client.post("/api/auth/register", json={"email": email, "password": PASSWORD})

    body = await expect_error(resp, 422, "validation_error")
    assert "email" in body["error"]["details"]
    assert await db.fetch_value(COUNT_USERS) == 0


@pytest.mark.parametrize("password", ["x" * (PASSWORD_MIN - 1), "x" * (PASSWORD_MAX + 1), "", 12345678, None, ["a", "b"], {"p": "longenough"}])
async def test_register_bad_password_is_422_naming_password(client, db, password):
    resp = await client.post("/api/auth/register", json={"email": unique_email(), "password": password})

    body = await expect_error(resp, 422, "validation_error")
    assert "password" in body["error"]["details"]
    assert await db.fetch_value(COUNT_USERS) == 0


@pytest.mark.parametrize("length", [8, 1024])
async def test_register_accepts_passwords_at_the_length_limits(client, length):
    email = unique_email()
    user, _ = await register(client, email, password="p" * length)

    assert user["email"] == email
    await login(client, email, "p" * length)


@pytest.mark.parametrize("payload, missing", [
    ({}, {"email", "password"}),
    ({"email": "ann@example.com"}, {"password"}),
    ({"password": PASSWORD}, {"email"}),
])
async def test_register_missing_fields_are_422_naming_each(client, payload, missing):
    resp = await client.post("/api/auth/register", json=payload)

    body = await expect_error(resp, 422, "validation_error")
    assert missing <= set(body["error"]["details"])


async def test_register_with_a_bad_email_and_a_short_password_names_both(client, db):
    resp = await client.post("/api/auth/register", json={"email": "not-an-email", "password": "short"})

    body = await expect_error(resp, 422, "validation_error")
    assert set(body["error"]["details"]) == {"email", "password"}
    assert await db.fetch_value(COUNT_USERS) == 0


@pytest.mark.parametrize("payload, named", [
    ({"email": 5}, {"email", "password"}),
    ({"email": 5, "password": PASSWORD}, {"email"}),
    ({"email": "ann@example.com", "password": None}, {"password"}),
    ({"email": ["ann@example.com"], "password": 12345678}, {"email", "password"}),
    ({"email": "ann@example.com", "password": PASSWORD, "remember_me": True}, {"remember_me"}),
])
async def test_login_names_every_bad_field(client, payload, named):
    await register(client, "ann@example.com")

    resp = await client.post("/api/auth/login", json=payload)

    body = await expect_error(resp, 422, "validation_error")
    assert set(body["error"]["details"]) == named


@pytest.mark.parametrize("raw", [
    b'{"email": "ann@example.com", "password": ',  # truncated
    b"{'email': 'ann@example.com'}",  # not JSON
    b"not json at all",
    b"\xff\xfe\x00garbage",  # not UTF-8
    b'["ann@example.com", "correct horse battery"]',  # an array, not an object
    b'"just a string"',
    b"42",
    b"null",
    b"",  # empty body
    b"   \n ",  # only whitespace
])
async def test_register_body_that_is_not_a_json_object_is_400(client, db, raw):
    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})

    await expect_error(resp, 400, "bad_request")
    assert await db.fetch_value(COUNT_USERS) == 0


@pytest.mark.parametrize("raw", [
    b"[" * 20_000 + b"]" * 20_000,  # valid JSON, nested deeper than any parser recursion limit
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
], ids=["deep-array", "deep-object"])
async def test_register_deeply_nested_json_is_400_not_500(client, raw):
    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})

    await expect_error(resp, 400, "bad_request")


async def test_register_json_with_a_huge_number_is_a_client_error_not_500(client):
    # Python refuses to parse integers of more than 4300 digits (ValueError, not JSONDecodeError).
    raw = b'{"email": "ann@example.com", "password": ' + b"1" * 5000 + b"}"

    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})

    assert resp.status in (400, 422), await resp.text()
    await expect_error(resp, resp.status, "bad_request" if resp.status == 400 else "validation_error")


async def test_register_body_over_64_kib_is_413(client, db):
    payload = {"email": unique_email(), "password": PASSWORD, "padding": "x" * BODY_MAX}

    resp = await client.post("/api/auth/register", data=json.dumps(payload), headers={"Content-Type": "application/json"})

    await expect_error(resp, 413, "payload_too_large")
    assert await db.fetch_value(COUNT_USERS) == 0


async def test_register_body_of_exactly_64_kib_is_accepted(client):
    raw = json.dumps({"email": unique_email(), "password": PASSWORD}).encode()
    raw = raw[:-1] + b" " * (BODY_MAX - len(raw)) + b"}"
    assert len(raw) == BODY_MAX

    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})

    await json_of(resp, 201)


async def test_register_with_a_system_role_in_the_body_is_422_and_creates_nothing(client, db):
    """Unknown fields are refused by name, never silently dropped (nor obeyed)."""
    email = unique_email()

    resp = await client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "system_role": "admin"})

    body = await expect_error(resp, 422, "validation_error")
    assert set(body["error"]["details"]) == {"system_role"}
    assert await db.fetch_one(USER_ROW, email=email) is None


async def test_register_when_registration_is_closed_is_403(aiohttp_client, config, db):
    closed = await aiohttp_client(create_app(config.replace(auth={"open_registration": False}), db=db))

    resp = await closed.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD})

    await expect_error(resp, 403, "forbidden")
    assert await db.fetch_value(COUNT_USERS) == 0


UNSTORABLE_TEXT = {
    "nul-in-email": {"email": "a\x00b@example.com", "password": PASSWORD},  # PostgreSQL text cannot hold NUL
    "lone-surrogate-email": {"email": "\ud800@example.com", "password": PASSWORD},  # valid JSON escape, not UTF-8
    "lone-surrogate-password": {"email": "ann@example.com", "password": "\ud800" + PASSWORD},
}


@pytest.mark.parametrize("payload", list(UNSTORABLE_TEXT.values()), ids=list(UNSTORABLE_TEXT))
async def test_register_text_that_cannot_be_stored_is_a_client_error_not_500(client, db, payload):
    resp = await client.post("/api/auth/register", json=payload)

    assert resp.status in (400, 422), await resp.text()
    body = await expect_error(resp, resp.status, "bad_request" if resp.status == 400 else "validation_error")
    if resp.status == 422:
        assert set(body["error"]["details"]) & {"email", "password"}
    assert await db.fetch_value(COUNT_USERS) == 0


@pytest.mark.parametrize("payload", list(UNSTORABLE_TEXT.values()), ids=list(UNSTORABLE_TEXT))
async def test_login_text_that_cannot_be_stored_is_a_client_error_not_500(client, payload):
    await register(client, "ann@example.com")

    resp = await client.post("/api/auth/login", json=payload)

    assert resp.status in (400, 401, 422), await resp.text()


# --- login --------------------------------------------------------------------------------------

async def test_login_answers_200_with_a_working_token(client):
    user, _ = await register(client, "ann@example.com")

    resp = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})

    body = await json_of(resp, 200)
    assert set(body) == {"user", "token", "expires_at"}
    assert body["user"] == user
    parse_ts(body["expires_at"])
    me = await json_of(await client.get("/api/me", headers=bearer(body["token"])), 200)
    assert me["user"] == user


async def test_login_each_login_gets_a_new_token(client):
    _, first = await register(client, "ann@example.com")

    second = await login(client, "ann@example.com")

    assert second != first
    for headers in (first, second):
        assert (await client.get("/api/me", headers=headers)).status == 200


async def test_login_email_is_case_and_space_insensitive(client):
    user, _ = await register(client, "ann@example.com")

    resp = await client.post("/api/auth/login", json={"email": "  ANN@Example.com ", "password": PASSWORD})

    assert (await json_of(resp, 200))["user"] == user


async def test_login_unknown_email_and_wrong_password_answer_the_same_401(client):
    await register(client, "ann@example.com")

    wrong_password = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD + "x"})
    unknown_email = await client.post("/api/auth/login", json={"email": "bob@example.com", "password": PASSWORD})

    body = await expect_error(wrong_password, 401, "unauthorized")
    assert await expect_error(unknown_email, 401, "unauthorized") == body


async def test_login_with_an_overlong_password_is_the_same_401(client):
    await register(client, "ann@example.com")

    resp = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD + "x" * 2000})

    await expect_error(resp, 401, "unauthorized")


async def test_login_password_is_case_sensitive(client):
    await register(client, "ann@example.com", password="CaseMatters1")

    resp = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": "casematters1"})

    await expect_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("payload", [{}, {"email": "ann@example.com"}, {"password": PASSWORD},
                                     {"email": 1, "password": PASSWORD}, {"email": "ann@example.com", "password": None}])
async def test_login_missing_or_non_string_fields_are_422(client, payload):
    resp = await client.post("/api/auth/login", json=payload)

    await expect_error(resp, 422, "validation_error")


async def test_login_malformed_json_is_400(client):
    resp = await client.post("/api/auth/login", data=b'{"email": ', headers={"Content-Type": "application/json"})

    await expect_error(resp, 400, "bad_request")


async def test_login_is_rate_limited_after_5_failures_for_one_email(client):
    await register(client, "ann@example.com")
    _, bob = await register(client, "bob@example.com")
    for _ in range(5):
        resp = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": "wrong-password"})
        await expect_error(resp, 401, "unauthorized")

    wrong = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": "wrong-password"})
    right = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    other_spelling = await client.post("/api/auth/login", json={"email": " Ann@EXAMPLE.com", "password": PASSWORD})

    for resp in (wrong, right, other_spelling):
        body = await expect_error(resp, 429, "rate_limited")
        assert int(resp.headers["Retry-After"]) > 0
        assert body["error"]["details"]["retry_after"] == int(resp.headers["Retry-After"])
    # The limit is per email: another account still logs in, existing tokens still work.
    await login(client, "bob@example.com")
    assert (await client.get("/api/me", headers=bob)).status == 200


async def test_login_failures_count_per_email_whatever_its_spelling(client):
    await register(client, "ann@example.com")
    for spelling in ["ann@example.com", "ANN@example.com", "Ann@Example.Com", " ann@example.com", "ann@EXAMPLE.COM"]:
        await expect_error(await client.post("/api/auth/login", json={"email": spelling, "password": "nope-nope"}),
                           401, "unauthorized")

    resp = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})

    await expect_error(resp, 429, "rate_limited")


async def test_login_success_before_the_limit_resets_the_email_counter(client):
    await register(client, "ann@example.com")
    bad = {"email": "ann@example.com", "password": "wrong-password"}
    for _ in range(4):
        await expect_error(await client.post("/api/auth/login", json=bad), 401, "unauthorized")
    await login(client, "ann@example.com")

    # Counting starts again: five more failures are each a plain 401 ...
    for _ in range(5):
        await expect_error(await client.post("/api/auth/login", json=bad), 401, "unauthorized")
    # ... and only then is the email limited.
    await expect_error(await client.post("/api/auth/login", json=bad), 429, "rate_limited")


# --- rate limits under concurrency -----------------------------------------------------------------

async def expect_rate_limited(resp) -> None:
    body = await expect_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0
    assert body["error"]["details"] == {"retry_after": int(resp.headers["Retry-After"])}


async def test_concurrent_wrong_passwords_for_one_email_get_exactly_the_limit_of_401s(client):
    await register(client, "ann@example.com")
    bad = {"email": "ann@example.com", "password": "wrong-password"}

    responses = await asyncio.gather(*(client.post("/api/auth/login", json=bad) for _ in range(40)))

    assert sorted(r.status for r in responses) == [401] * 5 + [429] * 35
    for resp in responses:
        if resp.status == 429:
            await expect_rate_limited(resp)
        else:
            await expect_error(resp, 401, "unauthorized")
    await expect_rate_limited(await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}))


async def test_the_right_password_after_a_burst_of_wrong_ones_is_refused(client, monkeypatch):
    await register(client, "ann@example.com")
    # Hold every credentials lookup (after the limiter admits an attempt, before
    # its hash) until released, so the burst's attempts are surely still in
    # flight when the right password arrives.
    release, admitted, answered = asyncio.Event(), [], []
    lookup = users.get_user_credentials_by_email

    async def held_lookup(db, email):
        admitted.append(email)
        await release.wait()
        return await lookup(db, email)

    monkeypatch.setattr(users, "get_user_credentials_by_email", held_lookup)

    async def attempt(password: str):
        resp = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": password})
        answered.append(resp.status)
        return resp

    wrong = [asyncio.create_task(attempt("wrong-password")) for _ in range(19)]
    await poll(lambda: len(admitted) + len(answered) == 19, "each wrong password to be admitted or refused")
    right = asyncio.create_task(attempt(PASSWORD))
    await poll(lambda: len(admitted) + len(answered) == 20, "the right password to be admitted or refused")
    release.set()

    await expect_rate_limited(await right)
    assert sorted(r.status for r in await asyncio.gather(*wrong)) == [401] * 5 + [429] * 14
    # The five failures stand: the right password is still refused afterwards.
    await expect_rate_limited(await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}))


async def test_concurrent_failures_from_one_address_are_capped_at_its_limit(client):
    await register(client, "ann@example.com")
    strangers = [{"email": unique_email("nobody"), "password": "wrong-password"} for _ in range(50)]

    responses = await asyncio.gather(*(client.post("/api/auth/login", json=body) for body in strangers))

    assert sorted(r.status for r in responses) == [401] * 20 + [429] * 30
    for resp in responses:
        if resp.status == 429:
            await expect_rate_limited(resp)
    # Every email from this address is refused now, a real account's included.
    await expect_rate_limited(await client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}))


async def test_concurrent_right_passwords_release_their_slots(client):
    await register(client, "ann@example.com")
    good = {"email": "ann@example.com", "password": PASSWORD}

    responses = await asyncio.gather(*(client.post("/api/auth/login", json=good) for _ in range(5)))

    assert [r.status for r in responses] == [200] * 5
    # Nothing is left counted: five wrong passwords are five plain 401s, and only then is the email limited.
    bad = {**good, "password": "wrong-password"}
    for _ in range(5):
        await expect_error(await client.post("/api/auth/login", json=bad), 401, "unauthorized")
    await expect_rate_limited(await client.post("/api/auth/login", json=bad))


async def test_a_registration_flood_from_one_address_is_rate_limited(client, db):
    bodies = [{"email": unique_email(), "password": PASSWORD} for _ in range(25)]

    responses = await asyncio.gather(*(client.post("/api/auth/register", json=body) for body in bodies))

    assert sorted(r.status for r in responses) == [201] * 10 + [429] * 15
    for resp in responses:
        if resp.status == 429:
            await expect_rate_limited(resp)
    assert await db.fetch_value(COUNT_USERS) == 10
    await expect_rate_limited(await client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD}))


class CrowdedHasher:
    """The suite's hasher, recording how many hashes run at once. Each holds
    its thread until more hashes than there are CPUs run beside it, which the
    bound never allows; CROWD_GUARD_S then lets it go on."""

    CROWD_GUARD_S = 0.25
    CPUS = os.cpu_count() or 1

    def __init__(self, real):
        self.real = real
        self.inside = self.most = 0
        self.changed = threading.Condition()

    def _crowd(self) -> None:
        with self.changed:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.inside > self.CPUS, self.CROWD_GUARD_S)
            self.inside -= 1

    def hash(self, password):
        self._crowd()
        return self.real.hash(password)

    def verify(self, stored_hash, password):
        self._crowd()
        return self.real.verify(stored_hash, password)

    def check_needs_rehash(self, stored_hash):
        return self.real.check_needs_rehash(stored_hash)


async def test_logins_and_registrations_hash_at_most_one_per_cpu_at_a_time(aiohttp_client, config, db, monkeypatch):
    app = create_app(config, db=db)
    # One more request than there are CPUs, whatever their number: no rate limit in the way.
    app[LOGIN_LIMITER], app[REGISTRATION_LIMITER] = LoginLimiter(per_client=10_000), RegistrationLimiter(per_client=10_000)
    client = await aiohttp_client(app)
    hasher = CrowdedHasher(security._hasher)
    monkeypatch.setattr(security, "_hasher", hasher)
    requests = [client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD}) if i % 2 else
                client.post("/api/auth/login", json={"email": unique_email(), "password": PASSWORD})
                for i in range(CrowdedHasher.CPUS + 1)]

    responses = await asyncio.gather(*requests)

    assert sorted(r.status for r in responses) == sorted(201 if i % 2 else 401 for i in range(len(requests)))
    assert 1 <= hasher.most <= CrowdedHasher.CPUS


# --- tokens -------------------------------------------------------------------------------------

async def test_expired_token_is_401(aiohttp_client, config, db, monkeypatch):
    short = await aiohttp_client(create_app(config.replace(auth={"token_ttl_hours": 1}), db=db))
    resp = await short.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD})
    body = await json_of(resp, 201)
    assert timedelta(minutes=59) < parse_ts(body["expires_at"]) - parse_ts(body["user"]["created_at"]) < timedelta(minutes=61)
    headers = bearer(body["token"])
    assert (await short.get("/api/me", headers=headers)).status == 200  # (now cached: tests/test_session_cache.py)

    an_hour_on = utcnow() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(accounts, "utcnow", lambda: an_hour_on)

    await expect_error(await short.get("/api/me", headers=headers), 401, "unauthorized")


async def test_a_token_whose_session_expired_in_the_database_is_401(client, db):
    _, headers = await register(client)
    await db.execute(EXPIRE_SESSIONS, t=utcnow() - timedelta(seconds=1))

    await expect_error(await client.get("/api/me", headers=headers), 401, "unauthorized")


async def test_only_a_sha256_of_the_token_is_stored(client, db):
    resp = await client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD})
    token = (await json_of(resp, 201))["token"]

    rows = await db.fetch_all(SESSION_ROWS)

    assert [r["token_hash"] for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in repr(rows)


async def test_logout_revokes_only_that_token(client):
    user, first = await register(client, "ann@example.com")
    second = await login(client, "ann@example.com")

    resp = await client.post("/api/auth/logout", headers=first)

    assert resp.status == 204
    assert await resp.read() == b""
    await expect_error(await client.get("/api/me", headers=first), 401, "unauthorized")
    await expect_error(await client.post("/api/auth/logout", headers=first), 401, "unauthorized")
    assert (await json_of(await client.get("/api/me", headers=second), 200))["user"] == user


AUTHENTICATED = [
    ("POST", "/api/auth/logout"),
    ("GET", "/api/me"),
    ("POST", "/api/workspaces"),
    ("GET", "/api/workspaces"),
    ("GET", "/api/workspaces/acme"),
    ("PATCH", "/api/workspaces/acme"),
    ("DELETE", "/api/workspaces/acme"),
    ("GET", "/api/workspaces/acme/members"),
    ("POST", "/api/workspaces/acme/members"),
    ("PATCH", f"/api/workspaces/acme/members/{uuid.uuid4()}"),
    ("DELETE", f"/api/workspaces/acme/members/{uuid.uuid4()}"),
]

async def test_an_id_that_is_not_a_uuid_names_no_route_with_or_without_a_token(client):
    """Only a UUID fills an id in a path: anything else is no resource (404), token or not."""
    _, headers = await register(client)
    for auth in ({}, headers):
        resp = await client.patch("/api/workspaces/acme/members/not-a-uuid", json={"role": "member"}, headers=auth)
        await expect_error(resp, 404, "not_found")


BAD_AUTHORIZATION = [
    None,  # no header
    "",
    "Bearer",
    "Bearer ",
    "Bearer garbage",
    "Bearer " + "x" * 43,  # token-shaped, but never issued
    "Bearer " + "x" * 600,
    "Basic x",
    "Basic YW5uQGV4YW1wbGUuY29tOnBhc3N3b3Jk",
    "Token abc",
    "garbage",
]


@pytest.mark.parametrize("method, path", AUTHENTICATED, ids=[f"{m} {p}" for m, p in AUTHENTICATED])
async def test_authenticated_endpoints_refuse_missing_or_bad_credentials(client, method, path):
    # A real workspace at that slug and a real token in the wrong scheme: still 401.
    _, headers = await register(client)
    await create_workspace(client, headers, name="Acme", slug="acme")
    token = headers["Authorization"].removeprefix("Bearer ")

    for authorization in BAD_AUTHORIZATION + [f"Basic {token}", f"Bearer {token}x"]:
        request_headers = {} if authorization is None else {"Authorization": authorization}
        resp = await client.request(method, path, headers=request_headers, json={"name": "x", "email": "a@b.co", "role": "admin"})
        await expect_error(resp, 401, "unauthorized")
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), (authorization, dict(resp.headers))

    # The workspace is untouched by all of the above.
    body = await json_of(await client.get("/api/workspaces/acme", headers=headers), 200)
    assert body["name"] == "Acme"


@pytest.mark.parametrize("method, path", AUTHENTICATED[:4], ids=[f"{m} {p}" for m, p in AUTHENTICATED[:4]])
async def test_authentication_comes_before_body_parsing(client, method, path):
    resp = await client.request(method, path, data=b"{not json", headers={"Content-Type": "application/json"})

    await expect_error(resp, 401, "unauthorized")


async def test_a_token_that_is_not_utf8_is_401_not_500(client):
    # Header bytes that are not UTF-8 cannot be sent with aiohttp's client, so speak HTTP/1.1 by hand.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/me HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"401", raw
    assert json.loads(body)["error"]["code"] == "unauthorized"


async def test_bearer_scheme_is_case_insensitive(client):
    _, headers = await register(client)
    token = headers["Authorization"].removeprefix("Bearer ")

    resp = await client.get("/api/me", headers={"Authorization": f"bearer {token}"})

    assert resp.status == 200


# --- /api/me ------------------------------------------------------------------------------------

async def test_me_returns_the_user_and_no_workspaces_at_first(client):
    user, headers = await register(client)

    body = await json_of(await client.get("/api/me", headers=headers), 200)

    assert body == {"user": user, "workspaces": []}


async def test_me_lists_each_workspace_with_the_callers_role(client):
    ann, ann_h = await register(client)
    bob, bob_h = await register(client)
    own = await create_workspace(client, bob_h, name="Bob's place", slug="bobs")
    joined = await create_workspace(client, ann_h, name="Ann's place", slug="anns")
    await json_of(await client.post("/api/workspaces/anns/members", json={"email": bob["email"], "role": "admin"},
                                    headers=ann_h), 201)
    await create_workspace(client, ann_h, name="Not Bob's", slug="not-bobs")

    body = await json_of(await client.get("/api/me", headers=bob_h), 200)

    assert body["user"] == bob
    assert sorted(body["workspaces"], key=lambda w: w["slug"]) == [
        {"id": joined["id"], "name": "Ann's place", "slug": "anns", "role": "admin"},
        {"id": own["id"], "name": "Bob's place", "slug": "bobs", "role": "owner"},
    ]
    assert ann["id"] != bob["id"]

"""Accounts: registration, login and tokens, email and password rules, admins.

Emails are trimmed and lower-cased before they are stored or looked up, so
`Ann@Example.com ` and `ann@example.com` are one account.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from ..db import Database, UniqueViolation
from ..db.base import Executor
from ..errors import Conflict, RateLimited, Unauthorized, ValidationFailed
from ..hub import Hub
from ..ids import new_id, utcnow
from ..queries import sessions, users
from ..security import PASSWORD_MAX, PASSWORD_MIN, hash_password, hash_token, new_token, verify_password
from .ratelimit import SlidingWindowLimiter

EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Rate limits (docs/api.md, "Rate limiting"), counted before any password is hashed.
LOGIN_FAILURES_PER_EMAIL = 5
LOGIN_FAILURES_PER_CLIENT = 20
LOGIN_WINDOW_S = 15 * 60
REGISTRATIONS_PER_CLIENT = 10
REGISTRATION_WINDOW_S = 60 * 60


def normalize_email(raw: object) -> str:
    """The stored form of an email; `ValidationFailed` naming `email` if it is not one."""
    if not isinstance(raw, str):
        raise ValidationFailed("invalid email", {"email": "must be a string"})
    email = raw.strip().lower()
    if not email or len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise ValidationFailed("invalid email", {"email": "must be an email address of at most 254 characters"})
    return email


def check_password(password: object) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationFailed("invalid password", {"password": f"must be a string of {PASSWORD_MIN} to {PASSWORD_MAX} characters"})
    return password


@dataclass(frozen=True)
class AdminResult:
    user: dict
    created: bool


async def find_user_by_email(db: Database, email: str) -> dict | None:
    row = await users.get_user_credentials_by_email(db, normalize_email(email))
    if row is None:
        return None
    row.pop("password_hash")
    return row


async def create_admin(db: Database, email: str, password: str | None) -> AdminResult:
    """Create a system admin, or promote the existing account with that email
    (its password then stays as it is, and `password` may be None)."""
    email = normalize_email(email)
    # Hash before the transaction: argon2 is slow on purpose, the writer should not wait for it.
    password_hash = await hash_password(check_password(password)) if password is not None else None
    async with db.transaction() as tx:
        existing = await users.get_user_credentials_by_email(tx, email)
        if existing is not None:
            await users.set_system_role(tx, existing["id"], "admin")
            return AdminResult(await users.get_user(tx, existing["id"]), created=False)
        if password_hash is None:
            raise ValidationFailed("a password is needed for a new account", {"password": "required"})
        user = await users.create_user(tx, id=new_id(), email=email, password_hash=password_hash,
                                       system_role="admin", created_at=utcnow())
        return AdminResult(user, created=True)


BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pulsestack"'}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind a valid token, and that token's session."""

    user: dict
    session_id: UUID
    expires_at: datetime

    @property
    def id(self) -> UUID:
        return self.user["id"]

    @property
    def is_system_admin(self) -> bool:
        return self.user["system_role"] == "admin"


@dataclass(frozen=True)
class IssuedToken:
    user: dict
    token: str
    expires_at: datetime


async def _issue_token(tx: Executor, user: dict, ttl: timedelta) -> IssuedToken:
    token, now = new_token(), utcnow()
    expires_at = now + ttl
    await sessions.create_session(tx, id=new_id(), user_id=user["id"], token_hash=hash_token(token), created_at=now, expires_at=expires_at)
    return IssuedToken(user, token, expires_at)


def _refuse(wait: float, message: str) -> None:
    """429 with Retry-After in whole seconds, when there is a wait."""
    if wait > 0:
        seconds = math.ceil(wait)
        raise RateLimited(message, {"retry_after": seconds}, {"Retry-After": str(seconds)})


class RegistrationLimiter:
    """Registrations per client address, counted when admitted (before the hash)."""

    def __init__(self, per_client: int = REGISTRATIONS_PER_CLIENT, window_s: float = REGISTRATION_WINDOW_S):
        self.by_client = SlidingWindowLimiter(per_client, window_s)

    def admit(self, client: str) -> None:
        _refuse(self.by_client.retry_after(client), "too many registrations from this address; try again later")
        self.by_client.record(client)


async def register(db: Database, email: object, password: object, ttl: timedelta,
                   limiter: RegistrationLimiter, client: str) -> IssuedToken:
    problems: dict = {}
    for check, value in ((normalize_email, email), (check_password, password)):
        try:
            check(value)
        except ValidationFailed as exc:
            problems.update(exc.details)
    if problems:
        raise ValidationFailed("invalid request: " + ", ".join(problems), problems)
    email = normalize_email(email)
    limiter.admit(client)
    password_hash = await hash_password(check_password(password))
    try:
        async with db.transaction() as tx:
            user = await users.create_user(tx, id=new_id(), email=email, password_hash=password_hash,
                                           system_role="user", created_at=utcnow())
            return await _issue_token(tx, user, ttl)
    except UniqueViolation:
        raise Conflict("an account with this email already exists", {"email": "taken"}) from None


class LoginAttempt:
    """A login the limiter admitted; until it ends it counts against both limits."""

    def __init__(self, limiter: "LoginLimiter", email: str, client: str):
        self._limiter, self.email, self.client = limiter, email, client
        self._open = True

    def failed(self) -> None:
        self.end()
        self._limiter.by_email.record(self.email)
        self._limiter.by_client.record(self.client)

    def succeeded(self) -> None:
        self.end()
        self._limiter.by_email.reset(self.email)

    def end(self) -> None:
        """Stop counting it in flight (what `failed` and `succeeded` start with)."""
        if self._open:
            self._open = False
            self._limiter.by_email.end(self.email)
            self._limiter.by_client.end(self.client)


class LoginLimiter:
    """Failed logins per email and per client address (services/ratelimit.py)."""

    def __init__(self, per_email: int = LOGIN_FAILURES_PER_EMAIL, per_client: int = LOGIN_FAILURES_PER_CLIENT,
                 window_s: float = LOGIN_WINDOW_S):
        self.by_email = SlidingWindowLimiter(per_email, window_s)
        self.by_client = SlidingWindowLimiter(per_client, window_s)

    @contextlib.contextmanager
    def attempt(self, email: str, client: str) -> Iterator[LoginAttempt]:
        """Admit a login, or 429 once either limit is reached, attempts in flight
        included. One that ends without `failed()` or `succeeded()` (the database
        failed, say) counts as neither."""
        _refuse(max(self.by_email.retry_after(email), self.by_client.retry_after(client)),
                "too many failed logins; try again later")
        attempt = LoginAttempt(self, email, client)
        self.by_email.begin(email)
        self.by_client.begin(client)
        try:
            yield attempt
        finally:
            attempt.end()


async def login(db: Database, email: object, password: object, ttl: timedelta, limiter: LoginLimiter, client: str) -> IssuedToken:
    """A new token, or the same 401 whether the email is unknown or the password wrong.

    An unknown email still costs one argon2 verification, so the two cases
    also take the same time. The attempt counts against the rate limits from
    before its lookup and hash: concurrent guesses cannot outrun the count.
    """
    if not isinstance(email, str) or not isinstance(password, str):
        raise ValidationFailed("email and password must be strings",
                               {k: "must be a string" for k, v in (("email", email), ("password", password)) if not isinstance(v, str)})
    email = email.strip().lower()
    with limiter.attempt(email, client) as attempt:
        row = await users.get_user_credentials_by_email(db, email) if len(password) <= PASSWORD_MAX else None
        matches, needs_rehash = await verify_password(row["password_hash"] if row else None, password[:PASSWORD_MAX])
        if not matches:
            attempt.failed()
            raise Unauthorized("wrong email or password")
        attempt.succeeded()
    user = {k: v for k, v in row.items() if k != "password_hash"}
    new_hash = await hash_password(password) if needs_rehash else None
    async with db.transaction() as tx:
        if new_hash is not None:
            await users.update_password_hash(tx, user["id"], new_hash)
        return await _issue_token(tx, user, ttl)


async def authenticate(db: Database, authorization: str | None) -> Principal:
    """The caller of a request from its `Authorization: Bearer <token>` header."""
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <token> header", headers=BEARER_CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512 or not token.isascii():
        raise Unauthorized("Authorization header must be 'Bearer <token>'", headers=BEARER_CHALLENGE)
    row = await sessions.get_session_user(db, hash_token(token), utcnow())
    if row is None:
        raise Unauthorized("invalid or expired token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    session_id, expires_at = row.pop("session_id"), row.pop("expires_at")
    return Principal(user=row, session_id=session_id, expires_at=expires_at)


async def logout(db: Database, hub: Hub, principal: Principal) -> None:
    """Revoke the token used: it stops working, and its websockets close."""
    await sessions.delete_session(db, principal.session_id)
    hub.session_revoked(principal.session_id)

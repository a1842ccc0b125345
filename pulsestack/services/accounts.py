"""Accounts: registration, login and tokens, admins.

Emails arrive trimmed and lower-cased (models/fields.py `Email`), so
`Ann@Example.com ` and `ann@example.com` are one account.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from .. import metrics
from ..db import Database, UniqueViolation
from ..db.base import Executor
from ..errors import Conflict, RateLimited, Unauthorized, ValidationFailed
from ..hub import Hub
from ..ids import new_id, utcnow
from ..models.fields import PASSWORD_MAX
from ..models.requests import AdminAccount, Login, Registration
from ..models.resources import Issued, User
from ..queries import sessions, users
from ..security import hash_password, hash_token, new_token, verify_password
from ..session_cache import SessionCache
from .ratelimit import SlidingWindowLimiter

# Rate limits (docs/api.md, "Rate limiting"), counted before any password is hashed.
LOGIN_FAILURES_PER_EMAIL = 5
LOGIN_FAILURES_PER_CLIENT = 20
LOGIN_WINDOW_S = 15 * 60
REGISTRATIONS_PER_CLIENT = 10
REGISTRATION_WINDOW_S = 60 * 60


@dataclass(frozen=True)
class AdminResult:
    user: User
    created: bool


async def create_admin(db: Database, account: AdminAccount) -> AdminResult:
    """Create a system admin, or promote the existing account with that email
    (its password then stays as it is, and may be left out)."""
    # Hash before the transaction: argon2 is slow on purpose, the writer should not wait for it.
    password_hash = await hash_password(account.password) if account.password is not None else None
    async with db.transaction() as tx:
        existing = await users.get_user_credentials_by_email(tx, account.email)
        if existing is not None:
            await users.set_system_role(tx, existing.user.id, "admin")
            promoted = await users.get_user(tx, existing.user.id)
            assert promoted is not None
            return AdminResult(promoted, created=False)
        if password_hash is None:
            raise ValidationFailed("a password is needed for a new account", {"password": "is required"})
        user = await users.create_user(tx, id=new_id(), email=account.email, password_hash=password_hash,
                                       system_role="admin", created_at=utcnow())
        return AdminResult(user, created=True)


async def find_user_by_email(db: Database, email: str) -> User | None:
    found = await users.get_user_credentials_by_email(db, email)
    return found.user if found else None


BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pulsestack"'}


# Who is calling: the user behind a valid token, and that token's session.
Principal = sessions.SessionUser


async def _issue_token(tx: Executor, user: User, ttl: timedelta) -> Issued:
    token, now = new_token(), utcnow()
    expires_at = now + ttl
    await sessions.create_session(tx, id=new_id(), user_id=user.id, token_hash=hash_token(token), created_at=now,
                                  expires_at=expires_at)
    return Issued(user=user, token=token, expires_at=expires_at)


def _refuse(wait: float, message: str, limit: str) -> None:
    """429 with Retry-After in whole seconds, when there is a wait; counted by `limit`."""
    if wait > 0:
        metrics.RATE_LIMITED.labels(limit).inc()
        seconds = math.ceil(wait)
        raise RateLimited(message, {"retry_after": seconds}, {"Retry-After": str(seconds)})


class RegistrationLimiter:
    """Registrations per client address, counted when admitted (before the hash)."""

    def __init__(self, per_client: int = REGISTRATIONS_PER_CLIENT, window_s: float = REGISTRATION_WINDOW_S):
        self.by_client = SlidingWindowLimiter(per_client, window_s)

    def admit(self, client: str) -> None:
        _refuse(self.by_client.retry_after(client), "too many registrations from this address; try again later",
                "registration")
        self.by_client.record(client)


async def register(db: Database, registration: Registration, ttl: timedelta,
                   limiter: RegistrationLimiter, client: str) -> Issued:
    limiter.admit(client)
    password_hash = await hash_password(registration.password)
    try:
        async with db.transaction() as tx:
            user = await users.create_user(tx, id=new_id(), email=registration.email, password_hash=password_hash,
                                           system_role="user", created_at=utcnow())
            return await _issue_token(tx, user, ttl)
    except UniqueViolation:
        raise Conflict("an account with this email already exists", {"email": "taken"}) from None


class LoginAttempt:
    """A login the limiter admitted; until it ends it counts against both limits."""

    def __init__(self, limiter: LoginLimiter, email: str, client: str):
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
                "too many failed logins; try again later", "login")
        attempt = LoginAttempt(self, email, client)
        self.by_email.begin(email)
        self.by_client.begin(client)
        try:
            yield attempt
        finally:
            attempt.end()


async def login(db: Database, credentials: Login, ttl: timedelta, limiter: LoginLimiter, client: str) -> Issued:
    """A new token, or the same 401 whether the email is unknown or the password wrong.

    An unknown email still costs one argon2 verification, so the two cases
    also take the same time. The attempt counts against the rate limits from
    before its lookup and hash: concurrent guesses cannot outrun the count.
    """
    email, password = credentials.email, credentials.password
    with limiter.attempt(email, client) as attempt:
        found = await users.get_user_credentials_by_email(db, email) if len(password) <= PASSWORD_MAX else None
        matches, needs_rehash = await verify_password(found.password_hash if found else None, password[:PASSWORD_MAX])
        if not matches or found is None:
            attempt.failed()
            metrics.LOGIN_FAILURES.inc()
            raise Unauthorized("wrong email or password")
        attempt.succeeded()
    new_hash = await hash_password(password) if needs_rehash else None
    async with db.transaction() as tx:
        if new_hash is not None:
            await users.update_password_hash(tx, found.user.id, new_hash)
        return await _issue_token(tx, found.user, ttl)


async def authenticate(db: Database, authorization: str | None, cache: SessionCache | None = None) -> Principal:
    """The caller of a request from its `Authorization: Bearer <token>` header.

    With `cache`, a token seen within the last few seconds is answered
    without the database (session_cache.py says when that is safe); without
    it, the database is always asked (what a websocket does: it lives on
    one check for hours, so that check must be fresh)."""
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <token> header", headers=BEARER_CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512 or not token.isascii():
        raise Unauthorized("Authorization header must be 'Bearer <token>'", headers=BEARER_CHALLENGE)
    token_hash, now = hash_token(token), utcnow()
    if cache is not None and (cached := cache.get(token_hash, now)) is not None:
        return cached
    epoch = cache.epoch if cache is not None else 0
    principal = await sessions.get_session_user(db, token_hash, now)
    if principal is None:
        raise Unauthorized("invalid or expired token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if cache is not None:
        cache.put(token_hash, principal, epoch)
    return principal


async def logout(db: Database, hub: Hub, cache: SessionCache, principal: Principal) -> None:
    """Revoke the token used: it stops working (here at once, in other
    processes when the hub's event reaches them), and its websockets close."""
    await sessions.delete_session(db, principal.session_id)
    cache.forget([principal.session_id])  # after the delete: a lookup racing it is not kept either
    hub.session_revoked(principal.session_id)

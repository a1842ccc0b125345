"""Accounts: email and password rules, and creating administrators.

Emails are trimmed and lower-cased before they are stored or looked up, so
`Ann@Example.com ` and `ann@example.com` are one account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..db import Database
from ..errors import ValidationFailed
from ..ids import new_id, utcnow
from ..queries import users
from ..security import PASSWORD_MAX, PASSWORD_MIN, hash_password

EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    password_hash = hash_password(check_password(password)) if password is not None else None
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

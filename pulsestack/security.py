"""Passwords and API tokens.

Passwords are hashed with argon2id (argon2-cffi's PasswordHasher, default
parameters); `verify_password` also says when a stored hash was made with
older parameters and should be replaced. Tokens are opaque random strings
(`secrets.token_urlsafe(32)`, 256 bits); only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the email is unknown, so login takes the same time
# whether or not the account exists.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash with other argon2 parameters from now on (the test suite uses
    cheap ones; a stored hash made with other parameters is rehashed at its
    next login)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))

PASSWORD_MIN = 8
PASSWORD_MAX = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). A None hash (unknown user) costs the same and never matches."""
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, False
    if stored_hash is None:
        return False, False
    return True, _hasher.check_needs_rehash(stored_hash)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the sessions table stores and looks tokens up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

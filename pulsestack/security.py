"""Passwords and API tokens.

Passwords are hashed with argon2id (argon2-cffi's PasswordHasher, default
parameters); `verify_password` also says when a stored hash was made with
older parameters and should be replaced. Both take ~0.1 s of CPU by design,
so they run on threads (argon2 releases the GIL), at most one per CPU at a
time: a flood of logins waits its turn here instead of filling the default
executor that every other `asyncio.to_thread` shares. Tokens are opaque
random strings (`secrets.token_urlsafe(32)`, 256 bits); only their SHA-256
is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import weakref
from collections.abc import Callable
from typing import TypeVar

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


HASHING_SLOTS = os.cpu_count() or 1
# One semaphore per event loop: an asyncio.Semaphore belongs to the loop it
# first waits on. A server has one loop; create-admin and the tests run others.
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
T = TypeVar("T")


async def _hashing(work: Callable[..., T], *args: object) -> T:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(HASHING_SLOTS)
    async with slots:
        return await asyncio.to_thread(work, *args)


async def hash_password(password: str) -> str:
    return await _hashing(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). A None hash (unknown user) costs the same and never matches."""
    return await _hashing(_verify, stored_hash, password)


def _verify(stored_hash: str | None, password: str) -> tuple[bool, bool]:
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

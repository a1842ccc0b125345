"""The field types every shape is built from, each with its limits.

A limit lives here and nowhere else: request validation, the OpenAPI
document, the services, docs and tests all read it from these types (or
from the models built on them), never from a copy.

`Timestamp` is the one spelling of a moment: in, an ISO-8601 string with a
zone; out, UTC with `Z` and six fractional digits, the precision both
databases store, so a timestamp the API returned compares equal to its row
when it is sent back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StringConstraints, WithJsonSchema

from ..ids import isoformat_z

T = TypeVar("T")


def _moment(value: Any) -> datetime:
    """An aware datetime as is (rows), or an ISO-8601 string with a zone (requests)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must have a time zone")
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
            pass
    raise ValueError("must be an ISO-8601 timestamp with a time zone, e.g. 2026-01-02T03:04:05.123456Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_moment),
    PlainSerializer(isoformat_z, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-24T23:17:33.821125Z"]}),
]

EMAIL_MAX = 254
# Trimmed and lower-cased before it is checked, stored or looked up, so
# `Ann@Example.com ` and `ann@example.com` are one account.
EmailKey = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True)]
# An address a new account or member may have.
Email = Annotated[EmailKey, StringConstraints(max_length=EMAIL_MAX, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
PASSWORD_MAX = 1024  # login checks no longer password than this against a hash
Password = Annotated[str, Field(min_length=8, max_length=PASSWORD_MAX)]

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SLUG_PATTERN)]
# Names and titles are trimmed first; one that is only whitespace is refused.
WorkspaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")]

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")]
Message = Annotated[str, Field(max_length=10_000)]

TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
NotificationType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TYPE_PATTERN)]
# A muted type prefix: whole dot-separated segments, so `billing` mutes
# `billing` and `billing.invoice`, never `billingx`.
TYPE_PREFIX_PATTERN = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$"
TypePrefix = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TYPE_PREFIX_PATTERN)]
TYPE_PREFIXES_MAX = 50


def type_prefixes(type_: str) -> list[str]:
    """Every mute prefix that covers `type_`: '' (everything), then each
    whole-segment prefix: `a.b.c` -> ['', 'a', 'a.b', 'a.b.c']."""
    segments = type_.split(".")
    return ["", *(".".join(segments[: i + 1]) for i in range(len(segments)))]


URL_MAX = 2048
# An absolute http(s) URL, or a path on the same site: one `/`, never `//`
# (protocol-relative, another host) nor a backslash (browsers read `/\` as
# `//`); no whitespace or control characters anywhere.
_URL_CHAR = r"[^\s\\\x00-\x1f\x7f]"
URL_PATTERN = rf"^(?:[hH][tT][tT][pP][sS]?://[^/?#\s\\\x00-\x1f\x7f]{_URL_CHAR}*|/(?:[^/\s\\\x00-\x1f\x7f]{_URL_CHAR}*)?)$"
Url = Annotated[str, StringConstraints(min_length=1, max_length=URL_MAX, pattern=URL_PATTERN)]

DATA_MAX_BYTES = 4096


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > DATA_MAX_BYTES:
        raise ValueError(f"must be at most {DATA_MAX_BYTES} bytes as compact JSON (this is {size})")
    return value


# A JSON object for the client's own use, at most 4 KiB written compactly.
Data = Annotated[dict[str, Any], AfterValidator(_small_json),
                 WithJsonSchema({"type": "object", "description": f"At most {DATA_MAX_BYTES} bytes as compact JSON."})]

Role = Literal["owner", "admin", "member"]
AssignableRole = Literal["member", "admin"]  # ownership is never handed out through the API
SystemRole = Literal["user", "admin"]
InboxStatus = Literal["unread", "read", "all"]
ArchivedFilter = Literal["exclude", "include", "only"]
ArchiveStatus = Literal["read", "all"]


def _distinct(items: list[T]) -> list[T]:
    return list(dict.fromkeys(items))


IDS_MAX = 1000
# 1 to 1,000 ids; a repeated id counts once.
IdList = Annotated[list[UUID], Field(min_length=1, max_length=IDS_MAX), AfterValidator(_distinct)]
# 1 to 50 mute type prefixes; a repeated prefix counts once.
TypePrefixList = Annotated[list[TypePrefix], Field(min_length=1, max_length=TYPE_PREFIXES_MAX),
                           AfterValidator(_distinct)]

IDEMPOTENCY_KEY_MAX = 255
# Printable ASCII only: a key is compared and stored byte for byte.
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=r"^[\x20-\x7e]+$")]

PAGE_MAX = 100
PAGE_DEFAULT = 20


def _whole_number(value: Any) -> Any:
    """Query strings: only plain digits are a number (no sign, spaces, `_` or exponent)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"must be a whole number from 1 to {PAGE_MAX}")
    return value


# The bounds come before the validator, or pydantic leaves them out of the JSON Schema.
Limit = Annotated[int, Field(ge=1, le=PAGE_MAX), BeforeValidator(_whole_number)]

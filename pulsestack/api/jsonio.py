"""JSON in and out: one body reader, one response writer, one validator.

`read_json(request)` answers 400 `bad_request` for a body that is not a JSON
object and 413 for one over the limit; `validate(data, spec)` collects every
bad field into one 422 `validation_error` whose details name each field.
Responses spell UUIDs as strings and timestamps as ISO-8601 UTC with `Z` at
microsecond precision (what the databases store).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from ..errors import BadRequest, NotFound, ValidationFailed
from ..serialize import dumps

MAX_BODY_BYTES = 64 * 1024


def respond(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object."""
    raw = await request.read()  # over MAX_BODY_BYTES: aiohttp raises 413, the middleware renders it
    if not raw.strip():
        raise BadRequest("request body must be a JSON object")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadRequest("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    if not storable(data):
        raise BadRequest("strings must not contain NUL characters or unpaired surrogates")
    return data


def storable(value: Any) -> bool:
    """Whether every string in `value` can be stored as UTF-8 text by both
    databases (Postgres refuses NUL; neither encodes a lone surrogate)."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v) for v in value)
    return True


class Invalid(ValueError):
    """Raised by a field check; the message says what the field must be."""


Check = Callable[[Any], Any]
MISSING = object()


def validate(data: Mapping[str, Any], spec: Mapping[str, tuple[Check, bool]]) -> dict[str, Any]:
    """Check every field of `spec` ({name: (check, required)}); one 422 naming all bad fields.

    Fields not in `spec` are ignored; optional fields that are absent are left out of the result.
    """
    out: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, (check, required) in spec.items():
        value = data.get(name, MISSING)
        if value is MISSING:
            if required:
                problems[name] = "is required"
            continue
        try:
            out[name] = check(value)
        except Invalid as exc:
            problems[name] = str(exc)
    if problems:
        raise ValidationFailed("invalid request: " + ", ".join(problems), problems)
    return out


def text(min_len: int = 0, max_len: int = 10_000, pattern: str | None = None, strip: bool = False) -> Check:
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if strip:
            value = value.strip()
        if not min_len <= len(value) <= max_len:
            raise Invalid(f"must be {min_len} to {max_len} characters" if min_len else f"must be at most {max_len} characters")
        if compiled and not compiled.fullmatch(value):
            raise Invalid(f"must match {pattern}")
        return value

    return check


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"must be one of: {', '.join(choices)}")
        return value

    return check


def passthrough(value: Any) -> Any:
    """For fields whose rules live in a service (email, password)."""
    return value


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """A UUID from the URL; anything else names no resource, so 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"no such {name.removesuffix('_id').replace('_', ' ')}") from None


def page_limit(request: web.Request, default: int = 20, maximum: int = 100) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}", {"limit": raw})
    return int(raw)


def page_of(rows: list[dict], limit: int, cursor_of: Callable[[dict], Mapping[str, Any]]) -> dict:
    """A list answer from `limit + 1` fetched rows: the extra row only says
    whether there is a next page, whose cursor is made from the last item."""
    page = rows[:limit]
    return {"items": page, "next_cursor": encode_cursor(cursor_of(page[-1])) if len(rows) > limit else None}


def encode_cursor(values: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(dumps(values).encode()).decode().rstrip("=")


def decode_cursor(request: web.Request, keys: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any] | None:
    """The `?cursor=` of a list, or None on the first page; a cursor that is
    not one we made answers 400 `bad_request`, never a 500."""
    raw = request.query.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError
        return {k: convert(data[k]) for k, convert in keys.items()}
    except (ValueError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise BadRequest("invalid cursor; use next_cursor from the previous page", {"cursor": raw[:100]}) from None

"""JSON in and out: the one body reader, query and header parser, response
writer and cursor codec.

`read_json(request, Model)` answers 400 `bad_request` for a body that is not
a JSON object and 413 for one over the limit, then validates it against
`Model`: every bad field, and every field the model does not know, is named
in one 422 `validation_error`. Query strings and headers are validated the
same way but answer 400 naming the parameter, as for any bad query
parameter. Answers are the models of models/resources.py, serialised by
pydantic (UUIDs as strings, timestamps as ISO-8601 UTC with `Z`).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..errors import BadRequest, NotFound, ValidationFailed
from ..models import problems
from ..models.requests import Cursor
from ..models.resources import Page

MAX_BODY_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound=Cursor)
P = TypeVar("P", bound=Page[Any])


def respond(answer: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=answer.__pydantic_serializer__.to_json(answer), status=status,
                        content_type="application/json")


async def read_json(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The request body as `model`; with `optional`, no body at all means `{}`."""
    raw = await request.read()  # over MAX_BODY_BYTES: aiohttp raises 413, the middleware renders it
    if optional and not raw:
        data: Any = {}
    else:
        data = _parse_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = problems(exc)
        raise ValidationFailed("invalid request: " + ", ".join(details), details) from None


def _parse_object(raw: bytes) -> dict[str, Any]:
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


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`; a bad parameter answers 400 naming it."""
    return _parameters(model, {k: request.query[k] for k in request.query}, "query parameter")


def parse_headers(request: web.Request, model: type[M]) -> M:
    """The request headers `model` declares (by alias); a bad one answers 400 naming it."""
    names = [field.alias or name for name, field in model.model_fields.items()]
    return _parameters(model, {n: request.headers[n] for n in names if n in request.headers}, "header")


def _parameters(model: type[M], values: dict[str, str], kind: str) -> M:
    if not storable(values):  # e.g. a header of bytes that are not UTF-8
        raise BadRequest(f"a {kind} holds NUL characters or bytes that are not UTF-8")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        details = problems(exc)
        raise BadRequest(f"bad {kind}: " + "; ".join(f"{k} {v}" for k, v in details.items()), details) from None


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


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """A UUID from the URL; anything else names no resource, so 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"no such {name.removesuffix('_id').replace('_', ' ')}") from None


def page_of(page: type[P], rows: Sequence[Any], limit: int, cursor_of: Callable[[Any], Cursor]) -> P:
    """A list answer from `limit + 1` fetched rows: the extra row only says
    whether there is a next page, whose cursor is made from the last item."""
    items = list(rows[:limit])
    return page(items=items, next_cursor=encode_cursor(cursor_of(items[-1])) if len(rows) > limit else None)


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(cursor.model_dump_json().encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, model: type[C]) -> C | None:
    """The `?cursor=` of a list, or None on the first page; a cursor that is
    not one we made answers 400 `bad_request`, never a 500."""
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not storable(data):  # a lone surrogate or NUL would reach the database
            raise ValueError
        return model.model_validate(data)
    except (ValueError, TypeError, RecursionError, binascii.Error):  # ValidationError is a ValueError
        raise BadRequest("invalid cursor; use next_cursor from the previous page", {"cursor": raw[:100]}) from None

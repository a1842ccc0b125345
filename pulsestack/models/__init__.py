"""Every shape the API reads or writes, declared once with pydantic.

- fields.py: the field types and their limits (one place for each limit);
- requests.py: request bodies, query strings, headers, cursors;
- resources.py: answers, which are also the typed rows queries/ returns.

The same declarations validate requests (api/jsonio.py), serialise answers,
and generate the OpenAPI document (api/openapi.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def problems(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors as {field: what is wrong}, one entry per bad field:
    the `details` of a 422, and what the CLI prints."""
    out: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        fields = (error.get("ctx") or {}).get("fields") or ((str(loc[0]),) if loc else ("body",))
        message = _message(error)
        if len(loc) > 1:  # inside a list or object: say where
            message = f"item {'.'.join(str(part) for part in loc[1:])}: {message}"
        for field in fields:
            out.setdefault(field, message)
    return out


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not a field of this request"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]

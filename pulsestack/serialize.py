"""The one JSON spelling of PulseStack's values, for HTTP and websockets:
UUIDs as strings, timestamps as ISO-8601 UTC with `Z` at microsecond
precision (what both databases store, so a returned timestamp sent back
compares equal to its row)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from .ids import isoformat_z


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return isoformat_z(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"))


def dumps(data: Any) -> str:
    return _ENCODER.encode(data)

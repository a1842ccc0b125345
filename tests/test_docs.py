"""docs/api.md states the limits the server enforces.

Every limit is declared once, in pulsestack/models/fields.py, and reaches
requests through the models; this test reads each one back from the
models' JSON Schemas and looks for the sentence of docs/api.md that states
it, so a limit changed in code and not in the docs (or the other way round)
fails here.
"""

from __future__ import annotations

from pathlib import Path

from helpers import BODY_MAX, field_schema

from pulsestack.models.requests import (
    MuteSettings,
    NewMember,
    NewNotification,
    NewWorkspace,
    PageQuery,
    ReadMany,
    Registration,
    SendHeaders,
)

API_MD = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()


field = field_schema


def count(n: int) -> str:
    return f"{n:,}"


def test_every_limit_docs_api_md_states_is_the_one_the_models_enforce():
    title, message, type_ = field(NewNotification, "title"), field(NewNotification, "message"), field(NewNotification, "type")
    recipients, ids = field(NewNotification, "recipients"), field(ReadMany, "ids")
    name, slug = field(NewWorkspace, "name"), field(NewWorkspace, "slug")
    email, password = field(Registration, "email"), field(Registration, "password")
    key, limit = field(SendHeaders, "Idempotency-Key"), field(PageQuery, "limit")
    assert field(NewMember, "email") == email
    mute_types = field(MuteSettings, "types")
    prefix = mute_types["items"]

    stated = [
        f"`name`: {name['minLength']}–{count(name['maxLength'])} characters after trimming",
        f"`slug`: {slug['minLength']}–{slug['maxLength']} characters",
        f"(`{slug['pattern']}`)",
        f"`title`: {title['minLength']}–{count(title['maxLength'])} characters after trimming",
        f"`message`: 0–{count(message['maxLength'])} characters",
        f"`type`: `{type_['pattern']}`",
        f"(`x@y.z`, at most {email['maxLength']} characters)",
        f"the password is {password['minLength']}–{count(password['maxLength'])} characters",
        f"`recipients` ({recipients['minItems']}–{count(recipients['maxItems'])} user ids",
        f"({ids['minItems']}–{count(ids['maxItems'])} UUIDs)",
        f"`Idempotency-Key` (optional, {key['minLength']}–{key['maxLength']} printable ASCII characters",
        f"a whole number from {limit['minimum']} to {limit['maximum']}; default {limit['default']}",
        f"limited to {BODY_MAX // 1024} KiB",
        f"`types` ({mute_types['minItems']}–{mute_types['maxItems']} type prefixes, duplicates count once)",
        f"{prefix['minLength']}–{prefix['maxLength']} characters, `{prefix['pattern']}`",
    ]
    missing = [sentence for sentence in stated if sentence not in API_MD]
    assert missing == [], "docs/api.md does not state these limits as the models enforce them"

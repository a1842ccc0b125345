"""What clients send: request bodies, query strings, headers and cursors.

Bodies forbid unknown fields, so a typo such as `"mesage"` answers 422
naming it instead of being dropped silently. Query strings ignore unknown
parameters (caches and browsers add their own). Cursors are opaque to
clients; these classes are what they decode to.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from .fields import (
    PAGE_DEFAULT,
    ArchivedFilter,
    ArchiveStatus,
    AssignableRole,
    Data,
    Email,
    EmailKey,
    IdempotencyKey,
    IdList,
    InboxStatus,
    Limit,
    Message,
    NotificationType,
    Password,
    Slug,
    Timestamp,
    Title,
    TypePrefixList,
    Url,
    WorkspaceName,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Registration(Body):
    email: Email
    password: Password


class Login(Body):
    # Not checked beyond being strings: an unknown email or a wrong
    # password answers the same 401 either way.
    email: EmailKey
    password: str


class NewWorkspace(Body):
    name: WorkspaceName
    slug: Slug | None = Field(None, description="Derived from the name when left out.")


class WorkspaceRename(Body):
    name: WorkspaceName


class NewMember(Body):
    email: Email
    role: AssignableRole = "member"


class RoleChange(Body):
    role: AssignableRole


# JSON Schema for "exactly one of broadcast: true and recipients".
_ONE_AUDIENCE: JsonDict = {
    "oneOf": [
        {"properties": {"broadcast": {"const": True}, "recipients": {"type": "null"}}, "required": ["broadcast"]},
        {"properties": {"broadcast": {"const": False}, "recipients": {"type": "array"}}, "required": ["recipients"]},
    ],
}


class NewNotification(Body):
    """Either a broadcast to the whole workspace or a direct send to chosen members."""

    model_config = ConfigDict(json_schema_extra=_ONE_AUDIENCE)

    title: Title
    message: Message = ""
    type: NotificationType = "info"
    broadcast: StrictBool = Field(False, description="Send to every member but the sender (admin or owner only).")
    recipients: IdList | None = Field(None, description="Member ids to send to (the sender too, if listed).")
    url: Url | None = Field(None, description="Where the notification leads: an absolute http(s) URL, "
                                              "or a path starting with one `/`.")
    data: Data | None = Field(None, description="A JSON object for the client's own use.")
    critical: StrictBool = Field(False, description="Reach members who muted this workspace or type "
                                                    "(admin or owner only).")

    @model_validator(mode="after")
    def one_audience(self) -> NewNotification:
        if self.broadcast == (self.recipients is not None):
            problem = ("send broadcast: true or a list of recipients, not both" if self.broadcast
                       else "send broadcast: true, or a list of recipients")
            raise PydanticCustomError("one_audience", problem, {"fields": ("broadcast", "recipients")})
        return self


class ReadMany(Body):
    ids: IdList


class ReadAll(Body):
    workspace: Slug | None = Field(None, description="Only this workspace.")
    before: Timestamp | None = Field(None, description="Only notifications created at or before this moment: "
                                                       "send the newest `created_at` the user has seen.")


class ArchiveMany(Body):
    ids: IdList


class ArchiveAll(Body):
    workspace: Slug | None = Field(None, description="Only this workspace.")
    before: Timestamp | None = Field(None, description="Only notifications created at or before this moment.")
    status: ArchiveStatus = Field("read", description="`read`: only what is already read; `all`: unread too "
                                                      "(archiving marks them read).")


class MarkSeen(Body):
    workspace: Slug | None = Field(None, description="Only this workspace.")
    until: Timestamp | None = Field(None, description="Seen up to this moment; default (and at most) now.")


class MuteSettings(Body):
    types: TypePrefixList | None = Field(
        None,
        description="Mute only these type prefixes (whole dot-separated segments: `billing` mutes "
                    "`billing.invoice`); null or absent mutes every type.")
    until: Timestamp | None = Field(None, description="The mute ends at this moment (in the future); "
                                                      "null or absent: until it is deleted.")


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PageQuery(Query):
    limit: Limit = Field(PAGE_DEFAULT, description="Page size.")
    cursor: str | None = Field(None, description="The `next_cursor` of the previous page, unchanged.")


class InboxQuery(PageQuery):
    workspace: str | None = Field(None, max_length=64, description="Only this workspace (by slug).")
    status: InboxStatus = "all"
    type: NotificationType | None = Field(None, description="Only this type.")
    archived: ArchivedFilter = Field("exclude", description="Archived items: left out, included, or only they.")
    after: UUID | None = Field(None, description="Only items newer than this notification (a reconnecting "
                                                 "client's catch-up), newest first.")


class SendHeaders(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    idempotency_key: IdempotencyKey | None = Field(
        None, alias="Idempotency-Key",
        description="A repeat with the same key by the same sender within 24 hours sends nothing and "
                    "answers the first answer again, with `Idempotent-Replayed: true`.")


class Cursor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeCursor(Cursor):
    """Newest-first lists: the (created_at, id) of the previous page's last row."""

    t: Timestamp
    id: UUID


class NameCursor(Cursor):
    """Lists by name: the (name, id) of the previous page's last row."""

    name: str
    id: UUID


class IdCursor(Cursor):
    """Lists by id: the previous page's last id."""

    after: UUID


class AdminAccount(Body):
    """`pulsestack create-admin`: a new admin needs a password; promoting an
    existing account does not (its password stays as it is)."""

    email: Email
    password: Password | None = None

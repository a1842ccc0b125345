"""What the API answers, and the typed rows the query layer hands up.

A row the database returns is validated into one of these at the query
layer (queries/), so services and handlers work with typed objects, and
the same class serialises the answer and describes it in the OpenAPI
document. Every shape forbids extra fields: an answer carries exactly
what is declared here (never a password hash).
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .fields import Role, SystemRole, Timestamp


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class User(Shape):
    """An account. The password hash is never part of it."""

    id: UUID
    email: str = Field(description="Trimmed and lower-cased.")
    system_role: SystemRole = Field(description="`admin` acts as owner in every workspace.")
    created_at: Timestamp


class Issued(Shape):
    """A new token for a user (register, login). The token is shown only here."""

    user: User
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: Timestamp


class Workspace(Shape):
    id: UUID
    name: str
    slug: str
    owner_id: UUID
    created_at: Timestamp


class MyWorkspace(Workspace):
    """A workspace with the caller's role in it."""

    role: Role | None = Field(description="The caller's role; null for a system admin who is not a member.")


class WorkspaceSummary(Shape):
    id: UUID
    name: str
    slug: str
    role: Role


class Me(Shape):
    user: User
    workspaces: list[WorkspaceSummary] = Field(description="Every workspace the caller belongs to, by name.")


class Member(Shape):
    user_id: UUID
    email: str
    role: Role
    joined_at: Timestamp


class Notification(Shape):
    id: UUID
    workspace_id: UUID
    sender_id: UUID | None = Field(description="Null for a system send, or once the sender's account is gone.")
    title: str
    message: str
    type: str
    broadcast: bool = Field(description="Sent to the whole workspace.")
    created_at: Timestamp
    url: str | None = Field(description="Where it leads: an http(s) URL or a path; null when none.")
    data: dict[str, Any] | None = Field(description="The sender's JSON object for the client; null when none.")


class InboxItem(Notification):
    """A notification with the caller's own read state."""

    is_read: bool
    read_at: Timestamp | None = Field(description="When it was first marked read; null while unread.")
    is_seen: bool = Field(description="Read, or created at or before the workspace's seen cut-off "
                                      "(POST /api/notifications/seen).")
    archived: bool
    archived_at: Timestamp | None = Field(description="When it was archived; null when it is not.")
    workspace_slug: str


class Delivery(Shape):
    """How far a send's receipts are written. A broadcast to more than
    `fanout.chunk` members is `fanning_out` while a background job writes its
    receipts in chunks; every other send is `done` at once."""

    state: Literal["fanning_out", "done"]
    delivered: int = Field(description="Receipts written so far; when `done`, the receipts that exist.")


class SendAnswer(Shape):
    notification: Notification
    recipient_count: int = Field(description="The members the send is for, counted when it was sent: every member "
                                             "but the sender (a broadcast) or the listed ones, less those who muted it "
                                             "(unless critical).")
    delivery: Delivery


class SentNotification(Shape):
    notification: Notification
    recipient_count: int = Field(description="Receipts that still exist (dismissed or departed recipients do not "
                                             "count); while fanning out, the audience counted at send time.")
    read_count: int
    delivery: Delivery


class UnseenCounts(Shape):
    total: int
    workspaces: dict[UUID, int] = Field(description="Unseen per workspace id; only workspaces with unseen notifications.")


class UnreadCounts(Shape):
    total: int
    workspaces: dict[UUID, int] = Field(description="Unread per workspace id; only workspaces with unread notifications.")
    unseen: UnseenCounts = Field(description="Unread and created after the workspace's seen cut-off: the badge.")


class SeenAnswer(Shape):
    updated_workspaces: int = Field(description="How many memberships' seen cut-off moved forward.")


class Mute(Shape):
    muted: bool = Field(description="False when there is no mute, or its `until` has passed.")
    types: list[str] | None = Field(description="The muted type prefixes; null: every type.")
    until: Timestamp | None = Field(description="When the mute ends; null: when it is deleted.")


class Updated(Shape):
    updated: int = Field(description="How many receipts changed.")


T = TypeVar("T")


class Page(Shape, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last page.")


class WorkspacePage(Page[MyWorkspace]):
    pass


class MemberPage(Page[Member]):
    pass


class NotificationPage(Page[Notification]):
    pass


class InboxPage(Page[InboxItem]):
    pass


class Health(Shape):
    status: Literal["ok"]


class Ready(Shape):
    status: Literal["ok"]
    database: Literal["sqlite", "postgres"]


class ErrorDetail(Shape):
    code: str = Field(description="Stable, for programs: bad_request, unauthorized, forbidden, not_found, "
                                  "method_not_allowed, conflict, payload_too_large, validation_error, "
                                  "rate_limited, unavailable, internal.")
    message: str = Field(description="For people; may change.")
    details: dict[str, Any] = Field(description="More about the error, `{}` when there is nothing more; "
                                                "a 422 names each bad field.")


class ErrorBody(Shape):
    """Every error, from every path."""

    error: ErrorDetail


# --- websocket frames (docs/websocket.md) that carry API values ---------------------------------

class ReadyFrame(Shape):
    """The first frame after a good `auth`."""

    type: Literal["ready"] = "ready"  # first: clients may tell frames apart by their opening bytes
    user_id: UUID
    unread: UnreadCounts = Field(description="Exactly what GET /api/notifications/unread-count answers.")
    server_time: Timestamp = Field(description="The server's clock when it sent this frame.")
    heartbeat_s: int = Field(description="The server pings the socket when it has been silent this long.")
    token_expires_at: Timestamp = Field(description="When the token expires: the socket is closed with 4401 then.")


class ChangedItem(Shape):
    """A receipt's state now, as the inbox item of the same id shows it."""

    id: UUID
    is_read: bool
    read_at: Timestamp | None
    archived: bool
    archived_at: Timestamp | None


class ChangedFrame(Shape):
    """Receipts of the user that changed state (`items`) or are gone (`removed`), at most CHANGED_MAX ids."""

    type: Literal["changed"] = "changed"
    items: list[ChangedItem]
    removed: list[UUID]

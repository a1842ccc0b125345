"""The realtime hub's interface, as the services see it.

Services call these after a write commits (Transaction.after_commit):
`users_changed(ids)` when those users' receipts changed, and
`workspace_changed(id)` when every member's may have (a broadcast, a
retraction). The websocket hub that recomputes unread counts and pushes them
implements this interface; this base records nothing and pushes nothing, so
the HTTP API works on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID


class Hub:
    def users_changed(self, user_ids: Iterable[UUID]) -> None:
        """The unread state of these users may have changed."""

    def workspace_changed(self, workspace_id: UUID) -> None:
        """The unread state of any member of this workspace may have changed."""

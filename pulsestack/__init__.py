"""PulseStack: multi-tenant in-app notifications with exact unread counts and
live badges over websockets; SQLite by default, PostgreSQL in production."""

__version__ = "0.1.0"

"""Typed keys for what lives on the aiohttp Application, declared in one place."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .db import Database
from .hub import Hub
from .services.accounts import LoginLimiter, RegistrationLimiter
from .services.fanout import FanOutWorker
from .session_cache import SessionCache

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
LOGIN_LIMITER = web.AppKey("login_limiter", LoginLimiter)
REGISTRATION_LIMITER = web.AppKey("registration_limiter", RegistrationLimiter)
HUB = web.AppKey("hub", Hub)
FANOUT = web.AppKey("fanout", FanOutWorker)
SESSION_CACHE = web.AppKey("session_cache", SessionCache)

"""Typed keys for what lives on the aiohttp Application, declared in one place."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .db import Database

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)

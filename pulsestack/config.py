"""Configuration: config.toml, then PULSESTACK_* environment overrides.

Every setting is declared once, in SETTINGS below: its TOML key, type,
default, environment variable and help text. config.toml in the repository
mirrors this table with a comment per key, and docs/operations.md lists it;
a test keeps the three in step. A wrong value raises `ConfigError` naming the
key, which the CLI prints as one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .db import dialect_of, sqlite_path

ENV_PREFIX = "PULSESTACK_"
CONFIG_ENV = "PULSESTACK_CONFIG"


class ConfigError(ValueError):
    """Bad configuration; the message names the key or file at fault."""


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    type: type
    default: Any
    env: str
    help: str
    minimum: int | None = None
    maximum: int | None = None
    # A list setting (type tuple): checks and normalises each item; a
    # ValueError becomes a ConfigError naming the key, where it came from and the item.
    item: Callable[[str], str] | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


# Origins, for server.cors_origins; api/cors.py compares request Origin headers in this form too.
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?)(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN_EXAMPLE = "such as https://app.example.com or http://localhost:3000"


def parse_origin(text: str) -> str:
    """An origin `scheme://host[:port]` in the form browsers send it:
    scheme and host lower-cased, a default port (80 for http, 443 for
    https) dropped. Anything else raises ValueError saying what is wrong."""
    origin = text.strip()
    if origin == "*":
        raise ValueError("a wildcard is not supported; list each origin")
    if origin.lower() == "null":
        raise ValueError("the origin `null` (sandboxed frames, file: pages) cannot be allowed")
    if not origin.isascii():
        raise ValueError("write an internationalised host name in its ASCII (punycode) form, as browsers send it")
    scheme, separator, rest = origin.lower().partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        raise ValueError(f"expected scheme://host[:port], {_ORIGIN_EXAMPLE}")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority != rest:
        raise ValueError(f"an origin has no path, query or fragment: write {scheme}://{authority}")
    if "@" in authority:
        raise ValueError("an origin has no user name or password")
    m = _HOST_PORT.fullmatch(authority)
    if not m:
        raise ValueError(f"expected scheme://host[:port], {_ORIGIN_EXAMPLE}")
    host, port = m.group("host"), m.group("port")
    if port is None or int(port) == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range 1..65535")
    return f"{scheme}://{host}:{int(port)}"


def parse_network(text: str) -> str:
    """A CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or one address (a /32 or
    /128), in its normal spelling; host bits set are a mistake, said so."""
    try:
        return str(ipaddress.ip_network(text.strip()))
    except ValueError as exc:
        raise ValueError(f"expected an address or CIDR block such as 10.0.0.0/8 or 127.0.0.1: {exc}") from None


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "host", str, "127.0.0.1", "PULSESTACK_HOST",
            "Address to listen on; 0.0.0.0 to accept connections from other machines."),
    Setting("server", "port", int, 8080, "PULSESTACK_PORT",
            "TCP port to listen on; 0 = a free port the system picks (the `serving on` line names it).", 0, 65535),
    Setting("server", "cors_origins", tuple, (), "PULSESTACK_CORS_ORIGINS",
            "Browser origins (scheme://host[:port]) whose pages may call the HTTP API from another site; "
            "comma-separated in the environment. Empty = same origin only.", item=parse_origin),
    Setting("server", "trusted_proxies", tuple, (), "PULSESTACK_SERVER_TRUSTED_PROXIES",
            "Addresses or CIDR blocks of reverse proxies whose X-Forwarded-For is believed (the login and registration "
            "limits, logs); comma-separated in the environment. Empty = the TCP peer is the client.", item=parse_network),
    Setting("database", "url", str, "sqlite:///./pulsestack.db", "PULSESTACK_DATABASE_URL",
            "sqlite:///relative/or/absolute.db (sqlite:////abs/path.db) or postgresql://user:pass@host:5432/dbname."),
    Setting("database", "pool_size", int, 10, "PULSESTACK_DATABASE_POOL_SIZE",
            "Postgres: most connections one server process opens (opened on demand).", 1, 1000),
    Setting("database", "sqlite_readers", int, 4, "PULSESTACK_DATABASE_SQLITE_READERS",
            "SQLite: read-only connections beside the one writer; reads never wait for writes.", 1, 64),
    Setting("database", "busy_timeout_ms", int, 5000, "PULSESTACK_DATABASE_BUSY_TIMEOUT_MS",
            "SQLite: how long a statement waits for another process's lock before failing.", 0, 600_000),
    Setting("auth", "token_ttl_hours", int, 720, "PULSESTACK_AUTH_TOKEN_TTL_HOURS",
            "Lifetime of an API token from login or registration, in hours (720 = 30 days).", 1, 87_600),
    Setting("auth", "open_registration", bool, True, "PULSESTACK_AUTH_OPEN_REGISTRATION",
            "Whether anyone may POST /api/auth/register; false = accounts come from create-admin and admins."),
    Setting("hub", "flush_ms", int, 50, "PULSESTACK_HUB_FLUSH_MS",
            "Websocket hub: how long changes pile up before unread counts are recomputed and pushed, in milliseconds.",
            1, 10_000),
    Setting("hub", "send_queue", int, 256, "PULSESTACK_HUB_SEND_QUEUE",
            "Websocket hub: frames held per socket while its connection is backed up; a client that falls this far behind "
            "is closed with 1013.", 1, 100_000),
    Setting("hub", "heartbeat_s", int, 30, "PULSESTACK_HUB_HEARTBEAT_S",
            "Websocket ping interval in seconds; a peer that misses a pong is disconnected.", 1, 3600),
    Setting("retention", "read_days", int, 0, "PULSESTACK_RETENTION_READ_DAYS",
            "Housekeeping deletes read receipts read more than this many days ago (pulsestack prune "
            "--read-older-than); 0 = keep forever.", 0, 36_500),
    Setting("retention", "all_days", int, 0, "PULSESTACK_RETENTION_ALL_DAYS",
            "Housekeeping deletes every receipt and notification created more than this many days ago "
            "(pulsestack prune --older-than); 0 = keep forever.", 0, 36_500),
    Setting("fanout", "chunk", int, 5000, "PULSESTACK_FANOUT_CHUNK",
            "Broadcasts to at most this many members write every receipt before answering; larger ones answer at once "
            "and a background job writes their receipts this many members at a time (fewer on SQLite).", 1, 1_000_000),
    Setting("log", "level", str, "info", "PULSESTACK_LOG_LEVEL",
            "Log level: debug, info, warning or error."),
    Setting("log", "format", str, "text", "PULSESTACK_LOG_FORMAT",
            "text (one plain line per event) or json (one JSON object per line)."),
    Setting("log", "slow_query_ms", int, 200, "PULSESTACK_LOG_SLOW_QUERY_MS",
            "A named query that takes at least this many milliseconds is logged as a warning, at any log level "
            "(0 = every query).", 0, 3_600_000),
    Setting("metrics", "enabled", bool, True, "PULSESTACK_METRICS_ENABLED",
            "Serve Prometheus metrics at GET /metrics."),
    Setting("metrics", "port", int, 0, "PULSESTACK_METRICS_PORT",
            "0 = /metrics on the main port; otherwise /metrics is served on this port alone (same host), "
            "and not on the main one.", 0, 65535),
)

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    cors_origins: tuple[str, ...]
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    pool_size: int
    sqlite_readers: int
    busy_timeout_ms: int

    @property
    def dialect(self) -> str:
        return dialect_of(self.url)


@dataclass(frozen=True)
class AuthConfig:
    token_ttl_hours: int
    open_registration: bool


@dataclass(frozen=True)
class HubConfig:
    flush_ms: int
    send_queue: int
    heartbeat_s: int


@dataclass(frozen=True)
class RetentionConfig:
    read_days: int = 0
    all_days: int = 0


@dataclass(frozen=True)
class FanoutConfig:
    chunk: int = 5000


@dataclass(frozen=True)
class LogConfig:
    level: str
    format: str = "text"
    slow_query_ms: int = 200


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    port: int = 0


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    database: DatabaseConfig
    auth: AuthConfig
    hub: HubConfig
    log: LogConfig
    retention: RetentionConfig = RetentionConfig()
    fanout: FanoutConfig = FanoutConfig()
    metrics: MetricsConfig = MetricsConfig()
    source: str = "defaults"

    def replace(self, **changes: Mapping[str, Any]) -> Config:
        """A copy with some settings changed: `cfg.replace(database={"url": ...})`."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        for section, values in changes.items():
            kwargs[section] = type(kwargs[section])(**{**vars(kwargs[section]), **values})
        return Config(**kwargs)


_SECTIONS = {"server": ServerConfig, "database": DatabaseConfig, "auth": AuthConfig, "hub": HubConfig, "log": LogConfig,
             "retention": RetentionConfig, "fanout": FanoutConfig, "metrics": MetricsConfig}


def _coerce(setting: Setting, value: Any, origin: str, text: bool) -> Any:
    """`value` as the setting's type: TOML values must already have it; text
    (environment, command line) is parsed."""
    where = f"{setting.name} ({origin})"
    if setting.type is tuple:
        return _coerce_list(setting, value, where, text)
    if not text and setting.type is not str and isinstance(value, str):
        expected = "true or false" if setting.type is bool else "a whole number"
        raise ConfigError(f"{where}: expected {expected}, got the string {value!r}")
    if setting.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if setting.type is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
        if setting.minimum is not None and number < setting.minimum or setting.maximum is not None and number > setting.maximum:
            raise ConfigError(f"{where}: {number} is out of range {setting.minimum}..{setting.maximum}")
        return number
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _coerce_list(setting: Setting, value: Any, where: str, text: bool) -> tuple[str, ...]:
    """A TOML array of strings, or comma-separated text (empty = an empty
    list); each item normalised by `setting.item`, duplicates dropped."""
    if text and isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    elif not text and isinstance(value, list):
        items = value
    else:
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: expected a list of strings, got the item {item!r}")
        try:
            normal = setting.item(item) if setting.item else item.strip()
        except ValueError as exc:
            raise ConfigError(f"{where}: {item!r}: {exc}") from None
        if normal not in result:
            result.append(normal)
    return tuple(result)


def _validate(values: dict[str, dict[str, Any]]) -> None:
    url = values["database"]["url"]
    try:
        if dialect_of(url) == "sqlite":
            sqlite_path(url)
    except ValueError as exc:
        raise ConfigError(f"database.url: {exc}") from None
    if values["log"]["level"].lower() not in LOG_LEVELS:
        raise ConfigError(f"log.level: expected one of {', '.join(LOG_LEVELS)}, got {values['log']['level']!r}")
    values["log"]["level"] = values["log"]["level"].lower()
    if values["log"]["format"].lower() not in LOG_FORMATS:
        raise ConfigError(f"log.format: expected one of {', '.join(LOG_FORMATS)}, got {values['log']['format']!r}")
    values["log"]["format"] = values["log"]["format"].lower()
    if values["metrics"]["port"] and values["metrics"]["port"] == values["server"]["port"]:
        raise ConfigError(f"metrics.port: {values['metrics']['port']} is server.port; use 0 to serve /metrics there")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the TOML file, then PULSESTACK_* variables, then
    `overrides` ({"server.port": "9000"}: command-line options, as text).

    `path` None means $PULSESTACK_CONFIG, else ./config.toml when it exists,
    else defaults only. A path given explicitly must be readable.
    """
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is None and Path("config.toml").is_file():
        path = "config.toml"

    data: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    known = {sec: {s.key for s in SETTINGS if s.section == sec} for sec in _SECTIONS}
    for section, table in data.items():
        if section not in known:
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(known)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}])")
        for key in table:
            if key not in known[section]:
                raise ConfigError(f"{path}: unknown key {section}.{key}")

    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for s in SETTINGS:
        value = s.default
        if s.key in data.get(s.section, {}):
            value = _coerce(s, data[s.section][s.key], str(path), text=False)
        if s.env in env:
            value = _coerce(s, env[s.env], f"env {s.env}", text=True)
        if overrides and s.name in overrides:
            value = _coerce(s, overrides[s.name], "command line", text=True)
        values[s.section][s.key] = value
    _validate(values)
    return Config(**{name: cls(**values[name]) for name, cls in _SECTIONS.items()}, source=str(path) if path else "defaults")

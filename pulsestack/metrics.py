"""Prometheus metrics: every series the server exposes at GET /metrics.

The metrics are process-wide, in one registry of our own (`REGISTRY`, with
prometheus-client's process, platform and GC collectors): a process serves
one app, and the code that counts (the hub, the database adapters, the
event bus) does not need to be handed a registry. Tests that build many
apps in one process read deltas.

Labels are bounded by construction: a route label is the route's template
(`/api/notifications/{notification_id}`), never the path a client sent, an
unknown path is `unmatched`, a method outside the HTTP verbs is `other`,
and websocket close codes are the server's own. Nothing a client chooses
becomes a label value.

Counting is cheap on the hot paths: a request costs a dictionary lookup, one
counter increment and one histogram observation; the hub counts once per
socket write, never per frame in a loop of its own. Gauges that describe a
pool are read from the pool when Prometheus scrapes, not kept up to date.

This module imports nothing of PulseStack's, so any module may count here.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# A `_created` timestamp beside every counter and histogram doubles the
# output for nothing Prometheus needs (it detects resets by itself).
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# From 1 ms: most API answers take a few.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
# Routes whose request lasts as long as its connection: their "latency" would be the websocket's life.
CONNECTION_ROUTES = frozenset({"/ws"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- HTTP -------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "pulsestack_http_requests_total", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram(
    "pulsestack_http_request_duration_seconds",
    "Time from a request's arrival to its answer, by route template and method (websockets left out: "
    "their duration is the connection's life).",
    ["route", "method"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

# --- websockets and the hub -------------------------------------------------------------------------

WS_OPEN = Gauge("pulsestack_ws_open", "Authenticated websockets open now.", registry=REGISTRY)
WS_FRAMES_SENT = Counter("pulsestack_ws_frames_sent_total", "Websocket frames written or queued to clients.",
                         registry=REGISTRY)
WS_CLOSES = Counter(
    "pulsestack_ws_closes_total",
    "Websockets the server closed, by close code (1001 shutdown, 1011 database unavailable, 1013 client too slow, "
    "4401 token invalid, revoked or expired, 4408 no auth frame in time).", ["code"], registry=REGISTRY)
CLOSE_CODES = (1001, 1011, 1013, 4401, 4408)
for _code in CLOSE_CODES:
    WS_CLOSES.labels(str(_code))  # present at 0, so rate() works from the start
HUB_FLUSH_SECONDS = Histogram(
    "pulsestack_hub_flush_duration_seconds", "Time one hub flush took: its queries and its sends.",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
HUB_FLUSH_USERS = Histogram(
    "pulsestack_hub_flush_users", "Connected users whose counts one hub flush recomputed.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000), registry=REGISTRY)

# --- fan-out jobs (large broadcasts written in chunks) ----------------------------------------------

FANOUT_JOBS_RUNNING = Gauge("pulsestack_fanout_jobs_running", "Fan-out jobs this process is writing now.",
                            registry=REGISTRY)
FANOUT_BACKLOG = Gauge("pulsestack_fanout_jobs_pending", "Fan-out jobs waiting to be written.", registry=REGISTRY)
FANOUT_RECEIPTS = Counter("pulsestack_fanout_receipts_written_total", "Receipts written by fan-out jobs.",
                          registry=REGISTRY)
FANOUT_DURATION = Histogram(
    "pulsestack_fanout_job_duration_seconds", "Time from a large broadcast's send to its job's last chunk.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0), registry=REGISTRY)

# --- the database and the event bus -----------------------------------------------------------------

SQLITE_WRITER_WAIT = Histogram(
    "pulsestack_sqlite_writer_wait_seconds", "SQLite: how long a write waited for the one writer connection.",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY)
EVENTBUS_RECONNECTS = Counter(
    "pulsestack_eventbus_reconnects_total", "Postgres: times the event bus's listener connected again after losing "
    "its connection (each is followed by a refresh of every connected user).", registry=REGISTRY)

# --- accounts ---------------------------------------------------------------------------------------

LOGIN_FAILURES = Counter("pulsestack_login_failures_total", "Logins refused for a wrong email or password.",
                         registry=REGISTRY)
RATE_LIMITED = Counter("pulsestack_rate_limited_total", "Requests answered 429, by limit (login, registration).",
                       ["limit"], registry=REGISTRY)
for _limit in ("login", "registration"):
    RATE_LIMITED.labels(_limit)


class LiveGauges(Collector):
    """Gauges read at scrape time from live objects: the Postgres pools (size,
    in use, maximum) and the event buses (listener connected). Objects add
    themselves with `watch_pool`/`watch_bus` and are held weakly, so a closed
    database or bus simply stops being reported. With none, nothing is
    reported (an SQLite server has no pool and no bus to be down)."""

    def __init__(self) -> None:
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()  # objects with pool_stats() -> (size, in use, max) | None
        self.buses: weakref.WeakSet[Any] = weakref.WeakSet()  # objects with an asyncio.Event `connected`

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = [s for s in (pool.pool_stats() for pool in list(self.pools)) if s is not None]
        if stats:
            for index, (name, text) in enumerate((
                    ("pulsestack_db_pool_connections", "Postgres: connections the pool holds open now."),
                    ("pulsestack_db_pool_in_use", "Postgres: pooled connections running a query or transaction now."),
                    ("pulsestack_db_pool_max", "Postgres: most connections the pool may open (database.pool_size)."))):
                yield GaugeMetricFamily(name, text, value=sum(s[index] for s in stats))
        buses = list(self.buses)
        if buses:
            yield GaugeMetricFamily("pulsestack_eventbus_connected",
                                    "Postgres: 1 while the event bus listens for other processes' changes, else 0.",
                                    value=min(1 if bus.connected.is_set() else 0 for bus in buses))


LIVE = LiveGauges()
REGISTRY.register(LIVE)


def watch_pool(database: Any) -> None:
    """Report `database.pool_stats()` at each scrape while it lives."""
    LIVE.pools.add(database)


def watch_bus(bus: Any) -> None:
    """Report whether `bus.connected` is set at each scrape while it lives."""
    LIVE.buses.add(bus)


# --- the HTTP side ------------------------------------------------------------------------------------

_Children = tuple[Any, Any]  # (counter child, histogram child)
_children: dict[tuple[Any, str, int], _Children] = {}


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    """Count one answered request under its route template. The cache key is
    the route's resource object (or None), a known method and the status:
    all bounded, so the cache is too."""
    method = request.method if request.method in METHODS else "other"
    resource = request.match_info.route.resource
    key = (resource, method, status)
    children = _children.get(key)
    if children is None:
        route = resource.canonical if resource is not None else UNMATCHED
        latency = None if route in CONNECTION_ROUTES else HTTP_LATENCY.labels(route, method)
        children = _children[key] = (HTTP_REQUESTS.labels(route, method, str(status)), latency)
    children[0].inc()
    if children[1] is not None:
        children[1].observe(seconds)


def ws_closed(code: int) -> None:
    """The server closed a websocket with `code` (one of CLOSE_CODES)."""
    WS_CLOSES.labels(str(code)).inc()


def exposition() -> bytes:
    """Every series, in the Prometheus text format."""
    return generate_latest(REGISTRY)


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_app() -> web.Application:
    """The app of a listener of its own (metrics.port): /metrics and nothing else."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    return app

"""GET /metrics on the main port (when `metrics.enabled` and `metrics.port`
is 0): the Prometheus text format, from pulsestack/metrics.py."""

from __future__ import annotations

from aiohttp import web

from .. import metrics
from .routing import Routes

routes = Routes("operations")


@routes.get("/metrics", auth=False, database=False, answer=None, answer_media=("text/plain",))
async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (text exposition format)

    HTTP requests and latency by route template, websockets, the hub's
    flushes, fan-out jobs, the database pool, the event bus, login failures
    and 429s, and the process's own CPU, memory and GC. docs/operations.md
    lists every series. Not served here when `metrics.port` names a port of
    its own, nor at all when `metrics.enabled` is false.
    """
    return await metrics.metrics_handler(request)

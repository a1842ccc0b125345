"""Middleware: request ids, one access-log line per request, metrics, and errors.

The request id is also set as `logs.request_id` while the request runs, so
every line logged meanwhile carries it (the JSON format writes it on each
line). The access line names the client's address as api/clients.py finds
it. With `metrics.enabled`, each answered request is counted under its route
template (metrics.observe_request).

What the client chose (request id, method, path) is escaped in every log
line (logs.printable), so a request cannot write a line of its own.

Every error leaves the server in the documented shape. `ApiError`s render
as themselves; aiohttp's own HTTP exceptions (unknown route, wrong method,
body too large) are mapped onto the same codes; a lost database answers 503
`unavailable`; anything else is logged with its traceback and answers a bare
500 `internal`, never the traceback itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import logs, metrics
from ..appkeys import CONFIG
from ..db import DatabaseConflict, DatabaseUnavailable
from ..errors import ApiError, BadRequest, Internal, MethodNotAllowed, NotFound, PayloadTooLarge, Unavailable
from ..logs import printable
from ..serialize import dumps
from .clients import client_address
from .jsonio import storable

log = logging.getLogger(logs.ACCESS_LOGGER)
errors_log = logging.getLogger("pulsestack.errors")

CLIENT_CLOSED = 499


def error_response(error: ApiError, request_id: str | None = None) -> web.Response:
    response = web.json_response(error.body(), status=error.status, dumps=dumps, headers=error.headers)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return NotFound("no such resource")
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ())))
        return MethodNotAllowed(f"method not allowed; allowed: {allowed}", headers={"Allow": allowed})  # RFC 9110 §15.5.6
    if exc.status == 413:
        return PayloadTooLarge("request body is larger than 64 KiB")
    if exc.status == 400:
        return BadRequest(exc.text or "bad request")
    error = ApiError(exc.reason or "error")
    error.status, error.code = exc.status, (exc.reason or "error").lower().replace(" ", "_")
    return error


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id, log one line when it ends, render every error."""
    # 64 random bits name the request in logs and error bodies; they need to be unique, not
    # secret, and os.urandom (secrets) was 2% of an unread-count request.
    request_id = request.headers.get("X-Request-Id", "")[:64] or f"{random.getrandbits(64):016x}"
    # Reset at the end: a keep-alive connection's next request runs in the same task.
    context = logs.request_id.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            # No resource can have such a name, and no database can store it.
            if not storable(request.path):
                raise NotFound("no such resource")
            if not storable(request.query_string):
                raise BadRequest("the query string must not contain NUL characters or unpaired surrogates")
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects and friends pass through
                raise
            response = error_response(_from_http_exception(exc), request_id)
        except ApiError as exc:
            response = error_response(exc, request_id)
        except DatabaseConflict as exc:
            errors_log.warning("request %s: rolled back by the database: %s", printable(request_id), exc)
            response = error_response(Unavailable("a concurrent change got in the way; nothing was written, retry"),
                                      request_id)
        except DatabaseUnavailable as exc:
            errors_log.warning("request %s: database unavailable: %s", printable(request_id), exc)
            response = error_response(Unavailable("the database is unavailable; retry shortly"), request_id)
        except Exception:
            # Id, method and path are all the client's to choose: escaped.
            errors_log.exception("request %s %s %s failed", printable(request_id), printable(request.method),
                                 printable(request.path))
            internal = Internal("internal error; quote this request id when reporting it", {"request_id": request_id})
            response = error_response(internal, request_id)
        status = response.status
        response.headers.setdefault("X-Request-Id", request_id)
        return response
    except asyncio.CancelledError:
        # The connection went away mid-request (a websocket's included): nginx's
        # 499, "client closed request", not a 500 that would look like our fault.
        status = CLIENT_CLOSED
        raise
    finally:
        seconds = time.perf_counter() - started
        if request.app[CONFIG].metrics.enabled:
            metrics.observe_request(request, status, seconds)
        if log.isEnabledFor(logging.INFO):  # escaping the line costs; skip it when nobody reads it
            client, ms = client_address(request), round(seconds * 1000, 1)
            method, path = printable(request.method), printable(request.path)
            # The fields again as `extra`, for the JSON format only: the text line has them all.
            fields = {"client": client, "method": method, "path": path, "status": status, "duration_ms": ms} \
                if logs.structured else None
            log.info("%s %s %s %d %.1fms %s", printable(request_id), method, path, status, ms, client, extra=fields)
        logs.request_id.reset(context)

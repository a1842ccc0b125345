"""CORS: pages served from the origins in `server.cors_origins` may call the
HTTP API from the browser; every other origin gets no CORS headers at all,
so the browser keeps the answers from it.

Tokens travel in the `Authorization` header, never in cookies, so there is
no credentials mode: `Access-Control-Allow-Credentials` is never sent, and
`Access-Control-Allow-Origin` names the one listed origin that asked (never
`*`).

- A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
  from a listed origin, to a path that exists, answers 204 with the methods,
  request headers and max-age below. To a path that does not exist it gets
  the usual 404: the preflight does not pretend the path exists (the
  browser then reports the failed preflight).
- A preflight from any other origin is an ordinary `OPTIONS` request: no
  route has that method, so it answers 405 with `Allow` (404 for an unknown
  path), without CORS headers.
- Every other answer to a listed origin, errors included (401, 404, 422,
  500: the browser can read their JSON bodies), carries
  `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers`. Every
  answer carries `Vary: Origin` while any origin is listed, since whether
  it carries CORS headers depends on `Origin`.
- /ws is left alone: browsers do not preflight websockets nor apply CORS to
  them, and /ws authenticates by a token in the first frame, not by a
  cookie, so a page from any origin can connect only with a token it
  already holds.
- With no origin listed (the default) nothing here is installed.

Why not aiohttp-cors (0.8.1, March 2025, maintained by aio-libs): it must
be handed every route (`cors.add(route)`) and adds an OPTIONS route to each
resource, which would show in the router that api/openapi.py documents and
tests/test_openapi.py compares with the document; and it adds its headers
only to answers of routes it knows, not to the 404 of an unknown path nor
to errors aiohttp raises before a handler runs. What this service needs (a
fixed list of origins, methods and headers, no credentials) is a short
middleware plus an `on_response_prepare` hook, which covers every answer
the middleware in api/middleware.py renders.

The middleware runs inside `request_context`, so a preflight gets a request
id and an access-log line like any request. Origins are compared in the
form `config.parse_origin` gives them (scheme and host lower-cased, default
port dropped); the answer repeats the `Origin` header as it was sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

from ..config import parse_origin

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What a page may send: the token, JSON, the send's key, its own request id.
ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id")
# What a page may read beyond the CORS-safelisted headers: every answer header
# the OpenAPI document names (tests/test_cors.py keeps them in step), and Allow of a 405.
EXPOSE_HEADERS = ("Allow", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate", "X-Request-Id")
MAX_AGE_S = 600


def _add_vary_origin(response: web.StreamResponse) -> None:
    vary = response.headers.get("Vary")
    if vary is None:
        response.headers["Vary"] = "Origin"
    elif not {v.strip().lower() for v in vary.split(",")} & {"origin", "*"}:
        response.headers["Vary"] = f"{vary}, Origin"


def install(app: web.Application, origins: Iterable[str]) -> None:
    """Answer preflights from `origins` and add CORS headers to every answer
    to them; with no origins, install nothing. Call before the app starts,
    after `request_context` is among its middlewares."""
    allowed = frozenset(parse_origin(o) for o in origins)
    if not allowed:
        return

    def listed(request: web.Request) -> str | None:
        """The request's `Origin`, as sent, when it is a listed origin."""
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if origin in allowed:  # what browsers send: already normalised
            return origin
        try:
            return origin if parse_origin(origin) in allowed else None
        except ValueError:
            return None

    preflight_headers = {
        "Access-Control-Allow-Methods": ", ".join(ALLOW_METHODS),
        "Access-Control-Allow-Headers": ", ".join(ALLOW_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE_S),
    }
    expose = ", ".join(EXPOSE_HEADERS)

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
                and listed(request) is not None
                and not isinstance(request.match_info.http_exception, web.HTTPNotFound)):
            return web.Response(status=204, headers=preflight_headers)
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        if isinstance(response, web.WebSocketResponse):  # /ws: see the module docstring
            return
        _add_vary_origin(response)
        origin = listed(request)
        if origin is None:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        if "Access-Control-Allow-Methods" not in response.headers:  # not a preflight
            response.headers["Access-Control-Expose-Headers"] = expose

    app.middlewares.append(preflight)
    app.on_response_prepare.append(add_headers)

"""GET /api/openapi.json: the OpenAPI 3.1 description of this API.

The document is a file in the repository (pulsestack/api/openapi.json),
written by hand and kept true by tests/test_openapi.py, which checks that
every route the app registers is described and nothing described is missing.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

SPEC_PATH = Path(__file__).with_name("openapi.json")

routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=SPEC_PATH.read_bytes(), content_type="application/json")

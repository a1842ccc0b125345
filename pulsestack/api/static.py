"""The browser client: the app page at `/` and its files at `/static/`.

The files are pulsestack/static/ as they are: plain ES modules and CSS, no
build step. They are read once, at startup, with a strong ETag each (a hash
of the bytes) and `Cache-Control: no-cache`: a browser revalidates on every
load, so a deploy shows at once, and an unchanged file costs a 304 with no
body.

Every answer here carries a Content-Security-Policy that allows scripts,
styles and connections from this origin only (the API and its websocket),
and no inline script at all, so text that slipped into the page as markup
still could not run. The client never inserts user text as HTML; this is
the second line.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from ..errors import NotFound
from .routing import Routes

routes = Routes("browser client")


TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    etag: str
    content_type: str


def _load() -> dict[str, StaticFile]:
    files = {}
    for entry in (resources.files("pulsestack") / "static").iterdir():
        if not entry.is_file() or entry.name.startswith(".") or entry.name.endswith(".py"):
            continue
        body = entry.read_bytes()
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        content_type = TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        files[entry.name] = StaticFile(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', content_type)
    return files


FILES = _load()


def content_security_policy(request: web.Request) -> str:
    # 'self' covers ws:/wss: of the same host in current browsers; the
    # explicit ws/wss sources keep older ones working too.
    host = request.host
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src 'self' ws://{host} wss://{host}",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def _answer(request: web.Request, name: str) -> web.Response:
    file = FILES.get(name)  # a name read at startup, or nothing: no path ever reaches the disk
    if file is None:
        raise NotFound("no such file")
    headers = {
        "ETag": file.etag,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": content_security_policy(request),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if file.etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if file.content_type.startswith("text/") else None
    return web.Response(body=file.body, headers=headers, content_type=file.content_type, charset=charset)


@routes.get("/", auth=False, database=False, answer=None, answer_media=("text/html",))
async def app_page(request: web.Request) -> web.Response:
    """The PulseStack web app (HTML)

    Sign in, the bell and the inbox, sending, members. It talks to this
    server's API and websocket only.
    """
    return _answer(request, "index.html")


@routes.get("/static/{name}", auth=False, database=False, answer=None,
            answer_media=tuple(sorted({file.content_type for file in FILES.values()})),
            errors={404: "not_found: no such file"})
async def static_file(request: web.Request) -> web.Response:
    """A file of the browser client: pulsestack.js, components.js, the app's script and styles"""
    return _answer(request, request.match_info["name"])

"""The browser client's files over HTTP: `/` (the app page) and `/static/…`.

Checked through the real app on a real aiohttp test server: the content
types, the ETag and 304 round trip, the Content-Security-Policy that allows
this origin's scripts only, and that nothing outside pulsestack/static/ can
be reached.
"""

from __future__ import annotations

import pytest
from helpers import expect_error

from pulsestack.api.static import FILES


async def test_the_app_page_is_html_with_a_strict_content_security_policy(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert '<script type="module" src="/static/app.js"></script>' in page
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"].startswith("'self' ")
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", sorted(FILES))
async def test_each_static_file_is_served_with_its_type_and_revalidates_to_304(client, name):
    resp = await client.get(f"/static/{name}")
    assert resp.status == 200
    assert await resp.read() == FILES[name].body
    assert resp.content_type == FILES[name].content_type
    assert resp.headers["Cache-Control"] == "no-cache"
    etag = resp.headers["ETag"]
    again = await client.get(f"/static/{name}", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    changed = await client.get(f"/static/{name}", headers={"If-None-Match": '"something-else"'})
    assert changed.status == 200


def test_the_client_files_are_there():
    assert {"index.html", "app.js", "app.css"} <= set(FILES)
    assert FILES["app.js"].content_type == "text/javascript"


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/..%2fapp.py", "/static/.hidden", "/static/__init__.py"])
async def test_anything_else_is_404(client, path):
    await expect_error(await client.get(path), 404, "not_found")

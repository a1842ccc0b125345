"""GET /metrics after real traffic, on SQLite and on Postgres.

The metrics are process-wide (pulsestack/metrics.py) and this process runs
many apps, so each test reads the series before and after what it does and
asserts the difference, never an absolute count.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from helpers import (
    HANG_GUARD_S,
    PASSWORD,
    connect,
    create_workspace,
    expect_close,
    join,
    make_team,
    open_ws,
    poll,
    raw_read_until_close,
    raw_ws_connect,
    register,
    send_until_dropped,
    token_of,
)
from helpers import post_notification as send
from prometheus_client.parser import text_string_to_metric_families

from pulsestack import metrics
from pulsestack.app import create_app
from pulsestack.appkeys import FANOUT, HUB

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
UNREAD_COUNT = "/api/notifications/unread-count"
ONE_NOTIFICATION = "/api/workspaces/{slug}/notifications/{notification_id}"


async def scrape(client) -> Series:
    resp = await client.get("/metrics")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    return parse(await resp.text())


def parse(text: str) -> Series:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


def grew(before: Series, after: Series, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def names(series: Series) -> set[str]:
    return {name for name, _ in series}


async def test_metrics_after_http_websocket_broadcast_1013_and_a_failed_login(aiohttp_client, config, db):
    # send_queue 2: a client that stops reading is dropped after a few frames.
    client = await aiohttp_client(create_app(config.replace(hub={"send_queue": 2, "flush_ms": 5}), db=db))
    before = await scrape(client)

    owner_user, owner = await register(client)
    ws = await create_workspace(client, owner)
    _, alice = await join(client, owner, ws["slug"])
    stalled_user, stalled = await join(client, owner, ws["slug"])
    assert (await client.get(UNREAD_COUNT, headers=alice)).status == 200
    assert (await client.get(f"/api/workspaces/{ws['slug']}/notifications/{uuid.uuid4()}", headers=owner)).status == 404
    assert (await client.get("/no/such/path")).status == 404
    failed = await client.post("/api/auth/login", json={"email": owner_user["email"], "password": "wrong" + PASSWORD})
    assert failed.status == 401

    conn = await connect(client, alice)
    during = await scrape(client)
    assert grew(before, during, "pulsestack_ws_open") == 1
    hub = client.app[HUB]
    raw = await raw_ws_connect(client.server.host, client.server.port, token_of(stalled))
    stalled_id = uuid.UUID(stalled_user["id"])
    try:
        async def send_big(i: int) -> None:
            n = await send(client, owner, ws["slug"], title=f"big {i}", message="x" * 10_000)
            await conn.until_notification(n["id"])

        sent = await send_until_dropped(hub, stalled_id, send_big)
        _, code = await raw_read_until_close(raw)
        assert code == 1013
    finally:
        raw.close()
    await conn.ws.close()

    async def both_handlers_done() -> bool:
        return grew(before, await scrape(client), "pulsestack_ws_open") == 0

    await poll(both_handlers_done, "both websocket handlers to end")
    after = await scrape(client)

    # HTTP, by route template and never by the path sent
    assert grew(before, after, "pulsestack_http_requests_total", route=UNREAD_COUNT, method="GET", status="200") == 1
    assert grew(before, after, "pulsestack_http_requests_total", route=ONE_NOTIFICATION, method="GET", status="404") == 1
    assert grew(before, after, "pulsestack_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert grew(before, after, "pulsestack_http_requests_total", route="/api/auth/login", method="POST", status="401") == 1
    # A websocket's status is 101, or 499 when its connection was cut under its handler (the dropped client's may be).
    assert sum(grew(before, after, "pulsestack_http_requests_total", route="/ws", method="GET", status=status)
               for status in ("101", "499")) == 2
    assert grew(before, after, "pulsestack_http_request_duration_seconds_count", route="/ws", method="GET") == 0
    assert grew(before, after, "pulsestack_http_request_duration_seconds_count", route=UNREAD_COUNT, method="GET") == 1
    assert grew(before, after, "pulsestack_http_request_duration_seconds_bucket",
                route=UNREAD_COUNT, method="GET", le="+Inf") == 1
    assert grew(before, after, "pulsestack_http_request_duration_seconds_sum", route=UNREAD_COUNT, method="GET") > 0
    assert not any(ws["slug"] in dict(labels).get("route", "") for _, labels in after), "a raw path became a label"
    # websockets and the hub
    assert grew(before, after, "pulsestack_ws_closes_total", code="1013") == 1
    assert grew(before, after, "pulsestack_ws_frames_sent_total") >= 2 * sent  # each send: a notification and a count
    assert grew(before, after, "pulsestack_hub_flush_duration_seconds_count") >= 1
    assert grew(before, after, "pulsestack_hub_flush_users_count") >= 1
    assert grew(before, after, "pulsestack_hub_flush_users_sum") >= 1
    # accounts
    assert grew(before, after, "pulsestack_login_failures_total") == 1
    assert grew(before, after, "pulsestack_rate_limited_total", limit="login") == 0  # one failure is no 429
    # the database
    if db.dialect == "postgres":
        assert 1 <= value(after, "pulsestack_db_pool_connections") <= value(after, "pulsestack_db_pool_max")
        assert 0 <= value(after, "pulsestack_db_pool_in_use") <= value(after, "pulsestack_db_pool_connections")
        assert value(after, "pulsestack_eventbus_connected") == 1
        assert "pulsestack_eventbus_reconnects_total" in names(after)
    else:
        assert grew(before, after, "pulsestack_sqlite_writer_wait_seconds_count") >= 4 + sent  # registrations, sends
    # fan-out jobs (counted by the fan-out worker) and the process itself
    for name in ("pulsestack_fanout_jobs_running", "pulsestack_fanout_jobs_pending",
                 "pulsestack_fanout_receipts_written_total", "pulsestack_fanout_job_duration_seconds_count",
                 "process_cpu_seconds_total", "process_resident_memory_bytes", "python_gc_collections_total",
                 "python_info"):
        assert name in names(after), name


async def test_the_number_of_series_does_not_grow_with_ids_or_paths(client):
    _, headers = await register(client)

    async def burst(n: int) -> None:
        for _ in range(n):
            some = uuid.uuid4()
            assert (await client.post(f"/api/notifications/{some}/read", headers=headers)).status == 404
            assert (await client.get(f"/api/workspaces/ws-{some.hex[:12]}", headers=headers)).status == 404
            assert (await client.get(f"/nothing/{some}")).status == 404
            assert (await client.request(f"X{some.hex[:8].upper()}", "/api/me")).status in (400, 405)

    await burst(3)
    settled = await scrape(client)
    await burst(1_000)
    after = await scrape(client)
    http = {key for key in after if key[0].startswith("pulsestack_http_")}
    assert http == {key for key in settled if key[0].startswith("pulsestack_http_")}, "new series from new ids"
    assert grew(settled, after, "pulsestack_http_requests_total",
                route="/api/notifications/{notification_id}/read", method="POST", status="404") == 1_000
    assert grew(settled, after, "pulsestack_http_requests_total", route="unmatched", method="GET", status="404") == 1_000


async def test_metrics_disabled_or_on_a_port_of_their_own_are_not_on_the_main_port(aiohttp_client, config, db):
    for settings in ({"enabled": False}, {"port": 9109}):
        client = await aiohttp_client(create_app(config.replace(metrics=settings), db=db))
        resp = await client.get("/metrics")
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_a_login_refused_by_the_limit_counts_under_rate_limited(client):
    user, _ = await register(client)
    bad = {"email": user["email"], "password": "wrong" + PASSWORD}
    before = await scrape(client)
    for _ in range(5):  # the per-email limit (docs/api.md, "Rate limiting")
        assert (await client.post("/api/auth/login", json=bad)).status == 401
    assert (await client.post("/api/auth/login", json=bad)).status == 429
    after = await scrape(client)
    assert grew(before, after, "pulsestack_login_failures_total") == 5
    assert grew(before, after, "pulsestack_rate_limited_total", limit="login") == 1
    assert grew(before, after, "pulsestack_rate_limited_total", limit="registration") == 0


async def test_closing_a_websocket_with_a_bad_token_counts_under_4401(client, monkeypatch):
    opened: list[int] = []
    monkeypatch.setattr(metrics.WS_OPEN, "inc", lambda amount=1: opened.append(amount))
    before = await scrape(client)
    ws = await open_ws(client)
    await ws.send_json({"type": "auth", "token": "not-a-token"})
    assert await expect_close(ws) == 4401
    after = await scrape(client)
    assert grew(before, after, "pulsestack_ws_closes_total", code="4401") == 1
    assert opened == [], "it never counted as open: it never authenticated"


async def test_a_socket_still_authenticating_at_shutdown_counts_under_1001(client):
    before = await scrape(client)
    ws = await open_ws(client)
    hub = client.app[HUB]
    await poll(lambda: hub._authenticating, "the socket to wait for its auth frame")

    await hub.close_sockets()  # shutdown begins

    assert await expect_close(ws) == 1001
    assert grew(before, await scrape(client), "pulsestack_ws_closes_total", code="1001") == 1


class FakePool:
    def pool_stats(self) -> tuple[int, int, int]:
        return 3, 1, 10


class FakeBus:
    def __init__(self) -> None:
        self.connected = asyncio.Event()


def test_every_series_is_in_the_operations_guide():
    pool, bus = FakePool(), FakeBus()  # the scrape-time gauges appear only while something is watched
    metrics.watch_pool(pool)
    metrics.watch_bus(bus)
    try:
        families = {family.name for family in metrics.REGISTRY.collect() if family.name.startswith("pulsestack_")}
    finally:
        metrics.LIVE.pools.discard(pool)
        metrics.LIVE.buses.discard(bus)
    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    # prometheus-client names a counter's family without its `_total`
    missing = [name for name in families if f"`{name}`" not in guide and f"`{name}_total`" not in guide]
    assert not missing, f"docs/operations.md does not list: {missing}"
    assert {"pulsestack_db_pool_in_use", "pulsestack_eventbus_connected", "pulsestack_fanout_jobs_pending"} <= families


async def test_a_large_broadcast_counts_its_fan_out(aiohttp_client, config, db):
    """The fan-out series after a broadcast written by a job: its receipts, one job duration, and
    nothing running or pending once it is done."""
    client = await aiohttp_client(create_app(config.replace(fanout={"chunk": 3}), db=db))
    team = await make_team(client, members=10)
    before = await scrape(client)

    await send(client, team.owner.headers, team.slug)
    await asyncio.wait_for(client.app[FANOUT].settled(), HANG_GUARD_S)

    after = await scrape(client)
    assert grew(before, after, "pulsestack_fanout_receipts_written_total") == 10
    assert grew(before, after, "pulsestack_fanout_job_duration_seconds_count") == 1
    assert value(after, "pulsestack_fanout_jobs_running") == 0
    assert value(after, "pulsestack_fanout_jobs_pending") == 0

"""Large broadcasts (services/fanout.py): a broadcast to more than
`fanout.chunk` members answers at once, `fanning_out`, and a job writes its
receipts in committed chunks. On SQLite and on PostgreSQL.

Most tests stop the app's own worker (`stopped`) and run the job a chunk at a
time with `run_chunk`, so what happens between two chunks (a crash, a
retraction, a member leaving or joining) is placed exactly; the others let
the worker run and wait for it with `FanOutWorker.settled`; one kills a real
`pulsestack serve` with SIGKILL mid-job and lets a new process finish. Receipts are
checked with direct SQL, one row per member and no more.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from helpers import (
    HANG_GUARD_S,
    LiveServer,
    RecordingHub,
    Team,
    add_to,
    connect,
    direct,
    json_of,
    make_team,
    person,
    poll,
    seed_members,
    send,
)
from helpers import get_unread_count as unread_count

from pulsestack import hub as hub_module
from pulsestack.app import create_app
from pulsestack.appkeys import DB, FANOUT, HUB
from pulsestack.db import NamedQuery
from pulsestack.hub import UnreadHub
from pulsestack.queries import fanout as fanout_queries
from pulsestack.queries.notifications import ALL_MEMBERS
from pulsestack.services.fanout import run_chunk

SQL_RECEIPTS_PER_USER = NamedQuery.dynamic(
    "t_receipts_per_user",
    "SELECT user_id, count(*) AS n FROM notification_receipts WHERE notification_id = :notification_id GROUP BY user_id",
    "many")
SQL_MEMBERS = NamedQuery.dynamic(
    "t_members", "SELECT user_id FROM workspace_members WHERE workspace_id = :workspace_id ORDER BY user_id", "many")
SQL_LOCK_WAITS = NamedQuery.dynamic(  # Postgres: sessions of this database waiting for a lock
    "t_lock_waits",
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", "scalar")
SQL_REWIND = NamedQuery.dynamic(
    "t_rewind_job", "UPDATE fanout_jobs SET after_user_id = NULL WHERE notification_id = :notification_id", "exec")


async def app_with(aiohttp_client, config, db, chunk: int, hub=None, *, stopped: bool = False):
    """The whole app on this test's database with `fanout.chunk` = `chunk`; `stopped`: its worker
    is stopped (as if its process died), so the test runs each chunk itself."""
    client = await aiohttp_client(create_app(config.replace(fanout={"chunk": chunk}), db=db, hub=hub))
    if stopped:
        await client.app[FANOUT].close()
    return client


async def receipts_per_user(db, notification_id: str) -> dict[str, int]:
    rows = await db.fetch_all(SQL_RECEIPTS_PER_USER, notification_id=uuid.UUID(notification_id))
    return {str(r["user_id"]): int(r["n"]) for r in rows}


async def member_ids(db, team: Team) -> list[str]:
    """Every member of the team, the owner too, in key order (the order the chunks take)."""
    return [str(r["user_id"]) for r in await db.fetch_all(SQL_MEMBERS, workspace_id=uuid.UUID(team.id))]


async def big_broadcast(api, team: Team, **extra) -> dict:
    """A broadcast by the owner that must be fanned out by a job; returns the whole answer."""
    body = await json_of(await send(api, team.owner, team.slug, {"title": "All hands", "broadcast": True, **extra}), 201)
    assert body["delivery"] == {"state": "fanning_out", "delivered": 0}, body
    return body


async def sent(api, team: Team, notification_id: str) -> dict:
    return await json_of(await api.get(f"/api/workspaces/{team.slug}/notifications/{notification_id}",
                                       headers=team.owner.headers), 200)


async def run_to_end(db, hub, chunk: int) -> int:
    """Run chunks until no job is left; how many ran."""
    ran = 0
    while await run_chunk(db, hub, chunk):
        ran += 1
    return ran


def chunk_calls(hub: RecordingHub, notification_id: str) -> list[tuple[str, str]]:
    return [(c[2], c[3]) for c in hub.calls if c[0] == "chunk" and c[1] == notification_id]


@pytest.mark.parametrize("chunk, members", [(1, 12), (7, 20), (5000, 5003)])
async def test_a_large_broadcast_gives_each_member_exactly_one_receipt_whatever_the_chunk(
        aiohttp_client, config, db, hub, chunk, members):
    api = await app_with(aiohttp_client, config, db, chunk, hub)
    team = await make_team(api, members=2)
    await seed_members(db, uuid.UUID(team.id), members - 2)
    everyone = await member_ids(db, team)
    recipients = [m for m in everyone if m != team.owner.id]

    body = await big_broadcast(api, team)
    nid = body["notification"]["id"]
    assert body["recipient_count"] == members
    await asyncio.wait_for(api.app[FANOUT].settled(), 60)

    assert await receipts_per_user(db, nid) == dict.fromkeys(recipients, 1)
    answer = await sent(api, team, nid)
    assert (answer["recipient_count"], answer["delivery"]) == (members, {"state": "done", "delivered": members})
    # Chunks of at most `chunk` members in key order (the owner's key too; the worker makes them
    # smaller when one takes too long): contiguous ranges from the lowest key to the highest, each
    # told to the hub once, each ending on a member.
    ranges = chunk_calls(hub, nid)
    assert ranges[0][0] == str(ALL_MEMBERS[0]) and ranges[-1][1] == str(ALL_MEMBERS[1])
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(upto in everyone for _, upto in ranges[:-1])
    sizes = [sum(1 for m in everyone if after < m <= upto) for after, upto in ranges]
    assert max(sizes) <= chunk and sum(sizes) == len(everyone), sizes
    assert ("notification", nid) not in hub.calls  # the chunks tell the hub, not the send


async def test_a_broadcast_within_the_chunk_is_written_before_the_answer(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=7)  # 7 recipients: not more than the chunk

    body = await json_of(await send(api, team.owner, team.slug, {"title": "Small", "broadcast": True}), 201)

    nid = body["notification"]["id"]
    assert (body["recipient_count"], body["delivery"]) == (7, {"state": "done", "delivered": 7})
    assert await receipts_per_user(db, nid) == {m.id: 1 for m in team.members}
    assert ("notification", nid) in hub.calls and not chunk_calls(hub, nid)
    assert not await run_chunk(db, hub, 7)  # no job


async def test_delivery_shows_the_progress_chunk_by_chunk(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=16)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    everyone = await member_ids(db, team)

    seen = []
    while True:
        answer = await sent(api, team, nid)
        assert answer["recipient_count"] == 16  # the audience, throughout
        written = sum((await receipts_per_user(db, nid)).values())
        assert answer["delivery"]["delivered"] == written
        seen.append(answer["delivery"])
        if answer["delivery"]["state"] == "done":
            break
        assert await run_chunk(db, hub, 7)
    first_chunk = sum(1 for m in everyone[:7] if m != team.owner.id)
    assert seen == [{"state": "fanning_out", "delivered": 0}, {"state": "fanning_out", "delivered": first_chunk},
                    {"state": "fanning_out", "delivered": first_chunk + 7}, {"state": "done", "delivered": 16}]


async def test_a_job_interrupted_between_chunks_resumes_in_a_fresh_app(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    assert await run_chunk(db, hub, 7)  # one chunk commits; then the process is gone

    restarted = await app_with(aiohttp_client, config, db, 7, RecordingHub())  # its worker resumes the job on start
    await asyncio.wait_for(restarted.app[FANOUT].settled(), 30)

    assert await receipts_per_user(db, nid) == {m.id: 1 for m in team.members}
    assert (await sent(restarted, team, nid))["delivery"] == {"state": "done", "delivered": 20}


async def test_a_server_killed_mid_job_leaves_it_for_the_next_process_to_finish(tmp_path, database_url, db):
    """kill -9 of a real `pulsestack serve` while its worker is mid-job (chunks of three members,
    so there are a thousand chunks to catch it in): the job row and the committed chunks
    survive, a new process resumes the job on start, and every member ends with one receipt."""
    live = LiveServer(tmp_path, database_url, PULSESTACK_FANOUT_CHUNK="3")
    await asyncio.to_thread(live.start)
    try:
        owner, ws, _ = await asyncio.to_thread(live.team, 0)
        await seed_members(db, uuid.UUID(ws["id"]), 3000)
        answer = await asyncio.to_thread(live.call, "POST", f"/api/workspaces/{ws['slug']}/notifications",
                                         owner["token"], {"title": "All hands", "broadcast": True}, 201)
        nid = answer["notification"]["id"]
        assert answer["recipient_count"] == 3000 and answer["delivery"]["state"] == "fanning_out"

        def delivery() -> dict:
            return live.call("GET", f"/api/workspaces/{ws['slug']}/notifications/{nid}", owner["token"],
                             status=200)["delivery"]

        def partly_delivered() -> bool:
            now = delivery()
            assert now["state"] == "fanning_out", now  # 1,000 chunks: never done this soon
            return now["delivered"] > 0

        await poll(partly_delivered, "the first chunks")
        live.server.kill()
        written = await receipts_per_user(db, nid)
        assert 0 < len(written) < 3000

        await asyncio.to_thread(live.start)  # a new process, on the same database
        await poll(lambda: delivery()["state"] == "done", "the resumed job to finish", limit_s=60)
        assert delivery() == {"state": "done", "delivered": 3000}
        code, stderr = await asyncio.to_thread(live.server.stop)
        assert code == 0 and "Traceback" not in stderr, stderr
    finally:
        live.stop()
    everyone = [r["user_id"] for r in await db.fetch_all(SQL_MEMBERS, workspace_id=uuid.UUID(ws["id"]))]
    assert len(everyone) == 3001  # the owner and the seeded members
    assert await receipts_per_user(db, nid) == {str(m): 1 for m in everyone if str(m) != owner["user"]["id"]}


async def test_a_chunk_that_runs_again_adds_no_second_receipt(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    assert await run_chunk(db, hub, 7) and await run_chunk(db, hub, 7)

    # As if the cursor had not moved: the first two chunks run again.
    await db.execute(SQL_REWIND, notification_id=uuid.UUID(nid))
    await run_to_end(db, hub, 7)

    assert await receipts_per_user(db, nid) == {m.id: 1 for m in team.members}
    assert (await sent(api, team, nid))["delivery"] == {"state": "done", "delivered": 20}


async def test_two_workers_racing_over_one_job_run_each_chunk_once(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 3, hub, stopped=True)
    team = await make_team(api, members=2)
    await seed_members(db, uuid.UUID(team.id), 40)
    nid = (await big_broadcast(api, team))["notification"]["id"]

    ran = await asyncio.gather(run_to_end(db, hub, 3), run_to_end(db, hub, 3))

    everyone = await member_ids(db, team)
    assert await receipts_per_user(db, nid) == {m: 1 for m in everyone if m != team.owner.id}
    assert sum(ran) == len(chunk_calls(hub, nid)) == len(everyone) // 3 + 1


async def test_a_retraction_stops_the_job_and_removes_what_it_wrote(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    assert await run_chunk(db, hub, 7)
    assert await receipts_per_user(db, nid)

    resp = await api.delete(f"/api/workspaces/{team.slug}/notifications/{nid}", headers=team.owner.headers)
    assert resp.status == 204

    assert not await run_chunk(db, hub, 7)  # no job left
    assert await receipts_per_user(db, nid) == {}
    assert ("retracted", team.id, nid) in hub.calls
    resp = await api.get(f"/api/workspaces/{team.slug}/notifications/{nid}", headers=team.owner.headers)
    assert resp.status == 404


# Postgres only: its row locks (SQLite's single writer runs one transaction at a time).
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_a_retraction_while_a_chunk_is_in_flight_waits_for_it(aiohttp_client, config, db, hub, monkeypatch):
    """The chunk holds its job row and is about to write receipts (whose foreign key locks the
    notification row); the retraction waits for the chunk, then removes everything. Taking the
    notification row first, it would deadlock with the chunk, and Postgres would abort one."""
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    at_gate, go_on = asyncio.Event(), asyncio.Event()
    real_chunk_end = fanout_queries.get_chunk_end

    async def held_chunk_end(*args, **kwargs):
        at_gate.set()  # the job row and the workspace are locked now
        await go_on.wait()
        return await real_chunk_end(*args, **kwargs)

    monkeypatch.setattr(fanout_queries, "get_chunk_end", held_chunk_end)
    chunk = asyncio.create_task(run_chunk(db, hub, 7))
    await asyncio.wait_for(at_gate.wait(), HANG_GUARD_S)
    retraction = asyncio.create_task(
        api.delete(f"/api/workspaces/{team.slug}/notifications/{nid}", headers=team.owner.headers))

    async def retraction_waits() -> bool:
        return await db.fetch_value(SQL_LOCK_WAITS) > 0

    await poll(retraction_waits, "the retraction to wait for the chunk's locks")
    go_on.set()

    everyone = await member_ids(db, team)
    assert (await asyncio.wait_for(chunk, HANG_GUARD_S)).written == sum(1 for m in everyone[:7] if m != team.owner.id)
    assert (await asyncio.wait_for(retraction, HANG_GUARD_S)).status == 204
    assert await receipts_per_user(db, nid) == {}
    assert not await run_chunk(db, hub, 7)  # no job left
    resp = await api.get(f"/api/workspaces/{team.slug}/notifications/{nid}", headers=team.owner.headers)
    assert resp.status == 404


async def test_a_member_removed_mid_job_ends_with_no_receipt(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    assert await run_chunk(db, hub, 7)
    written = await receipts_per_user(db, nid)
    done_already = sorted(written)[0]  # their chunk is written
    not_yet = (await member_ids(db, team))[-1]  # the last key: their chunk is not
    assert not_yet not in written and not_yet != team.owner.id

    for user_id in (done_already, not_yet):
        resp = await api.delete(f"/api/workspaces/{team.slug}/members/{user_id}", headers=team.owner.headers)
        assert resp.status == 204
    await run_to_end(db, hub, 7)

    assert await receipts_per_user(db, nid) == {m.id: 1 for m in team.members if m.id not in (done_already, not_yet)}
    assert (await sent(api, team, nid))["delivery"] == {"state": "done", "delivered": 18}


async def test_a_member_who_joins_after_the_send_gets_nothing(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    nid = (await big_broadcast(api, team))["notification"]["id"]
    assert await run_chunk(db, hub, 7)
    late = await person(api)
    await add_to(api, team, late)  # a newer id: its key is in a chunk still to come

    await run_to_end(db, hub, 7)

    receipts = await receipts_per_user(db, nid)
    assert late.id not in receipts
    assert receipts == {m.id: 1 for m in team.members if m is not late}
    resp = await api.get("/api/notifications", headers=late.headers)
    assert (await json_of(resp, 200))["items"] == []


async def test_members_who_muted_it_are_left_out_unless_it_is_critical(aiohttp_client, config, db, hub):
    api = await app_with(aiohttp_client, config, db, 7, hub, stopped=True)
    team = await make_team(api, members=20)
    whole, by_type = team.members[:2]
    for who, settings in ((whole, {}), (by_type, {"types": ["deploy"]})):
        resp = await api.put(f"/api/workspaces/{team.slug}/mute", json=settings, headers=who.headers)
        await json_of(resp, 200)

    plain = await big_broadcast(api, team, type="deploy.done")
    critical = await big_broadcast(api, team, type="deploy.done", critical=True)
    await run_to_end(db, hub, 7)

    assert plain["recipient_count"] == 18
    assert await receipts_per_user(db, plain["notification"]["id"]) == {
        m.id: 1 for m in team.members if m not in (whole, by_type)}
    assert critical["recipient_count"] == 20
    assert await receipts_per_user(db, critical["notification"]["id"]) == {m.id: 1 for m in team.members}


async def test_other_writes_run_between_the_chunks(aiohttp_client, config, db, hub):
    """While a job of many chunks runs, someone else's direct send and mark-read are answered
    before it is done: each chunk releases the database (on SQLite, its one writer)."""
    api = await app_with(aiohttp_client, config, db, 1, hub)
    big = await make_team(api, members=1)
    await seed_members(db, uuid.UUID(big.id), 400)
    small = await make_team(api, members=1)

    nid = (await big_broadcast(api, big))["notification"]["id"]
    other = await direct(api, small.owner, small, small.members)
    await json_of(await api.post(f"/api/notifications/{other['id']}/read", headers=small.members[0].headers), 200)

    assert (await sent(api, big, nid))["delivery"]["state"] == "fanning_out"
    await asyncio.wait_for(api.app[FANOUT].settled(), 60)
    assert (await sent(api, big, nid))["delivery"] == {"state": "done", "delivered": 401}


@pytest.mark.parametrize("bump_margin", [timedelta(days=1), timedelta(0)], ids=["recounted", "bumped"])
async def test_the_hub_pushes_each_chunk_to_its_recipients_with_counts_that_equal_a_recount(
        aiohttp_client, config, db, monkeypatch, bump_margin):
    """Real websockets: after each chunk commits, exactly that chunk's connected recipients get
    the notification and new counts, equal to GET unread-count, whether the hub recounted them
    (a margin no test outlasts: every count is "recent") or (margin 0: every socket was counted
    before the send) bumped the counts it had sent."""
    monkeypatch.setattr(hub_module, "BUMP_MARGIN", bump_margin)
    api = await app_with(aiohttp_client, config, db, 3, stopped=True)
    team = await make_team(api, members=8)
    earlier = await json_of(await send(api, team.owner, team.slug, {"title": "Before", "broadcast": True}), 201)
    assert earlier["delivery"]["state"] == "fanning_out"
    await run_to_end(api.app[DB], api.app[HUB], 3)
    everyone = await member_ids(db, team)
    people = {m.id: m for m in team.members}
    conns = {m.id: await connect(api, m.headers) for m in team.members}
    for conn in conns.values():
        assert conn.ready["unread"]["total"] == 1
    # One of them reads the earlier one first: their counts differ from the others'.
    reader = team.members[0]
    await json_of(await api.post(f"/api/notifications/{earlier['notification']['id']}/read", headers=reader.headers), 200)
    await conns[reader.id].until_unread(0)
    # ... and waits for the flush that carries the read itself: the `unread` above may come from
    # the recount queued by their connect. Every change queued before the read is flushed by then,
    # so every socket's count is older than the send below.
    while not conns[reader.id].changed:  # (it may have come before that `unread`)
        await conns[reader.id].frame()

    nid = (await big_broadcast(api, team, title="Now"))["notification"]["id"]
    done: set[str] = set()
    for start in range(0, len(everyone) + 1, 3):
        assert await run_chunk(api.app[DB], api.app[HUB], 3)
        chunk = [m for m in everyone[start:start + 3] if m in conns]
        for user_id in chunk:
            conn = conns[user_id]
            assert (await conn.until_notification(nid))["title"] == "Now"
            await conn.until_unread(1 if user_id == reader.id else 2)
            assert conn.state == await conn.synced(api, people[user_id].headers)
        done.update(chunk)
        for user_id, conn in conns.items():  # everyone else: nothing yet (the pong comes after any frame due)
            if user_id not in done:
                await conn.ping()
                assert [n["id"] for n in conn.notifications] == [], user_id
    assert done == set(conns)
    assert not await run_chunk(api.app[DB], api.app[HUB], 3)
    hub = api.app[HUB]
    assert isinstance(hub, UnreadHub)
    assert (hub.bumps >= len(conns)) if not bump_margin else (hub.bumps == 0), hub.bumps
    for user_id, conn in conns.items():
        assert conn.state == await unread_count(api, people[user_id].headers)
        await conn.ws.close()

"""Scenarios 3 and 4: websocket push to N connected clients, and the
server's memory per idle authenticated websocket.

The clients live in their own processes (wsworker.py, `workers` of them,
N/workers clients each). Per size, largest first on a freshly started
server:

1. read the server's VmRSS;
2. connect N clients of the crowd (each user already holding
   `crowd_unread` unread), authenticate each with its token, wait for every
   `ready`; let the hub's connect recounts settle;
3. read VmRSS again: (after - before) / N is the memory per idle
   authenticated websocket;
4. every client arms itself to expect `unread` with its total + 1;
5. the harness POSTs one broadcast to the workspace whose members are
   exactly those N users, noting the wall-clock moment (`time.time()`) just
   before it sends the request and the one it read the 201;
6. each worker reports, per client, the wall-clock moment its first `unread`
   frame with the expected total arrived; latency = that - the moment the
   POST was sent (the target's "after the POST was sent"; runs before
   issue 14 measured from the 201, which hid the send's own time, and a
   chunked broadcast's 201 may now come before most of its pushes).
   A client without it after the deadline is a lost frame.

A short warm-up round (a few clients connected and closed) runs first, so
the first baseline does not include one-time costs (imports, prepared
statements, the first pool connections).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

from .procs import HERE, LineWorker, PulseStackServer, clean_env, start
from .seed import Seeded
from .stats import summary

CONNECT_TIMEOUT_S = 600


async def _spawn(tokens: list[str], workers: int, server: PulseStackServer, tmp: Path, label: str) -> list[LineWorker]:
    shares = [tokens[i::workers] for i in range(workers)]
    out: list[LineWorker] = []
    try:
        for i, share in enumerate(s for s in shares if s):
            child = await start(f"wsworker-{label}-{i}", [sys.executable, str(HERE / "wsworker.py")], env=clean_env(),
                                cwd=tmp, log_path=tmp / f"wsworker-{label}-{i}.log", pipes=True)
            worker = LineWorker(child)
            out.append(worker)
            await worker.send({"host": "127.0.0.1", "port": server.port, "tokens": share, "concurrency": 64})
            await worker.receive(30)
    except BaseException:
        await _stop(out)
        raise
    return out


async def _ask_all(workers: list[LineWorker], cmd: dict, timeout: float) -> list[dict]:
    return list(await asyncio.gather(*(w.ask(cmd, timeout) for w in workers)))


async def _stop(workers: list[LineWorker]) -> None:
    for w in workers:
        try:
            if w.child.proc.returncode is None:
                await w.ask({"cmd": "close"}, 30)
        except Exception:
            pass
        await w.child.stop(5)


async def _connect(workers: list[LineWorker], n: int) -> float:
    started = time.perf_counter()
    replies = await _ask_all(workers, {"cmd": "connect"}, CONNECT_TIMEOUT_S)
    ready = sum(r["ready"] for r in replies)
    if ready != n:
        errors = [e for r in replies for e in r["errors"]]
        raise RuntimeError(f"only {ready} of {n} websocket clients became ready; errors: {errors[:5]}")
    return time.perf_counter() - started


async def run_round(server: PulseStackServer, seeded: Seeded, n: int, workers: int, tmp: Path, settle_s: float,
                    deadline_s: float, log) -> dict:
    tokens = seeded.crowd_tokens[:n]
    slug = seeded.ws_slugs[n]
    rss_before = server.rss_kib()
    pool = await _spawn(tokens, min(workers, n), server, tmp, str(n))
    try:
        connect_s = await _connect(pool, n)
        await asyncio.sleep(settle_s)
        rss_after = server.rss_kib()
        armed = sum(r["armed"] for r in await _ask_all(pool, {"cmd": "arm"}, 60))
        if armed != n:
            raise RuntimeError(f"{armed} of {n} clients knew their unread total")
        headers = {"Authorization": f"Bearer {seeded.sender_token}"}
        body = {"title": "Websocket bench", "message": "scripts/bench push", "broadcast": True}
        async with aiohttp.ClientSession(server.base, headers=headers) as http:
            sent = time.time()
            async with http.post(f"/api/workspaces/{slug}/notifications", json=body) as resp:
                answered = time.time()
                data = await resp.read()
        if resp.status != 201 or json.loads(data)["recipient_count"] != n:
            raise RuntimeError(f"broadcast to {slug} answered {resp.status}: {data[:300]!r}")
        replies = await _ask_all(pool, {"cmd": "collect", "deadline_s": deadline_s}, deadline_s + 60)
    finally:
        await _stop(pool)
    hits = [h for r in replies for h in r["hits"]]
    latencies = [h - sent for h in hits]
    result = {
        "clients": n, "workers": len(pool), "connect_s": connect_s,
        "rss_before_kib": rss_before, "rss_after_kib": rss_after,
        "kib_per_socket": (rss_after - rss_before) / n,
        "post_to_201_ms": (answered - sent) * 1000,
        "latency": summary(latencies),
        "latency_from": "sent",  # absent in runs before issue 14, which measured from the 201
        "lost": sum(r["missing"] for r in replies),
        "wrong_total": sum(r["wrong"] for r in replies),
        "notification_frames": sum(r["notifications"] for r in replies),
        "closed": sum(r["closed"] for r in replies),
        "early": sum(1 for x in latencies if x < 0),  # before the POST was sent: a clock problem
    }
    lat = result["latency"]
    log(f"  websockets {n:,}: connect {connect_s:.1f} s, {result['kib_per_socket']:.1f} KiB/socket, "
        f"201 after {result['post_to_201_ms']:.0f} ms, unread after the send p50 {lat['p50_ms'] or 0:.0f} ms p99 "
        f"{lat['p99_ms'] or 0:.0f} ms max {lat['max_ms'] or 0:.0f} ms, lost {result['lost']}")
    return result


async def measure(server: PulseStackServer, seeded: Seeded, sizes: list[int], workers: int, tmp: Path,
                  settle_s: float, deadline_s: float, log) -> dict:
    # Warm-up: a few sockets connect and leave before any baseline is read.
    warm = seeded.crowd_tokens[:min(20, len(seeded.crowd_tokens))]
    pool = await _spawn(warm, 1, server, tmp, "warmup")
    try:
        await _connect(pool, len(warm))
    finally:
        await _stop(pool)
    await asyncio.sleep(settle_s)
    out = {}
    for n in sorted(set(sizes), reverse=True):
        out[n] = await run_round(server, seeded, n, workers, tmp, settle_s, deadline_s, log)
        await asyncio.sleep(settle_s)  # let the server drop the closed sockets
    return out

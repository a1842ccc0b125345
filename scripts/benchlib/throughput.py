"""Scenario 5: requests per second of GET /api/notifications/unread-count
with a bearer token against aiohttp's bare JSON hello (hello.py), on the
same machine, in the same run, with the same load generator: 64 keep-alive
connections for a fixed time, after a short warm-up.

Two callers: a typical user (one of the websocket crowd: 100 unread in one
workspace, among ~1,000,000 receipts, half of them unseen), whose figure
is held against the target, since the target is about what auth,
routing, the adapter and JSON cost per request; and the hot user of
scenario 2 (1,000 unread, 500 unseen), to show what counting ten times the
rows costs on top. Both have a seen cut-off, so each answer counts the
unseen range as well as the unread one.

The two servers are loaded in turn, ROUNDS times over (hello, then each
caller, then hello again ...), each turn a third of the given time, and
each figure is the median of its turns: on a shared 2-core VM the bare
hello alone moved between 7,800 and 12,500 req/s from one 10-second run to
the next, and alternating keeps a slow stretch of the machine from landing
on one side of the ratio only.

The load generator is wrk, as the target names (docs/design.md): scripts/bench
installs it where it can (apt-get), and it is used whenever it is on PATH
(elsewhere `brew install wrk`); otherwise loadgen.py, a bare
asyncio HTTP/1.1 client, in two processes. Either way every answer must be
a 2xx, or the figure is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

from .procs import HERE, PulseStackServer, clean_env, run, start_hello

PYTHON_PROCESSES = 2
ROUNDS = 3


def pick(loadgen: str) -> str:
    if loadgen == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if loadgen == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("--loadgen wrk: wrk is not on PATH (Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk); "
                           "or use --loadgen python")
    return loadgen


def _wrk_number(pattern: str, text: str, default: float | None = None) -> float:
    m = re.search(pattern, text)
    if not m:
        if default is not None:
            return default
        raise RuntimeError(f"cannot read {pattern!r} from wrk's output:\n{text}")
    return float(m.group(1))


async def _wrk(port: int, path: str, headers: list[str], seconds: float, connections: int, tmp: Path) -> dict:
    args = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for h in headers:
        args += ["-H", h]
    text = await run(args + [f"http://127.0.0.1:{port}{path}"], env=clean_env(), cwd=tmp, timeout=seconds + 60)
    non2xx = int(_wrk_number(r"Non-2xx or 3xx responses:\s+(\d+)", text, 0))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    return {"rps": _wrk_number(r"Requests/sec:\s+([\d.]+)", text), "non2xx": non2xx, "errors": errors,
            "p50_ms": _latency(text, "50%"), "p99_ms": _latency(text, "99%")}


def _latency(text: str, label: str) -> float | None:
    m = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


async def _python(port: int, path: str, headers: list[str], seconds: float, connections: int, tmp: Path) -> dict:
    per = [connections // PYTHON_PROCESSES + (1 if i < connections % PYTHON_PROCESSES else 0) for i in range(PYTHON_PROCESSES)]
    outs = await asyncio.gather(*(
        run([sys.executable, str(HERE / "loadgen.py"), "127.0.0.1", str(port), path, str(c), str(seconds), *headers],
            env=clean_env(), cwd=tmp, timeout=seconds + 60) for c in per if c))
    parts = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    return {"rps": sum(p["requests"] / p["seconds"] for p in parts), "non2xx": sum(p["non2xx"] for p in parts),
            "errors": sum(p["errors"] for p in parts), "p50_ms": None, "p99_ms": None}


async def _load(fn, port: int, path: str, headers: list[str], seconds: float, connections: int, tmp: Path) -> dict:
    """One measured turn of `fn` (_wrk or _python); refused unless every answer was a 2xx."""
    result = await fn(port, path, headers, seconds, connections, tmp)
    if result["non2xx"] or result["errors"]:
        raise RuntimeError(f"load on :{port}{path} got {result['non2xx']} non-2xx answers and {result['errors']} socket errors")
    return result


def _median_turn(turns: list[dict]) -> dict:
    """The turn with the median req/s, carrying every turn's req/s."""
    middle = sorted(turns, key=lambda t: t["rps"])[len(turns) // 2]
    return {**middle, "turns_rps": [t["rps"] for t in turns]}


async def measure(server: PulseStackServer, callers: dict[str, tuple[str, int]], seconds: float, connections: int,
                  loadgen: str, tmp: Path, log) -> dict:
    """`callers`: {label: (token, unread, unseen)}, the first one is held against the target."""
    tool = pick(loadgen)
    fn = _wrk if tool == "wrk" else _python
    hello, hello_port = await start_hello(tmp)
    subjects = {"hello": (hello_port, "/", [])} | {
        label: (server.port, "/api/notifications/unread-count", [f"Authorization: Bearer {token}"])
        for label, (token, _, _) in callers.items()}
    turn_s = max(1, round(seconds / ROUNDS))  # wrk takes whole seconds
    turns: dict[str, list[dict]] = {name: [] for name in subjects}
    try:
        for port, path, headers in subjects.values():  # warm-up
            await fn(port, path, headers, min(1.0, turn_s / 2), connections, tmp)
        for _ in range(ROUNDS):
            for name, (port, path, headers) in subjects.items():
                turns[name].append(await _load(fn, port, path, headers, turn_s, connections, tmp))
    finally:
        await hello.stop()
    bare = _median_turn(turns["hello"])
    product = {}
    for label, (_, unread, unseen) in callers.items():
        product[label] = _median_turn(turns[label]) | {"unread": unread, "unseen": unseen}
        product[label]["ratio"] = product[label]["rps"] / bare["rps"]
        log(f"  throughput ({tool}): unread-count as {label} ({unread:,} unread, {unseen:,} unseen) "
            f"{product[label]['rps']:,.0f} req/s, "
            f"hello {bare['rps']:,.0f} req/s: {product[label]['ratio']:.1%} (medians of {ROUNDS} alternating turns)")
    first = next(iter(product))
    return {"tool": tool, "seconds": seconds, "turn_seconds": turn_s, "connections": connections, "callers": product, "subject": first,
            "unread_count": product[first], "hello": bare, "ratio": product[first]["ratio"]}

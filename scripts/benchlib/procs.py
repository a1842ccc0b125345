"""Processes the harness starts (PulseStack servers, the hello app, load
generators) and what it reads about them: ports, readiness, memory, limits.

Every child is started with PR_SET_PDEATHSIG, so even a harness killed with
SIGKILL leaves no server behind; the normal path stops each one explicitly
(SIGTERM, then SIGKILL after a grace period) from the harness's cleanup.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp


def with_database(url: str, name: str) -> str:
    """A Postgres URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def pg_admin(url: str, *statements: str) -> str:
    """Run statements on a Postgres server (CREATE/DROP DATABASE); its version."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        for s in statements:
            await conn.execute(s)
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


try:  # loaded here, not in the child: a fork of a threaded process should not dlopen
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when the harness dies."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    """The harness's environment without PULSESTACK_* (so nothing of the
    caller's configuration leaks into a measured server), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSESTACK_")}
    env.update(settings)
    return env


def raise_open_files(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards `needed` (children inherit it).
    Returns (soft, hard) after the change; the caller checks it is enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS of /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Child:
    """One started process; `stop()` is safe to call twice."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path | None):
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, grace_s: float = 15.0) -> int | None:
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        except ProcessLookupError:
            pass
        return self.proc.returncode


async def start(name: str, args: list[str], *, env: dict[str, str], cwd: Path, log_path: Path | None,
                pipes: bool = False) -> Child:
    """Start `args`; stdout+stderr go to `log_path` (or stdin/stdout are pipes when `pipes`)."""
    log = open(log_path, "ab") if log_path is not None else asyncio.subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=cwd, env=env, preexec_fn=_die_with_parent,
            stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipes else log,
            stderr=log,
            limit=2**26,
        )
    finally:
        if log_path is not None:
            log.close()
    return Child(name, proc, log_path)


async def run(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    """Run a command to completion; its output, or RuntimeError naming it."""
    proc = await asyncio.create_subprocess_exec(*args, cwd=cwd, env=env, preexec_fn=_die_with_parent,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{' '.join(args[:4])} ... took over {timeout:.0f} s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... exited {proc.returncode}:\n{text[-2000:]}")
    return text


async def wait_until_answering(child: Child, url: str, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if child.proc.returncode is not None:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode} while starting:\n{child.log_tail()}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f} s:\n{child.log_tail()}")
            await asyncio.sleep(0.1)


class PulseStackServer:
    """`python -m pulsestack serve --no-migrate` on a free port."""

    def __init__(self, child: Child, port: int):
        self.child = child
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.child.pid

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    async def stop(self) -> None:
        await self.child.stop()


# fanout.chunk's documented default, set explicitly for every measured server:
# the targets name it (a broadcast to at most 5,000 members is answered with
# its receipts committed; a larger one fans out in chunks behind the 201).
# A server without the setting (before issue 14) ignores the variable.
FANOUT_CHUNK = 5000


async def start_pulsestack(name: str, url: str, tmp: Path, log_level: str) -> PulseStackServer:
    port = free_port()
    env = clean_env(PULSESTACK_DATABASE_URL=url, PULSESTACK_LOG_LEVEL=log_level,
                    PULSESTACK_FANOUT_CHUNK=str(FANOUT_CHUNK))
    # cwd is the temp dir: no ./config.toml there, so the server runs on the
    # documented defaults plus the three variables above.
    child = await start(name, [sys.executable, "-m", "pulsestack", "serve", "--no-migrate", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, cwd=tmp, log_path=tmp / f"{name}.log")
    server = PulseStackServer(child, port)
    try:
        await wait_until_answering(child, server.base + "/readyz")
    except BaseException:
        await child.stop()
        raise
    return server


async def start_hello(tmp: Path) -> tuple[Child, int]:
    port = free_port()
    child = await start("hello", [sys.executable, str(HERE / "hello.py"), str(port)], env=clean_env(), cwd=tmp,
                        log_path=tmp / "hello.log")
    try:
        await wait_until_answering(child, f"http://127.0.0.1:{port}/")
    except BaseException:
        await child.stop()
        raise
    return child, port


class LineWorker:
    """A child process spoken to in JSON lines over stdin/stdout."""

    def __init__(self, child: Child):
        self.child = child

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.child.proc.stdin is not None
        self.child.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.child.proc.stdin.drain()

    async def receive(self, timeout: float) -> dict[str, Any]:
        assert self.child.proc.stdout is not None
        line = await asyncio.wait_for(self.child.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.child.name} exited ({self.child.proc.returncode}):\n{self.child.log_tail()}")
        return json.loads(line)

    async def ask(self, obj: dict[str, Any], timeout: float) -> dict[str, Any]:
        await self.send(obj)
        return await self.receive(timeout)

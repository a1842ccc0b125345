"""A websocket load-generator process: holds many authenticated /ws clients.

Run by the harness (benchlib/websockets.py), one process per share of the
clients, so the clients never share a CPU-bound event loop with the server
or with the harness. Standard library only.

The clients are bare asyncio protocols speaking RFC 6455 directly rather
than aiohttp's client: a frame's arrival time is read in `data_received`,
the moment its bytes come off the socket, so the figure measures the server
and not a load generator working through thousands of reader tasks. (The
protocol subset is small: the upgrade, masked client frames, unmasked
server frames, answering pings.)

Talks to the harness over stdin/stdout, one JSON object a line:

    first line in: {"host": h, "port": p, "tokens": [...], "concurrency": n}
    {"cmd": "connect"}  -> {"ready": n, "failed": n, "errors": [...], "seconds": s}
    {"cmd": "arm"}      -> {"armed": n}   expect total = last known total + 1
    {"cmd": "collect", "deadline_s": s}
                        -> {"hits": [unix times], "missing": n, "wrong": n,
                            "notifications": n, "closed": n}
    {"cmd": "close"}    -> {"closed": n}, then the process exits

Times are `time.time()` (the wall clock every process on the machine shares),
so the harness subtracts the moment it sent the broadcast's POST.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import sys
import time

UNREAD_PREFIX = b'{"type":"unread"'
NOTIFICATION_PREFIX = b'{"type":"notification"'
READY_PREFIX = b'{"type":"ready"'


class Client(asyncio.Protocol):
    def __init__(self, worker: "Worker", token: str):
        self.worker = worker
        self.token = token
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.total: int | None = None  # last total seen (ready or unread)
        self.expect: int | None = None
        self.hit: float | None = None
        self.wrong = False
        self.notified = False
        self.closed = False
        self.close_code: int | None = None

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        w = self.worker
        transport.write(  # type: ignore[attr-defined]
            f"GET /ws HTTP/1.1\r\nHost: {w.host}:{w.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {head.splitlines()[0].decode(errors='replace')}")
                return
            self.open = True
            self.send(1, json.dumps({"type": "auth", "token": self.token}).encode())
        self._frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready (code {self.close_code}): {exc}"))

    # -- frames ------------------------------------------------------------

    def _frames(self, now: float) -> None:
        buf = self.buf
        while len(buf) >= 2:
            opcode, n, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            if buf[1] & 0x80:
                pos += 4  # servers do not mask; skip a key if one came anyway
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos:pos + n])
            del buf[:pos + n]
            self._frame(opcode, payload, now)

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == 1:
            if payload.startswith(UNREAD_PREFIX):
                total = json.loads(payload)["total"]
                self.total = total
                if self.expect is not None and self.hit is None:
                    if total == self.expect:
                        self.hit = now
                        self.worker.hit()
                    else:
                        self.wrong = True
            elif payload.startswith(NOTIFICATION_PREFIX):
                self.notified = True
            elif payload.startswith(READY_PREFIX):
                self.total = json.loads(payload)["unread"]["total"]
                if not self.ready.done():
                    self.ready.set_result(None)
        elif opcode == 9:  # ping: answer, or the server's heartbeat drops us
            self.send(10, payload)
        elif opcode == 8:
            self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
            if self.transport is not None:
                self.transport.close()

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big") if n else 0
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(header + mask + masked)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(8, struct.pack("!H", 1000))
            self.transport.close()


class Worker:
    def __init__(self, host: str, port: int, tokens: list[str], concurrency: int):
        self.host, self.port = host, port
        self.tokens = tokens
        self.concurrency = concurrency
        self.clients: list[Client] = []
        self.hits = 0
        self.armed = 0
        self.all_hit = asyncio.Event()

    def hit(self) -> None:
        self.hits += 1
        if self.hits >= self.armed:
            self.all_hit.set()

    async def connect(self) -> dict:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.concurrency)
        errors: dict[str, int] = {}
        started = time.perf_counter()

        async def one(token: str) -> None:
            async with gate:
                client = Client(self, token)
                try:
                    await loop.create_connection(lambda: client, self.host, self.port)
                    await asyncio.wait_for(client.ready, 60)
                    self.clients.append(client)
                except Exception as exc:  # counted and reported, never hidden
                    text = f"{type(exc).__name__}: {exc}"[:200]
                    errors[text] = errors.get(text, 0) + 1
                    client.close()

        await asyncio.gather(*(one(t) for t in self.tokens))
        return {"ready": len(self.clients), "failed": sum(errors.values()), "errors": list(errors.items())[:5],
                "seconds": time.perf_counter() - started}

    def arm(self) -> dict:
        self.hits = 0
        self.all_hit.clear()
        for c in self.clients:
            c.expect = None if c.total is None else c.total + 1
            c.hit, c.wrong, c.notified = None, False, False
        self.armed = sum(1 for c in self.clients if c.expect is not None)
        return {"armed": self.armed}

    async def collect(self, deadline_s: float) -> dict:
        if self.clients:
            try:
                await asyncio.wait_for(self.all_hit.wait(), deadline_s)
            except TimeoutError:
                pass
        return {
            "hits": [c.hit for c in self.clients if c.hit is not None],
            "missing": sum(1 for c in self.clients if c.hit is None),
            "wrong": sum(1 for c in self.clients if c.hit is None and c.wrong),
            "notifications": sum(1 for c in self.clients if c.notified),
            "closed": sum(1 for c in self.clients if c.closed),
        }

    async def close(self) -> dict:
        for c in self.clients:
            c.close()
        await asyncio.sleep(0.2)
        return {"closed": len(self.clients)}


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    config = json.loads(await reader.readline())
    worker = Worker(config["host"], config["port"], config["tokens"], config.get("concurrency", 64))
    reply({"started": len(worker.tokens)})
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "connect":
            reply(await worker.connect())
        elif cmd["cmd"] == "arm":
            reply(worker.arm())
        elif cmd["cmd"] == "collect":
            reply(await worker.collect(cmd["deadline_s"]))
        elif cmd["cmd"] == "close":
            reply(await worker.close())
            return
    await worker.close()  # the harness went away


if __name__ == "__main__":
    asyncio.run(main())

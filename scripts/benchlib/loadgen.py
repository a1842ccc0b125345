"""A small HTTP/1.1 load generator, for machines without wrk.

    python loadgen.py HOST PORT PATH CONNECTIONS SECONDS [HEADER ...]

Opens CONNECTIONS keep-alive connections, each sending the same GET again as
soon as the previous answer is complete, for SECONDS; prints one JSON line:
{"requests", "non2xx", "errors", "seconds"}. The harness runs several of
these processes side by side. Standard library only, and a bare asyncio
protocol with a pre-built request, so that the generator costs far less per
request than the server it measures (aiohttp's client would cost about as
much as the server, and on 2 cores measure itself).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


class Conn(asyncio.Protocol):
    def __init__(self, gen: "Gen"):
        self.gen = gen
        self.buf = bytearray()
        self.need: int | None = None  # body bytes still expected, once the head is read
        self.status = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                del self.buf[:end + 4]
                self.status = int(head[9:12])
                at = head.find(b"content-length:")
                if at < 0:
                    self.gen.errors += 1  # chunked answers are not expected here
                    self.transport.close()
                    return
                eol = head.find(b"\r\n", at)
                self.need = int(head[at + 15:eol if eol > 0 else len(head)])
            if len(self.buf) < self.need:
                return
            del self.buf[:self.need]
            self.need = None
            self.gen.done(self.status)
            if self.gen.running:
                self.transport.write(self.gen.request)
            else:
                self.transport.close()
                return

    def connection_lost(self, exc) -> None:
        if self.gen.running:
            self.gen.errors += 1


class Gen:
    def __init__(self, host: str, path: str, headers: list[str]):
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
        self.request = "\r\n".join(lines).encode()
        self.running = True
        self.requests = 0
        self.non2xx = 0
        self.errors = 0

    def done(self, status: int) -> None:
        self.requests += 1
        if not 200 <= status < 300:
            self.non2xx += 1


async def main() -> None:
    host, port, path, connections, seconds, *headers = sys.argv[1:]
    gen = Gen(host, path, headers)
    loop = asyncio.get_running_loop()
    for _ in range(int(connections)):
        await loop.create_connection(lambda: Conn(gen), host, int(port))
    gen.requests = gen.non2xx = gen.errors = 0  # count from here: every connection is open and busy
    started = time.perf_counter()
    await asyncio.sleep(float(seconds))
    gen.running = False
    elapsed = time.perf_counter() - started
    print(json.dumps({"requests": gen.requests, "non2xx": gen.non2xx, "errors": gen.errors, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

"""Websocket clients for the realtime tests (DESIGN.md §6).

`Conn` wraps one aiohttp websocket client and keeps every frame it read.
Reading always has a hang guard (HANG_GUARD_S): it stops a test that waits
for a frame that never comes, and is never a timing assertion.

Frames are state, not deltas, and after `ready` the hub may send one more
`unread` frame with the same counts (its recount after a connect). So the
waiting helpers skip a duplicate of the state last seen; `until_unread`
in strict mode fails on any other `unread` frame than the one awaited.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import socket
import struct
from typing import Any

import pytest
from aiohttp import WSMsgType

HANG_GUARD_S = 10.0


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def state_of(frame: dict) -> dict:
    """{total, workspaces} of a `ready` or `unread` frame."""
    state = frame["unread"] if frame["type"] == "ready" else frame
    return {"total": state["total"], "workspaces": state["workspaces"]}


class Closed(AssertionError):
    """The server closed the socket while a frame was awaited."""


class Conn:
    """One authenticated websocket and every frame it has read so far.

    The order of a `notification` frame and the `unread` frame that counts
    it is not fixed (a recount that was already due may count the new
    notification first), so the waiting helpers also look at frames that
    other helpers have already read: `until_notification` at every
    notification read so far, `until_unread` at every `unread` frame it has
    not examined yet."""

    def __init__(self, ws, ready: dict):
        self.ws = ws
        self.ready = ready
        self.frames: list[dict] = [ready]
        self.notifications: list[dict] = []  # items of `notification` frames, in arrival order
        self.unread: list[dict] = []  # states of `unread` frames, in arrival order
        self.state = state_of(ready)  # the counts last pushed (ready, then each unread)
        self._cursor = 1  # frames[_cursor:] are not yet examined by until_unread
        self._confirmed = self.state  # the state until_unread last returned (ready at first)

    @property
    def user_id(self) -> str:
        return self.ready["user_id"]

    async def frame(self) -> dict:
        """The next frame (a JSON object); fails when the socket closes instead."""
        try:
            msg = await self.ws.receive(timeout=HANG_GUARD_S)
        except TimeoutError:
            pytest.fail(f"no frame within the {HANG_GUARD_S} s hang guard; frames so far: {self.frames}")
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise Closed(f"socket closed ({msg.type.name}, code {self.ws.close_code}) while waiting for a frame; "
                         f"frames so far: {self.frames}")
        assert msg.type == WSMsgType.TEXT, f"server sent a non-text frame: {msg}"
        frame = json.loads(msg.data)
        assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
        self.frames.append(frame)
        if frame["type"] == "notification":
            assert set(frame) == {"type", "item"}, frame
            self.notifications.append(frame["item"])
        elif frame["type"] == "unread":
            assert set(frame) == {"type", "total", "workspaces"}, frame
            assert frame["total"] == sum(frame["workspaces"].values()), f"total is not the sum of the workspaces: {frame}"
            assert all(n > 0 for n in frame["workspaces"].values()), f"zero entries in an unread frame: {frame}"
            self.state = state_of(frame)
            self.unread.append(self.state)
        return frame

    async def until_unread(self, total: int, *, strict: bool = True) -> dict:
        """The first `unread` frame with this total after the one this returned
        last (read already, or read until it comes); returns its state.

        Strict: every other `unread` frame on the way must repeat the state
        returned last (a recount that found nothing new), so a wrong
        intermediate count fails. Not strict (bursts): any counts on the way."""
        while True:
            while self._cursor < len(self.frames):
                frame = self.frames[self._cursor]
                self._cursor += 1
                if frame["type"] != "unread":
                    continue
                state = state_of(frame)
                if state["total"] == total:
                    self._confirmed = state
                    return state
                assert not strict or state == self._confirmed, (
                    f"unexpected unread frame {frame} while waiting for total {total} (last state {self._confirmed})")
            await self.frame()

    async def until_type(self, kind: str) -> dict:
        """Read until a frame of this type arrives."""
        while True:
            frame = await self.frame()
            if frame["type"] == kind:
                return frame

    async def until_notification(self, notification_id: str) -> dict:
        """The item of the `notification` frame of this id: one already read, or read until it comes."""
        for item in self.notifications:
            if item["id"] == notification_id:
                return item
        while True:
            frame = await self.until_type("notification")
            if frame["item"]["id"] == notification_id:
                return frame["item"]

    async def ping(self) -> None:
        """A ping, then frames until its pong (frames queued before it are kept)."""
        await self.ws.send_json({"type": "ping"})
        frame = await self.until_type("pong")
        assert frame == {"type": "pong"}

    async def closed(self) -> int:
        """Read until the server closes the socket; returns the close code."""
        return await expect_close(self.ws, self.frames)

    async def synced(self, client, headers: dict[str, str]) -> dict:
        """Read until the last pushed counts equal GET /api/notifications/unread-count."""
        http = await unread_count(client, headers)
        try:
            while self.state != http:
                await self.frame()
        except TimeoutError:
            pytest.fail(f"pushed counts {self.state} differ from GET unread-count {http}; frames: {self.frames}")
        return http


async def expect_close(ws, seen: list | None = None) -> int:
    """Read until the server closes `ws`; returns the close code. Text frames on the way are allowed."""
    while True:
        msg = await ws.receive(timeout=HANG_GUARD_S)
        if msg.type == WSMsgType.CLOSE:
            return msg.data
        if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return ws.close_code
        if seen is not None and msg.type == WSMsgType.TEXT:
            seen.append(json.loads(msg.data))


async def open_ws(client):
    return await client.ws_connect("/ws")


async def connect(client, headers: dict[str, str]) -> Conn:
    """Open /ws, authenticate with the token of `headers`, and read `ready` (which must come first)."""
    ws = await open_ws(client)
    await ws.send_json({"type": "auth", "token": token_of(headers)})
    msg = await ws.receive(timeout=HANG_GUARD_S)
    assert msg.type == WSMsgType.TEXT, f"expected ready, got {msg} (close code {ws.close_code})"
    ready = json.loads(msg.data)
    assert ready["type"] == "ready", f"the first frame is not ready: {ready}"
    assert set(ready) == {"type", "user_id", "unread"}, ready
    assert set(ready["unread"]) == {"total", "workspaces"}, ready
    assert ready["unread"]["total"] == sum(ready["unread"]["workspaces"].values()), ready
    return Conn(ws, ready)


async def unread_count(client, headers: dict[str, str]) -> dict:
    resp = await client.get("/api/notifications/unread-count", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def send(client, headers: dict[str, str], slug: str, *, recipients: list[str] | None = None,
               title: str = "Hello", message: str = "", **extra: Any) -> dict:
    """POST a broadcast (no recipients) or a direct send; returns the notification."""
    payload: dict = {"title": title, "message": message, **extra}
    if recipients is None:
        payload["broadcast"] = True
    else:
        payload["recipients"] = recipients
    resp = await client.post(f"/api/workspaces/{slug}/notifications", json=payload, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return body["notification"]


async def inbox_item(client, headers: dict[str, str], notification_id: str) -> dict:
    resp = await client.get("/api/notifications", params={"status": "all", "limit": "100"}, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    items = [i for i in body["items"] if i["id"] == notification_id]
    assert len(items) == 1, f"{notification_id} not in the inbox: {body}"
    return items[0]


async def poll(predicate, what: str, limit_s: float = HANG_GUARD_S, interval_s: float = 0.01) -> None:
    """Wait (bounded) until `predicate()` (a function or a coroutine function) is
    true; a hang guard, not a timing check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        ok = predicate()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(interval_s)


# --- a raw websocket client that never reads ----------------------------------------------------

def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final client frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def raw_ws_connect(host: str, port: int, token: str, rcvbuf: int = 4096) -> socket.socket:
    """A websocket handshake done by hand on a socket with a small receive
    buffer, then the auth frame. The caller never reads from it again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), HANG_GUARD_S)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), HANG_GUARD_S)  # byte by byte: no frame bytes taken
        assert chunk, f"connection closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    await loop.sock_sendall(sock, masked_frame(json.dumps({"type": "auth", "token": token}).encode()))
    return sock


async def raw_read_until_close(sock: socket.socket) -> tuple[list[str], int | None]:
    """Read a raw client's socket to the end: (text frames, close code).
    The close code is None when the connection ended without a close frame."""
    loop = asyncio.get_running_loop()
    buf = b""
    texts: list[str] = []
    while True:
        while True:  # parse every complete frame in buf
            if len(buf) < 2:
                break
            opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            assert not buf[1] & 0x80, "a server frame must not be masked"
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < at + n:
                break
            payload, buf = buf[at:at + n], buf[at + n:]
            if opcode == 0x1:
                texts.append(payload.decode())
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    await loop.sock_sendall(sock, masked_frame(payload[:2], opcode=0x8))  # answer the close
                except OSError:
                    pass
                return texts, code
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), HANG_GUARD_S)
        except ConnectionError:
            return texts, None
        if not chunk:
            return texts, None
        buf += chunk

"""The server's log output: the batching handler loses and reorders nothing; what
clients control is escaped, and a request aiohttp cannot parse is one line.
The JSON format: every line an object, every line of a request with its id;
named queries at debug, slow ones as warnings; websockets opened and closed."""

import asyncio
import io
import json
import logging
import re
import socket
import urllib.request

import aiohttp
import pytest
from aiohttp.http_exceptions import BadStatusLine
from helpers import COMMAND_TIMEOUT_S, HANG_GUARD_S, PASSWORD, Server, clean_env, register, sqlite_url, unique_email

from pulsestack import logs
from pulsestack.config import LogConfig
from pulsestack.logs import BatchingStreamHandler, MalformedRequestsOneLine, printable


def make_logger(stream: io.StringIO, capacity: int = 3) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream, capacity=capacity)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-logs-{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


def test_info_lines_wait_for_a_flush_then_come_out_in_order():
    stream = io.StringIO()
    logger, handler = make_logger(stream)
    logger.info("one")
    logger.info("two")
    assert stream.getvalue() == ""
    handler.flush()
    assert stream.getvalue() == "INFO one\nINFO two\n"


def test_a_full_batch_is_written_without_a_flush():
    stream = io.StringIO()
    logger, _ = make_logger(stream, capacity=3)
    for word in ("a", "b", "c", "d"):
        logger.info(word)
    assert stream.getvalue() == "INFO a\nINFO b\nINFO c\n"


def test_a_warning_goes_out_at_once_after_the_lines_before_it():
    stream = io.StringIO()
    logger, _ = make_logger(stream)
    logger.info("request")
    logger.warning("database unavailable")
    assert stream.getvalue() == "INFO request\nWARNING database unavailable\n"


# --- escaping what clients control ------------------------------------------------------------------

@pytest.mark.parametrize("raw, logged", [
    ("/api/workspaces/acme", "/api/workspaces/acme"),
    ("/api/caf\u00e9 ok", "/api/caf\u00e9 ok"),  # printable non-ASCII and spaces stay
    ("/x\n\rINFO pulsestack.access forged", "/x\\n\\rINFO pulsestack.access forged"),
    ("a\x00b\tc\x1b[31m\x7f", "a\\x00b\\tc\\x1b[31m\\x7f"),
    ("next\u0085line\u2028sep\u2029par", "next\\x85line\\u2028sep\\u2029par"),
    ("lone \udcff surrogate", "lone \\udcff surrogate"),
    ("back\\slash\\n", "back\\\\slash\\\\n"),  # so an escaped newline cannot be faked either
])
def test_printable_escapes_control_and_other_unprintable_characters(raw, logged):
    assert printable(raw) == logged


def test_a_malformed_request_record_becomes_one_escaped_line_and_a_real_error_keeps_its_traceback():
    stream = io.StringIO()
    logger, handler = make_logger(stream)
    logger.addFilter(MalformedRequestsOneLine())
    try:
        raise BadStatusLine("GET / HTTP/1.1 junk\nINFO forged")
    except BadStatusLine as exc:
        logger.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    try:
        raise RuntimeError("a real bug")
    except RuntimeError as exc:
        logger.exception("Unhandled exception", exc_info=exc)
    handler.flush()

    first, *rest = stream.getvalue().splitlines()
    assert first.startswith("INFO Error handling request from 127.0.0.1: BadStatusLine: 400, message: "), first
    assert "\\nINFO forged" in first
    assert rest[0] == "ERROR Unhandled exception"
    assert rest[1] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: a real bug"


# --- a real server's stderr ------------------------------------------------------------------------

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ ")
# request bytes -> (the answer's status, what its one log line contains)
WELL_FORMED = {
    b"GET /api/workspaces/%0a%0dINFO%20pulsestack.access%20forged HTTP/1.1\r\nHost: x\r\n":
        (401, " GET /api/workspaces/\\n\\rINFO pulsestack.access forged 401 "),
    b"GET /api/x%00y%e2%80%a8z HTTP/1.1\r\nHost: x\r\n": (404, " GET /api/x\\x00y\\u2028z 404 "),
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: id\tx\xc2\x85y\xe2\x80\xa9z\r\n":
        (200, " id\\tx\\x85y\\u2029z GET /healthz 200 "),
}
MALFORMED = {
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n": "Invalid header value char",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n": "Got more than 8190 bytes",
    b"GET / HTTP/1.1 junk\nINFO pulsestack.access forged\r\n": "Expected CRLF after version",
}


def exchange(port: int, request: bytes) -> int:
    """Send one request on its own connection; the answer's status (read until the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=COMMAND_TIMEOUT_S) as sock:
        sock.sendall(request + b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_requests_cannot_forge_or_break_a_servers_log_lines(tmp_path):
    server = Server(tmp_path, "--port", "0", env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "logs.db")))
    try:
        server.serving_base()
        port = server.port
        statuses = [exchange(port, request) for request in [*WELL_FORMED, *MALFORMED]]
        code, err = server.stop()
    finally:
        server.kill()

    assert code == 0, err
    assert statuses == [status for status, _ in WELL_FORMED.values()] + [400] * len(MALFORMED)
    for char in "\x00\r\x85\u2028\u2029":
        assert char not in err, f"{char!r} written to the log:\n{err}"
    lines = err.removesuffix("\n").split("\n")
    assert [line for line in lines if not LOG_LINE.match(line)] == [], "lines that no logger wrote (forged, or a traceback)"
    access = [line for line in lines if " pulsestack.access " in line]
    for _, logged in WELL_FORMED.values():
        assert len([line for line in access if logged in line]) == 1, (logged, access)
    malformed = [line for line in lines if " aiohttp.server " in line]
    assert len(malformed) == len(MALFORMED), malformed
    for needle, line in zip(MALFORMED.values(), malformed):
        assert " INFO aiohttp.server Error handling request from 127.0.0.1: " in line and needle in line, line


# --- the JSON format, request ids, queries and websockets ---------------------------------------------

JSON_KEYS = {"time", "level", "logger", "message", "request_id"}


def post_json(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as resp:
        return resp.status, json.loads(resp.read())


async def open_and_close_a_websocket(base: str, token: str, request_id: str) -> None:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(base + "/ws", headers={"X-Request-Id": request_id}) as ws:
        await ws.send_json({"type": "auth", "token": token})
        ready = await ws.receive_json(timeout=HANG_GUARD_S)
        assert ready["type"] == "ready"


def test_json_lines_carry_request_ids_slow_queries_websockets_and_the_forwarded_client(tmp_path):
    env = clean_env(PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "json.db"), PULSESTACK_LOG_FORMAT="json",
                    PULSESTACK_LOG_SLOW_QUERY_MS="0",  # every query is "slow": a warning, at level info
                    PULSESTACK_SERVER_TRUSTED_PROXIES="127.0.0.1")
    server = Server(tmp_path, "--port", "0", env=env)
    try:
        base = server.serving_base()
        status, issued = post_json(base + "/api/auth/register", {"email": unique_email(), "password": PASSWORD},
                                   {"X-Request-Id": "req-register", "X-Forwarded-For": "203.0.113.5"})
        assert status == 201
        asyncio.run(open_and_close_a_websocket(base, issued["token"], "req-ws"))
        server.wait_for_line('"websocket closed: ')
        code, err = server.stop()
    finally:
        server.kill()
    assert code == 0, err

    entries = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    for entry in entries:
        assert set(entry) >= JSON_KEYS, entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry
    assert not [e for e in entries if e["logger"].startswith(("aiosqlite", "asyncpg"))], "driver internals logged"
    by_request = {rid: [e for e in entries if e["request_id"] == rid] for rid in ("req-register", "req-ws")}

    [access] = [e for e in by_request["req-register"] if e["logger"] == "pulsestack.access"]
    assert access["level"] == "INFO" and access["status"] == 201 and access["method"] == "POST"
    assert access["path"] == "/api/auth/register" and access["client"] == "203.0.113.5", access
    assert access["message"].startswith("req-register POST /api/auth/register 201 ")
    slow = [e for e in by_request["req-register"] if e["logger"] == "pulsestack.db.queries"]
    assert {e["query"] for e in slow} >= {"create_user", "create_session"}, slow
    for e in slow:
        assert e["level"] == "WARNING" and e["duration_ms"] >= 0 and e["rows"] >= 0, e
        assert re.fullmatch(rf"slow query {e['query']}: \d+\.\d ms, {e['rows']} rows \(sql/\S+\.sql:\d+.*\)", e["message"]), e
    # the plan hint: where the query is written, and the index its doc comment names
    [user] = [e for e in slow if e["query"] == "create_user"]
    assert re.search(r" \(sql/users\.sql:\d+, indexes users_email_key\)$", user["message"]), user

    ws = by_request["req-ws"]
    [opened] = [e for e in ws if e["message"].startswith("websocket open: ")]
    [closed] = [e for e in ws if e["message"].startswith("websocket closed: ")]
    assert opened["user_id"] == closed["user_id"] == issued["user"]["id"]
    assert closed["close_code"] == 1000 and closed["duration_ms"] >= 0, closed
    [ws_access] = [e for e in ws if e["logger"] == "pulsestack.access"]
    assert ws_access["status"] == 101 and ws_access["client"] == "127.0.0.1", ws_access  # no X-Forwarded-For sent
    assert ws.index(opened) < ws.index(closed) < ws.index(ws_access)
    outside = [e for e in entries if e["request_id"] is None]
    assert any(" serving on " in f" {e['message']}" for e in outside)


@pytest.fixture
def captured_logs():
    """logs.setup() into a buffer, at debug, in JSON; the root logger as it was afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs.slow_query_s,
             {name: logging.getLogger(name).level for name in logs.QUIET_BELOW_WARNING}, logs.structured)
    stream = io.StringIO()
    logs.setup(LogConfig(level="debug", format="json", slow_query_ms=3_600_000), stream)
    try:
        yield stream
    finally:
        logs.flush()
        root.handlers[:], quiet = saved[0], saved[3]
        root.setLevel(saved[1])
        logs.slow_query_s, logs.structured = saved[2], saved[4]
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


async def test_at_debug_each_named_query_is_logged_with_its_time_and_rows_and_no_driver_lines(client, captured_logs):
    _, headers = await register(client)
    resp = await client.get("/api/notifications/unread-count", headers={**headers, "X-Request-Id": "count-1"})
    assert resp.status == 200
    logs.flush()
    entries = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert not [e for e in entries if e["logger"].startswith(("aiosqlite", "asyncpg"))], "driver internals logged"
    queries = [e for e in entries if e["logger"] == "pulsestack.db.queries" and e["request_id"] == "count-1"]
    assert {e["query"] for e in queries} >= {"get_session_user"}, queries
    for e in queries:
        assert e["level"] == "DEBUG" and e["duration_ms"] >= 0, e
        assert re.fullmatch(rf"query {e['query']}: \d+\.\d ms, {e['rows']} rows", e["message"]), e
    assert [e for e in entries if e["logger"] == "pulsestack.access" and e["request_id"] == "count-1"]


def test_a_json_line_is_one_line_whatever_the_message_and_carries_a_traceback():
    stream = io.StringIO()
    logger, handler = make_logger(stream)
    handler.setFormatter(logs.JsonFormatter())
    token = logs.request_id.set("req-1")
    try:
        logger.info("line\nbreak \u2028 and \u0085 and \udcff")
        try:
            raise RuntimeError("a real bug")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logs.request_id.reset(token)
    logger.info("outside")
    handler.flush()

    lines = stream.getvalue().split("\n")[:-1]
    assert len(lines) == 3 and all(line.isascii() for line in lines), lines
    first, error, outside = (json.loads(line) for line in lines)
    assert first["message"] == "line\nbreak \u2028 and \u0085 and \udcff" and first["request_id"] == "req-1"
    assert error["level"] == "ERROR" and error["request_id"] == "req-1"
    assert error["traceback"].startswith("Traceback") and error["traceback"].endswith("RuntimeError: a real bug")
    assert outside["request_id"] is None and "traceback" not in outside


def test_a_text_line_logged_during_a_request_names_its_request_id_escaped():
    stream = io.StringIO()
    logger, handler = make_logger(stream)
    handler.setFormatter(logs.LineFormatter())
    access = logging.getLogger(logs.ACCESS_LOGGER)
    logger.info("outside")
    token = logs.request_id.set("id\nINFO forged")
    try:
        logger.warning("slow query get_user: %.1f ms", 250.0)
        handler.flush()
        line = stream.getvalue().splitlines()[-1]
        record = access.makeRecord(access.name, logging.INFO, __file__, 0, "id GET / 200 1.0ms 127.0.0.1", (), None)
        access_line = handler.format(record)
    finally:
        logs.request_id.reset(token)
    first = stream.getvalue().splitlines()[0]
    assert first.endswith(" INFO test-logs-%d outside" % id(stream))
    assert line.endswith(" WARNING test-logs-%d [id\\nINFO forged] slow query get_user: 250.0 ms"
                                                  % id(stream)), line
    assert access_line.endswith(" INFO pulsestack.access id GET / 200 1.0ms 127.0.0.1"), "the access line starts with it"

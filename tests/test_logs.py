"""The server's log output: the batching handler loses and reorders nothing; what
clients control is escaped, and a request aiohttp cannot parse is one line."""

import io
import logging
import re
import socket

import pytest
from aiohttp.http_exceptions import BadStatusLine
from helpers import COMMAND_TIMEOUT_S, Server, clean_env, free_port, sqlite_url

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
    port = free_port()
    server = Server(tmp_path, "--port", str(port), env=clean_env(PULSESTACK_DATABASE_URL=sqlite_url(tmp_path / "logs.db")))
    try:
        server.wait_ready(f"http://127.0.0.1:{port}")
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

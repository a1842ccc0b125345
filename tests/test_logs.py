"""The server's batching log handler: nothing is lost, nothing reordered."""

import io
import logging

from pulsestack.logs import BatchingStreamHandler


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

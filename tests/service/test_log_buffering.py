"""stdout log lines are written in batches, but never held back long or lost at shutdown."""

from __future__ import annotations

import io
import logging
import time

from service.json_logging import FLUSH_INTERVAL_S, BufferedStreamHandler


class CountingStream(io.StringIO):
    """A text stream that records what was flushed out (what a reader of the pipe would see)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_info_lines_wait_for_the_interval_then_come_out_without_another_record() -> None:
    stream = CountingStream()
    handler = BufferedStreamHandler(stream)
    try:
        handler.flush_now()
        logger = logger_with(handler, "test.buffered.info")
        logger.info("first")
        logger.info("second")
        # Written to the buffer, not yet flushed: no write per line.
        assert "second" in stream.getvalue()
        assert "first" not in stream.flushed
        # The flushing thread writes the quiet tail out without a further record.
        deadline = time.monotonic() + 20 * FLUSH_INTERVAL_S
        while "second" not in stream.flushed and time.monotonic() < deadline:
            time.sleep(FLUSH_INTERVAL_S / 4)
        assert "second" in stream.flushed
    finally:
        handler.close()


def test_warnings_and_shutdown_flush_at_once() -> None:
    stream = CountingStream()
    handler = BufferedStreamHandler(stream)
    logger = logger_with(handler, "test.buffered.warning")
    handler.flush_now()
    logger.info("routine")
    logger.warning("urgent")
    assert "urgent" in stream.flushed
    assert "routine" in stream.flushed
    logger.info("last words")
    handler.close()
    assert "last words" in stream.flushed


class FlakyStream(CountingStream):
    """A stream whose flush fails while ``broken`` is set, as a closed or vanished stdout does."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.failures = 0

    def flush(self) -> None:
        if self.broken:
            self.failures += 1
            raise ValueError("I/O operation on closed file.")
        super().flush()


def test_a_failing_flush_does_not_kill_the_flushing_thread() -> None:
    """Once the stream works again, the quiet tail still comes out without another record."""
    stream = FlakyStream()
    handler = BufferedStreamHandler(stream)
    logger = logger_with(handler, "test.buffered.flaky")
    try:
        handler.flush_now()
        stream.broken = True
        handler._flushed = time.monotonic()  # the next record stays in the buffer
        logger.info("while broken")
        deadline = time.monotonic() + 20 * FLUSH_INTERVAL_S
        while stream.failures == 0 and time.monotonic() < deadline:
            time.sleep(FLUSH_INTERVAL_S / 4)
        assert stream.failures > 0, "the thread never tried to flush"
        stream.broken = False
        handler._flushed = time.monotonic()
        logger.info("after recovery")
        deadline = time.monotonic() + 20 * FLUSH_INTERVAL_S
        while "after recovery" not in stream.flushed and time.monotonic() < deadline:
            time.sleep(FLUSH_INTERVAL_S / 4)
        assert "after recovery" in stream.flushed
    finally:
        handler.close()

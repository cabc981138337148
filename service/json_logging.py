"""One JSON object per line on stdout, with the field names of ``service.contract.LOG_FIELDS``.

CloudWatch metric filters and Fluent Bit parse these lines, so every record, uvicorn's included,
goes through :class:`JsonFormatter`. The request id of the request being served rides in a
context variable, so any log line written while serving it carries the id.
"""

from __future__ import annotations

import json
import logging
import sys
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


def configure_logging(level: str) -> None:
    """Send every log record, uvicorn's too, to stdout as JSON lines at ``level`` and above."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    # The service writes its own access line per request, with the contract's fields.
    logging.getLogger("uvicorn.access").disabled = True

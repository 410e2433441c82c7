"""Log handlers: text for people, JSON lines for journald and Kubernetes.

Library code logs with ``extra={"action": ..., ...}``; those fields appear as
keys in JSON output and as ``key=value`` pairs in text output.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from dqd.pathtext import displayable

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_extras(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        # A file name that is not UTF-8 logs in dqd.pathtext's displayed form, as the CLI prints it.
        return json.dumps(displayable(payload), default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return text


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic and uvicorn are chatty at INFO; keep them at WARNING unless debugging.
    if level != "debug":
        for noisy in ("alembic", "uvicorn.access", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

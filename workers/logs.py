"""Structured log lines: logfmt (``key=value``) or JSON, one line per event, on stderr.

`logging_config(level, fmt)` returns a `logging.config.dictConfig` mapping; the worker hands it to Faust's
Worker so that Faust's own loggers and ours print the same way. Fields passed as ``extra={...}`` become
keys on the line. Messages are not scrubbed here: callers never put secrets or record content in them.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any, Final

#: Attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        fields["error"] = f"{type(error).__name__}: {error}"
    return fields


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\\\n\t'):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info logger=... msg="..." key=value`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


class RepeatFilter(logging.Filter):
    """Lets the Kafka client's warnings and errors through once per `window` seconds per message template.

    While a broker is unreachable, aiokafka retries every 100 ms and logs each failed connect, metadata
    update, fetch and heartbeat: over a hundred lines a second that bury everything else. The first of
    each kind is shown at once; repeats within the window are counted, and the next line shown carries
    ``repeated=N``.
    """

    def __init__(self, window: float = 30.0, prefix: str = "aiokafka") -> None:
        super().__init__()
        self._window = window
        self._prefix = prefix
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self._prefix):
            return True
        key = (record.name, record.msg)
        with self._lock:
            shown_at, repeated = self._seen.get(key, (float("-inf"), 0))
            if record.created - shown_at < self._window:
                self._seen[key] = (shown_at, repeated + 1)
                return False
            self._seen[key] = (record.created, 0)
        if repeated:
            record.repeated = repeated
        return True


def logging_config(level: str, fmt: str = "logfmt") -> dict[str, Any]:
    """Return a dictConfig mapping: one stderr handler with the chosen formatter at `level`.

    Args:
        level: ``"DEBUG"``, ``"INFO"`` ...
        fmt: ``"logfmt"`` or ``"json"``.
    """
    formatter = JsonFormatter if fmt == "json" else LogfmtFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
                "filters": ["repeats"],
            }
        },
        "filters": {"repeats": {"()": f"{RepeatFilter.__module__}.{RepeatFilter.__qualname__}"}},
        "root": {"level": level, "handlers": ["stderr"]},
        # The registry client logs every failed request; the worker logs one line when a pipeline gets
        # stuck and one when it recovers, with the error. Below DEBUG, per-request lines would repeat
        # that once per retry for as long as an outage lasts.
        "loggers": {"registry_codecs.registry_http": {"level": "DEBUG" if level == "DEBUG" else "ERROR"}},
    }


def configure(level: str, fmt: str = "logfmt") -> None:
    """Apply :func:`logging_config` to this process (used before Faust's Worker takes over)."""
    import logging.config

    logging.config.dictConfig(logging_config(level, fmt))


__all__ = ["JsonFormatter", "LogfmtFormatter", "RepeatFilter", "configure", "logging_config"]

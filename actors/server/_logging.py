"""Logs: structured, JSON or text, to stderr and optionally to a rotated file.

Standard library logging, set up once per process by hostsmith's own
commands (never by the library). Every record carries the correlation id of
the conversation it belongs to (from the runtime's envelope or the edge's
`correlation` block), so one HTTP call can be followed across actors and
provider calls. The file, when configured, is rotated by size; it and every
file rotation makes are created with mode 0600. Every line passes through
`redact` on its way out, so an AWS access key id, secret key or session
token that reaches a message (from a library's error text, say) is masked.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time

import msgspec

from hostsmith.actors.errors import redact
from hostsmith.actors.service import Log
from hostsmith.runtime import current_correlation_id


class _Correlation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = current_correlation_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    _encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encoder.encode(entry).decode()


TEXT = "%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s"


class _Redacting(logging.Formatter):
    """Format with `inner`, then mask AWS secrets in the whole line (traceback included)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating log whose every new file is created 0600, whatever the umask."""

    def _open(self):  # type: ignore[no-untyped-def]
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(descriptor, "a", encoding=self.encoding, errors=self.errors)


def configure_logging(settings: Log, *, stderr_level: str = "") -> None:
    """Log to stderr, and to `settings.file` when set; `stderr_level` can quiet stderr alone.

    `hostsmith hf` passes "warning": Host Factory reads stdout only, so stderr
    carries one line per problem, while the log file keeps everything at the
    configured level (a refused call's traceback at debug).
    """
    formatter = _Redacting(
        JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.file:
        os.makedirs(os.path.dirname(os.path.abspath(settings.file)), exist_ok=True)
        handlers.append(
            _PrivateRotatingFile(
                settings.file, maxBytes=settings.max_bytes, backupCount=settings.backups
            )
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_Correlation())
        root.addHandler(handler)
    root.setLevel(settings.level.upper())
    if stderr_level:
        handlers[0].setLevel(stderr_level.upper())

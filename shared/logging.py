"""Logging setup: key=value lines that carry the current job_id, secrets redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from diarq.shared.redact import install_redaction, redact

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s job_id=%(job_id)s %(message)s"


class JobIdFilter(logging.Filter):
    """Adds ``job_id`` (or ``-``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = _job_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (DIARQ_LOG_FORMAT=json) for log shippers; ``job_id`` is
    on every line (null outside a job), exceptions go in ``exc_info`` as text."""

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", "-")
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "job_id": None if job_id == "-" else job_id,
            "message": record.getMessage(),
        }
        # the redacting filter has already put a scrubbed traceback in exc_text; never
        # format exc_info again (that would bring secrets in exception text back)
        if record.exc_info or record.exc_text:
            entry["exc_info"] = redact(record.exc_text or self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once (idempotent); ``fmt`` "text" (key=value) or "json"."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_diarq", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._diarq = True  # type: ignore[attr-defined]
        handler.addFilter(JobIdFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    root.setLevel(level.upper())
    install_redaction(root)
    # servers that keep their own handlers instead of propagating to the root logger
    for name in ("gunicorn.error", "gunicorn.access"):
        install_redaction(logging.getLogger(name))

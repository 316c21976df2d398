"""Logging setup: key=value lines that carry the current job_id, secrets redacted."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from shared.redact import install_redaction

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s job_id=%(job_id)s %(message)s"


class JobIdFilter(logging.Filter):
    """Adds ``job_id`` (or ``-``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = _job_id.get() or "-"
        return True


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "_diarq", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._diarq = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(JobIdFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    install_redaction(root)
    # servers that keep their own handlers instead of propagating to the root logger
    for name in ("gunicorn.error", "gunicorn.access"):
        install_redaction(logging.getLogger(name))

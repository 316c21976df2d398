"""Waiting for a job to end, for routes that answer synchronously
(POST /v1/audio/transcriptions).

The job goes through the queue like any other; the request thread polls its row with
short sessions (no database connection or transaction is held between polls) until the
job is succeeded, failed or canceled, or the bound passes. A per-process cap on waiting
requests keeps some of the process's threads free for everything else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from diarq.api.errors import ApiError
from diarq.shared.db import session_scope
from diarq.shared.orm import CANCELED, FAILED, SUCCEEDED, Job
from diarq.shared.settings import Settings

TERMINAL = (SUCCEEDED, FAILED, CANCELED)
# first poll soon (short recordings finish in seconds), then back off to this
_FIRST_POLL_S = 0.1
_MAX_POLL_S = 1.0
WAIT_RETRY_AFTER_S = 5

_lock = threading.Lock()
_waiting = 0


def wait_for_job(settings: Settings, job_id: str, timeout_s: float) -> Job | None:
    """The job's row once it has ended (or is gone: deleted rows end it too), read in a
    session that is already closed; None when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    delay = _FIRST_POLL_S
    while True:
        with session_scope(settings) as session:
            job = session.get(Job, job_id)
            if job is None or job.status in TERMINAL or job.deleted_at is not None:
                return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, _MAX_POLL_S)


def max_waiters(settings: Settings) -> int:
    """Waiting requests allowed at once in one API process."""
    return settings.openai_max_waiters or max(1, settings.api_threads - 1)


@contextmanager
def waiter_slot(settings: Settings) -> Iterator[None]:
    """Hold one of the process's waiter slots for the block; 429 ``too_many_waiters``
    (before any job is created) when all are taken."""
    global _waiting
    limit = max_waiters(settings)
    with _lock:
        if _waiting >= limit:
            raise ApiError(f"{limit} requests are already waiting for transcriptions in this "
                           "server process; retry in a few seconds (operators: "
                           "DIARQ_OPENAI_MAX_WAITERS, DIARQ_API_THREADS, DIARQ_API_WORKERS)",
                           code="too_many_waiters", http_status=429)
        _waiting += 1
    try:
        yield
    finally:
        with _lock:
            _waiting -= 1

"""Requests that wait for a job to end: the default of POST /api/diarize (the original
client expects the result in the answer) and of POST /v1/audio/transcriptions (OpenAI's
clients expect the transcript), opt-in elsewhere with ``Prefer: wait=N`` (RFC 7240; the
answer says ``Preference-Applied: wait=N``).

A waiting request holds no database connection: it polls the job's status in a short
session of its own each time (one indexed primary-key read), backing off from
POLL_FIRST_S to POLL_MAX_S, and its connection goes back to the pool in between. It
does hold one gunicorn thread, so each API process lets at most DIARQ_MAX_WAITERS
requests wait at once (fewer than its DIARQ_API_THREADS, so that probes and other
requests always find a thread); a request beyond that, or past DIARQ_WAIT_MAX_S, is
answered with the job as it is (202 and Location) and the client polls. The OpenAI route
has its own pool of slots (DIARQ_OPENAI_MAX_WAITERS) and bound (DIARQ_OPENAI_WAIT_S):
past them it answers in OpenAI's error shape (429 / 504), as that client expects.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response, current_app, jsonify
from sqlalchemy import select

from diarq.api.job_json import job_json
from diarq.shared.db import session_scope
from diarq.shared.dedupe import result_data
from diarq.shared.error_codes import CATALOGUE
from diarq.shared.orm import CANCELED, FAILED, SUCCEEDED, Job
from diarq.shared.settings import Settings

TERMINAL = (SUCCEEDED, FAILED, CANCELED)
POLL_FIRST_S = 0.2
POLL_MAX_S = 1.0
POLL_GROWTH = 1.5

_lock = threading.Lock()


def preferred_wait(header: str | None) -> float | None:
    """The ``wait`` preference of a ``Prefer`` header in seconds (``respond-async``
    alone: 0), None when the header asks for neither. Unknown preferences are ignored,
    as RFC 7240 says."""
    if not header:
        return None
    wait = None
    async_only = False
    for part in header.split(","):
        token, _, value = part.split(";", 1)[0].strip().partition("=")
        token = token.strip().lower()
        if token == "wait":
            try:
                wait = max(0.0, float(value.strip().strip('"')))
            except ValueError:
                continue
        elif token == "respond-async":
            async_only = True
    if wait is not None:
        return wait
    return 0.0 if async_only else None


@contextmanager
def waiter_slot(app: Any, *, pool: str = "wait", limit: int | None = None) -> Iterator[bool]:
    """True when this request may wait (a free slot of ``pool`` in this process: ``limit``
    of them, default DIARQ_MAX_WAITERS), else False."""
    diarq = app.extensions["diarq"]
    limit = diarq.settings.max_waiters if limit is None else limit
    if limit <= 0:
        yield False
        return
    with _lock:
        found = diarq.waiter_slots
        if found is None or found[0] != os.getpid():  # one set per gunicorn process
            found = diarq.waiter_slots = (os.getpid(), {})
        slots = found[1].setdefault(pool, threading.BoundedSemaphore(limit))
    got = slots.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            slots.release()


def wait_until_done(settings: Settings, job_id: str, seconds: float) -> bool:
    """Poll until the job has ended (True) or ``seconds`` passed (False). Each poll is a
    session of its own: nothing is held between polls."""
    deadline = time.monotonic() + seconds
    delay = POLL_FIRST_S
    while True:
        with session_scope(settings) as session:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None or status in TERMINAL:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * POLL_GROWTH, POLL_MAX_S)


def wait_for_job(settings: Settings, job_id: str, seconds: float) -> Job | None:
    """The job's row once it has ended (or is gone: a deleted row ends it too), read in a
    session already closed; None when ``seconds`` pass first."""
    if not wait_until_done(settings, job_id, seconds):
        return None
    with session_scope(settings) as session:
        return session.get(Job, job_id)


def applied(seconds: float) -> str:
    """The ``Preference-Applied`` value for a wait of ``seconds``."""
    return f"wait={seconds:g}"


def wait_seconds(prefer: str | None, settings: Settings, *, default: float) -> tuple[float, bool]:
    """(seconds to wait, whether the client asked): ``Prefer: wait=N`` capped at
    DIARQ_WAIT_MAX_S, else ``default``."""
    wanted = preferred_wait(prefer)
    if wanted is None:
        return min(default, settings.wait_max_s), False
    return min(wanted, settings.wait_max_s), True


def answer_when_done(job: Job, status: int, seconds: float, *, asked: bool,
                     with_result: bool):  # noqa: ANN201 (flask response)
    """Wait up to ``seconds`` for ``job`` to end (when a waiter slot is free), then answer:
    - ``with_result`` (POST /api/diarize): a succeeded job's result JSON (200), a failed
      or cancelled one as an error with the job (the code's HTTP status);
    - otherwise the job, 200 once it has ended, else ``status`` (202, or 200 for an
      Idempotency-Key retry).
    A job still running is the job with ``status``. ``Preference-Applied`` says the wait
    the client asked for was honoured (``asked``)."""
    settings = current_app.extensions["diarq"].settings
    waited = False
    if seconds > 0 and job.status not in TERMINAL:
        with waiter_slot(current_app) as free:
            if free:
                wait_until_done(settings, job.id, seconds)
                waited = True
    with session_scope(settings) as session:
        current = session.get(Job, job.id) or job
        resp = _answer(session, current, status, with_result)
    resp.headers["Location"] = f"/v1/jobs/{job.id}"
    if asked and waited:
        resp.headers["Preference-Applied"] = applied(seconds)
    return resp


def _answer(session, job: Job, status: int, with_result: bool) -> Response:  # noqa: ANN001
    if with_result and job.status == SUCCEEDED:
        from diarq.shared.renderers import render
        from diarq.shared.result import Result

        data = result_data(session, job)
        if data is not None:
            return Response(render(Result.from_dict(data), "json"),
                            content_type="application/json")
    body = job_json(session, job)
    if with_result and job.status in (FAILED, CANCELED):
        code = job.error_code or "internal_error" if job.status == FAILED else "job_canceled"
        message = (job.error_message or "the job failed") if job.status == FAILED else \
            f"job {job.id} was canceled (deleted) before it finished"
        entry = CATALOGUE.get(code)
        resp = jsonify({"error": {"code": code, "message": message}, "job": body})
        resp.status_code = entry.status if entry is not None and entry.status else 500
        return resp
    resp = jsonify(body)
    resp.status_code = 200 if job.status in TERMINAL else status
    return resp

"""One attempt of one job: claim (CAS) -> close session -> pipeline -> reopen -> persist.

Kept apart from Celery so the task stays a one-liner; only ids travel in messages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy.orm import Session

from diarq.shared import jobs
from diarq.shared.celery_app import make_celery
from diarq.shared.db import session_scope
from diarq.shared.errors import DiarqError
from diarq.shared.logging import job_context
from diarq.shared.options import check_job_model, parse_options
from diarq.shared.orm import Job
from diarq.shared.redact import redact
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, reference_key
from diarq.shared.storage_backend import open_storage
from diarq.shared.webhook_queue import notify_terminal
from diarq.worker.scratch import local_audio

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT_CODE = "timeout"
# final writes (claim, result, failure) outlive a database restart for this long
DB_RETRY_FOR_S = 120.0

_storages: dict[str, Storage] = {}


def _storage(settings: Settings) -> Storage:
    """One storage client per process and configuration (its connection pool is reused)."""
    key = f"{settings.storage_url}|{settings.storage_dir}|{settings.s3_endpoint_url}"
    if key not in _storages:
        _storages[key] = open_storage(settings)
    return _storages[key]


class WorkerUnusable(Exception):  # noqa: N818 - a condition of the worker, not of the job
    """This worker process cannot run any job (its models did not load at start).

    Raised before the claim: the row stays ``queued`` with no attempt counted, and the
    caller hands the message back to the broker for a healthy worker.
    """

    def __init__(self, error: DiarqError) -> None:
        super().__init__(error.code)
        self.error = error


INTERNAL_MESSAGE = (
    "an unexpected error stopped this job; submit it again, and if it fails again "
    "report the job id to the operator (details are in the worker log)"
)


class JobMonitor:
    """Background thread of a running attempt: heartbeat + throttled progress writes.

    Progress callbacks only record the latest (stage, fraction); this thread writes
    at most once per ``progress_interval_s`` and at least once per heartbeat interval.
    When a write finds the job no longer ours (cancelled, reaped) it flags cancellation.
    """

    def __init__(self, settings: Settings, job_id: str, token: str):
        self.settings = settings
        self.job_id = job_id
        self.token = token
        self._stage: str | None = None
        self._fraction = 0.0
        self._dirty = False
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_check = 0.0
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def progress(self, stage: str, fraction: float) -> None:
        with self._lock:
            self._stage, self._fraction, self._dirty = stage, fraction, True

    def should_cancel(self) -> bool:
        if self._lost.is_set():
            return True
        # the pipeline polls this between stages and (≤ 1/s) inside them; a read each time
        now = time.monotonic()
        if now - self._last_check < 0.5:
            return False
        self._last_check = now
        try:
            with session_scope(self.settings) as s:
                if jobs.is_cancelled(s, self.job_id, self.token):
                    self._lost.set()
        except Exception as exc:  # a database blip must not fail the job; ask again later
            log.warning("cancel check failed, will retry error=%s", type(exc).__name__)
        return self._lost.is_set()

    def _run(self) -> None:
        s = self.settings
        last_write = time.monotonic()
        tick = min(0.2, s.progress_interval_s or 0.2, s.heartbeat_interval_s)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                dirty = self._dirty
                stage, fraction = self._stage, self._fraction
            due_progress = dirty and now - last_write >= s.progress_interval_s
            if not (due_progress or now - last_write >= s.heartbeat_interval_s):
                continue
            try:
                with session_scope(s) as session:
                    owned = jobs.heartbeat(session, self.job_id, self.token,
                                           stage=stage if dirty else None,
                                           progress=fraction if dirty else None)
                last_write = now
                if dirty:
                    with self._lock:
                        if (self._stage, self._fraction) == (stage, fraction):
                            self._dirty = False
                if not owned:
                    self._lost.set()
                    return
            except Exception:  # a DB hiccup must not kill the job; retry next tick
                log.warning("heartbeat write failed job_id=%s", self.job_id, exc_info=True)


def timeout_message(settings: Settings, audio_seconds: float | None) -> str:
    limit = settings.job_time_limit_s(audio_seconds)
    return (f"the job ran longer than its limit ({limit:.0f} s for this audio); use a faster "
            "model or a GPU worker, or raise DIARQ_JOB_TIME_LIMIT_BASE_S / "
            "DIARQ_JOB_TIME_LIMIT_FACTOR")


def job_timeout_message(settings: Settings, session: Session, job_id: str) -> str:
    """The ``timeout`` message of a job, with the limit its audio duration gave it."""
    job = session.get(Job, job_id)
    return timeout_message(settings, job.audio_duration if job is not None else None)


def with_db_retry(write: Callable[[], T], what: str, *, retry_for_s: float = DB_RETRY_FOR_S) -> T:
    """Run a DB write, retrying while the database is unreachable (restart, failover):
    losing the write would leave the job stuck until the reaper notices."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    deadline = time.monotonic() + retry_for_s
    delay = 0.2
    while True:
        try:
            return write()
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) \
                    and not exc.connection_invalidated:
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable during %s (%s); retrying in %.1f s", what,
                        type(exc.orig).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def execute_job(job_id: str, *, settings: Settings, worker_name: str,
                registry: Any = None, startup_error: DiarqError | None = None,
                celery: Celery | None = None) -> str:
    """Run one delivery of ``diarq.process_job``; returns the outcome (for logs/tests).

    ``celery``: the app that queues the job's webhook when it ends (the worker's own;
    default: one made from ``settings``).

    Raises :class:`WorkerUnusable` (before touching the row) when ``startup_error`` says
    this process could not load its models: the job is not this worker's to fail.
    """
    from celery.exceptions import SoftTimeLimitExceeded

    token = str(uuid.uuid4())
    producer = celery if celery is not None else make_celery(settings)
    with job_context(job_id):
        if startup_error is not None:
            log.warning("not claimed: this worker could not load its models code=%s; "
                        "the job goes back to the queue", startup_error.code)
            raise WorkerUnusable(startup_error)
        try:
            return _attempt(settings, job_id, token, worker_name, registry, producer)
        except SoftTimeLimitExceeded:
            # wherever it hit (claim, pipeline, result or failure write, webhook queueing):
            # the attempt's token makes this a no-op when the job already ended
            return _fail_timeout(settings, job_id, token, producer)


def _attempt(settings: Settings, job_id: str, token: str, worker_name: str,
             registry: Any, celery: Celery) -> str:
    def _claim() -> jobs.Claim | None:
        with session_scope(settings) as session:
            return jobs.claim(session, job_id, token=token, worker=worker_name,
                              stale_after_s=settings.stale_after_s,
                              max_attempts=settings.max_attempts)

    claim = with_db_retry(_claim, "claim")
    if claim is None:
        # duplicate delivery, running elsewhere, cancelled, finished or unknown
        log.info("skipped: job not claimable")
        return "skipped"
    log.info("started attempt=%d worker=%s", claim.attempt, worker_name)
    # the DB session is closed: inference holds no connection or transaction
    monitor = JobMonitor(settings, job_id, token)
    monitor.start()
    try:
        return _run(settings, claim, monitor, registry, celery)
    finally:
        monitor.stop()


def _fail_timeout(settings: Settings, job_id: str, token: str, celery: Celery) -> str:
    log.warning("failed code=%s (soft time limit)", TIMEOUT_CODE)
    outcome = _finish_failed(settings, job_id, token, TIMEOUT_CODE,
                             lambda session: job_timeout_message(settings, session, job_id),
                             celery)
    if outcome != "failed":
        log.info("the attempt had already ended (finished, cancelled or taken over): "
                 "nothing written")
    return outcome


def _run(settings: Settings, claim: jobs.Claim, monitor: JobMonitor, registry: Any,
         celery: Celery) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    from diarq.worker.job_media import JobMedia
    from diarq.worker.pipeline import JobCancelled, run_pipeline

    t0 = time.perf_counter()
    try:
        if not claim.audio_path:
            raise DiarqError("the job has no audio (it was deleted); submit it again",
                             code="audio_missing")
        options = parse_options(claim.options)
        check_job_model(options.asr_model, settings.profile)  # also checked at submit
        storage = _storage(settings)
        # before any model work: a storage problem must not look like bad audio. From
        # object storage the audio (and any voice references) is copied to this machine's
        # scratch, deleted after
        with contextlib.ExitStack() as stack:
            path, fetch_s = stack.enter_context(local_audio(
                storage, claim.audio_path, settings, job_id=claim.job_id,
                sha256=claim.audio_sha256, size=claim.audio_bytes))
            if fetch_s:
                log.info("audio downloaded seconds=%.3f bytes=%s", fetch_s, claim.audio_bytes)
            references = [_reference(stack, storage, settings, claim.job_id, i)
                          for i in range(len(options.speaker_references or []))]
            # the web page's waveform and playback copy, made from the same local copy
            media = stack.enter_context(JobMedia(storage, settings, path, claim.job_id))
            result = run_pipeline(path, options, registry=registry,
                                  progress=monitor.progress,
                                  should_cancel=monitor.should_cancel, job_id=claim.job_id,
                                  audio_name=claim.audio_filename or "the upload",
                                  references=references, on_audio=media.on_audio)
            # inside the block: ffmpeg may still be reading the local copy
            files = media.finish()
    except JobCancelled:
        log.info("cancelled while running")
        return "canceled"
    except SoftTimeLimitExceeded:
        raise  # execute_job fails the job with `timeout`, wherever the limit hit
    except DiarqError as exc:
        log.warning("failed code=%s message=%s", exc.code, redact(exc.message))
        return _finish_failed(settings, claim.job_id, claim.token, exc.code,
                              redact(exc.message), celery)
    except Exception:
        log.exception("internal error")
        return _finish_failed(settings, claim.job_id, claim.token, "internal_error",
                              INTERNAL_MESSAGE, celery)
    data = result.to_dict()
    data["job_id"] = claim.job_id
    if fetch_s:
        data.setdefault("timings", {})["download"] = round(fetch_s, 3)

    def _succeed() -> bool:
        with session_scope(settings) as session:
            return jobs.succeed(session, claim.job_id, claim.token, data,
                                voices=result.voices if settings.keep_voices else None,
                                media=files)

    stored = with_db_retry(_succeed, "result write")
    if not stored:  # cancelled, deleted or taken over meanwhile: the files are no one's
        media.discard(files)
    log.info("finished outcome=%s seconds=%.3f", "succeeded" if stored else "lost",
             time.perf_counter() - t0)
    if stored:
        notify_terminal(celery, settings, claim.job_id)
    return "succeeded" if stored else "lost"


def _reference(stack: contextlib.ExitStack, storage: Any, settings: Settings, job_id: str,
               index: int) -> Path:
    """A local copy of the job's voice reference ``index`` (deleted with ``stack``)."""
    try:
        path, _seconds = stack.enter_context(local_audio(
            storage, reference_key(job_id, index), settings, job_id=f"{job_id}-ref{index}"))
    except DiarqError as exc:
        if exc.code != "audio_missing":
            raise
        raise DiarqError("a voice reference of this job is missing in storage; check that "
                         "API and workers share the same storage, then submit the request "
                         "again", code="reference_missing") from None
    return path


def _finish_failed(settings: Settings, job_id: str, token: str, code: str,
                   message: str | Callable[[Session], str], celery: Celery) -> str:
    """running -> failed if this attempt (``token``) still owns the job; ``message`` may
    be read from the row in the same session."""
    def _fail() -> bool:
        with session_scope(settings) as session:
            text = message if isinstance(message, str) else message(session)
            return jobs.fail(session, job_id, token, code, text)

    stored = with_db_retry(_fail, "failure write")
    if stored:
        notify_terminal(celery, settings, job_id)  # never blocks or fails the job
    return "failed" if stored else "lost"

"""Celery tasks (thin) and worker life-cycle hooks.

Start with ``diarq worker`` (or ``celery -A diarq.worker.tasks worker``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket

from celery import platforms, signals
from celery.exceptions import Reject

from diarq.shared import jobs
from diarq.shared.celery_app import TASK_NAME, WEBHOOK_TASK, make_celery
from diarq.shared.db import session_scope
from diarq.shared.errors import DiarqError
from diarq.shared.logging import setup_logging
from diarq.shared.redact import redact
from diarq.shared.webhook_queue import notify_terminal
from diarq.worker.execution import TIMEOUT_CODE, WorkerUnusable, execute_job, job_timeout_message
from diarq.worker.presence import Presence, report
from diarq.worker.reaper import Reaper
from diarq.worker.webhook_delivery import deliver

log = logging.getLogger(__name__)
# the worker's app: `diarq worker` runs it, `celery -A diarq.worker.tasks` finds it
app = make_celery()
settings = app.conf.diarq_settings

# per process, set after fork
_registry = None
_startup_error: DiarqError | None = None
_reaper: Reaper | None = None
_worker_host: str | None = None  # main process: the Celery node name (rows: "host:pid")
_presence: Presence | None = None  # main process: this worker's row in `workers`

# a pool process whose models did not load sends this to the main process, which then
# stops consuming (warm shutdown: running jobs of healthy siblings finish, reserved
# messages go back to the broker) and exits with EXIT_MODELS_FAILED
STOP_SIGNAL = "SIGUSR2"
EXIT_MODELS_FAILED = os.EX_CONFIG  # 78: configuration error (sysexits.h)


@signals.setup_logging.connect
def _setup_logging(loglevel: object = None, **_: object) -> None:
    """Our key=value format with job_id instead of Celery's (connecting this stops
    Celery from configuring logging itself). ``--loglevel`` wins over DIARQ_LOG_LEVEL."""
    import logging as _logging

    level = _logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    setup_logging(str(level or settings.log_level), settings.log_format)


class _RejectWithoutTraceback(logging.Filter):
    """Celery logs a handed-back delivery (Reject) with a traceback of our own raise; the
    worker's one line saying why is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], Reject):
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("celery.app.trace").addFilter(_RejectWithoutTraceback())


@signals.worker_init.connect
def _install_stop_handler(**_: object) -> None:
    """Main process, before the pool forks: STOP_SIGNAL means "a pool process cannot
    run jobs": stop consuming and exit non-zero (an orchestrator sees a failed worker)."""

    def _stop(*_: object) -> None:
        from celery.worker import state

        state.should_stop = EXIT_MODELS_FAILED

    platforms.signals[STOP_SIGNAL] = _stop


@signals.worker_init.connect
def _register(sender: object = None, **_: object) -> None:
    """Main process, before the pool forks: the worker's row (``starting``), and the pipe
    through which its pool processes report their model load (worker/presence.py)."""
    global _presence
    queues = sorted(getattr(getattr(sender, "app", app).amqp.queues, "consume_from", None)
                    or [settings.worker_queues])
    _presence = Presence(settings, name=str(getattr(sender, "hostname", None)
                                            or socket.gethostname()),
                         queues=queues, concurrency=int(getattr(sender, "concurrency", 1) or 1))
    _presence.register()


@signals.worker_process_init.connect
def _load_models(**_: object) -> None:
    """Each pool process loads its models once, after fork (never in the parent).

    If that fails, the process must not fail the jobs it takes (a healthy worker can run
    them): it logs one redacted line saying what to fix, asks the main process to stop
    consuming, and hands every delivery it still gets back to the broker unclaimed.
    """
    global _registry, _startup_error
    if settings.bench_trivial_pipeline_s is not None:
        log.warning("bench-trivial pipeline: no models loaded, results are empty")
        _report({"ok": True, "models": {"bench_trivial": True}, "device": "cpu"})
        return
    from diarq.worker.registry import get_registry

    try:
        _registry = get_registry(settings)
        _registry.warm_up()
        _report({"ok": True, "device": _registry.device,
                 "models": {"diarization": _registry.diarizer().describe(),
                            "asr": _registry.asr().describe()}})
        return
    except DiarqError as exc:
        _startup_error = exc
    except Exception as exc:  # a broken install: same treatment, generic message
        log.debug("model load failure", exc_info=True)
        _startup_error = DiarqError(
            f"the worker could not load its models ({type(exc).__name__}; the traceback "
            "is logged at DEBUG); run `diarq doctor` on the worker machine (offline "
            "profile: `diarq models prepare`)",
            code="model_load_failed",
        )
    log.error("worker stopping: models could not be loaded code=%s message=%s; its jobs "
              "stay queued for a healthy worker; fix the configuration and start it again "
              "(exit %d)", _startup_error.code, redact(_startup_error.message),
              EXIT_MODELS_FAILED)
    # the main process records why in the worker's row before it exits
    _report({"ok": False, "code": _startup_error.code, "message": _startup_error.message})
    os.kill(os.getppid(), getattr(signal, STOP_SIGNAL))


def _report(payload: dict) -> None:
    if _presence is not None:  # inherited from the main process at fork
        report(_presence.write_fd, payload)


@signals.worker_ready.connect
def _start_reaper(sender: object = None, **_: object) -> None:
    global _reaper, _worker_host
    _worker_host = getattr(sender, "hostname", None)
    if _presence is not None:  # after the fork: no thread of ours is copied into the pool
        _presence.start()
    # scratch copies of recordings left by a worker of this machine that was killed
    from diarq.worker.scratch import scratch_audio_dir, sweep

    sweep(scratch_audio_dir(settings))
    if os.environ.get("DIARQ_REAPER", "on") == "off":
        return
    _reaper = Reaper(app, settings)
    _reaper.start()


@signals.worker_shutdown.connect
def _stop_reaper(sender: object = None, **_: object) -> None:
    if _reaper is not None:
        _reaper.stop()
    if _presence is not None:
        _presence.stop(getattr(sender, "exitcode", None))


@signals.task_failure.connect
def _hard_time_limit(sender: object = None, task_id: str | None = None,
                     exception: BaseException | None = None, args: object = None,
                     **_: object) -> None:
    """The hard time limit killed the pool process (the soft limit did not stop the job,
    e.g. stuck in native code): Celery replaces the process and calls this in the main
    process. Fail the row with ``timeout`` now instead of leaving it ``running`` until
    the reaper retries a job that will time out again."""
    from billiard.exceptions import TimeLimitExceeded

    if getattr(sender, "name", None) != TASK_NAME or not isinstance(exception, TimeLimitExceeded):
        return
    job_id = str(list(args or [""])[0])
    host = _worker_host or socket.gethostname()
    try:
        with session_scope(settings) as session:
            failed = jobs.fail_running(session, job_id, host, TIMEOUT_CODE,
                                       job_timeout_message(settings, session, job_id))
    except Exception:  # the reaper still catches the row through its stale heartbeat
        log.exception("could not fail timed-out job job_id=%s", job_id)
        return
    log.warning("hard time limit: pool process killed job_id=%s failed=%s code=%s",
                job_id, failed, TIMEOUT_CODE)
    if failed:
        notify_terminal(app, settings, job_id)


@app.task(name=TASK_NAME, bind=True)
def process_job(self, job_id: str) -> str:  # noqa: ANN001 (celery task self)
    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    try:
        return execute_job(job_id, settings=settings, worker_name=worker, registry=_registry,
                           startup_error=_startup_error, celery=app)
    except WorkerUnusable as exc:
        # acks_late: the message is put back on the broker (not acknowledged, not failed)
        raise Reject(exc.error.code, requeue=True) from None


@app.task(name=WEBHOOK_TASK)
def deliver_webhook(kind: str, target_id: str, event: str, attempt: int = 1) -> str:
    """One attempt of one webhook; the next one is scheduled by ``deliver`` itself."""
    return deliver(app, settings, kind, target_id, event, attempt)

"""Celery tasks (thin) and worker life-cycle hooks.

Start with ``diarq worker`` (or ``celery -A worker.tasks worker``).
"""

from __future__ import annotations

import logging
import os
import socket

from celery import signals

from shared.errors import DiarqError
from shared.logging import setup_logging
from worker.celery_app import TASK_NAME, app
from worker.execution import execute_job
from worker.reaper import Reaper

log = logging.getLogger(__name__)
settings = app.conf.diarq_settings

# per process, set after fork
_registry = None
_startup_error: DiarqError | None = None
_reaper: Reaper | None = None


@signals.setup_logging.connect
def _setup_logging(loglevel: object = None, **_: object) -> None:
    """Our key=value format with job_id instead of Celery's (connecting this stops
    Celery from configuring logging itself). ``--loglevel`` wins over DIARQ_LOG_LEVEL."""
    import logging as _logging

    level = _logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    setup_logging(str(level or settings.log_level))


@signals.worker_process_init.connect
def _load_models(**_: object) -> None:
    """Each pool process loads its models once, after fork (never in the parent)."""
    global _registry, _startup_error
    if settings.bench_trivial_pipeline_s is not None:
        log.warning("bench-trivial pipeline: no models loaded, results are empty")
        return
    from worker.registry import get_registry

    try:
        _registry = get_registry(settings)
        _registry.warm_up()
    except DiarqError as exc:
        # keep the process alive (a crash would only make Celery respawn it in a loop);
        # every job it takes fails fast with this actionable code instead
        _startup_error = exc
        log.error("models could not be loaded code=%s message=%s", exc.code, exc.message)
    except Exception as exc:  # a broken install: same treatment, generic message
        log.exception("models could not be loaded code=model_load_failed")
        _startup_error = DiarqError(
            f"the worker could not load its models ({type(exc).__name__}); run `diarq doctor` "
            "on the worker machine (offline profile: `diarq models prepare`)",
            code="model_load_failed",
        )


@signals.worker_ready.connect
def _start_reaper(**_: object) -> None:
    global _reaper
    if os.environ.get("DIARQ_REAPER", "on") == "off":
        return
    _reaper = Reaper(app, settings)
    _reaper.start()


@signals.worker_shutdown.connect
def _stop_reaper(**_: object) -> None:
    if _reaper is not None:
        _reaper.stop()


@app.task(name=TASK_NAME, bind=True)
def process_job(self, job_id: str) -> str:  # noqa: ANN001 (celery task self)
    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    return execute_job(job_id, settings=settings, worker_name=worker, registry=_registry,
                       startup_error=_startup_error)

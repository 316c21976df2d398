"""Queueing the webhooks a terminal job is due: the job's own, and its batch's when it
was the batch's last active job. The API (dedupe copies, deletes) and the worker (jobs
that end) both call this; delivery itself is diarq.worker.webhook_delivery's task."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from sqlalchemy import exists, update

from diarq.shared.celery_app import enqueue_webhook
from diarq.shared.db import session_scope
from diarq.shared.orm import ACTIVE, Batch, Job, utcnow
from diarq.shared.settings import Settings

log = logging.getLogger(__name__)
TERMINAL_EVENTS = {"succeeded": "job.succeeded", "failed": "job.failed",
                   "canceled": "job.canceled"}
BATCH_EVENT = "batch.finished"


def notify_terminal(app: Celery, settings: Settings, job_id: str) -> None:
    """Queue the webhooks due now that ``job_id`` is terminal: its own, and its batch's
    when it was the batch's last active job. Never raises."""
    try:
        due: list[tuple[str, str, str]] = []
        with session_scope(settings) as session:
            job = session.get(Job, job_id)
            if job is None or job.status not in TERMINAL_EVENTS:
                return
            if job.webhook_url:
                due.append(("job", job.id, TERMINAL_EVENTS[job.status]))
            if job.batch_id and _close_batch(session, job.batch_id):
                due.append(("batch", job.batch_id, BATCH_EVENT))
        for kind, target_id, event in due:
            enqueue_webhook(app, kind, target_id, event)
    except Exception:
        log.warning("could not queue webhook job_id=%s", job_id, exc_info=True)


def _close_batch(session: Any, batch_id: str) -> bool:
    """True for exactly one caller: the one that marks a webhook batch finished once none
    of its jobs is active (each caller runs after its own job's commit, so the last one
    sees every job terminal)."""
    active = exists().where(Job.batch_id == batch_id, Job.status.in_(ACTIVE))
    res = session.execute(update(Batch)
                          .where(Batch.id == batch_id, Batch.webhook_url.is_not(None),
                                 Batch.finished_at.is_(None), ~active)
                          .values(finished_at=utcnow())
                          .execution_options(synchronize_session=False))
    return res.rowcount == 1

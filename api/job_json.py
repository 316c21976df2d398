"""Jobs as the API answers them: the shared serializer plus what depends on the caller
(worker names for operators only) and on the moment (why a queued job waits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from diarq.api.auth import is_operator
from diarq.shared.orm import Job
from diarq.shared.serialize import job_to_dict
from diarq.shared.workers import waiting_for


def jobs_json(session: Session, rows: Sequence[Job]) -> list[dict[str, Any]]:
    """``rows`` as JSON, each queued one with its ``waiting`` (workers read once)."""
    settings = current_app.extensions["diarq"].settings
    waiting = waiting_for(session, rows, stale_after_s=settings.stale_after_s)
    show = is_operator()
    return [job_to_dict(job, waiting=waiting.get(job.id), show_worker=show) for job in rows]


def job_json(session: Session, job: Job) -> dict[str, Any]:
    return jobs_json(session, [job])[0]

"""Job and batch rows -> the JSON the API returns and webhooks send (one serializer for
both; internal fields such as paths stay inside). No Flask: the worker uses it too."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import object_session

from diarq.shared.jobs import as_utc
from diarq.shared.orm import ACTIVE, QUEUED, STATUSES, SUCCEEDED, Batch, Job, WebhookDelivery

PRIORITY_NAMES = {0: "high", 5: "normal", 9: "low"}
STAGES = ("decode", "diarize", "transcribe", "align", "assign")


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def opaque_name(name: str) -> str:
    """A stable label for a worker (or ``name:pid``) that does not show its host."""
    return "w-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def job_to_dict(job: Job, *, waiting: dict[str, Any] | None = None,
                show_worker: bool = True) -> dict[str, Any]:
    """``waiting``: why a queued job waits (shared/workers.waiting_for); ``show_worker``:
    the worker's name and host (operators), else an opaque label for it."""
    error = None
    if job.error_code:
        error = {"code": job.error_code, "message": job.error_message or ""}
    return {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": round(job.progress or 0.0, 4),
        "options": job.options or {},
        "queue": job.queue,
        "priority": PRIORITY_NAMES.get(job.priority, str(job.priority)),
        "audio": {
            "filename": job.audio_filename,
            "duration": job.audio_duration,
            "sha256": job.audio_sha256,
            "bytes": job.audio_bytes,
            "codec": job.audio_codec,
            "sample_rate": job.audio_sample_rate,
            "channels": job.audio_channels,
            # retention (DIARQ_RETENTION_DAYS) deleted the recording at this time
            "purged_at": iso(job.audio_purged_at),
        },
        "attempts": job.attempts,
        "worker": job.worker if show_worker or not job.worker else opaque_name(job.worker),
        "error": error,
        "waiting": waiting if job.status == QUEUED else None,
        "deleted": job.deleted_at is not None,
        "batch_id": job.batch_id,
        "source_name": job.source_name,
        # dedupe hit: the job whose result this job reuses (no pipeline run of its own)
        "deduplicated_from": job.result_job_id,
        "webhook": webhook_to_dict(job.webhook_url, object_session(job), job_id=job.id),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "updated_at": iso(job.updated_at),
        "links": {"self": f"/v1/jobs/{job.id}", "result": f"/v1/jobs/{job.id}/result",
                  "audio": f"/v1/jobs/{job.id}/audio",
                  "waveform": f"/v1/jobs/{job.id}/waveform",
                  "speakers": f"/v1/jobs/{job.id}/speakers"},
    }


def webhook_to_dict(url: str | None, session: Any, *, job_id: str | None = None,
                    batch_id: str | None = None) -> dict[str, Any] | None:
    """``{"url", "deliveries": [...]}`` (the delivery log, oldest first), None without a
    webhook; without a session (a detached row) the log is left empty."""
    if not url:
        return None
    deliveries: list[dict[str, Any]] = []
    if session is not None:
        col = WebhookDelivery.job_id if job_id else WebhookDelivery.batch_id
        rows = session.execute(select(WebhookDelivery).where(col == (job_id or batch_id))
                               .order_by(WebhookDelivery.id)).scalars()
        deliveries = [{"event": r.event, "attempt": r.attempt, "status_code": r.status_code,
                       "error": r.error, "at": iso(r.created_at),
                       "next_attempt_at": iso(r.next_attempt_at)} for r in rows]
    return {"url": url, "deliveries": deliveries}


def overall_progress(job: dict[str, Any]) -> float:
    """0..1 across the stages (each stage counted equally) of a job as the API shows it."""
    if job["status"] == "succeeded":
        return 1.0
    stage = job.get("stage")
    if stage not in STAGES:
        return 0.0
    return (STAGES.index(stage) + float(job.get("progress") or 0.0)) / len(STAGES)


def _job_progress(job: Job) -> float:
    if job.status != SUCCEEDED and job.status not in ACTIVE:
        return 1.0  # failed or canceled: finished, nothing left to wait for
    return overall_progress({"status": job.status, "stage": job.stage,
                             "progress": job.progress})


def batch_to_dict(session, batch: Batch) -> dict[str, Any]:  # noqa: ANN001
    rows = list(session.scalars(select(Job).where(Job.batch_id == batch.id)
                                .order_by(Job.source_name, Job.id)))
    counts = dict.fromkeys(STATUSES, 0)
    weighted = total = 0.0
    for job in rows:
        counts[job.status] = counts.get(job.status, 0) + 1
        # weighted by audio duration: a 2 h recording counts 2 h, a 1 min one 1 min
        weight = job.audio_duration or 1.0
        weighted += weight * _job_progress(job)
        total += weight
    finished = all(job.status not in ACTIVE for job in rows)
    finished_at = max((job.finished_at for job in rows if job.finished_at), default=None)
    return {
        "id": batch.id,
        "finished": finished,
        "progress": round(weighted / total, 4) if total else 1.0,
        "counts": counts,
        "options": batch.options or {},
        "rejected": batch.rejected or [],
        "webhook": webhook_to_dict(batch.webhook_url, session, batch_id=batch.id),
        "jobs": [{
            "id": job.id,
            "source_name": job.source_name,
            "status": job.status,
            "progress": round(_job_progress(job), 4),
            "duration": job.audio_duration,
            "deduplicated_from": job.result_job_id,
            "error": ({"code": job.error_code, "message": job.error_message or ""}
                      if job.error_code else None),
        } for job in rows],
        "created_at": iso(batch.created_at),
        "finished_at": iso(finished_at) if finished else None,
        "links": batch_links(batch.id),
    }


def batch_links(batch_id: str) -> dict[str, str]:
    return {"self": f"/v1/batches/{batch_id}",
            "results": f"/v1/batches/{batch_id}/results.zip",
            "jobs": f"/v1/jobs?batch_id={batch_id}"}

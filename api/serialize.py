"""Job rows -> the JSON the API returns (internal fields such as paths stay inside)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import object_session

from shared.jobs import as_utc
from shared.models import Job, WebhookDelivery

PRIORITY_NAMES = {0: "high", 5: "normal", 9: "low"}


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def job_to_dict(job: Job) -> dict[str, Any]:
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
        },
        "attempts": job.attempts,
        "worker": job.worker,
        "error": error,
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
        "links": {"self": f"/v1/jobs/{job.id}", "result": f"/v1/jobs/{job.id}/result"},
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

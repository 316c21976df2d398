"""Job rows -> the JSON the API returns (internal fields such as paths stay inside)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.jobs import as_utc
from shared.models import Job


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
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "updated_at": iso(job.updated_at),
        "links": {"self": f"/v1/jobs/{job.id}", "result": f"/v1/jobs/{job.id}/result"},
    }

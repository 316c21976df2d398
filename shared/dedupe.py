"""Result reuse: the same audio, the same options and the same owner give the same result,
so a finished result is reused instead of running the pipeline again.

A dedupe hit is a new job row, ``succeeded`` at once, whose ``result_job_id`` names the
job that owns the result row. Reads go through :func:`result_data`. Deleting the owner
copies its result row to every job that reuses it first (:func:`detach_copies`), so a
copy never loses its result; copies always point at a job that owns a row (never at
another copy), so there are no chains to follow.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from diarq.shared.options import JobOptions
from diarq.shared.orm import ACTIVE, SUCCEEDED, Job, JobResult, utcnow
from diarq.shared.speakers import apply_names
from diarq.shared.voices import copy_voices


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def options_sha256(options: JobOptions) -> str:
    """Hash of the parsed options (defaults included, so `diarize=true` equals absent)."""
    return hashlib.sha256(canonical_json(options.fingerprint()).encode()).hexdigest()


def find_reusable(session: Session, *, api_key_id: int | None, audio_sha256: str,
                  options_hash: str) -> Job | None:
    """The oldest succeeded, not deleted job of the same owner with the same audio and
    options that owns its result row (never a copy, which would make chains).

    The row is share-locked until the caller's transaction ends (PostgreSQL ``FOR SHARE``,
    so concurrent submits reusing it, or batches reusing several, never wait on each
    other; SQLite has one writer at a time anyway): a DELETE of that job, which locks it
    exclusively (:func:`lock_for_delete`), either runs first (then this finds it deleted)
    or waits for the copy to be committed and gives the copy its own result row."""
    owner = Job.api_key_id.is_(None) if api_key_id is None else Job.api_key_id == api_key_id
    return session.scalars(
        select(Job)
        .join(JobResult, JobResult.job_id == Job.id)
        .where(owner, Job.audio_sha256 == audio_sha256, Job.options_sha256 == options_hash,
               Job.status == SUCCEEDED, Job.deleted_at.is_(None))
        .order_by(Job.finished_at, Job.id)
        .limit(1)
        .with_for_update(read=True, of=Job)
    ).first()


def find_active(session: Session, *, api_key_id: int | None, audio_sha256: str,
                options_hash: str) -> Job | None:
    """The newest queued or running, not deleted job of the same owner with the same
    audio and options: a retried synchronous request waits for it instead of starting
    the same work again (POST /v1/audio/transcriptions)."""
    owner = Job.api_key_id.is_(None) if api_key_id is None else Job.api_key_id == api_key_id
    return session.scalars(
        select(Job)
        .where(owner, Job.audio_sha256 == audio_sha256, Job.options_sha256 == options_hash,
               Job.status.in_(ACTIVE), Job.deleted_at.is_(None))
        .order_by(Job.created_at.desc(), Job.id)
        .limit(1)
    ).first()


def share_files(job: Job, original: Job) -> bool:
    """A dedupe copy serves the audio, playback copy and waveform of the job it reuses
    (the same bytes, by audio_sha256), so its own upload need not be kept: returns
    whether it shares them. An original whose audio is gone or going (retention) shares
    nothing: the copy keeps its own upload then (and has no waveform)."""
    if not original.audio_path or original.audio_purged_at is not None:
        return False
    job.audio_path = original.audio_path
    job.playback_path, job.playback_type = original.playback_path, original.playback_type
    job.waveform_path = original.waveform_path
    return True


def lock_for_delete(session: Session, job_id: str) -> Job | None:
    """The job row, locked until the caller commits: taken before :func:`detach_copies`
    so that a dedupe submit reusing this job (:func:`find_reusable`) cannot add a copy
    between the copying and the delete."""
    return session.get(Job, job_id, with_for_update=True, populate_existing=True)


def result_data(session: Session, job: Job) -> dict[str, Any] | None:
    """The job's result: its own row, else the row of the job it reuses. ``job_id`` in
    the data is the asked-for job, whichever row it came from, and the speaker names are
    this job's own (shared/speakers.py)."""
    row = session.get(JobResult, job.id)
    if row is None and job.result_job_id:
        row = session.get(JobResult, job.result_job_id)
    if row is None:
        return None
    return apply_names({**row.data, "job_id": job.id}, job.speaker_names)


def detach_copies(session: Session, job_id: str) -> int:
    """Before ``job_id``'s result is deleted: give each job reusing it its own copy of
    the row (``result_job_id`` stays, as the record of where it came from). Returns how
    many rows were copied; the caller commits."""
    source = session.get(JobResult, job_id)
    if source is None:
        return 0
    copies = session.scalars(
        select(Job.id).where(Job.result_job_id == job_id)
        .where(~select(JobResult.job_id).where(JobResult.job_id == Job.id).exists())
    ).all()
    for copy_id in copies:
        session.add(JobResult(job_id=copy_id, data=dict(source.data), created_at=utcnow()))
        copy_voices(session, job_id, copy_id)
    session.flush()
    return len(copies)

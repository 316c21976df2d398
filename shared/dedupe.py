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
from diarq.shared.orm import SUCCEEDED, Job, JobResult, utcnow
from diarq.shared.speakers import apply_names


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def options_sha256(options: JobOptions) -> str:
    """Hash of the parsed options (defaults included, so `diarize=true` equals absent)."""
    return hashlib.sha256(canonical_json(options.model_dump(mode="json")).encode()).hexdigest()


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


def share_files(job: Job, original: Job) -> None:
    """A dedupe copy serves the audio, playback copy and waveform of the job it reuses
    (the same bytes, by audio_sha256): its own upload is not kept."""
    if original.audio_path:
        job.audio_path = original.audio_path
    job.playback_path, job.playback_type = original.playback_path, original.playback_type
    job.waveform_path = original.waveform_path


def _files(job: Job) -> set[str]:
    return {p for p in (job.audio_path, job.playback_path, job.waveform_path) if p}


def files_to_delete(session: Session, job_id: str) -> list[str]:
    """Before deleting ``job_id``: the storage files of it that no other live job names
    (dedupe copies share them). Locks the job and those sharing a file with it, all in
    one statement in id order, so two deletes of sharers wait for each other (the second
    then sees the first deleted) instead of deadlocking or both keeping the files."""
    job = session.get(Job, job_id)
    files = _files(job) if job is not None else set()
    if not files:
        return []
    names = list(files)
    group = session.scalars(
        select(Job).where(Job.deleted_at.is_(None),
                          Job.audio_path.in_(names) | Job.playback_path.in_(names)
                          | Job.waveform_path.in_(names))
        .order_by(Job.id).with_for_update(of=Job).execution_options(populate_existing=True)
    ).all()
    kept = set().union(*(_files(other) for other in group if other.id != job_id))
    return sorted(files - kept)


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
    session.flush()
    return len(copies)

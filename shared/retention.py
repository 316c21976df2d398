"""What the reaper deletes from storage, and when (the database side of it).

- Deleted jobs whose objects are still in storage (the API deletes them right after the
  commit; this catches a store that was down then, or an API that died in between).
- ``DIARQ_RETENTION_DAYS``: the audio of jobs finished more than N days ago; with
  ``DIARQ_RETENTION_RESULTS=true`` their results too (a privacy feature, SECURITY.md).
- Direct uploads never used by a job, once they can no longer become one.

Each function returns work for the caller (ids and keys); what of a job's objects may
go is planned in a short transaction (:func:`release_deleted`, :func:`release_expired`:
dedupe copies may still name them, shared/job_files.py), the storage deletes happen
outside any transaction, then :func:`forget_audio` records them with a compare-and-set
on ``audio_path``, so two reapers never count one deletion twice and a row whose audio
changed in between is left alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from diarq.shared.dedupe import detach_copies
from diarq.shared.job_files import Release, plan_release
from diarq.shared.jobs import as_utc
from diarq.shared.orm import CANCELED, FAILED, SUCCEEDED, Job, JobResult, Upload, utcnow

FINISHED = (SUCCEEDED, FAILED, CANCELED)
BATCH = 200  # rows per reaper pass and kind: a pass stays short whatever the backlog
# after its presigned URL expires, a direct upload can still become a job for this long
UPLOAD_USE_WINDOW_S = 3600


def deleted_with_audio(session: Session) -> list[tuple[str, str]]:
    """(job id, audio key) of deleted jobs that still name their audio."""
    return [(r.id, r.audio_path) for r in session.execute(
        select(Job.id, Job.audio_path)
        .where(Job.deleted_at.is_not(None), Job.audio_path.is_not(None))
        .limit(BATCH))]


def audio_past_retention(session: Session, cutoff: datetime) -> list[tuple[str, str]]:
    """(job id, audio key) of jobs finished before ``cutoff`` that still have audio."""
    return [(r.id, r.audio_path) for r in session.execute(
        select(Job.id, Job.audio_path)
        .where(Job.status.in_(FINISHED), Job.finished_at < cutoff,
               Job.deleted_at.is_(None), Job.audio_path.is_not(None))
        .order_by(Job.finished_at).limit(BATCH))]


def release_deleted(session: Session, job_id: str) -> Release | None:
    """What to delete of a deleted job that still names its objects (None: nothing
    now); commits."""
    job = session.get(Job, job_id, populate_existing=True)
    release = None
    if job is not None and job.deleted_at is not None and job.audio_path is not None:
        release = plan_release(session, job)
    session.commit()
    return release


def release_expired(session: Session, job_id: str, cutoff: datetime) -> Release | None:
    """What to delete of a job whose audio is past retention, marked purged in the same
    transaction: from then on it keeps no object alive for a dedupe copy (which keeps
    what it names for its own retention period). None when the row changed; commits."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    release = None
    finished = as_utc(job.finished_at) if job is not None else None
    if (job is not None and job.deleted_at is None and job.audio_path is not None
            and job.status in FINISHED and finished is not None and finished < cutoff):
        release = plan_release(session, job)
        job.audio_purged_at = utcnow()
    session.commit()
    return release


def forget_audio(session: Session, job_id: str, audio_path: str, *, purged: bool) -> bool:
    """The job's objects are released (deleted, or left to the dedupe copies still
    naming them: shared/job_files.py): clear ``audio_path`` and the playback copy and
    waveform with it (and, for retention, record when); False when the row changed
    meanwhile."""
    now = utcnow()
    values: dict[str, object] = {"audio_path": None, "playback_path": None,
                                 "playback_type": None, "waveform_path": None,
                                 "updated_at": now}
    if purged:
        values["audio_purged_at"] = now
    res = session.execute(update(Job).where(Job.id == job_id, Job.audio_path == audio_path)
                          .values(**values).execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def purge_results(session: Session, cutoff: datetime) -> list[str]:
    """Delete the results of jobs finished before ``cutoff`` (one transaction per job).
    A newer job reusing one of them (dedupe) gets its own copy first, so it keeps its
    result for its own retention period."""
    ids = list(session.scalars(
        select(Job.id).where(Job.status == SUCCEEDED, Job.finished_at < cutoff,
                             Job.deleted_at.is_(None), Job.result_purged_at.is_(None))
        .order_by(Job.finished_at).limit(BATCH)))
    session.commit()
    done = []
    for job_id in ids:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.result_purged_at is not None:
            session.commit()
            continue
        detach_copies(session, job_id)
        session.execute(delete(JobResult).where(JobResult.job_id == job_id))
        job.result_purged_at = utcnow()
        session.commit()
        done.append(job_id)
    return done


def unused_uploads(session: Session, *, now: datetime,
                   use_window_s: float) -> list[tuple[str, str]]:
    """(upload id, object key) of direct uploads no job used and none can use now."""
    return [(r.id, r.object_key) for r in session.execute(
        select(Upload.id, Upload.object_key)
        .where(Upload.job_id.is_(None),
               Upload.expires_at < now - timedelta(seconds=use_window_s))
        .limit(BATCH))]


def forget_upload(session: Session, upload_id: str) -> bool:
    """Drop an unused upload's row (its object was deleted); never one a job took."""
    res = session.execute(delete(Upload).where(Upload.id == upload_id, Upload.job_id.is_(None))
                          .execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1

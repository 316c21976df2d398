"""Which stored objects go when a job's files are released (a delete, retention), when
dedupe copies share them.

A job names up to three objects: its audio (``audio_path``), its playback copy
(``playback_path``) and its waveform peaks (``waveform_path``); the last two, and its
voice references, live under its prefix ``jobs/<id>/``. A dedupe copy names the objects
of the job it reuses (shared/dedupe.py ``share_files``). So an object is deleted only
with the last *live* job naming it (not deleted, audio not purged), and a job's prefix
as a whole only once no live job names anything under it; until then only the
unshared parts go (its voice references, its own unshared objects).

The plan is made in the transaction that marks the job released (``deleted_at`` for a
delete, ``audio_purged_at`` for retention), with the job and every live job naming one
of its objects locked in one statement in id order: two releases of sharers wait for
each other, and the second sees the first released, instead of both keeping an object
(or deadlocking). The objects are deleted after the commit (:func:`delete_objects`),
then the row stops naming them (shared/retention.py ``forget_audio``); a store that is
down in between leaves the row naming them, and the reaper makes a new plan later.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from diarq.shared.orm import Job
from diarq.shared.storage import JOBS_PREFIX, Storage, job_prefix, references_prefix

_COLUMNS = (Job.audio_path, Job.playback_path, Job.waveform_path)


@dataclass(frozen=True)
class Release:
    """What to delete from storage for one job, and what its row named (the
    compare-and-set of forgetting it)."""

    job_id: str
    audio_path: str | None
    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


def named(job: Job) -> set[str]:
    return {k for k in (job.audio_path, job.playback_path, job.waveform_path) if k}


def owner_prefix(key: str) -> str | None:
    """``jobs/<id>/`` of an object under a job's prefix, else None (audio, uploads)."""
    if not key.startswith(JOBS_PREFIX):
        return None
    job_id, sep, _rest = key[len(JOBS_PREFIX):].partition("/")
    return job_prefix(job_id) if sep and job_id else None


def plan_release(session: Session, job: Job) -> Release:
    """The objects of ``job`` no other live job needs; call it before marking ``job``
    released, in the same transaction (the caller commits)."""
    while True:
        keys = named(job)
        others = _lock_sharers(session, job, keys)  # refreshes ``job`` when it is live
        if named(job) == keys:  # else its attempt succeeded meanwhile: lock for those too
            break
    kept = set().union(*(named(o) for o in others if o.id != job.id))
    prefixes = {job_prefix(job.id)} | {p for k in keys if (p := owner_prefix(k))}
    whole = tuple(sorted(p for p in prefixes if not any(k.startswith(p) for k in kept)))
    # a prefix kept for a sharer still loses what is only this job's: voice references
    parts = () if job_prefix(job.id) in whole else (references_prefix(job.id),)
    return Release(job.id, job.audio_path,
                   keys=tuple(sorted(k for k in keys - kept
                                     if not any(k.startswith(p) for p in whole))),
                   prefixes=whole + parts)


def _lock_sharers(session: Session, job: Job, keys: set[str]) -> list[Job]:
    """``job`` (when live) and the live jobs naming one of ``keys``, locked in id order.
    Whoever names an object under a prefix of ``keys`` names one of ``keys`` itself:
    copies take their original's whole set at once (share_files), and a job stops naming
    its set only as a whole (forget_audio)."""
    sharing = [c.in_(sorted(keys)) for c in _COLUMNS] if keys else []
    return list(session.scalars(
        select(Job).where(Job.deleted_at.is_(None), Job.audio_purged_at.is_(None),
                          or_(Job.id == job.id, *sharing))
        .order_by(Job.id).with_for_update(of=Job).execution_options(populate_existing=True)
    ))


def delete_objects(storage: Storage, release: Release) -> None:
    """Delete what ``release`` names; StorageUnavailable when the store is down (the
    row still names its objects: the reaper tries again)."""
    for key in release.keys:
        storage.delete(key)
    for prefix in release.prefixes:
        storage.delete_prefix(prefix)

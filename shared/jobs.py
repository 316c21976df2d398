"""Job state machine. Every transition is a conditional UPDATE (compare-and-set), so
a duplicate task delivery, a reaped attempt or a cancelled job never does work twice
or writes a second result.

    queued --claim--> running --succeed--> succeeded
       ^                 |  \\--fail-----> failed
       |                 |   \\-cancel---> canceled  (also from queued)
       +--reaper requeue-+  (stale heartbeat, attempts left)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from diarq.shared.orm import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobResult,
    utcnow,
)
from diarq.shared.redact import redact
from diarq.shared.voices import VoiceSet, delete_voices, store_voices

WORKER_LOST_CODE = "worker_lost"


@dataclass(frozen=True)
class Claim:
    """What a worker needs to run one attempt; read before the session closes."""

    job_id: str
    token: str
    attempt: int
    audio_path: str | None
    audio_duration: float | None
    options: dict[str, Any]
    # the name the user uploaded: messages about the audio say this, never audio_path
    audio_filename: str | None = None
    # taken at upload: a worker copying the audio from object storage checks its copy
    audio_sha256: str | None = None
    audio_bytes: int | None = None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def claim(
    session: Session, job_id: str, *, token: str, worker: str, stale_after_s: float,
    max_attempts: int,
) -> Claim | None:
    """queued (or running with a stale heartbeat) -> running, owned by ``token``.

    Returns None when the delivery must do nothing: the job is running elsewhere,
    finished, cancelled, deleted, unknown, or out of attempts (then it is failed here).
    """
    now = utcnow()
    stale_before = now - timedelta(seconds=stale_after_s)
    claimable = and_(
        Job.id == job_id,
        Job.deleted_at.is_(None),
        or_(Job.status == QUEUED, and_(Job.status == RUNNING, Job.heartbeat_at < stale_before)),
    )
    res = session.execute(
        update(Job)
        .where(claimable, Job.attempts < max_attempts)
        .values(
            status=RUNNING, claim_token=token, worker=worker, attempts=Job.attempts + 1,
            started_at=now, heartbeat_at=now, stage=None, progress=0.0, updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        # still claimable but out of attempts: the job keeps killing workers
        session.execute(
            update(Job)
            .where(claimable, Job.attempts >= max_attempts)
            .values(**_failed_values(now, WORKER_LOST_CODE, _lost_message(max_attempts)))
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return None
    row = session.execute(
        select(Job.attempts, Job.audio_path, Job.audio_duration, Job.options,
               Job.audio_filename, Job.audio_sha256, Job.audio_bytes).where(Job.id == job_id)
    ).one()
    session.commit()
    return Claim(job_id, token, row.attempts, row.audio_path, row.audio_duration,
                 dict(row.options or {}), row.audio_filename, row.audio_sha256,
                 row.audio_bytes)


def _lost_message(max_attempts: int) -> str:
    return (
        f"the job was interrupted {max_attempts} times (its worker stopped answering: crashed, "
        "killed, or out of memory); check the worker logs and memory, then submit it again"
    )


def _failed_values(now: datetime, code: str, message: str) -> dict[str, Any]:
    # every stored error message passes here: no token or API key reaches the jobs table
    return dict(status=FAILED, error_code=code, error_message=redact(message), finished_at=now,
                updated_at=now)


def _owned(job_id: str, token: str):  # noqa: ANN202 (SQL expression)
    return and_(Job.id == job_id, Job.claim_token == token, Job.status == RUNNING)


def heartbeat(session: Session, job_id: str, token: str, *, stage: str | None = None,
              progress: float | None = None) -> bool:
    """Refresh the heartbeat (and progress); False when this attempt no longer owns the job."""
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    if stage is not None:
        values["stage"] = stage
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    res = session.execute(update(Job).where(_owned(job_id, token)).values(**values)
                          .execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


MEDIA_COLUMNS = ("playback_path", "playback_type", "waveform_path")


def succeed(session: Session, job_id: str, token: str, result: dict[str, Any],
            voices: VoiceSet | None = None,
            media: dict[str, str | None] | None = None) -> bool:
    """running -> succeeded and store the result (and the speakers' voices), in one
    transaction; at most once per job. ``media``: the objects the attempt derived from
    the audio (MEDIA_COLUMNS); when this returns False they belong to no job and the
    caller deletes them."""
    now = utcnow()
    extra = {k: v for k, v in (media or {}).items() if k in MEDIA_COLUMNS}
    res = session.execute(
        update(Job).where(_owned(job_id, token))
        .values(status=SUCCEEDED, stage=None, progress=1.0, finished_at=now, updated_at=now,
                error_code=None, error_message=None, **extra)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        session.rollback()
        return False
    _insert_result(session, job_id, result)
    if voices is not None:
        store_voices(session, job_id, voices)
    session.commit()
    return True


def _insert_result(session: Session, job_id: str, data: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(JobResult).values(job_id=job_id, data=data, created_at=utcnow())
    session.execute(stmt.on_conflict_do_nothing(index_elements=["job_id"]))


def fail(session: Session, job_id: str, token: str, code: str, message: str) -> bool:
    res = session.execute(update(Job).where(_owned(job_id, token))
                          .values(**_failed_values(utcnow(), code, message))
                          .execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def fail_running(session: Session, job_id: str, worker_host: str, code: str,
                 message: str) -> bool:
    """running -> failed for an attempt whose pool process is gone (killed at its hard
    time limit), matched by the worker's host name (rows record ``host:pid``) since the
    claim token died with the process."""
    res = session.execute(update(Job)
                          .where(Job.id == job_id, Job.status == RUNNING,
                                 Job.worker.startswith(f"{worker_host}:", autoescape=True))
                          .values(**_failed_values(utcnow(), code, message))
                          .execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def hand_back(session: Session, worker_name: str) -> list[str]:
    """running -> queued for every attempt of the worker ``worker_name`` (rows record
    ``<name>:<pid>``), stopped on purpose before its job finished (`diarq up` stopping):
    the attempt is not counted, since the job did nothing wrong. Returns the ids; the
    caller enqueues them again (a message the broker still holds is a harmless
    duplicate: the claim is a compare-and-set)."""
    now = utcnow()
    mine = and_(Job.status == RUNNING, Job.worker.startswith(f"{worker_name}:", autoescape=True))
    ids = list(session.scalars(select(Job.id).where(mine)))
    taken = []
    for job_id in ids:
        res = session.execute(update(Job).where(mine, Job.id == job_id).values(
            status=QUEUED, claim_token=None, worker=None, stage=None, progress=0.0,
            attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0),
            enqueued_at=now, updated_at=now).execution_options(synchronize_session=False))
        if res.rowcount:
            taken.append(job_id)
    session.commit()
    return taken


def is_cancelled(session: Session, job_id: str, token: str) -> bool:
    """True when this attempt should stop: cancelled, deleted, or taken over by another."""
    row = session.execute(
        select(Job.status, Job.claim_token, Job.deleted_at).where(Job.id == job_id)
    ).one_or_none()
    session.commit()
    return row is None or row.status != RUNNING or row.claim_token != token or \
        row.deleted_at is not None


def cancel_and_delete(session: Session, job_id: str) -> Job | None:
    """Cancel a queued/running job and forget its result; returns the job (None if unknown)."""
    now = utcnow()
    job = session.get(Job, job_id)
    if job is None or job.deleted_at is not None:
        return None
    session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_((QUEUED, RUNNING)))
        .values(status=CANCELED, finished_at=now, updated_at=now, claim_token=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job).where(Job.id == job_id).values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(JobResult).where(JobResult.job_id == job_id))
    delete_voices(session, job_id)  # biometric data goes with the result
    session.commit()
    session.refresh(job)
    return job


def reap_stale_running(session: Session, *, stale_after_s: float,
                       max_attempts: int) -> tuple[list[str], list[str]]:
    """Requeue running jobs whose worker stopped heart-beating; fail those out of attempts.

    Returns (requeued ids, failed ids). The caller enqueues the requeued ones.
    """
    now = utcnow()
    stale_before = now - timedelta(seconds=stale_after_s)
    stale = and_(Job.status == RUNNING, Job.heartbeat_at < stale_before)
    ids = session.execute(select(Job.id, Job.attempts).where(stale)).all()
    requeued, failed = [], []
    for job_id, attempts in ids:
        cond = and_(stale, Job.id == job_id)
        if attempts >= max_attempts:
            res = session.execute(update(Job).where(cond).values(
                **_failed_values(now, WORKER_LOST_CODE, _lost_message(max_attempts)))
                .execution_options(synchronize_session=False))
            if res.rowcount:
                failed.append(job_id)
        else:
            res = session.execute(update(Job).where(cond).values(
                status=QUEUED, claim_token=None, worker=None, stage=None, progress=0.0,
                enqueued_at=now, updated_at=now).execution_options(synchronize_session=False))
            if res.rowcount:
                requeued.append(job_id)
        session.commit()
    return requeued, failed


def reap_old_queued(session: Session, *, older_than_s: float,
                    waiting: Callable[[str], int | None] | None = None,
                    lost_after_s: float | None = None,
                    broker_restarted: bool = False) -> list[str]:
    """Queued rows whose message may be gone: mark re-enqueued, return their ids.

    ``waiting(queue)`` is how many messages the broker holds for a queue (None: it cannot
    say). A broker holding at least one message per queued row of that queue has lost
    nothing: a long backlog (an archive of meetings) is not re-sent every round. Short
    of that, messages are missing, and the oldest rows are re-sent, as many as messages
    are missing, once they are ``lost_after_s`` old (a row younger than that may still
    be on its way to the broker), or at once when the broker was seen restarting
    (``broker_restarted``: a Redis without persistence lost every message). Repeated
    rounds reach the lost ones, since the rows whose messages exist get consumed
    (messages of cancelled jobs count until a worker skips them, so a lost message is
    found once the backlog has drained below the rows, at the latest). When the broker
    cannot count, rows older than ``older_than_s`` are re-sent (a duplicate message is
    harmless: the claim is a compare-and-set)."""
    now = utcnow()
    queued = and_(Job.status == QUEUED, Job.deleted_at.is_(None))
    counts = dict(session.execute(select(Job.queue, func.count()).where(queued)
                                  .group_by(Job.queue)).all())
    ids: list[tuple[str, datetime]] = []
    for queue, rows in sorted(counts.items()):
        held = waiting(queue) if waiting is not None else None
        limit: int | None = None
        horizon = now - timedelta(seconds=older_than_s)
        if held is not None:
            limit = rows - held
            if limit <= 0:
                continue
            if broker_restarted:
                horizon = now
            elif lost_after_s is not None:
                horizon = now - timedelta(seconds=min(lost_after_s, older_than_s))
        found = session.execute(select(Job.id).where(queued, Job.queue == queue,
                                                     Job.enqueued_at < horizon)
                                .order_by(Job.enqueued_at, Job.id).limit(limit)).scalars()
        ids.extend((job_id, horizon) for job_id in found)
    session.commit()
    taken = []
    for job_id, horizon in ids:
        # CAS on enqueued_at: two reapers never both re-enqueue the same row
        res = session.execute(update(Job).where(queued, Job.id == job_id,
                                                Job.enqueued_at < horizon)
                              .values(enqueued_at=now).execution_options(synchronize_session=False))
        if res.rowcount:
            taken.append(job_id)
        session.commit()
    return taken

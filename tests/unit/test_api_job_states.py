"""The job state machine (shared/jobs.py) on SQLite: compare-and-set transitions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from diarq.shared import jobs
from diarq.shared.db import session_scope
from diarq.shared.orm import Job, JobResult, utcnow


def _job(settings, **values) -> str:  # noqa: ANN001
    job_id = str(uuid.uuid4())
    with session_scope(settings) as s:
        s.add(Job(id=job_id, options={}, **{"queue": "cpu", "status": "queued", **values}))
    return job_id


def _claim(settings, job_id: str, token: str | None = None):  # noqa: ANN001, ANN202
    with session_scope(settings) as s:
        return jobs.claim(s, job_id, token=token or str(uuid.uuid4()), worker="w",
                          stale_after_s=60, max_attempts=3)


def _row(settings, job_id: str) -> Job:  # noqa: ANN001
    with session_scope(settings) as s:
        return s.get(Job, job_id)


def test_only_one_claim_wins_and_one_result_is_written(settings) -> None:  # noqa: ANN001
    job_id = _job(settings)
    first = _claim(settings, job_id)
    assert first is not None and first.attempt == 1
    assert _claim(settings, job_id) is None  # duplicate delivery: running, heartbeat fresh
    with session_scope(settings) as s:
        assert jobs.succeed(s, job_id, first.token, {"x": 1})
    with session_scope(settings) as s:
        assert not jobs.succeed(s, job_id, first.token, {"x": 2})  # already succeeded
        assert s.query(JobResult).filter_by(job_id=job_id).one().data == {"x": 1}
    assert _claim(settings, job_id) is None


def test_stale_running_job_is_taken_over_and_old_owner_is_locked_out(settings) -> None:  # noqa: ANN001
    job_id = _job(settings)
    old = _claim(settings, job_id)
    with session_scope(settings) as s:
        s.query(Job).filter_by(id=job_id).update(
            {"heartbeat_at": utcnow() - timedelta(hours=1)})
    new = _claim(settings, job_id)
    assert new is not None and new.attempt == 2
    with session_scope(settings) as s:
        assert not jobs.heartbeat(s, job_id, old.token)
        assert not jobs.fail(s, job_id, old.token, "x", "y")
        assert jobs.is_cancelled(s, job_id, old.token)
        assert not jobs.is_cancelled(s, job_id, new.token)


def test_cancel_stops_a_running_attempt(settings) -> None:  # noqa: ANN001
    job_id = _job(settings)
    claim = _claim(settings, job_id)
    with session_scope(settings) as s:
        jobs.cancel_and_delete(s, job_id)
    with session_scope(settings) as s:
        assert jobs.is_cancelled(s, job_id, claim.token)
        assert not jobs.succeed(s, job_id, claim.token, {})
    row = _row(settings, job_id)
    assert row.status == "canceled" and row.deleted_at is not None
    assert _claim(settings, job_id) is None


def test_reaper_requeues_then_fails_after_max_attempts(settings) -> None:  # noqa: ANN001
    old = utcnow() - timedelta(hours=1)
    retry = _job(settings, status="running", attempts=1, heartbeat_at=old)
    give_up = _job(settings, status="running", attempts=3, heartbeat_at=old)
    fresh = _job(settings, status="running", attempts=1, heartbeat_at=utcnow())
    with session_scope(settings) as s:
        requeued, failed = jobs.reap_stale_running(s, stale_after_s=60, max_attempts=3)
    assert (requeued, failed) == ([retry], [give_up])
    assert _row(settings, retry).status == "queued"
    assert _row(settings, give_up).error_code == jobs.WORKER_LOST_CODE
    assert _row(settings, fresh).status == "running"


def test_old_queued_rows_are_resent_only_when_the_broker_lacks_messages(settings) -> None:  # noqa: ANN001
    hour_ago = utcnow() - timedelta(hours=1)
    oldest = _job(settings, enqueued_at=hour_ago - timedelta(minutes=5))
    old = _job(settings, enqueued_at=hour_ago)
    _job(settings, enqueued_at=utcnow())  # recent: never re-sent, but counted
    other_queue = _job(settings, queue="gpu", enqueued_at=hour_ago)

    def reap(held: dict[str, int | None]) -> list[str]:
        with session_scope(settings) as s:
            return jobs.reap_old_queued(s, older_than_s=600, waiting=held.get)

    # a message per queued row: a long backlog, nothing lost, nothing re-sent
    assert reap({"cpu": 3, "gpu": 1}) == []
    # one message missing on cpu: the oldest row is re-sent; gpu is whole
    assert reap({"cpu": 2, "gpu": 5}) == [oldest]
    # broker emptied (restart): every old row; a queue the broker cannot count: re-sent too
    with session_scope(settings) as s:
        s.execute(update(Job).where(Job.id.in_([oldest])).values(enqueued_at=hour_ago))
    assert sorted(reap({"cpu": 0, "gpu": None})) == sorted([oldest, old, other_queue])


def test_old_queued_rows_are_resent_once(settings) -> None:  # noqa: ANN001
    lost = _job(settings, enqueued_at=utcnow() - timedelta(hours=1))
    recent = _job(settings, enqueued_at=utcnow())
    with session_scope(settings) as s:
        assert jobs.reap_old_queued(s, older_than_s=600) == [lost]
    with session_scope(settings) as s:
        assert jobs.reap_old_queued(s, older_than_s=600) == []  # enqueued_at moved on
    assert _row(settings, recent).status == "queued"

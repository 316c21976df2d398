"""Crash recovery and exactly-once results: SIGKILLed worker, duplicate delivery, reaper."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta

import pytest
from kombu import Queue
from sqlalchemy import func, select

from diarq.shared import jobs
from diarq.shared.db import session_scope
from diarq.shared.orm import FAILED, QUEUED, RUNNING, Job, JobResult, utcnow
from tests.integration.services import WorkerProcess, check_spec, wait_until
from tests.integration.test_jobs import result_count, submit, wait_done

pytestmark = pytest.mark.integration


def test_sigkilled_worker_job_finishes_on_another(app_for_queue, settings, service_env,  # noqa: ANN001
                                                    log_dir, speech_wav):
    client = app_for_queue("crash").test_client()
    victim = WorkerProcess("victim", service_env, log_dir, queues="crash",
                           extra_env={"DIARQ_BENCH_TRIVIAL_PIPELINE_S": "30"})
    rescuer = None
    try:
        victim.wait_ready()
        job = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
        wait_until(lambda: (client.get(f"/v1/jobs/{job['id']}").get_json()["worker"] or "")
                   .startswith("victim@"), timeout=30, what="the victim to take the job")
        victim.kill()  # SIGKILL, main process and pool: nothing gets acked or written
        rescuer = WorkerProcess("rescuer", service_env, log_dir, queues="crash",
                                extra_env={"DIARQ_BENCH_TRIVIAL_PIPELINE_S": "0.2"})
        rescuer.wait_ready()
        done = wait_done(client, job["id"], timeout=90)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert done["worker"].startswith("rescuer@")
        assert result_count(settings, job["id"]) == 1
        assert f"job_id={job['id']} started attempt=2" in rescuer.log()
    finally:
        victim.stop()
        if rescuer:
            rescuer.stop()


def test_same_task_delivered_twice_gives_one_result(client, app, settings, workers,  # noqa: ANN001
                                                     speech_wav):
    from diarq.shared.celery_app import enqueue_job

    job = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    # a second message for the same job: what a redelivery or a retried publish produces
    enqueue_job(app.extensions["diarq"].celery, settings, job["id"], queue="cpu",
                audio_seconds=job["audio"]["duration"])
    assert wait_done(client, job["id"])["status"] == "succeeded"

    def both_deliveries_seen() -> bool:
        logs = "".join(w.log() for w in workers)
        return logs.count(f"job_id={job['id']} skipped") == 1
    wait_until(both_deliveries_seen, timeout=30, what="the duplicate delivery")
    logs = "".join(w.log() for w in workers)
    assert logs.count(f"job_id={job['id']} started") == 1
    done = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert done["attempts"] == 1
    assert result_count(settings, job["id"]) == 1


def _stored_row(settings, speech_wav, **values) -> str:  # noqa: ANN001
    """A job row as a vanished worker or a lost message would leave it."""
    job_id = str(uuid.uuid4())
    rel = f"audio/{job_id[:2]}/{job_id}"
    dest = settings.storage_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(speech_wav, dest)
    now = utcnow()
    with session_scope(settings) as s:
        s.add(Job(id=job_id, options={}, queue="cpu", audio_path=rel, audio_duration=5.0,
                  audio_bytes=dest.stat().st_size, created_at=now - timedelta(hours=1),
                  **values))
    return job_id


def test_reaper_requeues_stale_running_and_lost_queued(client, settings, workers,  # noqa: ANN001
                                                        speech_wav, api_key_id):
    long_ago = utcnow() - timedelta(hours=1)
    mine = {"api_key_id": api_key_id}  # owned by the test client's key: it may read them
    stale = _stored_row(settings, speech_wav, status=RUNNING, attempts=1, worker="ghost@gone",
                        claim_token=str(uuid.uuid4()), heartbeat_at=long_ago,
                        started_at=long_ago, **mine)
    exhausted = _stored_row(settings, speech_wav, status=RUNNING, attempts=3,
                            worker="ghost@gone", claim_token=str(uuid.uuid4()),
                            heartbeat_at=long_ago, started_at=long_ago, **mine)
    # queued an hour ago, but its message never reached the broker
    lost = _stored_row(settings, speech_wav, status=QUEUED, attempts=0, enqueued_at=long_ago,
                      **mine)

    done = wait_done(client, stale, timeout=60)
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert done["worker"] != "ghost@gone"
    failed = wait_done(client, exhausted, timeout=30)
    assert failed["status"] == FAILED
    assert failed["error"]["code"] == "worker_lost"
    assert "3 times" in failed["error"]["message"]
    resent = wait_done(client, lost, timeout=60)
    assert (resent["status"], resent["attempts"]) == ("succeeded", 1)
    with session_scope(settings) as s:
        n = s.scalar(select(func.count()).select_from(JobResult)
                     .where(JobResult.job_id.in_([stale, exhausted, lost])))
    assert n == 2



def test_reaper_counts_the_brokers_messages_and_leaves_a_backlog_alone(settings) -> None:  # noqa: ANN001
    """A queue nobody consumes, on the real Redis: the count covers every priority list,
    and old queued rows whose messages are all still there are not re-sent."""
    from diarq.shared.celery_app import PRIORITIES, enqueue_job, make_celery
    from diarq.worker.reaper import broker_waiting

    app = make_celery(settings)
    queue = f"backlog-{uuid.uuid4().hex[:8]}"
    assert broker_waiting(app, queue) == 0
    with app.connection_for_write() as conn:  # bound, as `diarq worker --queues` does
        Queue(queue, routing_key=queue)(conn.default_channel).declare()
    long_ago = utcnow() - timedelta(hours=1)
    ids = []
    for i, priority in enumerate(PRIORITIES.values()):
        job_id = str(uuid.uuid4())
        sent = long_ago + timedelta(seconds=i)  # ids[0] is the oldest
        with session_scope(settings) as s:
            s.add(Job(id=job_id, options={}, queue=queue, status=QUEUED, enqueued_at=sent,
                      created_at=sent))
        enqueue_job(app, settings, job_id, queue=queue, audio_seconds=5.0, priority=priority)
        ids.append(job_id)
    try:
        assert broker_waiting(app, queue) == len(PRIORITIES)
        with session_scope(settings) as s:
            assert jobs.reap_old_queued(s, older_than_s=600,
                                        waiting=lambda q: broker_waiting(app, q)) == []
        # one message consumed elsewhere and lost: exactly one row (the oldest) is re-sent
        with app.connection_for_write() as conn:
            assert conn.default_channel.basic_get(queue, no_ack=True) is not None
        with session_scope(settings) as s:
            assert jobs.reap_old_queued(s, older_than_s=600,
                                        waiting=lambda q: broker_waiting(app, q)) == ids[:1]
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
        with session_scope(settings) as s:
            s.query(Job).filter(Job.id.in_(ids)).delete()

"""Jobs that cannot finish fail with a code and the worker goes on: audio gone from
storage, soft time limit, hard time limit (pool process killed and replaced)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.integration.keys import use_key
from tests.integration.services import wait_until

PARKED = "faults-parked"  # no worker listens here: jobs submitted to it stay queued


@pytest.fixture(scope="module")
def stack(make_stack):  # noqa: ANN001, ANN201
    # soft limit 2 s for every job this API submits; the worker sleeps 5 s per job
    s = make_stack(DIARQ_JOB_TIME_LIMIT_BASE_S="2", DIARQ_JOB_TIME_LIMIT_FACTOR="0.001")
    s.worker("w", DIARQ_BENCH_TRIVIAL_PIPELINE_S="5")
    return s


def _client(stack, **update):  # noqa: ANN001, ANN003, ANN202
    from diarq.api import create_app

    return use_key(create_app({"DIARQ_SETTINGS": stack.settings.model_copy(update=update),
                               "TESTING": True}), stack.key).test_client()


def _submit(client, path: Path) -> dict:  # noqa: ANN001
    with open(path, "rb") as fh:
        resp = client.post("/v1/jobs", data={"file": (fh, path.name)})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.get_json()


def _send(stack, job_id: str, **limits: float) -> None:  # noqa: ANN001
    """Deliver ``job_id`` to the worker's queue (it was submitted to the parked queue)."""
    from diarq.shared.celery_app import TASK_NAME

    stack.app.extensions["diarq"].celery.send_task(
        TASK_NAME, args=[job_id], queue=stack.settings.job_queue,
        routing_key=stack.settings.job_queue, **limits)


def _final(stack, job_id: str) -> dict:  # noqa: ANN001
    return stack.wait_all_done([job_id], timeout=60) and stack.client.get(
        f"/v1/jobs/{job_id}").get_json()


def _next_job_succeeds(stack, speech_wav: Path) -> dict:  # noqa: ANN001
    roomy = _client(stack, job_time_limit_base_s=600.0)
    done = _final(stack, _submit(roomy, speech_wav)["id"])
    assert done["status"] == "succeeded", done
    return done


def test_audio_missing_or_unreadable_in_storage(stack, speech_wav: Path):  # noqa: ANN001
    parked = _client(stack, job_queue=PARKED, job_time_limit_base_s=600.0)
    for how in ("deleted", "directory", "dangling symlink"):
        job = _submit(parked, speech_wav)
        row = stack.rows([job["id"]])[job["id"]]
        path = stack.settings.storage_dir / row.audio_path
        path.unlink()
        if how == "directory":
            path.mkdir()
        elif how == "dangling symlink":
            path.symlink_to(path.with_name("gone-" + path.name))
        _send(stack, job["id"])
        done = _final(stack, job["id"])
        assert done["status"] == "failed", (how, done)
        assert done["error"]["code"] == "audio_missing", (how, done)
        assert "DIARQ_STORAGE_DIR" in done["error"]["message"]
        if path.is_dir():
            shutil.rmtree(path)
    _next_job_succeeds(stack, speech_wav)


def test_soft_time_limit_fails_the_job_with_timeout(stack, speech_wav: Path):  # noqa: ANN001
    done = _final(stack, _submit(stack.client, speech_wav)["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "timeout"
    assert "DIARQ_JOB_TIME_LIMIT" in done["error"]["message"]
    _next_job_succeeds(stack, speech_wav)


def test_hard_time_limit_kills_and_replaces_the_process(stack, speech_wav: Path):  # noqa: ANN001
    parked = _client(stack, job_queue=PARKED)
    job = _submit(parked, speech_wav)
    # no soft limit: as if the job were stuck in native code that ignores it
    _send(stack, job["id"], time_limit=2)
    done = _final(stack, job["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "timeout"
    # failed at once by the main process, not retried after the reaper saw it stale
    assert done["attempts"] == 1, done
    killed_pid = done["worker"].rsplit(":", 1)[1]
    w = stack.workers[0]
    wait_until(lambda: "Hard time limit" in w.log(), timeout=10, what="the hard limit log line")
    after = _next_job_succeeds(stack, speech_wav)
    # Celery replaced the killed pool process: the next job ran in a new one
    assert after["worker"].rsplit(":", 1)[1] != killed_pid, (done["worker"], after["worker"])
    assert w.proc.poll() is None  # the worker itself is alive


def test_soft_time_limit_during_the_result_write(stack, speech_wav: Path):  # noqa: ANN001
    """The soft limit hits while the worker writes the result (held up here by an
    uncommitted result row of the same job): the job fails with `timeout` once, in this
    attempt; it is not left `running` for the reaper to run again."""
    from sqlalchemy import text

    from diarq.shared.db import get_engine

    parked = _client(stack, job_queue=PARKED, job_time_limit_base_s=600.0)
    job_id = _submit(parked, speech_wav)["id"]
    w = stack.workers[0]
    seen = w.log().count("Soft time limit")
    with get_engine(stack.settings).connect() as conn:
        conn.execute(text("INSERT INTO results (job_id, data, created_at) "
                          "VALUES (:id, '{}', now())"), {"id": job_id})
        # the pipeline sleeps 5 s, then the result write waits on the row above. While
        # it waits, the job row is locked by the worker's own write, so no heartbeat
        # lands: the limit must hit well before the stack's 3 s stale delay, or the
        # reaper takes the job back first (seen once with a 7 s limit)
        _send(stack, job_id, soft_time_limit=6, time_limit=60)
        wait_until(lambda: w.log().count("Soft time limit") > seen, timeout=30,
                   what="the soft time limit")
        time.sleep(1.0)
        conn.rollback()
    done = _final(stack, job_id)
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "timeout", done
    assert "DIARQ_JOB_TIME_LIMIT" in done["error"]["message"]
    assert done["attempts"] == 1, done
    assert stack.result_counts([job_id]) == {job_id: 0}
    # past the stale-heartbeat delay and a few reaper rounds: still failed, not re-run
    time.sleep(5)
    row = stack.rows([job_id])[job_id]
    assert (row.status, row.attempts, row.error_code) == ("failed", 1, "timeout")
    _next_job_succeeds(stack, speech_wav)

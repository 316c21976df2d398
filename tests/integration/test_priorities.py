"""Broker priorities: a busy single worker takes a high-priority job before an earlier
low-priority one on the same queue."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.integration.conftest import TRIVIAL_S
from tests.integration.services import WorkerProcess, wait_until
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration
QUEUE = "prio"


@pytest.fixture
def busy_worker(settings, service_env, log_dir):  # noqa: ANN001, ANN201
    """One worker, one process, alone on its queue."""
    worker = WorkerProcess("prio", {**service_env, "DIARQ_BENCH_TRIVIAL_PIPELINE_S": TRIVIAL_S},
                           log_dir, queues=QUEUE, concurrency=1)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_high_priority_runs_before_earlier_low(app_for_queue, busy_worker, speech_wav):  # noqa: ANN001
    client = app_for_queue(QUEUE).test_client()
    first = submit(client, speech_wav).get_json()
    wait_until(lambda: client.get(f"/v1/jobs/{first['id']}").get_json()["status"] == "running",
               timeout=30, what="the first job to occupy the worker")
    low = submit(client, speech_wav, priority="low").get_json()
    normal = submit(client, speech_wav).get_json()
    high = submit(client, speech_wav, priority="high").get_json()
    assert (low["priority"], high["priority"]) == ("low", "high")

    done = {name: wait_done(client, job["id"])
            for name, job in (("low", low), ("normal", normal), ("high", high))}
    started = {name: datetime.fromisoformat(job["started_at"]) for name, job in done.items()}
    assert started["high"] < started["normal"] < started["low"]

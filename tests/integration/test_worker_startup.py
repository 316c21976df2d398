"""A worker whose models do not load must not burn jobs: it hands what it took back to
the broker (row still ``queued``, no attempt counted), stops consuming and exits
non-zero with one actionable line; a healthy worker then runs every job."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import select

from diarq.shared.db import session_scope
from diarq.shared.orm import Job
from tests.integration.conftest import TRIVIAL_S
from tests.integration.services import (
    DIARQ,
    ROOT,
    WorkerProcess,
    embedded_env,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.integration

QUEUE = "startup"
CANARY = "hf_diarqStartupCanary4Kd8Pq2Wx7Zm3Vb6Ty1"
EXIT_MODELS_FAILED = 78


def _rows(settings, ids: list[str]) -> dict[str, Job]:  # noqa: ANN001
    with session_scope(settings) as s:
        rows = s.scalars(select(Job).where(Job.id.in_(ids))).all()
        for row in rows:
            s.expunge(row)
    return {row.id: row for row in rows}


def test_worker_without_models_requeues_and_exits(app_for_queue, settings, service_env,  # noqa: ANN001
                                                  log_dir, speech_wav, tmp_path) -> None:
    client = app_for_queue(QUEUE).test_client()
    ids = []
    for i in range(3):
        with open(speech_wav, "rb") as fh:
            resp = client.post("/v1/jobs", data={"file": (fh, f"m{i}.wav")})
        assert resp.status_code == 202, resp.get_json()
        ids.append(resp.get_json()["id"])

    # queued first, so the broken worker really takes one: an offline profile whose model
    # directory is empty (the same path as a hub worker without a valid token)
    broken_env = {**service_env, "DIARQ_PROFILE": "offline", "HF_TOKEN": CANARY,
                  "DIARQ_MODEL_DIR": str(tmp_path / "no-models")}
    broken = WorkerProcess("broken", broken_env, log_dir, queues=QUEUE)
    try:
        rc = broken.proc.wait(timeout=120)
    finally:
        broken.stop()
    log = broken.log()
    assert rc == EXIT_MODELS_FAILED, log[-3000:]
    stop_lines = [line for line in log.splitlines()
                  if "worker stopping: models could not be loaded" in line]
    assert len(stop_lines) == 1, log[-3000:]
    assert "code=offline_model_missing" in stop_lines[0]
    assert "diarq models prepare" in stop_lines[0]
    assert CANARY not in log and "Traceback" not in log
    # it did take a job (its process refused it, or the shutdown restored it unacked)
    assert "Task diarq.process_job[" in log and " received" in log, log[-3000:]
    for row in _rows(settings, ids).values():
        assert (row.status, row.attempts, row.error_code) == ("queued", 0, None)

    healthy = WorkerProcess("healthy-startup", {**service_env,
                                                "DIARQ_BENCH_TRIVIAL_PIPELINE_S": TRIVIAL_S},
                            log_dir, queues=QUEUE)
    try:
        healthy.wait_ready()
        wait_until(lambda: all(r.status == "succeeded" for r in _rows(settings, ids).values()),
                   timeout=60, what="the healthy worker to run every job")
    finally:
        healthy.stop()
    # each job ran once: the broken worker's pick-up cost no attempt
    assert [r.attempts for r in _rows(settings, ids).values()] == [1, 1, 1]


def test_up_demo_stops_when_its_worker_cannot_load_models(tmp_path, speech_wav) -> None:  # noqa: ANN001
    """`diarq up --demo` has one worker: when it exits for want of models, the demo stops
    with the worker's actionable line instead of waiting for a job nobody will run."""
    env = embedded_env(tmp_path, DIARQ_AUTH="off", DIARQ_PROFILE="offline",
                       DIARQ_MODEL_DIR=str(tmp_path / "no-models"))
    proc = subprocess.run(DIARQ + ["up", "--port", str(free_port()), "--demo", str(speech_wav)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode != 0
    assert "a service process stopped" in proc.stderr, proc.stderr[-3000:]
    assert "models could not be loaded code=offline_model_missing" in proc.stderr, proc.stderr

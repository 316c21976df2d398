"""Workers register in the database and queued jobs say why they wait: real `diarq
worker` processes (a broken one that exits 78, healthy bench-trivial ones) on queues of
their own, the API, /readyz, /metrics, GET /v1/workers and the CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import requests
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.keys import bearer, create_key_with_cli
from tests.integration.services import (
    DIARQ,
    ROOT,
    WorkerProcess,
    check_spec,
    running_api,
    wait_until,
)
from tests.integration.test_jobs import submit

pytestmark = pytest.mark.integration

EXIT_MODELS_FAILED = 78


def _workers(client) -> dict:  # noqa: ANN001
    return check_spec(client.get("/v1/workers"), "/v1/workers", "GET")


def _mine(listing: dict, name: str) -> dict | None:
    return next((w for w in listing["workers"] if w["id"] == name), None)


def _job(client, job_id: str) -> dict:  # noqa: ANN001
    return check_spec(client.get(f"/v1/jobs/{job_id}"), "/v1/jobs/{id}", "GET")


def _metric(app, queue: str, state: str) -> float:  # noqa: ANN001
    text = FlaskClient(app).get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "diarq_workers" and sample.labels == {"queue": queue,
                                                                     "state": state}:
                return sample.value
    raise AssertionError(f"no diarq_workers{{queue={queue},state={state}}} in /metrics")


def test_registry_follows_a_worker_through_ready_busy_and_stopped(  # noqa: ANN001
        app_for_queue, service_env, log_dir, speech_wav) -> None:
    queue = "registry"
    app = app_for_queue(queue)
    client = app.test_client()
    worker = WorkerProcess("registry", {**service_env, "DIARQ_BENCH_TRIVIAL_PIPELINE_S": "3"},
                           log_dir, queues=queue)
    name = "registry@test"
    try:
        worker.wait_ready()
        row = wait_until(lambda: (w := _mine(_workers(client), name)) and
                         w["state"] == "ready" and w, timeout=30, what="the worker ready")
        assert row["host"] == socket.gethostname() and row["alive"]
        assert set(row["queues"]) == {queue, "webhooks"} and row["concurrency"] == 1
        assert row["models"] == {"bench_trivial": True} and row["error"] is None
        first_beat = row["heartbeat_at"]
        assert _metric(app, queue, "ready") == 1

        job = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
        busy = wait_until(lambda: (w := _mine(_workers(client), name)) and
                          w["state"] == "busy" and w, timeout=30, what="the worker busy")
        assert busy["running"] == 1
        wait_until(lambda: _mine(_workers(client), name)["heartbeat_at"] > first_beat,
                   timeout=30, what="a heartbeat")
        assert _metric(app, queue, "busy") == 1
        # a second job waits behind the running one, and says so
        second = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
        assert second["waiting"]["code"] == "queue_busy", second["waiting"]
        assert second["waiting"]["position"] == 1
        wait_until(lambda: _job(client, second["id"])["status"] == "succeeded", timeout=60,
                   what="both jobs")
        assert _job(client, job["id"])["status"] == "succeeded"
    finally:
        worker.stop()
    stopped = _mine(_workers(client), name)
    assert stopped["state"] == "stopped" and not stopped["alive"] and stopped["error"] is None
    assert stopped["stopped_at"] is not None


def test_queued_job_says_why_it_waits(app_for_queue, service_env, log_dir, speech_wav,  # noqa: ANN001
                                      tmp_path) -> None:
    queue = "lonely"
    app = app_for_queue(queue)
    client = app.test_client()
    job = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    assert job["waiting"]["code"] == "no_worker", job["waiting"]
    assert f"diarq worker --queues {queue}" in job["waiting"]["message"]
    ready = check_spec(client.get("/readyz"), "/readyz", "GET")
    assert ready["status"] == "ready" and ready["checks"]["workers"] == f"{queue}: no_worker"

    # a worker whose models cannot load: it takes the job, hands it back, records why
    # and exits 78; from then on the job carries the worker's code
    broken = WorkerProcess("lonely-broken", {**service_env, "DIARQ_PROFILE": "offline",
                                             "DIARQ_MODEL_DIR": str(tmp_path / "none")},
                           log_dir, queues=queue)
    try:
        assert broken.proc.wait(timeout=120) == EXIT_MODELS_FAILED, broken.log()[-3000:]
    finally:
        broken.stop()
    waiting = _job(client, job["id"])["waiting"]
    assert waiting["code"] == "workers_unusable", waiting
    assert waiting["error"]["code"] == "offline_model_missing"
    assert "diarq models prepare" in waiting["error"]["message"]
    page = check_spec(client.get("/v1/jobs?status=queued&limit=100"), "/v1/jobs", "GET")
    assert next(j for j in page["jobs"] if j["id"] == job["id"])["waiting"] == waiting
    row = _mine(_workers(client), "lonely-broken@test")
    assert row["state"] == "stopped" and row["error"]["code"] == "offline_model_missing"
    summary = _workers(client)["queues"][queue]
    assert summary["usable"] == 0 and summary["error"]["code"] == "offline_model_missing"
    ready = check_spec(client.get("/readyz"), "/readyz", "GET")
    assert ready["status"] == "ready"  # the API itself is fine: it still takes jobs
    assert ready["checks"]["workers"] == f"{queue}: workers_unusable (offline_model_missing)"
    assert ready["workers"][queue]["error_code"] == "offline_model_missing"
    assert _metric(app, queue, "stopped") >= 1

    # a healthy worker: the job runs; the old error no longer says anything about it
    healthy = WorkerProcess("lonely-healthy", {**service_env,
                                               "DIARQ_BENCH_TRIVIAL_PIPELINE_S": "0.2"},
                            log_dir, queues=queue)
    try:
        healthy.wait_ready()
        done = wait_until(lambda: (j := _job(client, job["id"]))["status"] == "succeeded" and j,
                          timeout=60, what="the job on the healthy worker")
        assert done["waiting"] is None and done["attempts"] == 1
        assert check_spec(client.get("/readyz"), "/readyz", "GET")["checks"]["workers"] == "ok"
    finally:
        healthy.stop()


def test_other_keys_see_no_worker_names_or_hosts(client, service_env, settings,  # noqa: ANN001
                                                 speech_wav) -> None:
    other = create_key_with_cli(service_env, "workers-not-an-operator")
    host = socket.gethostname()
    listing = check_spec(client.get("/v1/workers", headers=bearer(other)), "/v1/workers",
                         "GET")
    assert listing["workers"], listing  # the session's workers w1, w2 at least
    text = json.dumps(listing)
    assert host not in text and "@test" not in text
    assert all(w["id"].startswith("w-") and w["host"] is None for w in listing["workers"])
    with open(speech_wav, "rb") as fh:
        resp = client.post("/v1/jobs", data={"file": (fh, "o.wav")}, headers=bearer(other))
    job_id = resp.get_json()["id"]
    done = wait_until(lambda: (j := client.get(f"/v1/jobs/{job_id}", headers=bearer(other))
                               .get_json())["status"] == "succeeded" and j, timeout=60,
                      what="the other key's job")
    assert done["worker"].startswith("w-") and "@" not in done["worker"]
    # the operator's key (the session's) sees names and hosts
    mine = check_spec(client.get("/v1/workers"), "/v1/workers", "GET")
    assert any(w["host"] == host and w["id"] in ("w1@test", "w2@test") for w in mine["workers"])


def test_cli_status_and_submit_wait_print_why_a_job_waits(service_env, api_key,  # noqa: ANN001
                                                          speech_wav, log_dir) -> None:
    env = {**service_env, "DIARQ_JOB_QUEUE": "nobody", "DIARQ_API_KEY": api_key}
    with running_api(env, log_dir / "api-cli-waiting.log") as url:
        proc = subprocess.run(DIARQ + ["submit", str(speech_wav), "--server", url], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        job_id = proc.stdout.strip()
        status = subprocess.run(DIARQ + ["status", job_id, "--server", url], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["waiting"]["code"] == "no_worker"
        assert "waiting [no_worker]: no worker is running for queue nobody" in status.stderr

        # --wait shows the reason while it waits (the job never runs here: stop it)
        waiter = subprocess.Popen(DIARQ + ["submit", str(speech_wav), "--server", url,
                                           "--wait"], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            seen = ""
            while time.monotonic() < deadline and "waiting [no_worker]" not in seen:
                line = waiter.stderr.readline()
                if not line:
                    break
                seen += line
            assert "waiting [no_worker]: no worker is running for queue nobody" in seen, seen
        finally:
            waiter.kill()
            waiter.wait()
        requests.get(f"{url}/healthz", timeout=5).raise_for_status()

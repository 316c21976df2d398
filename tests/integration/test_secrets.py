"""The Hugging Face token and API keys never leak: a hub-profile worker whose model load
really fails (no network here: the hub is unreachable) takes jobs with a recognisable
token in its environment (and hands them back, then stops: tests/integration/
test_worker_startup.py); then every log file, every DB row, every API response body
and `diarq doctor` / `diarq keys list` output is searched for the token and the key."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from diarq.shared.db import get_engine
from tests.integration.keys import bearer, create_key_with_cli
from tests.integration.services import DIARQ, ROOT, WorkerProcess, running_api, wait_until

pytestmark = pytest.mark.integration

CANARY = "hf_diarqLeakCanary7Qx2Vb9Lm4Np8Rs3Tz6Wy1"
HUB_CODES = ("hub_unreachable", "token_invalid", "token_missing", "model_access_denied",
             "model_not_found", "model_load_failed")


@pytest.fixture(scope="module")
def hub_env(service_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in service_env.items() if k != "HUGGINGFACE_HUB_TOKEN"}
    env.update({"HF_TOKEN": CANARY, "DIARQ_PROFILE": "hub", "DIARQ_JOB_QUEUE": "hub",
                "DIARQ_LOG_LEVEL": "DEBUG"})
    return env


@pytest.fixture(scope="module")
def hub_api(hub_env, log_dir, settings) -> Iterator[str]:  # noqa: ANN001
    """`diarq api` (gunicorn) with the token in its environment too, logging to a file."""
    with running_api(hub_env, log_dir / "api-secrets.log") as url:
        yield url


def _leaks(text_: str, secrets: list[str]) -> list[str]:
    return [s[:12] + "..." for s in secrets if s in text_]


def test_no_secret_anywhere(hub_api, hub_env, log_dir, settings, speech_wav):  # noqa: ANN001, PLR0915
    key = create_key_with_cli(hub_env, "secrets-test")
    # the secrets we look for: the token, the key, and the key's random part alone
    secrets = [CANARY, key, key[3:]]

    bodies: list[str] = []

    def call(method: str, path: str, **kwargs) -> requests.Response:  # noqa: ANN003
        resp = requests.request(method, hub_api + path, timeout=30, **kwargs)
        # what the server sent back (headers and body), not what the test sent
        bodies.append(f"{resp.status_code} {dict(resp.headers)}\n{resp.text}")
        return resp

    ids = []
    for i in range(2):
        with open(speech_wav, "rb") as fh:
            resp = call("POST", "/v1/jobs", files={"file": (f"m{i}.wav", fh)},
                        headers=bearer(key))
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])

    # the worker starts with the jobs waiting: it takes one, fails to load the hub model,
    # hands the job back and stops
    hub_worker = WorkerProcess("hub", hub_env, log_dir, queues="hub")
    try:
        # the canary really is where a leak could come from: the worker's environment
        environ = wait_until(lambda: Path(f"/proc/{hub_worker.proc.pid}/environ").read_bytes(),
                             timeout=10, what="the worker's environment")  # after its exec
        assert CANARY.encode() in environ
        rc = hub_worker.proc.wait(timeout=180)
    finally:
        hub_worker.stop()  # flushes its log
    worker_log = hub_worker.log()
    assert rc != 0 and "Task diarq.process_job[" in worker_log, worker_log[-3000:]
    # a real failure of the hub model load, with its own code, in the worker's log
    assert any(f"models could not be loaded code={code} " in worker_log
               for code in HUB_CODES), worker_log[-3000:]
    code = next(c for c in HUB_CODES if f"models could not be loaded code={c} " in worker_log)
    for job_id in ids:
        job = call("GET", f"/v1/jobs/{job_id}", headers=bearer(key)).json()
        assert job["status"] == "queued" and job["attempts"] == 0, job
        # the user is told why: the worker's own code, not a job queued forever in silence
        assert job["waiting"]["code"] == "workers_unusable", job["waiting"]
        assert job["waiting"]["error"]["code"] == code, job["waiting"]
        call("GET", f"/v1/jobs/{job_id}/result", headers=bearer(key))
    call("GET", "/v1/jobs?limit=100", headers=bearer(key))
    registry = call("GET", "/v1/workers", headers=bearer(key)).json()
    assert registry["queues"]["hub"]["error"]["code"] == code, registry
    ready = call("GET", "/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["workers"] == \
        f"hub: workers_unusable ({code})", ready
    # the secrets sent where they do not belong: they must not be echoed back
    call("GET", "/v1/jobs", headers=bearer(CANARY))
    call("GET", f"/v1/jobs/{CANARY}", headers=bearer(key))
    call("GET", f"/v1/jobs?cursor={key}", headers=bearer(key))
    call("GET", f"/nothing/{key}", headers=bearer(key))
    call("GET", "/v1/jobs", headers={"Authorization": f"Basic {key}"})
    call("POST", "/v1/jobs", headers=bearer(key), files={"file": ("x.wav", b"x")},
         data={"language": CANARY})

    doctor = subprocess.run(DIARQ + ["doctor"], env=hub_env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert "hf token" in doctor.stdout  # it ran its token checks
    keys_list = subprocess.run(DIARQ + ["keys", "list"], env=hub_env, cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=True)

    rows: list[str] = []
    with get_engine(settings).connect() as conn:
        for table in ("jobs", "results", "api_keys", "workers"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                rows.append(f"{table}: " + json.dumps([str(v) for v in row]))
    logs = {p.name: p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log"))}
    assert "worker-hub.log" in logs and "api-secrets.log" in logs

    found = {
        "api responses": _leaks("\n".join(bodies), secrets),
        "doctor": _leaks(doctor.stdout + doctor.stderr, secrets),
        "keys list": _leaks(keys_list.stdout + keys_list.stderr, secrets),
        "db rows": _leaks("\n".join(rows), secrets),
        **{f"log {name}": _leaks(body, secrets) for name, body in logs.items()},
    }
    assert not any(found.values()), {k: v for k, v in found.items() if v}

"""The service commands as users run them: `diarq db upgrade` on SQLite, `diarq api`
(gunicorn) against PostgreSQL + Redis, and the embedded `diarq up --demo`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time

import pytest
import requests

from tests.integration.services import (
    DIARQ,
    ROOT,
    embedded_env,
    free_port,
    running_api,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_db_upgrade_on_sqlite(tmp_path) -> None:  # noqa: ANN001
    db = tmp_path / "diarq.db"
    env = {"DIARQ_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    for args in (["db", "upgrade"], ["db", "upgrade", "--revision", "base"], ["db", "upgrade"]):
        proc = subprocess.run(DIARQ + args, env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"jobs", "results", "alembic_version"} <= tables
    assert version == _script_head()
    assert {"api_keys", "batches", "webhook_deliveries"} <= tables


def _script_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    return ScriptDirectory.from_config(config).get_current_head()


def test_invalid_configuration_fails_with_what_to_set() -> None:
    env = {"DIARQ_DATABASE_URL": "mysql://x", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(DIARQ + ["db", "upgrade"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "DIARQ_DATABASE_URL" in proc.stderr and "Traceback" not in proc.stderr


def test_gunicorn_api_serves_jobs(service_env, workers, speech_wav, api_key) -> None:  # noqa: ANN001
    auth = {"Authorization": f"Bearer {api_key}"}
    with running_api(service_env) as url:
        with open(speech_wav, "rb") as fh:
            resp = requests.post(f"{url}/v1/jobs", files={"file": ("s.wav", fh)}, timeout=30,
                                 headers=auth)
        assert resp.status_code == 202
        job_id = resp.json()["id"]
        wait_until(lambda: requests.get(f"{url}/v1/jobs/{job_id}", timeout=5, headers=auth)
                   .json()["status"] == "succeeded", timeout=60, what="job via gunicorn")
        srt = requests.get(f"{url}/v1/jobs/{job_id}/result", params={"format": "srt"},
                           timeout=5, headers=auth)
        assert srt.status_code == 200
        # larger than DIARQ_MAX_UPLOAD_MB=2: JSON 413 from the real server too
        big = requests.post(f"{url}/v1/jobs", files={"file": ("b.wav", b"\0" * (4 << 20))},
                            timeout=30, headers=auth)
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "upload_too_large"


def test_embedded_up_demo(tmp_path, speech_wav) -> None:  # noqa: ANN001
    """`diarq up --demo` with no external service (SQLite + filesystem broker)."""
    env = embedded_env(tmp_path, DIARQ_BENCH_TRIVIAL_PIPELINE_S="0.3", DIARQ_AUTH="off")
    t0 = time.monotonic()
    proc = subprocess.run(DIARQ + ["up", "--port", str(free_port()), "--demo", str(speech_wav),
                                   "--format", "json"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["models"] == {"bench_trivial": True}
    assert time.monotonic() - t0 < 170  # it stopped by itself

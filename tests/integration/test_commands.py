"""The service commands as users run them: `diarq db upgrade` on SQLite, `diarq api`
(gunicorn) against PostgreSQL + Redis, and the embedded `diarq up --demo`."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

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
    assert {"api_keys", "batches", "webhook_deliveries", "workers"} <= tables


def _script_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    return ScriptDirectory.from_config(config).get_current_head()


def _drift(url: str) -> list:
    """What Alembic's autogenerate would change to make the migrated database match the
    ORM models (empty: the migrations create exactly what the code declares)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from diarq.shared.db import make_engine
    from diarq.shared.orm import Base

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_migrations_match_the_models(tmp_path, settings) -> None:  # noqa: ANN001
    """Both dialects: SQLite (embedded) and the session's PostgreSQL database, each
    upgraded by the migrations alone."""
    db = tmp_path / "drift.db"
    env = {"DIARQ_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(DIARQ + ["db", "upgrade"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _drift(f"sqlite:///{db}") == []
    assert _drift(settings.database_url) == []


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


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, grandchildren...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Up:
    """`diarq up` in a process group of its own, so that a signal reaches it alone."""

    def __init__(self, tmp_path: Path, name: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"up-{name}.log"
        self._out = open(self.log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(DIARQ + ["up", "--port", str(self.port)],
                                     env=embedded_env(tmp_path, DIARQ_AUTH="off", **env),
                                     cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until(self._ready, timeout=150, interval=0.3, what="diarq up")
        self.children = _descendants(self.proc.pid)
        assert len(self.children) >= 3, self.children  # gunicorn + its worker, celery + pool

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def job(self, job_id: str) -> dict:
        return requests.get(f"{self.url}/v1/jobs/{job_id}", timeout=10).json()

    def submit(self, path: Path) -> str:
        with open(path, "rb") as fh:  # dedupe off: every submit runs
            return requests.post(f"{self.url}/v1/jobs", files={"file": fh},
                                 data={"dedupe": "false"}, timeout=30).json()["id"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> tuple[int, str]:
        """``sig`` to the `diarq up` process alone; its exit code and log."""
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._out.close()
        # nothing it started is left, and the port is free for the next `diarq up`
        assert not [p for p in self.children if _alive(p)], self.log.read_text()[-3000:]
        assert not _port_taken(self.port)
        return rc, self.log.read_text()


def _job_row(tmp_path: Path, job_id: str, columns: str) -> tuple:
    """Columns of one job in the embedded SQLite database of `diarq up`."""
    with sqlite3.connect(tmp_path / "diarq.db") as conn:
        return conn.execute(f"SELECT {columns} FROM jobs WHERE id = ?",  # noqa: S608
                            (job_id,)).fetchone()


def test_up_stops_its_children_on_sigterm_handing_back_or_finishing_the_job(
        tmp_path, speech_wav) -> None:  # noqa: ANN001
    # a job longer than the grace time: the worker is stopped, its job goes back to queued
    up = _Up(tmp_path, "long", DIARQ_BENCH_TRIVIAL_PIPELINE_S="120", DIARQ_STOP_GRACE_S="2")
    job_id = up.submit(speech_wav)
    wait_until(lambda: up.job(job_id)["status"] == "running", timeout=60, what="the job")
    rc, log = up.stop(signal.SIGTERM)
    assert rc == 0, log[-3000:]
    assert "stopped: api exit 0; worker killed, 1 job(s) handed back to the queue" in log
    # handed back, the interrupted attempt not counted
    assert _job_row(tmp_path, job_id, "status, attempts, worker") == ("queued", 0, None)

    # the next `diarq up` runs the handed-back job; a job shorter than the grace time is
    # finished before the worker exits
    up = _Up(tmp_path, "short", DIARQ_BENCH_TRIVIAL_PIPELINE_S="3", DIARQ_STOP_GRACE_S="60")
    wait_until(lambda: up.job(job_id)["status"] == "succeeded", timeout=90,
               what="the handed-back job")
    second = up.submit(speech_wav)
    wait_until(lambda: up.job(second)["status"] == "running", timeout=60, what="a second job")
    rc, log = up.stop(signal.SIGTERM)
    assert rc == 0, log[-3000:]
    assert "stopped: api exit 0; worker exit 0" in log
    assert _job_row(tmp_path, second, "status, attempts") == ("succeeded", 1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_up_stops_its_children_on_sigint_and_sighup(tmp_path, sig) -> None:  # noqa: ANN001
    up = _Up(tmp_path, sig.name, DIARQ_BENCH_TRIVIAL_PIPELINE_S="1")
    rc, log = up.stop(sig)
    assert rc == 0, log[-3000:]
    assert f"stopping ({sig.name})" in log and "stopped: api exit 0; worker exit 0" in log


"""One diarq deployment for a fault test: its own database (Alembic-migrated) on a given
PostgreSQL, its own Redis key prefix, storage, an API key and a keyed Flask client, and
helpers to start workers and inspect job rows."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select

from tests.integration.keys import create_key_with_cli, use_key
from tests.integration.services import WorkerProcess, wait_until

TERMINAL = ("succeeded", "failed", "canceled")

# short timings so every recovery path (redelivery, reaper, requeue) fires within seconds
FAST_RECOVERY = {
    "DIARQ_BROKER_VISIBILITY_TIMEOUT_S": "6",
    "DIARQ_HEARTBEAT_INTERVAL_S": "0.5",
    "DIARQ_STALE_AFTER_S": "3",
    "DIARQ_REAPER_INTERVAL_S": "1",
    "DIARQ_REQUEUE_QUEUED_AFTER_S": "5",
    "DIARQ_PROGRESS_INTERVAL_S": "0.5",
    "DIARQ_LOG_LEVEL": "INFO",
    "DIARQ_AUTH": "on",
    "DIARQ_RATE_LIMIT_PER_MINUTE": "0",
    "DIARQ_MAX_QUEUED_PER_KEY": "0",
    "DIARQ_MAX_UPLOAD_MB": "5",
    # every submit of the same recording must really run (no result reuse)
    "DIARQ_DEDUPE": "false",
    "PYANNOTE_METRICS_ENABLED": "0",
}


def create_database(admin_url: str) -> str:
    name = f"diarq_faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    from diarq.shared.db import _engines

    for engine, _ in list(_engines.values()):
        engine.dispose()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    def __init__(self, *, database_url: str, redis_url: str, storage: Path, log_dir: Path,
                 **overrides: str):
        self.log_dir = log_dir
        self.env = {
            **os.environ, **FAST_RECOVERY,
            "DIARQ_DATABASE_URL": database_url,
            "DIARQ_BROKER_URL": redis_url,
            "DIARQ_BROKER_KEY_PREFIX": f"diarq_faults_{uuid.uuid4().hex[:8]}:",
            "DIARQ_STORAGE_DIR": str(storage),
            **overrides,
        }
        from diarq.shared.db import upgrade
        from diarq.shared.settings import load_settings

        values = {k[len("DIARQ_"):].lower(): v for k, v in self.env.items()
                  if k.startswith("DIARQ_") and not k.startswith("DIARQ_TEST_")}
        self.settings = load_settings(**values)
        upgrade(self.settings)
        # an operator's key: the tests follow jobs to the workers (and pids) that ran them
        self.key = create_key_with_cli(self.env, "faults", operator=True)
        from diarq.api import create_app

        self.app = use_key(create_app({"DIARQ_SETTINGS": self.settings, "TESTING": True}),
                           self.key)
        self.client = self.app.test_client()
        self.workers: list[WorkerProcess] = []

    def worker(self, name: str, *, ready: bool = True, cwd: Path | None = None,
               **env: str) -> WorkerProcess:
        w = WorkerProcess(name, self.env, self.log_dir, queues=self.settings.job_queue,
                          extra_env=env, **({"cwd": cwd} if cwd else {}))
        self.workers.append(w)
        if ready:
            w.wait_ready()
        return w

    def submit(self, path: Path, **form: Any) -> dict:
        with open(path, "rb") as fh:
            resp = self.client.post("/v1/jobs", data={"file": (fh, path.name), **form},
                                    content_type="multipart/form-data")
        assert resp.status_code == 202, resp.get_data(as_text=True)
        return resp.get_json()

    def busy(self, path: Path, jobs: int, *, workers: int = 2, seconds: str = "2") -> list[str]:
        """``workers`` bench-trivial workers, ``jobs`` submitted; returns once one runs
        (so a fault then hits jobs both queued and running)."""
        for n in range(1, workers + 1):
            self.worker(f"w{n}", DIARQ_BENCH_TRIVIAL_PIPELINE_S=seconds)
        ids = [self.submit(path)["id"] for _ in range(jobs)]
        wait_until(lambda: any(r.status == "running" for r in self.rows(ids).values()),
                   timeout=30, what="a running job")
        return ids

    def rows(self, ids: list[str]) -> dict[str, Any]:
        from diarq.shared.db import session_scope
        from diarq.shared.orm import Job

        with session_scope(self.settings) as s:
            return {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(ids)))}

    def result_counts(self, ids: list[str]) -> dict[str, int]:
        from diarq.shared.db import session_scope
        from diarq.shared.orm import JobResult

        with session_scope(self.settings) as s:
            counted = dict(s.execute(select(JobResult.job_id, func.count())
                                     .where(JobResult.job_id.in_(ids))
                                     .group_by(JobResult.job_id)).all())
        return {i: counted.get(i, 0) for i in ids}

    def wait_all_done(self, ids: list[str], timeout: float = 120) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            rows = self.rows(ids)
            return rows if all(r.status in TERMINAL for r in rows.values()) else None

        return wait_until(done, timeout=timeout, interval=0.3,
                          what=f"{len(ids)} jobs to finish")

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        from diarq.shared.db import _engines

        for engine, _ in list(_engines.values()):
            engine.dispose()

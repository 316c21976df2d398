"""Integration fixtures: a fresh PostgreSQL database and Redis key prefix per run,
Alembic migrations applied, real `diarq worker` subprocesses, the Flask test client.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and Redis on 127.0.0.1:6379
(`make services` starts both).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.integration.keys import create_key_with_cli, use_key
from tests.integration.s3 import moto  # noqa: F401 (fixture: a module's own S3 server)
from tests.integration.services import ROOT, WorkerProcess

PG_ADMIN = os.environ.get("DIARQ_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DIARQ_TEST_REDIS", "redis://127.0.0.1:6379/0")
TRIVIAL_S = "1.0"  # bench-trivial pipeline sleep of the mechanics workers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"diarq_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN} ({exc}); run `make services`")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        from diarq.shared.db import _engines

        for engine, _ in list(_engines.values()):
            engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"diarq_test_{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis not reachable at {REDIS_URL}; run `make services`")
    yield prefix
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def service_env(pg_database: str, redis_prefix: str, tmp_path_factory) -> dict[str, str]:  # noqa: ANN001
    """Environment shared by the test process's settings and every worker subprocess."""
    storage = tmp_path_factory.mktemp("storage")
    return {
        **os.environ,
        "PYANNOTE_METRICS_ENABLED": "0",
        "DIARQ_DATABASE_URL": pg_database,
        "DIARQ_BROKER_URL": REDIS_URL,
        "DIARQ_BROKER_KEY_PREFIX": redis_prefix,
        "DIARQ_STORAGE_DIR": str(storage),
        "DIARQ_MAX_UPLOAD_MB": "2",
        # short timings so crash recovery happens within seconds in the tests
        "DIARQ_BROKER_VISIBILITY_TIMEOUT_S": "8",
        "DIARQ_HEARTBEAT_INTERVAL_S": "0.5",
        "DIARQ_STALE_AFTER_S": "4",
        "DIARQ_REAPER_INTERVAL_S": "1",
        "DIARQ_REQUEUE_QUEUED_AFTER_S": "60",
        "DIARQ_PROGRESS_INTERVAL_S": "0.2",
        "DIARQ_MAX_ATTEMPTS": "3",
        "DIARQ_LOG_LEVEL": "INFO",
        # authentication on, as in production (the `api_key` fixture makes a key); the
        # submit limits stay active but out of the way (test_security.py tests them)
        "DIARQ_AUTH": "on",
        "DIARQ_RATE_LIMIT_PER_MINUTE": "1000",
        "DIARQ_MAX_QUEUED_PER_KEY": "1000",
        # result reuse off by default: mechanics tests resubmit the same recording and
        # need real runs (test_batches.py tests dedupe, per request and as the default)
        "DIARQ_DEDUPE": "false",
        # webhook tests deliver to a server on 127.0.0.1, with a short retry schedule
        "DIARQ_WEBHOOK_ALLOW_PRIVATE": "true",
        "DIARQ_WEBHOOK_RETRY_DELAYS_S": "0.2,0.5",
    }


def _settings_from(env: dict[str, str]):  # noqa: ANN202
    from diarq.shared.settings import load_settings

    prefix = "DIARQ_"
    values = {k[len(prefix):].lower(): v for k, v in env.items()
              if k.startswith(prefix) and not k.startswith("DIARQ_TEST_")}
    return load_settings(**values)


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str]):  # noqa: ANN201
    from diarq.shared.db import upgrade

    s = _settings_from(service_env)
    upgrade(s)  # Alembic, never create_all: drift between models and migrations shows
    return s


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def workers(settings, service_env: dict[str, str], log_dir: Path) -> Iterator[list[WorkerProcess]]:  # noqa: ANN001
    """Two mechanics workers (bench-trivial pipeline) sharing the `cpu` queue."""
    env = {**service_env, "DIARQ_BENCH_TRIVIAL_PIPELINE_S": TRIVIAL_S}
    procs = [WorkerProcess(f"w{i}", env, log_dir) for i in (1, 2)]
    try:
        for p in procs:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.stop()


@pytest.fixture(scope="session")
def api_key(settings, service_env: dict[str, str]) -> str:  # noqa: ANN001
    """A key made by the real `diarq keys create`; the test clients below send it. An
    operator's key: the mechanics tests follow jobs to the workers that ran them
    (tests/integration/test_workers.py checks what other keys see)."""
    return create_key_with_cli(service_env, "integration-tests", operator=True)


@pytest.fixture(scope="session")
def api_key_id(settings, api_key: str) -> int:  # noqa: ANN001
    """Id of ``api_key``: rows a test inserts directly must belong to it to be visible."""
    from diarq.shared.keystore import authenticate

    key_id = authenticate(settings, api_key)
    assert key_id is not None
    return key_id


@pytest.fixture(scope="session")
def app(settings, api_key: str):  # noqa: ANN001, ANN201
    from diarq.api import create_app

    return use_key(create_app({"DIARQ_SETTINGS": settings, "TESTING": True}), api_key)


@pytest.fixture
def client(app, workers):  # noqa: ANN001, ANN201
    return app.test_client()


@pytest.fixture(scope="session")
def app_for_queue(settings, api_key: str):  # noqa: ANN001, ANN201
    """An API app that routes jobs to another queue (same DB, broker and storage)."""
    from diarq.api import create_app

    def make(queue: str):  # noqa: ANN202
        return use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
            update={"job_queue": queue}), "TESTING": True}), api_key)

    return make


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:  # noqa: ANN001
    """A short real recording made with espeak-ng (two voices) and sox."""
    d = tmp_path_factory.mktemp("audio")
    a, b, out = d / "a.wav", d / "b.wav", d / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(a),
                    "Good morning everyone, let us start the weekly meeting."], check=True)
    subprocess.run(["espeak-ng", "-v", "en-gb+f3", "-w", str(b),
                    "Thanks. The budget report is ready for review."], check=True)
    subprocess.run(["sox", str(a), str(b), "-r", "16000", "-c", "1", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return ROOT / "tests" / "data"

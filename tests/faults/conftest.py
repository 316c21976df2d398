"""Fault-injection fixtures: each module gets its own deployment (fresh database, Redis
key prefix, storage) so killed workers and reapers never touch other tests' jobs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import Stack, create_database, drop_database
from tests.integration.conftest import speech_wav  # noqa: F401 (fixture: espeak-ng speech)
from tests.integration.s3 import moto  # noqa: F401 (fixture: the module's S3 server)

PG_ADMIN = os.environ.get("DIARQ_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DIARQ_TEST_REDIS", "redis://127.0.0.1:6379/0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("fault-logs")


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory, log_dir: Path) -> Iterator:  # noqa: ANN001
    """``make_stack(admin_url=..., redis_url=..., **DIARQ_overrides) -> Stack``."""
    made: list[tuple[Stack, str, str]] = []

    def make(*, admin_url: str = PG_ADMIN, redis_url: str = REDIS_URL, **overrides: str) -> Stack:
        name = create_database(admin_url)
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        stack = Stack(database_url=f"{base}/{name}", redis_url=redis_url,
                      storage=tmp_path_factory.mktemp("storage"), log_dir=log_dir, **overrides)
        made.append((stack, admin_url, name))
        return stack

    yield make
    for stack, admin_url, name in made:
        stack.close()
        with contextlib.suppress(Exception):  # a private cluster may already be gone
            drop_database(admin_url, name)

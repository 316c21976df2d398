"""Fixtures for unit tests: no external services."""

from __future__ import annotations

from pathlib import Path

import pytest

from diarq.shared.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite database with the Alembic migrations applied."""
    from diarq.shared.db import upgrade

    s = load_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                      broker_url=f"filesystem://{tmp_path / 'broker'}")
    upgrade(s)
    return s

"""An unreachable database is a 503 JSON error with Retry-After, never a 500 (no services:
the database URL points at a port nothing listens on)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from diarq.shared.settings import load_settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("auth", ["on", "off"])
def test_database_down_is_503_json(tmp_path: Path, auth: str) -> None:
    from diarq.api import create_app

    settings = load_settings(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nowhere",
        broker_url=f"filesystem://{tmp_path / 'broker'}", storage_dir=tmp_path / "storage",
        auth=auth,
    )
    client = create_app({"DIARQ_SETTINGS": settings, "TESTING": True}).test_client()
    headers = {"Authorization": "Bearer dq_not_checked_without_a_database"}
    job = "/v1/jobs/0f1e2d3c-0000-4000-8000-000000000000"
    for method, url in (("GET", "/v1/jobs"), ("GET", job), ("DELETE", job)):
        resp = client.open(url, method=method, headers=headers)
        assert resp.status_code == 503, (url, resp.get_data(as_text=True))
        assert resp.get_json()["error"]["code"] == "database_unavailable"
        assert resp.headers["Retry-After"] == "5"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["database"] != "ok"

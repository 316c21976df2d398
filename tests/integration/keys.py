"""Test clients that send an API key, so the suite runs with authentication on."""

from __future__ import annotations

import subprocess

from flask import Flask
from flask.testing import FlaskClient

from tests.integration.services import DIARQ, ROOT


def create_key_with_cli(env: dict[str, str], name: str, *, operator: bool = False) -> str:
    """`diarq keys create --name NAME [--operator]` as an operator runs it; the key is
    stdout."""
    args = ["keys", "create", "--name", name] + (["--operator"] if operator else [])
    proc = subprocess.run(DIARQ + args, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    assert key.startswith("dq_") and "\n" not in key, proc.stdout
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def use_key(app: Flask, key: str | None) -> Flask:
    """Make ``app.test_client()`` send ``key`` on every request (headers given to a
    request still win, so a test can impersonate another key or send none)."""

    class KeyedClient(FlaskClient):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, **kwargs)
            if key:
                self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"

    app.test_client_class = KeyedClient
    return app

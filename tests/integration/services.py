"""Helpers for integration tests: real worker subprocesses, polling, spec validation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
DIARQ = [sys.executable, "-c", "from diarq.cli import main; main()"]
SPEC = json.loads((ROOT / "api" / "openapi.json").read_text())


class WorkerProcess:
    """`diarq worker` as a subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *, queues: str = "cpu",
                 concurrency: int = 1, extra_env: dict[str, str] | None = None,
                 cwd: Path = ROOT):
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            DIARQ + ["worker", "--queues", queues, "--concurrency", str(concurrency),
                     "--hostname", f"{name}@test"],
            env={**env, **(extra_env or {})}, cwd=cwd, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120, marker: str = " ready.") -> None:
        """Wait for ``marker`` in the log (pool processes load models after "ready.")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            if marker in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a lost machine."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@contextmanager
def real_pipeline_worker(name: str, env: dict[str, str], log_dir: Path,
                         queue: str) -> Iterator[WorkerProcess]:
    """A worker with the real offline pipeline on ``queue`` of its own, once its models
    loaded (a test module's fixture: loading takes a minute or more)."""
    import pytest

    if not (ROOT / "models" / "diarization").is_dir():
        pytest.fail("offline models missing: run `make models` (diarq models prepare) first")
    worker = WorkerProcess(name, env, log_dir, queues=queue)
    try:
        worker.wait_ready(timeout=240, marker="models loaded")
        yield worker
    finally:
        worker.stop()


def wait_until(predicate, timeout: float = 60, interval: float = 0.1, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _schema_for(path: str, method: str, status: int, content_type: str) -> dict[str, Any]:
    op = SPEC["paths"][path][method.lower()]
    resp = op["responses"][str(status)]
    if "$ref" in resp:
        resp = SPEC["components"]["responses"][resp["$ref"].rsplit("/", 1)[-1]]
    content = resp.get("content")
    assert content is not None, f"spec has no body for {method} {path} {status}"
    media = content_type.split(";")[0].strip()
    assert media in content, f"{media} not in spec for {method} {path} {status}"
    return content[media]["schema"]


def check_spec(resp, path: str, method: str) -> Any:  # noqa: ANN001
    """Validate a Flask test-client response against /openapi.json; return its JSON."""
    assert str(resp.status_code) in SPEC["paths"][path][method.lower()]["responses"], (
        f"status {resp.status_code} of {method} {path} is not in the spec: {resp.data[:300]!r}"
    )
    if resp.status_code == 204:
        assert resp.data == b""
        return None
    schema = _schema_for(path, method, resp.status_code, resp.content_type)
    if not resp.content_type.startswith("application/json"):
        if schema.get("format") == "binary":  # audio, waveform peaks
            return resp.data
        return resp.get_data(as_text=True)
    body = resp.get_json()
    # root the schema in the spec so "#/components/..." references resolve
    Draft202012Validator({**schema, "components": SPEC["components"]}).validate(body)
    return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_api(env: dict[str, str], log_path: Path | None = None,
                cwd: Path = ROOT) -> Iterator[str]:
    """`diarq api` (real gunicorn, one process) on a free loopback port; yields its URL."""
    port = free_port()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(DIARQ + ["api", "--port", str(port), "--workers", "1"], env=env,
                            cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, timeout=30, interval=0.2, what="gunicorn")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if log_path:
            log.close()


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of the embedded mode (`diarq up`): SQLite, filesystem broker, local disk."""
    return {
        "PATH": "/usr/bin:/bin",
        "PYANNOTE_METRICS_ENABLED": "0",
        "DIARQ_DATABASE_URL": f"sqlite:///{tmp_path / 'diarq.db'}",
        "DIARQ_BROKER_URL": f"filesystem://{tmp_path / 'broker'}",
        "DIARQ_STORAGE_DIR": str(tmp_path / "storage"),
        **extra,
    }


def sine_wav(path: Path, seconds: float) -> Path:
    """A 16 kHz mono 16-bit WAV of a tone (32 kB per second of audio), made with sox."""
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", "300", "vol", "0.2"], check=True)
    return path

"""Storage settings and the worker's scratch copies (no services: the backends against
a real S3 server are tested in tests/integration/test_storage_backends.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diarq.shared.errors import ConfigError, DiarqError
from diarq.shared.redact import REDACTED, redact
from diarq.shared.s3_storage import S3Storage
from diarq.shared.settings import load_settings
from diarq.shared.storage import LocalStorage
from diarq.shared.storage_backend import open_storage
from diarq.worker.scratch import local_audio, sweep


def _settings(tmp_path: Path, **values: object):  # noqa: ANN202
    return load_settings(data_dir=tmp_path, **values)


def test_storage_url_chooses_the_backend(tmp_path: Path) -> None:
    s3 = open_storage(_settings(tmp_path, storage_url="s3://meetings/diarq/prod",
                                s3_endpoint_url="http://127.0.0.1:9000"))
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("meetings", "diarq/prod/")
    assert s3.scratch_root == tmp_path / "scratch"
    bare = open_storage(_settings(tmp_path, storage_url="s3://meetings"))
    assert isinstance(bare, S3Storage) and bare.prefix == ""
    local = open_storage(_settings(tmp_path, storage_url=f"file://{tmp_path / 'files'}"))
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "files").resolve()
    default = open_storage(_settings(tmp_path))
    assert isinstance(default, LocalStorage) and default.root == (tmp_path / "storage").resolve()


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "file://relative/dir", "gs://b",
                                 "/just/a/path"])
def test_invalid_storage_urls_name_the_variable(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _settings(tmp_path, storage_url=url)
    assert "DIARQ_STORAGE_URL" in exc.value.message


def test_aws_credentials_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    text = redact(f"signed with AKIAIOSFODNN7EXAMPLE and {secret}; ASIAY34FZKBOKMUTVV7A")
    assert "AKIAIOSFODNN7EXAMPLE" not in text and secret not in text
    assert "ASIAY34FZKBOKMUTVV7A" not in text and text.count(REDACTED) == 3


_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_sweep_keeps_held_copies_and_removes_those_of_dead_processes(tmp_path: Path) -> None:
    held = tmp_path / "job-a.part"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(held)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        orphan = tmp_path / "job-b.part"
        orphan.write_bytes(b"half a download")
        other = tmp_path / "notes.txt"
        other.write_text("not a scratch copy")
        assert sweep(tmp_path) == 1
        assert held.exists() and not orphan.exists() and other.exists()
        holder.kill()  # SIGKILL: the lock goes with the process, the file stays
        holder.wait()
        assert held.exists()
        assert sweep(tmp_path) == 1 and not held.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_local_storage_needs_no_copy(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    storage = LocalStorage(tmp_path / "storage")
    storage.put_bytes("audio/ab/abc", b"RIFF....")
    with local_audio(storage, "audio/ab/abc", settings, job_id="abc") as (path, seconds):
        assert path == storage.path("audio/ab/abc") and seconds == 0.0
    assert path.exists()  # the stored file itself, not a scratch copy
    with pytest.raises(DiarqError) as exc, local_audio(storage, "audio/ab/gone", settings,
                                                       job_id="x"):
        pass
    assert exc.value.code == "audio_missing"
    assert not (tmp_path / "scratch").exists() or os.listdir(tmp_path / "scratch") == []

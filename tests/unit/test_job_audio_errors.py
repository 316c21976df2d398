"""A job whose audio cannot be decoded fails with a message naming the file the user
uploaded (the job row's audio_filename), never the storage path or generated name."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from diarq.shared.db import session_scope
from diarq.shared.orm import Job
from diarq.shared.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample.wav"  # 30 s

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.mark.parametrize("filename, shown", [("Weekly sync 03.wav", "Weekly sync 03.wav"),
                                             (None, "the upload")])
def test_truncated_upload_is_named_as_uploaded(settings: Settings, tmp_path: Path,
                                               filename: str | None, shown: str) -> None:
    from diarq.worker.execution import execute_job

    settings = settings.model_copy(update={"storage_dir": tmp_path / "storage"})
    job_id = str(uuid.uuid4())
    rel = f"audio/{job_id[:2]}/{job_id}"  # the API's generated storage name
    stored = settings.storage_dir / rel
    stored.parent.mkdir(parents=True)
    data = SAMPLE.read_bytes()
    stored.write_bytes(data[: len(data) // 3])  # the header still announces 30 s
    with session_scope(settings) as session:
        session.add(Job(id=job_id, status="queued", options={}, queue="cpu",
                        audio_path=rel, audio_filename=filename))

    assert execute_job(job_id, settings=settings, worker_name="test:1") == "failed"
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        code, message = job.error_code, job.error_message
    assert code == "audio_truncated"
    assert message.startswith(f"{shown} is damaged or cut short"), message
    assert job_id not in message and str(tmp_path) not in message and "audio/" not in message

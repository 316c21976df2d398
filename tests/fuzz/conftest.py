"""Fuzzing fixtures: the Flask app on a fresh PostgreSQL database (Alembic migrations),
an in-memory broker (nothing is consumed: no worker is needed), a key, seeded jobs."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import pg_database  # noqa: F401 (fixture: a DB per run)


@pytest.fixture(scope="module")
def fuzz_settings(pg_database: str, tmp_path_factory):  # noqa: ANN001, ANN201, F811
    from diarq.shared.db import upgrade
    from diarq.shared.settings import load_settings

    s = load_settings(
        database_url=pg_database, broker_url="memory://",
        storage_dir=tmp_path_factory.mktemp("fuzz-storage"), max_upload_mb=2,
        auth="on", bench_trivial_pipeline_s=0.0,
        # limits off: every generated submission reaches the upload and option checks
        rate_limit_per_minute=0, max_queued_per_key=0,
        # nothing consumes the jobs: a request that waits for one would wait until this
        # bound (POST /api/diarize waits by default, `Prefer: wait=N` elsewhere)
        wait_max_s=0.5,
    )
    upgrade(s)
    return s


@pytest.fixture(scope="module")
def fuzz_app(fuzz_settings):  # noqa: ANN001, ANN201
    from diarq.api import create_app

    return create_app({"DIARQ_SETTINGS": fuzz_settings, "TESTING": True})


@pytest.fixture(scope="module")
def fuzz_key(fuzz_settings) -> str:  # noqa: ANN001
    from diarq.shared.keystore import create_key

    return create_key(fuzz_settings, "fuzz")[1]


@pytest.fixture(scope="module")
def seeded_jobs(fuzz_settings, fuzz_key) -> list[str]:  # noqa: ANN001
    """Ids the fuzzer substitutes for generated ones, so that status, result rendering
    (every format) and delete run on real rows: a succeeded job with a result, a queued
    one, a failed one (all the key's), and another key's job (must stay 404)."""
    from diarq.shared.db import session_scope
    from diarq.shared.keystore import authenticate, create_key
    from diarq.shared.orm import FAILED, QUEUED, SUCCEEDED, Job, JobResult, utcnow
    from diarq.shared.result import AudioInfo, Result, Segment, Speaker, Turn, Word

    key_id = authenticate(fuzz_settings, fuzz_key)
    other_id = authenticate(fuzz_settings, create_key(fuzz_settings, "other")[1])
    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    result = Result(
        job_id=ids[0], audio=AudioInfo(duration=3.0, sample_rate=16000), language="en",
        speakers=[Speaker(id="SPEAKER_00", name="Anna", talk_time=2.0)],
        segments=[Segment(start=0.0, end=2.0, speaker="SPEAKER_00", text="hello there",
                          words=[Word(word="hello", start=0.0, end=0.9, score=0.9,
                                      speaker="SPEAKER_00")])],
        diarization=[Turn(start=0.0, end=2.0, speaker="SPEAKER_00")],
        models={"fuzz": True}, timings={"total": 0.1},
    )
    rows = [(ids[0], SUCCEEDED, key_id), (ids[1], QUEUED, key_id), (ids[2], FAILED, key_id),
            (ids[3], SUCCEEDED, other_id)]
    with session_scope(fuzz_settings) as s:
        for job_id, status, owner in rows:
            s.add(Job(id=job_id, status=status, options={}, queue="cpu", api_key_id=owner,
                      attempts=1, created_at=now, updated_at=now,
                      error_code="audio_invalid" if status == FAILED else None,
                      error_message="fuzz seed" if status == FAILED else None))
        s.flush()
        for job_id in (ids[0], ids[3]):
            s.add(JobResult(job_id=job_id, data={**result.to_dict(), "job_id": job_id}))
    return ids


@pytest.fixture(scope="module")
def wav_bytes(tmp_path_factory) -> bytes:  # noqa: ANN001
    """One second of real audio (sox), swapped in for some generated uploads so the
    fuzzer also reaches option parsing and job creation past the audio probe."""
    path: Path = tmp_path_factory.mktemp("fuzz-audio") / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth",
                    "1", "sine", "440"], check=True)
    return path.read_bytes()

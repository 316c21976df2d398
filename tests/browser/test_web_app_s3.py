"""The job page in Chromium when the recording lives in object storage (S3 on 127.0.0.1,
moto in server mode): gunicorn reads the playback copy and the waveform peaks with
ranged GETs, and the browser's audio element loads, seeks and plays through them. The
job is the worker's output as a worker on S3 leaves it (Opus/WebM copy and peaks under
the job's prefix in the bucket; tests/integration/test_web_api.py checks that a worker
makes them), so no models are loaded here.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diarq.shared.db import session_scope
from diarq.shared.keystore import authenticate
from diarq.shared.orm import SUCCEEDED, Job, JobResult, utcnow
from diarq.shared.storage import audio_key, media_key
from diarq.shared.storage_backend import open_storage
from diarq.worker.waveform import waveform_file
from tests.browser.conftest import chromium_browser
from tests.browser.synthetic import synthetic_result
from tests.browser.test_web_app import sign_in, wait_js
from tests.integration.conftest import PG_ADMIN, REDIS_URL
from tests.integration.s3 import MotoServer, moto  # noqa: F401 (fixture)
from tests.integration.services import ROOT, running_api

SAMPLE = ROOT / "tests" / "data" / "sample.wav"  # 30 s


@pytest.fixture(scope="module")
def s3_deployment(moto: MotoServer, tmp_path_factory) -> Iterator[tuple[Any, str]]:  # noqa: ANN001, F811
    """A deployment of its own on S3 (database, Redis prefix, bucket) and its gunicorn."""
    from tests.faults.stack import Stack, create_database, drop_database

    bucket = moto.new_bucket()
    name = create_database(PG_ADMIN)
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    logs = tmp_path_factory.mktemp("browser-s3-logs")
    stack = Stack(database_url=f"{base}/{name}", redis_url=REDIS_URL,
                  storage=tmp_path_factory.mktemp("unused-local-storage"), log_dir=logs,
                  **moto.storage_env(bucket))
    try:
        with running_api(stack.env, logs / "api.log") as url:
            yield stack, url
    finally:
        stack.close()
        with contextlib.suppress(Exception):
            drop_database(PG_ADMIN, name)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    """Chromium without the module-wide server of conftest.py (no worker is needed)."""
    with chromium_browser() as chromium:
        yield chromium


def _stored_job(stack: Any, folder: Path) -> str:
    """A succeeded job whose upload, Opus/WebM copy and peaks are objects in the bucket."""
    job_id = str(uuid.uuid4())
    storage = open_storage(stack.settings)
    webm = folder / "copy.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(SAMPLE), "-c:a", "libopus",
                    "-b:a", "32k", "-ac", "1", "-f", "webm", str(webm)], check=True, timeout=60)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(SAMPLE), "-f", "f32le", "-ac", "1",
                          "-ar", "16000", "-"], check=True, capture_output=True, timeout=60)
    samples = np.frombuffer(raw.stdout, dtype=np.float32)
    keys = {"audio_path": audio_key(job_id),
            "playback_path": media_key(job_id, "seeded", ".webm"),
            "waveform_path": media_key(job_id, "seeded", ".peaks")}
    storage.put_file(keys["audio_path"], SAMPLE)
    storage.put_file(keys["playback_path"], webm)
    storage.put_bytes(keys["waveform_path"], waveform_file(samples))
    duration = len(samples) / 16000
    now = utcnow()
    with session_scope(stack.settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  api_key_id=authenticate(stack.settings, stack.key),
                  audio_filename="meeting-in-s3.wma", audio_duration=duration,
                  playback_type="audio/webm", created_at=now, updated_at=now,
                  finished_at=now, **keys))
        s.flush()
        s.add(JobResult(job_id=job_id, created_at=now,
                        data=synthetic_result(job_id, 60, duration, speakers=2)))
    return job_id


def test_the_page_plays_and_seeks_a_recording_in_object_storage(browser, s3_deployment,  # noqa: ANN001
                                                                shots, tmp_path: Path) -> None:
    stack, url = s3_deployment
    job_id = _stored_job(stack, tmp_path)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    served: list[tuple[int, str | None]] = []
    page.on("response", lambda r: served.append((r.status, r.headers.get("content-range")))
            if r.url.endswith(f"/v1/jobs/{job_id}/audio") else None)
    sign_in(page, url, stack.key)
    page.goto(f"{url}/jobs/{job_id}")
    page.wait_for_selector("body[data-rendered=all]", timeout=30_000)
    wait_js(page, "() => document.getElementById('audio').readyState >= 1", timeout=30_000)
    # WebM cues: the browser knows the length at once (a broken range answer gives NaN)
    duration = page.evaluate("document.getElementById('audio').duration")
    assert abs(duration - 30.0) < 0.5, duration
    # the waveform came from the peaks object (the canvas is not blank)
    drawn = page.evaluate("""() => { const c = document.getElementById('wave-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert drawn > 1000

    # a word near the end: the element seeks there, then plays on from it
    last = page.locator("#transcript .w").count() - 3
    word = page.locator(f'#transcript .w[data-i="{last}"]')
    word.click()
    at = page.evaluate("document.getElementById('audio').currentTime")
    assert at > 20, at
    page.evaluate("document.getElementById('audio').play()")
    wait_js(page, f"() => document.getElementById('audio').currentTime > {at + 0.5}",
            timeout=20_000)
    page.evaluate("document.getElementById('audio').pause()")
    assert page.evaluate("document.getElementById('audio').error") is None
    shots.take(page, "job-s3", full_page=False)
    # everything came through the API in ranges (206), none from anywhere else
    assert served and all(status in (200, 206) for status, _ in served), served
    assert any(status == 206 and rng for status, rng in served), served
    ctx.close()

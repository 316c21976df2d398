"""The real offline pipeline (no bench shortcut) run by a real worker, end to end, and a
worker whose models cannot load failing jobs with an actionable code."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from diarq.shared.db import session_scope
from diarq.shared.orm import SpeakerVoice
from diarq.shared.serialize import overall_progress
from diarq.shared.voices import load_voices
from tests.integration.services import ROOT, WorkerProcess, check_spec, wait_until
from tests.integration.test_jobs import submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_real_pipeline_end_to_end(app_for_queue, service_env, log_dir, data_dir):  # noqa: ANN001
    if not (ROOT / "models" / "diarization").is_dir():
        pytest.fail("offline models missing: run `make models` (diarq models prepare) first")
    client = app_for_queue("gpu").test_client()  # routing: only the real worker listens here
    worker = WorkerProcess("real", service_env, log_dir, queues="gpu")
    try:
        worker.wait_ready(timeout=120, marker="models loaded")
        resp = submit(client, data_dir / "sample.wav", num_speakers="2",
                      participants="Anna,Boris")
        job = check_spec(resp, "/v1/jobs", "POST")
        seen: list[float] = []

        def finished() -> dict | None:
            cur = check_spec(client.get(f"/v1/jobs/{job['id']}"), "/v1/jobs/{id}", "GET")
            seen.append(overall_progress(cur))
            return cur if cur["status"] in ("succeeded", "failed", "canceled") else None

        done = wait_until(finished, timeout=300, interval=0.1, what="the real job")
        assert done["status"] == "succeeded", (done, worker.log()[-3000:])
        assert seen == sorted(seen), "progress went backwards"

        result = check_spec(client.get(f"/v1/jobs/{job['id']}/result"),
                            "/v1/jobs/{id}/result", "GET")
        assert result["language"] == "en"
        assert 29 < result["audio"]["duration"] < 31
        assert {s["name"] for s in result["speakers"]} == {"Anna", "Boris"}
        words = " ".join(s["text"] for s in result["segments"]).lower()
        assert len(words.split()) > 30
        assert result["diarization"] and result["models"]["profile"] == "offline"
        txt = client.get(f"/v1/jobs/{job['id']}/result?format=txt").get_data(as_text=True)
        assert "Anna" in txt and "Boris" in txt
        rttm = client.get(f"/v1/jobs/{job['id']}/result?format=rttm").get_data(as_text=True)
        assert rttm.startswith("SPEAKER ")

        # each speaker's voice is kept in the database (never in the result), under the
        # result's labels, and goes with the job
        assert "voice" not in str(sorted(result)) and "vector" not in str(result)
        with session_scope(settings_of(client)) as session:
            voices = load_voices(session, job["id"])
        assert voices is not None and "ecapa" in voices.model.lower()
        assert set(voices.vectors) == {s["id"] for s in result["speakers"]}
        assert all(v.shape == (192,) for v in voices.vectors.values())
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        with session_scope(settings_of(client)) as session:
            left = session.scalar(select(func.count()).select_from(SpeakerVoice)
                                  .where(SpeakerVoice.job_id == job["id"]))
        assert left == 0
    finally:
        worker.stop()


def settings_of(client):  # noqa: ANN001, ANN201
    return client.application.extensions["diarq"].settings

"""Submit -> poll -> result through the API with real Celery workers, Redis and PostgreSQL."""

from __future__ import annotations

import io
import re
import time

import pytest
from sqlalchemy import func, select

from diarq.shared.db import session_scope
from diarq.shared.orm import Job, JobResult
from tests.integration.services import check_spec, wait_until

pytestmark = pytest.mark.integration

FORMATS = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "txt": "text/plain",
    "tsv": "text/tab-separated-values",
    "rttm": "text/plain",
}


def submit(client, path, **form):  # noqa: ANN001, ANN201
    with open(path, "rb") as fh:
        data = {"file": (fh, path.name), **form}
        resp = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    return resp


def wait_done(client, job_id: str, timeout: float = 60) -> dict:  # noqa: ANN001
    def done():  # noqa: ANN202
        resp = client.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        job = check_spec(resp, "/v1/jobs/{id}", "GET")
        return job if job["status"] in ("succeeded", "failed", "canceled") else None

    return wait_until(done, timeout=timeout, what=f"job {job_id} to finish")


def result_count(settings, job_id: str) -> int:  # noqa: ANN001
    with session_scope(settings) as s:
        return s.scalar(select(func.count()).select_from(JobResult)
                        .where(JobResult.job_id == job_id))


def test_submit_poll_result_every_format(client, settings, speech_wav):  # noqa: ANN001
    resp = submit(client, speech_wav, min_speakers="1", max_speakers="3")
    job = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 202
    assert resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["attempts"] == 0
    assert job["options"] == {"min_speakers": 1, "max_speakers": 3, "diarize": True,
                              "align": True}
    assert 3 < job["audio"]["duration"] < 15
    assert job["audio"]["codec"] == "pcm_s16le" and job["audio"]["sample_rate"] == 16000
    assert job["audio"]["bytes"] == speech_wav.stat().st_size
    import hashlib

    assert job["audio"]["sha256"] == hashlib.sha256(speech_wav.read_bytes()).hexdigest()

    # 409 until succeeded (it may already be running)
    early = client.get(f"/v1/jobs/{job['id']}/result")
    if early.status_code == 409:
        check_spec(early, "/v1/jobs/{id}/result", "GET")

    done = wait_done(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1 and done["worker"]
    assert done["progress"] == 1.0
    assert done["started_at"] and done["finished_at"] and done["error"] is None

    for fmt, media in FORMATS.items():
        resp = client.get(f"/v1/jobs/{job['id']}/result?format={fmt}")
        assert resp.status_code == 200, (fmt, resp.data)
        assert resp.content_type.split(";")[0] == media
        body = check_spec(resp, "/v1/jobs/{id}/result", "GET")
        if fmt == "json":
            assert body["job_id"] == job["id"]
            assert body["models"] == {"bench_trivial": True}  # mechanics workers
        if fmt == "vtt":
            assert body.startswith("WEBVTT")
    assert result_count(settings, job["id"]) == 1

    bad = client.get(f"/v1/jobs/{job['id']}/result?format=docx")
    assert bad.status_code == 422
    assert check_spec(bad, "/v1/jobs/{id}/result", "GET")["error"]["code"] == "invalid_format"


def test_list_filter_and_cursor_pagination(client, speech_wav):  # noqa: ANN001
    ids = [check_spec(submit(client, speech_wav), "/v1/jobs", "POST")["id"] for _ in range(3)]
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        url = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = check_spec(client.get(url), "/v1/jobs", "GET")
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a job appeared on two pages"
    assert set(ids) <= set(seen)
    # newest first
    assert [i for i in seen if i in ids] == list(reversed(ids))

    for job_id in ids:
        wait_done(client, job_id)
    page = check_spec(client.get("/v1/jobs?status=succeeded&limit=100"), "/v1/jobs", "GET")
    assert {j["status"] for j in page["jobs"]} == {"succeeded"}
    assert set(ids) <= {j["id"] for j in page["jobs"]}

    for bad in ("/v1/jobs?status=pending", "/v1/jobs?limit=0", "/v1/jobs?cursor=%%%"):
        resp = client.get(bad)
        assert resp.status_code == 422, bad
        check_spec(resp, "/v1/jobs", "GET")


def test_two_workers_share_the_queue(client, workers, speech_wav):  # noqa: ANN001
    ids = [check_spec(submit(client, speech_wav), "/v1/jobs", "POST")["id"] for _ in range(6)]
    done = [wait_done(client, i) for i in ids]
    assert {d["status"] for d in done} == {"succeeded"}
    names = {d["worker"].split("@")[0] for d in done}
    assert names == {"w1", "w2"}, names


def test_unknown_job_and_routes_are_json_errors(client):  # noqa: ANN001
    resp = client.get("/v1/jobs/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404
    assert check_spec(resp, "/v1/jobs/{id}", "GET")["error"]["code"] == "job_not_found"
    resp = client.get("/v1/jobs/nope/result")
    assert resp.status_code == 404
    check_spec(resp, "/v1/jobs/{id}/result", "GET")
    resp = client.delete("/v1/jobs/nope")
    assert resp.status_code == 404
    check_spec(resp, "/v1/jobs/{id}", "DELETE")
    for method, url, status in (("get", "/no/such/page", 404), ("put", "/v1/jobs", 405),
                                ("patch", "/healthz", 405)):
        resp = getattr(client, method)(url)
        assert resp.status_code == status
        assert resp.is_json and set(resp.get_json()["error"]) == {"code", "message"}


def test_health_ready_and_spec(client, app):  # noqa: ANN001
    check_spec(client.get("/healthz"), "/healthz", "GET")
    ready = check_spec(client.get("/readyz"), "/readyz", "GET")
    assert ready["checks"] == {"database": "ok", "broker": "ok", "storage": "ok",
                               "workers": "ok"}
    spec = check_spec(client.get("/openapi.json"), "/openapi.json", "GET")
    assert spec["openapi"].startswith("3.1")
    # every route the app serves is documented
    routes = {re.sub(r"<\w+>", "{id}", r.rule) for r in app.url_map.iter_rules()
              if r.endpoint.rsplit(".", 1)[-1] != "static"}
    assert routes <= set(spec["paths"]), routes - set(spec["paths"])


def test_bad_uploads_get_4xx_and_nothing_is_queued(client, settings, tmp_path):  # noqa: ANN001
    def count() -> int:
        with session_scope(settings) as s:
            return s.scalar(select(func.count()).select_from(Job))

    before = count()
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 50)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases = [
        (dict(data={"file": (text.open("rb"), "notes.wav")}), 415, "audio_not_audio"),
        (dict(data={"file": (empty.open("rb"), "empty.wav")}), 400, "audio_empty"),
        (dict(data={"file": (io.BytesIO(b"\0" * (3 * 1024 * 1024)), "big.wav")}), 413,
         "upload_too_large"),
        (dict(data={"nofile": "x"}), 400, "file_missing"),
        (dict(data={"file": (io.BytesIO(b"RIFF"), "a.wav"), "colour": "red"}), 422,
         "invalid_options"),
        (dict(data={"file": (io.BytesIO(b"RIFF"), "a.wav"), "min_speakers": "4",
                    "max_speakers": "2"}), 422, "invalid_options"),
        (dict(data={"file": (io.BytesIO(b"RIFF"), "a.wav"), "num_speakers": "-1"}), 422,
         "invalid_options"),
    ]
    for kwargs, status, code in cases:
        resp = client.post("/v1/jobs", content_type="multipart/form-data", **kwargs)
        body = check_spec(resp, "/v1/jobs", "POST")
        assert (resp.status_code, body["error"]["code"]) == (status, code), body
    assert count() == before
    # uploads that were refused leave no file behind
    storage = settings.storage_dir
    leftovers = [p for p in storage.rglob("*") if p.is_file() and "incoming" in p.parts]
    assert leftovers == []


def test_cancel_queued_and_running_and_delete(client, settings, app_for_queue, speech_wav):  # noqa: ANN001
    # a queue no worker listens on keeps a job queued for as long as we like
    idle = app_for_queue("idle").test_client()
    queued = check_spec(submit(idle, speech_wav), "/v1/jobs", "POST")
    audio = settings.storage_dir / "audio" / queued["id"][:2] / queued["id"]
    assert audio.exists()
    resp = client.delete(f"/v1/jobs/{queued['id']}")
    assert resp.status_code == 204
    check_spec(resp, "/v1/jobs/{id}", "DELETE")
    job = check_spec(client.get(f"/v1/jobs/{queued['id']}"), "/v1/jobs/{id}", "GET")
    assert (job["status"], job["deleted"], job["attempts"]) == ("canceled", True, 0)
    assert not audio.exists()

    # running: cancel while the worker holds it; its late success must not be written
    running = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    wait_until(lambda: client.get(f"/v1/jobs/{running['id']}").get_json()["status"]
               == "running", timeout=30, interval=0.02, what="job to run")
    assert client.delete(f"/v1/jobs/{running['id']}").status_code == 204
    time.sleep(1.5)  # longer than the trivial pipeline: the worker has finished
    job = client.get(f"/v1/jobs/{running['id']}").get_json()
    assert job["status"] == "canceled"
    assert result_count(settings, running["id"]) == 0
    resp = client.get(f"/v1/jobs/{running['id']}/result")
    assert resp.status_code == 404
    assert check_spec(resp, "/v1/jobs/{id}/result", "GET")["error"]["code"] == "result_deleted"

    # delete a succeeded job: result and audio go
    done = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    assert wait_done(client, done["id"])["status"] == "succeeded"
    assert result_count(settings, done["id"]) == 1
    assert client.delete(f"/v1/jobs/{done['id']}").status_code == 204
    assert result_count(settings, done["id"]) == 0
    job = client.get(f"/v1/jobs/{done['id']}").get_json()
    assert job["status"] == "succeeded" and job["deleted"] is True


def test_compatibility_route(client, speech_wav):  # noqa: ANN001
    with open(speech_wav, "rb") as fh:
        resp = client.post("/api/diarize", content_type="multipart/form-data", data={
            "audioFile": (fh, "meeting.wav"), "minSpeakers": "1", "maxSpeakers": "2",
            "participants": "Anna, Boris", "prompt": "Weekly meeting."},
            headers={"Prefer": "respond-async"})
    job = check_spec(resp, "/api/diarize", "POST")
    assert resp.status_code == 202 and resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["options"]["participants"] == ["Anna", "Boris"]
    assert (job["options"]["min_speakers"], job["options"]["max_speakers"]) == (1, 2)
    assert job["audio"]["filename"] == "meeting.wav"
    assert wait_done(client, job["id"])["status"] == "succeeded"
    # without Prefer the original client's request waits and gets the result itself
    # (tests/integration/test_seed_client.py)

    resp = client.post("/api/diarize", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"x"), "a.wav")})
    assert resp.status_code == 400
    assert check_spec(resp, "/api/diarize", "POST")["error"]["code"] == "file_missing"


def test_idempotency_key_returns_the_same_job(client, speech_wav):  # noqa: ANN001
    headers = {"Idempotency-Key": "retry-1234"}
    with open(speech_wav, "rb") as fh:
        first = client.post("/v1/jobs", data={"file": (fh, "a.wav")}, headers=headers)
    with open(speech_wav, "rb") as fh:
        again = client.post("/v1/jobs", data={"file": (fh, "a.wav")}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert check_spec(again, "/v1/jobs", "POST")["id"] == first.get_json()["id"]

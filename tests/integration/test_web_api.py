"""What the web app needs from the API, against real PostgreSQL, Redis and workers:
speaker renames (per job, in every format and results.zip), the recording with HTTP
Range and its browser-playable copy (made by the worker, deleted with the job, shared
by dedupe copies), and the waveform endpoint's answers."""

from __future__ import annotations

import io
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from diarq.shared.db import session_scope
from diarq.shared.orm import SUCCEEDED, Batch, Job, JobResult, utcnow
from tests.integration.services import check_spec
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration

RESULT = {
    "schema_version": 1, "job_id": None, "audio": {"duration": 6.0, "sample_rate": 16000},
    "language": "en",
    "speakers": [{"id": "SPEAKER_00", "name": "Boris", "talk_time": 3.0},
                 {"id": "SPEAKER_01", "name": None, "talk_time": 2.0}],
    "segments": [
        {"start": 0.0, "end": 3.0, "speaker": "SPEAKER_00", "text": "Good morning.",
         "words": [{"word": "Good", "start": 0.0, "end": 0.5, "score": 0.9,
                    "speaker": "SPEAKER_00"}]},
        {"start": 3.5, "end": 5.5, "speaker": "SPEAKER_01", "text": "Thanks <b>all</b>.",
         "words": []}],
    "diarization": [{"start": 0.0, "end": 3.0, "speaker": "SPEAKER_00"},
                    {"start": 3.5, "end": 5.5, "speaker": "SPEAKER_01"}],
    "models": {}, "timings": {},
}


def _succeeded_job(settings, key_id: int, *, copy_of: str | None = None,  # noqa: ANN001
                   batch_id: str | None = None) -> str:
    """A succeeded job with RESULT (or a dedupe copy of ``copy_of``), owned by the key."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  api_key_id=key_id, result_job_id=copy_of, batch_id=batch_id,
                  source_name=f"{job_id[:6]}.wav" if batch_id else None,
                  created_at=now, updated_at=now, finished_at=now))
        s.flush()
        if copy_of is None:
            s.add(JobResult(job_id=job_id, data={**RESULT, "job_id": job_id}, created_at=now))
    return job_id


def _rename(client, job_id: str, body: object):  # noqa: ANN001, ANN202
    return client.patch(f"/v1/jobs/{job_id}/speakers", json=body)


def test_rename_is_per_job_and_reaches_every_format(client, settings, api_key_id):  # noqa: ANN001
    batch_id = str(uuid.uuid4())
    with session_scope(settings) as s:
        s.add(Batch(id=batch_id, api_key_id=api_key_id, options={}, rejected=[],
                    created_at=utcnow()))
    original = _succeeded_job(settings, api_key_id, batch_id=batch_id)
    copy = _succeeded_job(settings, api_key_id, copy_of=original)

    resp = _rename(client, original, {"SPEAKER_01": "Anna Lee"})
    body = check_spec(resp, "/v1/jobs/{id}/speakers", "PATCH")
    assert resp.status_code == 200
    assert body["speakers"] == [{"id": "SPEAKER_00", "name": "Boris", "talk_time": 3.0},
                                {"id": "SPEAKER_01", "name": "Anna Lee", "talk_time": 2.0}]
    result = check_spec(client.get(f"/v1/jobs/{original}/result"), "/v1/jobs/{id}/result",
                        "GET")
    assert [s["name"] for s in result["speakers"]] == ["Boris", "Anna Lee"]
    assert [s["speaker"] for s in result["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
    for fmt in ("srt", "vtt", "txt", "tsv", "rttm"):
        text = client.get(f"/v1/jobs/{original}/result?format={fmt}").get_data(as_text=True)
        assert ("Anna_Lee" if fmt == "rttm" else "Anna Lee") in text, fmt
    zipped = client.get(f"/v1/batches/{batch_id}/results.zip?formats=srt,json")
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as zf:
        srt = next(n for n in zf.namelist() if n.endswith(".srt"))
        assert "[Anna Lee] Thanks <b>all</b>." in zf.read(srt).decode()

    # the dedupe copy shares the result row, not the names
    copied = client.get(f"/v1/jobs/{copy}/result?format=srt").get_data(as_text=True)
    assert "Anna" not in copied and "[SPEAKER_01]" in copied
    check_spec(_rename(client, copy, [{"id": "SPEAKER_00", "name": "Carl"}]),
               "/v1/jobs/{id}/speakers", "PATCH")
    assert "[Carl]" in client.get(f"/v1/jobs/{copy}/result?format=srt").get_data(as_text=True)
    assert "[Boris]" in client.get(f"/v1/jobs/{original}/result?format=srt").get_data(
        as_text=True)
    with session_scope(settings) as s:  # the shared row itself never changes
        assert s.get(JobResult, original).data["speakers"] == RESULT["speakers"]

    # null removes a rename: the participant name (or the label) is back
    check_spec(_rename(client, original, {"SPEAKER_01": None, "SPEAKER_00": ""}),
               "/v1/jobs/{id}/speakers", "PATCH")
    names = [s["name"] for s in client.get(f"/v1/jobs/{original}/result").get_json()["speakers"]]
    assert names == ["Boris", None]


def test_rename_refusals(client, settings, api_key_id, speech_wav):  # noqa: ANN001
    job_id = _succeeded_job(settings, api_key_id)
    for body, status, code in (({"SPEAKER_09": "X"}, 422, "invalid_speakers"),
                               ({"SPEAKER_00": "x" * 101}, 422, "invalid_speakers"),
                               ([], 422, "invalid_speakers")):
        resp = _rename(client, job_id, body)
        assert (resp.status_code, check_spec(resp, "/v1/jobs/{id}/speakers", "PATCH")[
            "error"]["code"]) == (status, code)
    resp = client.patch(f"/v1/jobs/{job_id}/speakers", data="SPEAKER_00=Anna")
    assert resp.status_code == 415
    queued = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    resp = _rename(client, queued["id"], {"SPEAKER_00": "Anna"})
    if resp.status_code != 200:  # it may already have finished (no speakers: 422)
        assert resp.status_code in (409, 422)
        check_spec(resp, "/v1/jobs/{id}/speakers", "PATCH")
    wait_done(client, queued["id"])
    assert _rename(client, str(uuid.uuid4()), {"SPEAKER_00": "A"}).status_code == 404


def _wma(tmp_path: Path, wav: Path, seconds: str = "") -> Path:
    out = tmp_path / "call.wma"  # Windows Media Audio: no browser plays it
    args = ["-t", seconds] if seconds else []
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *args, "-c:a", "wmav2",
                    str(out)], check=True, timeout=60)
    return out


def test_audio_ranges_and_the_playable_copy_go_with_the_job(client, settings, tmp_path,  # noqa: ANN001
                                                            speech_wav):
    wma = _wma(tmp_path, speech_wav)
    job = check_spec(submit(client, wma, dedupe="false"), "/v1/jobs", "POST")
    # before the worker decided: the upload itself
    early = client.get(f"/v1/jobs/{job['id']}/audio")
    assert early.status_code == 200 and early.data == wma.read_bytes()
    assert wait_done(client, job["id"])["status"] == "succeeded"

    whole = client.get(f"/v1/jobs/{job['id']}/audio")
    check_spec(whole, "/v1/jobs/{id}/audio", "GET")
    assert whole.status_code == 200 and whole.content_type == "audio/webm"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file, not the WMA
    size = len(whole.data)
    part = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": "bytes=100-1099"})
    check_spec(part, "/v1/jobs/{id}/audio", "GET")
    assert part.status_code == 206 and part.data == whole.data[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}"
    tail = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == whole.data[-10:]
    beyond = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": f"bytes={size + 5}-"})
    body = check_spec(beyond, "/v1/jobs/{id}/audio", "GET")
    assert beyond.status_code == 416 and body["error"]["code"] == "range_not_satisfiable"
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    etag = whole.headers["ETag"]
    assert client.get(f"/v1/jobs/{job['id']}/audio",
                      headers={"If-None-Match": etag}).status_code == 304

    with session_scope(settings) as s:
        row = s.get(Job, job["id"])
        copy_path, upload_path = row.playback_path, row.audio_path
    storage = client.application.extensions["diarq"].storage
    assert storage.exists(copy_path) and storage.exists(upload_path)
    # mechanics workers skip the speech pipeline, so there are no peaks to serve
    resp = client.get(f"/v1/jobs/{job['id']}/waveform")
    assert resp.status_code == 404 and check_spec(resp, "/v1/jobs/{id}/waveform", "GET")[
        "error"]["code"] == "waveform_unavailable"

    check_spec(client.delete(f"/v1/jobs/{job['id']}"), "/v1/jobs/{id}", "DELETE")
    assert not storage.exists(copy_path) and not storage.exists(upload_path)
    gone = client.get(f"/v1/jobs/{job['id']}/audio")
    assert gone.status_code == 404
    check_spec(gone, "/v1/jobs/{id}/audio", "GET")


def test_playable_uploads_are_served_as_they_are(client, speech_wav):  # noqa: ANN001
    job = check_spec(submit(client, speech_wav, dedupe="false"), "/v1/jobs", "POST")
    resp = client.get(f"/v1/jobs/{job['id']}/waveform")
    if resp.status_code == 409:  # not finished yet
        assert check_spec(resp, "/v1/jobs/{id}/waveform", "GET")["error"]["code"] == \
            "job_not_succeeded"
    wait_done(client, job["id"])
    audio = client.get(f"/v1/jobs/{job['id']}/audio")
    assert audio.status_code == 200 and audio.content_type == "audio/wav"
    assert audio.data == speech_wav.read_bytes()


def test_dedupe_copies_share_the_files_until_the_last_goes(client, settings, tmp_path,  # noqa: ANN001
                                                           speech_wav):
    wma = _wma(tmp_path, speech_wav, seconds="2.5")  # audio no other test submits
    first = check_spec(submit(client, wma, dedupe="true"), "/v1/jobs", "POST")
    assert wait_done(client, first["id"])["status"] == "succeeded"
    second = check_spec(submit(client, wma, dedupe="true"), "/v1/jobs", "POST")
    assert second["deduplicated_from"] == first["id"]
    with session_scope(settings) as s:
        a, b = s.get(Job, first["id"]), s.get(Job, second["id"])
        assert (b.audio_path, b.playback_path) == (a.audio_path, a.playback_path)
        files = [a.audio_path, a.playback_path]
    storage = client.application.extensions["diarq"].storage
    served = client.get(f"/v1/jobs/{first['id']}/audio").data

    assert client.delete(f"/v1/jobs/{first['id']}").status_code == 204
    assert all(storage.exists(f) for f in files)  # the copy still names them
    again = client.get(f"/v1/jobs/{second['id']}/audio")
    assert again.status_code == 200 and again.data == served
    assert client.delete(f"/v1/jobs/{second['id']}").status_code == 204
    assert not any(storage.exists(f) for f in files)

"""What the web app needs from the API, against real PostgreSQL, Redis and workers, on
both storage backends (a local directory, and S3 on 127.0.0.1 through moto): speaker
renames (per job, in every format and results.zip), the recording with HTTP Range and
its browser-playable copy (made by the worker, deleted with the job, shared by dedupe
copies), the waveform endpoint's answers, and what retention deletes of shared objects."""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from diarq.shared.db import session_scope
from diarq.shared.orm import SUCCEEDED, Batch, Job, JobResult, utcnow
from diarq.shared.storage import Storage, audio_key, media_key
from tests.integration.conftest import PG_ADMIN, REDIS_URL, TRIVIAL_S
from tests.integration.s3 import MotoServer
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


@dataclass
class Backend:
    """One deployment under test: a keyed client, its settings, its store, and the key's
    id (rows a test inserts must belong to it)."""

    name: str
    client: Any
    settings: Any
    storage: Storage
    key_id: int

    def exists(self, key: str | None) -> bool:
        return key is not None and self.storage.size(key) is not None

    def objects(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, through the store itself (not the interface)."""
        if self.name == "local":
            root = self.storage.local_path(prefix.rstrip("/"))
            return sorted(str(p) for p in root.rglob("*") if p.is_file()) \
                if root is not None and root.is_dir() else []
        return self.moto.keys(self.bucket, f"diarq/{prefix}")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def s3_stack(moto: MotoServer, tmp_path_factory) -> Iterator[Any]:  # noqa: ANN001
    """A deployment of its own on S3 (database, Redis prefix, bucket) with a mechanics
    worker: API and worker reach the recording only through the store."""
    from tests.faults.stack import Stack, create_database, drop_database

    bucket = moto.new_bucket()
    name = create_database(PG_ADMIN)
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    stack = Stack(database_url=f"{base}/{name}", redis_url=REDIS_URL,
                  storage=tmp_path_factory.mktemp("unused-local-storage"),
                  log_dir=tmp_path_factory.mktemp("web-s3-logs"),
                  DIARQ_SCRATCH_DIR=str(tmp_path_factory.mktemp("scratch")),
                  DIARQ_MAX_UPLOAD_MB="2", **moto.storage_env(bucket))
    stack.bucket = bucket  # type: ignore[attr-defined]
    try:
        stack.worker("web-s3", DIARQ_BENCH_TRIVIAL_PIPELINE_S=TRIVIAL_S)
        yield stack
    finally:
        stack.close()
        with contextlib.suppress(Exception):
            drop_database(PG_ADMIN, name)


@pytest.fixture(params=["local", "s3"])
def backend(request) -> Backend:  # noqa: ANN001
    from diarq.shared.keystore import authenticate

    if request.param == "local":
        app = request.getfixturevalue("app")
        request.getfixturevalue("workers")
        settings = request.getfixturevalue("settings")
        return Backend("local", app.test_client(), settings,
                       app.extensions["diarq"].storage,
                       request.getfixturevalue("api_key_id"))
    stack = request.getfixturevalue("s3_stack")
    made = Backend("s3", stack.client, stack.settings, stack.app.extensions["diarq"].storage,
                   authenticate(stack.settings, stack.key))
    made.moto, made.bucket = request.getfixturevalue("moto"), stack.bucket  # type: ignore[attr-defined]
    return made


def _succeeded_job(settings, key_id: int, *, copy_of: str | None = None,  # noqa: ANN001
                   batch_id: str | None = None, **columns: Any) -> str:
    """A succeeded job with RESULT (or a dedupe copy of ``copy_of``), owned by the key."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  api_key_id=key_id, result_job_id=copy_of, batch_id=batch_id,
                  source_name=f"{job_id[:6]}.wav" if batch_id else None,
                  created_at=now, updated_at=now, finished_at=now, **columns))
        s.flush()
        if copy_of is None:
            s.add(JobResult(job_id=job_id, data={**RESULT, "job_id": job_id}, created_at=now))
    return job_id


def _rename(client, job_id: str, body: object):  # noqa: ANN001, ANN202
    return client.patch(f"/v1/jobs/{job_id}/speakers", json=body)


def test_rename_is_per_job_and_reaches_every_format(backend: Backend) -> None:
    client, settings, api_key_id = backend.client, backend.settings, backend.key_id
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


def test_rename_refusals(backend: Backend, speech_wav: Path) -> None:
    client = backend.client
    job_id = _succeeded_job(backend.settings, backend.key_id)
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


def test_audio_ranges_and_the_playable_copy_go_with_the_job(backend: Backend, tmp_path: Path,
                                                            speech_wav: Path) -> None:
    client = backend.client
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
    assert int(whole.headers["Content-Length"]) == size
    part = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": "bytes=100-1099"})
    check_spec(part, "/v1/jobs/{id}/audio", "GET")
    assert part.status_code == 206 and part.data == whole.data[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}"
    assert int(part.headers["Content-Length"]) == 1000
    tail = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == whole.data[-10:]
    seek = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": f"bytes={size // 2}-"})
    assert seek.status_code == 206 and seek.data == whole.data[size // 2:]
    beyond = client.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": f"bytes={size + 5}-"})
    body = check_spec(beyond, "/v1/jobs/{id}/audio", "GET")
    assert beyond.status_code == 416 and body["error"]["code"] == "range_not_satisfiable"
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    etag = whole.headers["ETag"]
    assert client.get(f"/v1/jobs/{job['id']}/audio",
                      headers={"If-None-Match": etag}).status_code == 304
    head = client.head(f"/v1/jobs/{job['id']}/audio")
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) == size and head.headers["ETag"] == etag

    with session_scope(backend.settings) as s:
        row = s.get(Job, job["id"])
        copy_path, upload_path = row.playback_path, row.audio_path
    # the copy lives under the job's prefix, in the same store as the upload
    assert copy_path.startswith(f"jobs/{job['id']}/")
    assert backend.exists(copy_path) and backend.exists(upload_path)
    # mechanics workers skip the speech pipeline, so there are no peaks to serve
    resp = client.get(f"/v1/jobs/{job['id']}/waveform")
    assert resp.status_code == 404 and check_spec(resp, "/v1/jobs/{id}/waveform", "GET")[
        "error"]["code"] == "waveform_unavailable"

    check_spec(client.delete(f"/v1/jobs/{job['id']}"), "/v1/jobs/{id}", "DELETE")
    assert not backend.exists(copy_path) and not backend.exists(upload_path)
    assert backend.objects(f"jobs/{job['id']}/") == []
    gone = client.get(f"/v1/jobs/{job['id']}/audio")
    assert gone.status_code == 404
    check_spec(gone, "/v1/jobs/{id}/audio", "GET")


def test_playable_uploads_are_served_as_they_are(backend: Backend, speech_wav: Path) -> None:
    client = backend.client
    job = check_spec(submit(client, speech_wav, dedupe="false"), "/v1/jobs", "POST")
    resp = client.get(f"/v1/jobs/{job['id']}/waveform")
    if resp.status_code == 409:  # not finished yet
        assert check_spec(resp, "/v1/jobs/{id}/waveform", "GET")["error"]["code"] == \
            "job_not_succeeded"
    wait_done(client, job["id"])
    audio = client.get(f"/v1/jobs/{job['id']}/audio")
    assert audio.status_code == 200 and audio.content_type == "audio/wav"
    assert audio.data == speech_wav.read_bytes()
    with session_scope(backend.settings) as s:
        assert s.get(Job, job["id"]).playback_path is None  # no copy was needed


def _peaks(n: int) -> bytes:
    import numpy as np

    from diarq.worker.waveform import encode

    pairs = np.stack([-(np.arange(n) % 100), np.arange(n) % 100], axis=1).astype(np.int8)
    return encode(pairs)


def _stored_job(backend: Backend, wav: Path, **columns: Any) -> tuple[str, dict[str, str]]:
    """A succeeded job whose audio and peaks are in the backend's store (as a worker
    with the real pipeline leaves them); returns its id and keys."""
    job_id = str(uuid.uuid4())
    keys = {"audio_path": audio_key(job_id),
            "waveform_path": media_key(job_id, "seeded", ".peaks")}
    backend.storage.put_file(keys["audio_path"], wav)
    backend.storage.put_bytes(keys["waveform_path"], _peaks(700))
    now = utcnow()
    with session_scope(backend.settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  api_key_id=backend.key_id, audio_codec="pcm_s16le",
                  playback_type="audio/wav",
                  audio_sha256=hashlib.sha256(wav.read_bytes()).hexdigest(),
                  created_at=now, updated_at=now, finished_at=now, **keys, **columns))
        s.flush()
        s.add(JobResult(job_id=job_id, data={**RESULT, "job_id": job_id}, created_at=now))
    return job_id, keys


def test_waveform_is_served_with_ranges_and_goes_with_the_job(backend: Backend,
                                                               speech_wav: Path) -> None:
    from diarq.worker.waveform import decode

    client = backend.client
    job_id, keys = _stored_job(backend, speech_wav)
    resp = client.get(f"/v1/jobs/{job_id}/waveform")
    check_spec(resp, "/v1/jobs/{id}/waveform", "GET")
    assert resp.status_code == 200 and resp.data == _peaks(700)
    rate, per_pair, pairs = decode(resp.data)
    assert (rate, per_pair, pairs.shape) == (16000, 160, (700, 2))
    part = client.get(f"/v1/jobs/{job_id}/waveform", headers={"Range": "bytes=0-19"})
    assert part.status_code == 206 and part.data == resp.data[:20]  # the header alone
    assert client.get(f"/v1/jobs/{job_id}/waveform",
                      headers={"If-None-Match": resp.headers["ETag"]}).status_code == 304
    audio = client.get(f"/v1/jobs/{job_id}/audio")
    assert audio.status_code == 200 and audio.data == speech_wav.read_bytes()
    assert audio.content_type == "audio/wav"

    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not backend.exists(keys["waveform_path"]) and not backend.exists(keys["audio_path"])
    assert backend.objects(f"jobs/{job_id}/") == []
    with session_scope(backend.settings) as s:  # nothing left for the reaper to do
        row = s.get(Job, job_id)
        assert (row.audio_path, row.waveform_path, row.playback_path) == (None, None, None)
    assert client.get(f"/v1/jobs/{job_id}/waveform").status_code == 404


def test_dedupe_copies_share_the_files_until_the_last_goes(backend: Backend, tmp_path: Path,
                                                           speech_wav: Path) -> None:
    client = backend.client
    wma = _wma(tmp_path, speech_wav, seconds="2.5")  # audio no other test submits
    first = check_spec(submit(client, wma, dedupe="true"), "/v1/jobs", "POST")
    assert wait_done(client, first["id"])["status"] == "succeeded"
    second = check_spec(submit(client, wma, dedupe="true"), "/v1/jobs", "POST")
    assert second["deduplicated_from"] == first["id"]
    with session_scope(backend.settings) as s:
        a, b = s.get(Job, first["id"]), s.get(Job, second["id"])
        assert (b.audio_path, b.playback_path) == (a.audio_path, a.playback_path)
        files = [a.audio_path, a.playback_path]
    # the copy's own upload was not kept: its audio is the original's
    assert backend.objects(f"jobs/{second['id']}/") == []
    served = client.get(f"/v1/jobs/{first['id']}/audio").data

    assert client.delete(f"/v1/jobs/{first['id']}").status_code == 204
    assert all(backend.exists(f) for f in files)  # the copy still names them
    again = client.get(f"/v1/jobs/{second['id']}/audio")
    assert again.status_code == 200 and again.data == served
    part = client.get(f"/v1/jobs/{second['id']}/audio", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == served[10:20]
    assert client.delete(f"/v1/jobs/{second['id']}").status_code == 204
    assert not any(backend.exists(f) for f in files)
    # the original's prefix went with the last job naming something in it
    assert backend.objects(f"jobs/{first['id']}/") == []


def test_retention_keeps_what_a_newer_copy_names(backend: Backend, speech_wav: Path) -> None:
    """DIARQ_RETENTION_DAYS: an old job's audio and peaks stay while a newer dedupe copy
    names them (it keeps them for its own retention period), then go with it."""
    from sqlalchemy import update

    from diarq.worker.purge import purge_once

    old, keys = _stored_job(backend, speech_wav)
    backend.storage.put_bytes(f"jobs/{old}/references/0", b"a voice reference")
    copy = _succeeded_job(backend.settings, backend.key_id, copy_of=old,
                          playback_type="audio/wav", **keys)
    with session_scope(backend.settings) as s:
        s.execute(update(Job).where(Job.id == old)
                  .values(finished_at=utcnow() - timedelta(days=3)))
    settings = backend.settings.model_copy(update={"retention_days": 2.0})
    storage = backend.storage

    done = purge_once(settings, storage)
    assert old in done["audio"] and copy not in done["audio"]
    assert all(backend.exists(k) for k in keys.values())  # the copy names them
    assert not backend.exists(f"jobs/{old}/references/0")  # only the old job's: gone
    shown = check_spec(backend.client.get(f"/v1/jobs/{old}"), "/v1/jobs/{id}", "GET")
    assert shown["audio"]["purged_at"] is not None
    gone = backend.client.get(f"/v1/jobs/{old}/audio")
    assert check_spec(gone, "/v1/jobs/{id}/audio", "GET")["error"]["code"] == "audio_unavailable"
    assert backend.client.get(f"/v1/jobs/{copy}/audio").data == speech_wav.read_bytes()
    assert backend.client.get(f"/v1/jobs/{copy}/waveform").data == _peaks(700)

    with session_scope(backend.settings) as s:
        s.execute(update(Job).where(Job.id == copy)
                  .values(finished_at=utcnow() - timedelta(days=3)))
    done = purge_once(settings, storage)
    assert copy in done["audio"]
    assert not any(backend.exists(k) for k in keys.values())
    assert backend.objects(f"jobs/{old}/") == []

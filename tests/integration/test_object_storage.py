"""Object storage end to end, over HTTP on 127.0.0.1 (moto in server mode): uploads
through the API, direct uploads, an API and a worker that share nothing but PostgreSQL,
Redis and the store, deleting, retention, and no credential anywhere it does not belong.

The module has its own deployment (database, Redis key prefix, bucket): the suite's
local-storage workers and their reapers never see these jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import update

from tests.faults.stack import Stack, create_database, drop_database
from tests.integration.conftest import PG_ADMIN, REDIS_URL
from tests.integration.keys import bearer, create_key_with_cli
from tests.integration.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer
from tests.integration.services import (
    ROOT,
    WorkerProcess,
    check_spec,
    running_api,
    sine_wav,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_log_dir(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("s3-logs")


@pytest.fixture(scope="module")
def stack(moto: MotoServer, tmp_path_factory, s3_log_dir: Path) -> Iterator[Stack]:  # noqa: ANN001
    bucket = moto.new_bucket()
    name = create_database(PG_ADMIN)
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    made = Stack(database_url=f"{base}/{name}", redis_url=REDIS_URL,
                 storage=tmp_path_factory.mktemp("unused-local-storage"), log_dir=s3_log_dir,
                 DIARQ_S3_PART_MB="5", DIARQ_MAX_UPLOAD_MB="40", DIARQ_LOG_LEVEL="DEBUG",
                 DIARQ_SCRATCH_DIR=str(tmp_path_factory.mktemp("scratch")),
                 **moto.storage_env(bucket))
    made.bucket = bucket  # type: ignore[attr-defined]
    yield made
    made.close()
    with contextlib.suppress(Exception):
        drop_database(PG_ADMIN, name)


@pytest.fixture(scope="module")
def big_wav(tmp_path_factory) -> Path:  # noqa: ANN001
    """~12 MB of audio: three 5 MB parts through the API."""
    return sine_wav(tmp_path_factory.mktemp("big") / "big.wav", 380)


def _bucket_keys(stack: Stack, moto: MotoServer) -> list[str]:
    return moto.keys(stack.bucket)  # type: ignore[attr-defined]


def _direct_upload(client, path: Path, **fields: str) -> dict:  # noqa: ANN001
    resp = client.post("/v1/uploads", json={"filename": path.name,
                                             "size": path.stat().st_size})
    upload = check_spec(resp, "/v1/uploads", "POST")
    assert resp.status_code == 201
    with path.open("rb") as fh:
        put = requests.request(upload["method"], upload["url"], data=fh,
                               headers=upload["headers"], timeout=60)
    assert put.status_code == 200, put.text
    return upload


def test_upload_through_the_api_streams_into_the_store(stack: Stack, moto: MotoServer,
                                                       big_wav: Path) -> None:
    with big_wav.open("rb") as fh:
        resp = stack.client.post("/v1/jobs", data={"file": (fh, "meeting.wav")},
                                 content_type="multipart/form-data")
    job = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 202
    assert 379 < job["audio"]["duration"] < 381 and job["audio"]["bytes"] == big_wav.stat().st_size
    rows = stack.rows([job["id"]])
    key = rows[job["id"]].audio_path
    assert f"diarq/{key}" in _bucket_keys(stack, moto)
    assert moto.client().list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []
    # nothing of the upload stayed on the API's disk
    local = Path(stack.settings.storage_dir)
    assert not local.exists() or [p for p in local.rglob("*") if p.is_file()] == []


def test_direct_upload_creates_a_job_and_is_checked(stack: Stack, moto: MotoServer,
                                                    data_dir: Path, tmp_path: Path) -> None:
    client = stack.client
    upload = _direct_upload(client, data_dir / "jfk.wav")
    resp = client.post("/v1/jobs", data={"upload_id": upload["id"], "language": "en"},
                       content_type="multipart/form-data")
    job = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 202, job
    assert job["audio"]["filename"] == "jfk.wav" and 10.5 < job["audio"]["duration"] < 11.5
    import hashlib

    assert job["audio"]["sha256"] == hashlib.sha256((data_dir / "jfk.wav").read_bytes()).hexdigest()
    # one job per upload
    again = client.post("/v1/jobs", data={"upload_id": upload["id"]},
                        content_type="multipart/form-data")
    assert check_spec(again, "/v1/jobs", "POST")["error"]["code"] == "upload_used"
    # another key cannot use (or see) an upload; unknown ids are the same 404
    other_key = create_key_with_cli(stack.env, "other")
    mine = _direct_upload(client, data_dir / "jfk.wav")
    for upload_id in (mine["id"], str(uuid.uuid4())):
        other = client.post("/v1/jobs", data={"upload_id": upload_id},
                            headers=bearer(other_key), content_type="multipart/form-data")
        assert check_spec(other, "/v1/jobs", "POST")["error"]["code"] == "upload_not_found"

    # sent nothing yet
    empty = check_spec(client.post("/v1/uploads", json={}), "/v1/uploads", "POST")
    resp = client.post("/v1/jobs", data={"upload_id": empty["id"]},
                       content_type="multipart/form-data")
    assert resp.status_code == 409
    assert check_spec(resp, "/v1/jobs", "POST")["error"]["code"] == "upload_incomplete"
    # not audio: 415, and the object is deleted
    text = tmp_path / "notes.wav"
    text.write_bytes(b"minutes of the meeting\n" * 500)
    bad = _direct_upload(client, text)
    resp = client.post("/v1/jobs", data={"upload_id": bad["id"]},
                       content_type="multipart/form-data")
    assert resp.status_code == 415
    assert not [k for k in _bucket_keys(stack, moto) if bad["id"] in k]
    # too large for the server, declared: refused before any byte is sent
    resp = client.post("/v1/uploads", json={"size": 41 << 20})
    assert check_spec(resp, "/v1/uploads", "POST")["error"]["code"] == "upload_too_large"
    # both fields: refused
    with (data_dir / "jfk.wav").open("rb") as fh:
        resp = client.post("/v1/jobs", data={"upload_id": upload["id"],
                                             "file": (fh, "jfk.wav")},
                           content_type="multipart/form-data")
    assert resp.status_code == 422


def test_direct_uploads_in_a_batch(stack: Stack, data_dir: Path) -> None:
    client = stack.client
    one = _direct_upload(client, data_dir / "jfk.wav")
    two = _direct_upload(client, data_dir / "sample.wav")
    with (data_dir / "falcon_test.wav").open("rb") as fh:
        resp = client.post("/v1/batches", data={"upload_id": [one["id"], two["id"]],
                                                "files": [(fh, "small/falcon.wav")]},
                           content_type="multipart/form-data")
    batch = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202, batch
    assert sorted(j["source_name"] for j in batch["jobs"]) == [
        "jfk.wav", "sample.wav", "small/falcon.wav"]


def test_archive_batch_is_read_from_the_store(stack: Stack, moto: MotoServer, data_dir: Path,
                                              tmp_path: Path) -> None:
    """An uploaded .zip goes into the store, its members are read back with ranged GETs,
    each becomes an object of its own, and the archive itself is deleted."""
    import zipfile

    archive = tmp_path / "meetings.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(data_dir / "jfk.wav", "monday/jfk.wav")
        zf.write(data_dir / "falcon_test.wav", "tuesday/falcon.wav")
        zf.writestr("notes.txt", "not audio")
    before = set(_bucket_keys(stack, moto))
    with archive.open("rb") as fh:
        resp = stack.client.post("/v1/batches", data={"files": [(fh, "meetings.zip")]},
                                 content_type="multipart/form-data")
    batch = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202, batch
    assert sorted(j["source_name"] for j in batch["jobs"]) == ["monday/jfk.wav",
                                                               "tuesday/falcon.wav"]
    assert [r["name"] for r in batch["rejected"]] == ["notes.txt"]
    rows = stack.rows([j["id"] for j in batch["jobs"]])
    added = set(_bucket_keys(stack, moto)) - before
    assert added == {f"diarq/{r.audio_path}" for r in rows.values()}  # no archive kept
    assert list(Path(stack.settings.scratch_path).rglob("*.wav")) == []


def test_two_machines_share_only_database_broker_and_store(stack: Stack, moto: MotoServer,
                                                           data_dir: Path,
                                                           tmp_path: Path) -> None:
    """An API and a worker with different data directories, working directories and local
    storage folders: an upload through the API and a direct upload, processed by the real
    offline pipeline on the other 'machine', and the web page's waveform and audio it
    leaves in the store."""
    if not (ROOT / "models" / "diarization").is_dir():
        pytest.fail("offline models missing: run `make models` (diarq models prepare) first")
    from diarq.worker.waveform import decode

    api_home, worker_home = tmp_path / "api-machine", tmp_path / "worker-machine"
    for home in (api_home, worker_home):
        (home / "data").mkdir(parents=True)

    def machine(home: Path) -> dict[str, str]:
        return {**stack.env, "DIARQ_DATA_DIR": str(home / "data"),
                "DIARQ_STORAGE_DIR": str(home / "data" / "storage"),
                "DIARQ_SCRATCH_DIR": str(home / "data" / "scratch"),
                "DIARQ_MODEL_DIR": str(ROOT / "models"), "DIARQ_JOB_QUEUE": "machines"}

    worker = WorkerProcess("other-machine", machine(worker_home), stack.log_dir,
                           queues="machines", cwd=worker_home)
    try:
        with running_api(machine(api_home), stack.log_dir / "api-machine.log",
                         cwd=api_home) as url:
            auth = bearer(stack.key)
            with (data_dir / "jfk.wav").open("rb") as fh:
                through = requests.post(f"{url}/v1/jobs", files={"file": ("jfk.wav", fh)},
                                        data={"language": "en"}, headers=auth, timeout=60)
            assert through.status_code == 202, through.text
            made = requests.post(f"{url}/v1/uploads", json={"filename": "jfk-direct.wav"},
                                 headers=auth, timeout=30).json()
            with (data_dir / "jfk.wav").open("rb") as fh:
                assert requests.put(made["url"], data=fh, timeout=60).status_code == 200
            direct = requests.post(f"{url}/v1/jobs", data={"upload_id": made["id"],
                                                           "language": "en"},
                                   headers=auth, timeout=60)
            assert direct.status_code == 202, direct.text
            ids = [through.json()["id"], direct.json()["id"]]
            worker.wait_ready(timeout=300, marker="models loaded")

            def done() -> list[dict] | None:
                jobs = [requests.get(f"{url}/v1/jobs/{i}", headers=auth, timeout=10).json()
                        for i in ids]
                return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None

            jobs = wait_until(done, timeout=600, interval=0.5, what="both jobs")
            assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], (
                jobs, worker.log()[-3000:])
            for job_id in ids:
                result = requests.get(f"{url}/v1/jobs/{job_id}/result", headers=auth,
                                      timeout=10).json()
                text = " ".join(s["text"] for s in result["segments"]).lower()
                assert "country" in text, text
                assert result["timings"]["download"] >= 0
                # the web page's waveform: computed by the worker from its scratch copy,
                # stored under the job's prefix in the bucket, served by the API
                peaks = requests.get(f"{url}/v1/jobs/{job_id}/waveform", headers=auth,
                                     timeout=10)
                assert peaks.status_code == 200, peaks.text
                rate, per_pair, pairs = decode(peaks.content)
                assert (rate, per_pair) == (16000, 160)
                assert abs(len(pairs) - result["audio"]["duration"] * 100) <= 2
                assert pairs[:, 1].max() > 20  # speech, not silence
                key = stack.rows([job_id])[job_id].waveform_path
                assert key.startswith(f"jobs/{job_id}/")
                assert f"diarq/{key}" in _bucket_keys(stack, moto)
                audio = requests.get(f"{url}/v1/jobs/{job_id}/audio", headers={
                    **auth, "Range": "bytes=0-43"}, timeout=10)
                assert audio.status_code == 206 and audio.content[:4] == b"RIFF"
    finally:
        worker.stop()
    # neither machine kept a copy: the API streamed into the store, the worker's scratch
    # copy was deleted after each job
    for home in (api_home, worker_home):
        leftovers = [p for p in home.rglob("*")
                     if p.is_file() and (p.suffix in (".part", ".wav") or "audio" in p.parts)]
        assert leftovers == [], leftovers


def test_deleting_a_job_deletes_its_objects(stack: Stack, moto: MotoServer,
                                            data_dir: Path) -> None:
    from diarq.shared.storage_backend import open_storage

    job = stack.submit(data_dir / "jfk.wav")
    key = stack.rows([job["id"]])[job["id"]].audio_path
    storage = open_storage(stack.settings)
    # what the web app stores next to the audio (a transcoded copy, waveform peaks)
    storage.put_bytes(f"jobs/{job['id']}/peaks.json", b"[0, 1]")
    assert {f"diarq/{key}", f"diarq/jobs/{job['id']}/peaks.json"} <= set(_bucket_keys(stack, moto))
    resp = stack.client.delete(f"/v1/jobs/{job['id']}")
    assert resp.status_code == 204
    assert not [k for k in _bucket_keys(stack, moto) if key in k or job["id"] in k]
    assert stack.rows([job["id"]])[job["id"]].audio_path is None  # nothing left to delete


def test_delete_while_the_store_is_down_is_finished_by_the_reaper(stack: Stack,
                                                                  moto: MotoServer,
                                                                  data_dir: Path) -> None:
    from diarq.shared.storage_backend import open_storage
    from diarq.worker.purge import purge_once

    job = stack.submit(data_dir / "jfk.wav")
    key = stack.rows([job["id"]])[job["id"]].audio_path
    down = stack.settings.model_copy(update={"s3_endpoint_url": "http://127.0.0.1:9"})
    from diarq.api import create_app
    from tests.integration.keys import use_key

    app = use_key(create_app({"DIARQ_SETTINGS": down, "TESTING": True}), stack.key)
    assert app.test_client().delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert f"diarq/{key}" in _bucket_keys(stack, moto)  # the store was unreachable
    done = purge_once(stack.settings, open_storage(stack.settings))
    assert job["id"] in done["deleted"]
    assert f"diarq/{key}" not in _bucket_keys(stack, moto)


def test_retention_deletes_old_audio_and_keeps_the_result(stack: Stack, moto: MotoServer,
                                                         data_dir: Path) -> None:
    """A worker's reaper with DIARQ_RETENTION_DAYS=1: a job finished 2 days ago loses its
    audio (GET still works, result kept); a job finished now keeps it."""
    from diarq.shared.db import session_scope
    from diarq.shared.orm import Job, utcnow

    worker = stack.worker("retention", DIARQ_BENCH_TRIVIAL_PIPELINE_S="0",
                          DIARQ_RETENTION_DAYS="1")
    try:
        old, new = stack.submit(data_dir / "jfk.wav"), stack.submit(data_dir / "jfk.wav")
        rows = stack.wait_all_done([old["id"], new["id"]], timeout=120)
        assert {r.status for r in rows.values()} == {"succeeded"}, worker.log()[-2000:]
        keys = {i: r.audio_path for i, r in rows.items()}
        with session_scope(stack.settings) as s:
            s.execute(update(Job).where(Job.id == old["id"])
                      .values(finished_at=utcnow() - timedelta(days=2)))

        def purged() -> bool:
            return stack.rows([old["id"]])[old["id"]].audio_purged_at is not None

        wait_until(purged, timeout=30, interval=0.3, what="the reaper's retention pass")
        bucket = _bucket_keys(stack, moto)
        assert f"diarq/{keys[old['id']]}" not in bucket
        assert f"diarq/{keys[new['id']]}" in bucket
        shown = check_spec(stack.client.get(f"/v1/jobs/{old['id']}"), "/v1/jobs/{id}", "GET")
        assert shown["audio"]["purged_at"] is not None and shown["status"] == "succeeded"
        assert stack.client.get(f"/v1/jobs/{old['id']}/result").status_code == 200
    finally:
        worker.stop()


def test_retention_of_results_when_asked(stack: Stack, data_dir: Path) -> None:
    from diarq.shared.db import session_scope
    from diarq.shared.orm import Job, JobResult, utcnow
    from diarq.shared.storage_backend import open_storage
    from diarq.worker.purge import purge_once

    worker = stack.worker("results", DIARQ_BENCH_TRIVIAL_PIPELINE_S="0", DIARQ_REAPER="off")
    try:
        job = stack.submit(data_dir / "jfk.wav")
        stack.wait_all_done([job["id"]])
    finally:
        worker.stop()
    with session_scope(stack.settings) as s:
        s.execute(update(Job).where(Job.id == job["id"])
                  .values(finished_at=utcnow() - timedelta(days=3)))
    settings = stack.settings.model_copy(update={"retention_days": 2.0,
                                                 "retention_results": True})
    done = purge_once(settings, open_storage(settings))
    assert job["id"] in done["audio"] and job["id"] in done["results"]
    with session_scope(stack.settings) as s:
        assert s.get(JobResult, job["id"]) is None
    resp = stack.client.get(f"/v1/jobs/{job['id']}/result")
    assert check_spec(resp, "/v1/jobs/{id}/result", "GET")["error"]["code"] == "result_expired"


def test_cli_sends_big_files_as_direct_uploads(stack: Stack, data_dir: Path,
                                               tmp_path: Path) -> None:
    """`diarq submit` and `diarq batch` above --direct-above-mb: straight to the store with
    a progress bar; against a server on local disk the same command falls back to the
    upload through the API."""
    from tests.integration.services import DIARQ

    env = {**stack.env, "DIARQ_API_KEY": stack.key}
    local_env = {k: v for k, v in env.items()
                 if k not in ("DIARQ_STORAGE_URL", "DIARQ_S3_ENDPOINT_URL")}
    folder = tmp_path / "meetings"
    (folder / "day1").mkdir(parents=True)
    (folder / "day1" / "jfk.wav").write_bytes((data_dir / "jfk.wav").read_bytes())
    (folder / "small.wav").write_bytes((data_dir / "falcon_test.wav").read_bytes())
    for server_env, direct in ((env, True), (local_env, False)):
        with running_api(server_env, stack.log_dir / f"api-cli-{direct}.log") as url:
            proc = subprocess.run(DIARQ + ["submit", str(data_dir / "jfk.wav"), "--server", url,
                                           "--direct-above-mb", "0"],
                                  env=server_env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, proc.stderr
            job_id = proc.stdout.strip()
            key = stack.rows([job_id])[job_id].audio_path
            assert key.startswith("uploads/") is direct, key
            assert ("upload jfk.wav" in proc.stderr) is direct  # the progress bar
            if not direct:
                continue
            proc = subprocess.run(DIARQ + ["batch", str(folder), "--server", url,
                                           "--direct-above-mb", "0.45",
                                           "--out", str(tmp_path / "out")],
                                  env=server_env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, proc.stderr
            # falcon_test.wav (581 kB) goes direct, jfk.wav (344 kB) through the API
            assert "upload small.wav" in proc.stderr and "upload jfk.wav" not in proc.stderr
            state = (tmp_path / "out" / ".diarq-batch.json")
            files = json.loads(state.read_text())["files"]
            ids = {rel: fs["job_id"] for rel, fs in files.items()}
            assert set(ids) == {"day1/jfk.wav", "small.wav"}
            rows = stack.rows(list(ids.values()))
            assert rows[ids["small.wav"]].audio_path.startswith("uploads/")
            assert rows[ids["day1/jfk.wav"]].audio_path.startswith("audio/")
            assert rows[ids["small.wav"]].source_name == "small.wav"


def test_no_credential_in_logs_rows_or_answers(stack: Stack, s3_log_dir: Path) -> None:
    """Runs last in the module: everything above logged at DEBUG (boto3 included)."""
    from sqlalchemy import text

    from diarq.shared.db import session_scope

    secrets = (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    for path in s3_log_dir.rglob("*.log"):
        content = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in content, (path.name, secret[:8])
    with session_scope(stack.settings) as s:
        for table in ("jobs", "results", "uploads", "api_keys"):
            dump = str(s.execute(text(f"SELECT * FROM {table}")).all())  # noqa: S608
            for secret in secrets:
                assert secret not in dump, table
    # the presigned URL carries the key id (SigV4 does), never the secret
    upload = stack.client.post("/v1/uploads", json={}).get_json()
    assert SECRET_ACCESS_KEY not in str(upload)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET_ACCESS_KEY  # the test is meaningful

"""Batches (files or archives), results.zip, result reuse (dedupe) and idempotency,
against the real app, PostgreSQL, Redis and bench-trivial Celery workers."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import threading
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from diarq.shared.db import session_scope
from diarq.shared.dedupe import find_reusable
from diarq.shared.orm import Job, JobResult
from tests.integration.keys import bearer, create_key_with_cli
from tests.integration.services import check_spec, wait_until
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration

ZERO_COUNTS = {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}


@pytest.fixture(scope="module")
def other_key(service_env: dict[str, str], settings) -> str:  # noqa: ANN001
    return create_key_with_cli(service_env, "batches-someone-else")


@pytest.fixture
def unique_wav(tmp_path: Path, speech_wav: Path):  # noqa: ANN201
    """Recordings with distinct bytes (real speech, a different amount of trailing
    silence each), so that no test reuses another test's result by dedupe."""
    made = 0

    def make(name: str = "rec.wav") -> Path:
        nonlocal made
        made += 1
        out = tmp_path / f"{made}-{name}"
        pad = 1 + uuid.uuid4().int % 20000  # samples
        subprocess.run(["sox", str(speech_wav), "-t", "wav", str(out), "pad", "0", f"{pad}s"],
                       check=True)
        return out

    return make


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def post_batch(client, files: list[tuple[bytes, str]], headers=None, **form):  # noqa: ANN001, ANN201
    data = {"files": [(io.BytesIO(b), name) for b, name in files], **form}
    return client.post("/v1/batches", data=data, content_type="multipart/form-data",
                       headers=headers or {})


def wait_batch(client, batch_id: str, timeout: float = 90) -> dict:  # noqa: ANN001
    def done():  # noqa: ANN202
        resp = client.get(f"/v1/batches/{batch_id}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        batch = check_spec(resp, "/v1/batches/{id}", "GET")
        return batch if batch["finished"] else None

    return wait_until(done, timeout=timeout, what=f"batch {batch_id} to finish")


def job_count(settings) -> int:  # noqa: ANN001
    with session_scope(settings) as s:
        return s.scalar(select(func.count()).select_from(Job))


def own_result_rows(settings, job_id: str) -> int:  # noqa: ANN001
    with session_scope(settings) as s:
        return s.scalar(select(func.count()).select_from(JobResult)
                        .where(JobResult.job_id == job_id))


def test_zip_with_folders_and_a_non_audio_entry(client, unique_wav):  # noqa: ANN001
    members = {
        "team/mon/standup.wav": unique_wav().read_bytes(),
        "team/tue/review.wav": unique_wav().read_bytes(),
        "c.wav": unique_wav().read_bytes(),
        # the same stem as c.wav (probing reads content, not extensions): names must clash
        "c.wave": unique_wav().read_bytes(),
        "notes/agenda.txt": b"1. budget\n2. hiring\n",
    }
    resp = post_batch(client, [(zip_of(members), "week.zip")], max_speakers="3")
    batch = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202, batch
    assert resp.headers["Location"] == f"/v1/batches/{batch['id']}"
    assert [r["name"] for r in batch["rejected"]] == ["notes/agenda.txt"]
    assert "no readable audio stream" in batch["rejected"][0]["reason"]
    names = sorted(j["source_name"] for j in batch["jobs"])
    assert names == ["c.wav", "c.wave", "team/mon/standup.wav", "team/tue/review.wav"]
    assert sum(batch["counts"].values()) == 4 and batch["options"]["max_speakers"] == 3

    done = wait_batch(client, batch["id"])
    assert done["counts"] == {**ZERO_COUNTS, "succeeded": 4}
    assert done["progress"] == 1.0 and done["finished_at"] is not None
    assert all(j["status"] == "succeeded" and j["deduplicated_from"] is None
               for j in done["jobs"])
    # each job knows its batch and name; the job list filters by batch
    one = done["jobs"][0]
    job = check_spec(client.get(f"/v1/jobs/{one['id']}"), "/v1/jobs/{id}", "GET")
    assert job["batch_id"] == batch["id"] and job["source_name"] == one["source_name"]
    assert job["options"]["max_speakers"] == 3
    listed = check_spec(client.get(f"/v1/jobs?batch_id={batch['id']}"), "/v1/jobs", "GET")
    assert sorted(j["id"] for j in listed["jobs"]) == sorted(j["id"] for j in done["jobs"])

    # results.zip: the original names, extension replaced, folders kept, unique names
    resp = client.get(f"/v1/batches/{batch['id']}/results.zip?formats=srt,json")
    assert resp.status_code == 200 and resp.content_type == "application/zip"
    assert resp.is_streamed
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        got = sorted(zf.namelist())
        stems = ["c", "c (2)", "team/mon/standup", "team/tue/review"]
        assert got == sorted(f"{s}.{f}" for s in stems for f in ("srt", "json"))
        by_source = {j["source_name"]: j["id"] for j in done["jobs"]}
        data = json.loads(zf.read("team/tue/review.json"))
        assert data["job_id"] == by_source["team/tue/review.wav"]
        direct = client.get(f"/v1/jobs/{data['job_id']}/result?format=srt").get_data()
        assert zf.read("team/tue/review.srt") == direct
    resp = client.get(f"/v1/batches/{batch['id']}/results.zip?formats=srt,docx")
    assert check_spec(resp, "/v1/batches/{id}/results.zip", "GET")["error"]["code"] == \
        "invalid_format"


def test_several_files_and_a_tar_gz(client, unique_wav, tmp_path):  # noqa: ANN001
    a, b = unique_wav("a.wav"), unique_wav("b.wav")
    resp = post_batch(client, [(a.read_bytes(), "a.wav"), (b.read_bytes(), "sub/b.wav"),
                               (b"not audio at all", "c.wav"), (b"", "empty.wav")])
    batch = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202
    assert sorted(j["source_name"] for j in batch["jobs"]) == ["a.wav", "sub/b.wav"]
    assert sorted(r["name"] for r in batch["rejected"]) == ["c.wav", "empty.wav"]

    tgz = tmp_path / "rec.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(unique_wav(), arcname="2026/q1/kickoff.wav")
        tf.add(unique_wav(), arcname="2026/q2/retro.wav")
    resp = post_batch(client, [(tgz.read_bytes(), "rec.tar.gz")])
    tar_batch = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202 and tar_batch["rejected"] == []
    assert sorted(j["source_name"] for j in tar_batch["jobs"]) == [
        "2026/q1/kickoff.wav", "2026/q2/retro.wav"]
    assert wait_batch(client, batch["id"])["counts"] == {**ZERO_COUNTS, "succeeded": 2}
    assert wait_batch(client, tar_batch["id"])["counts"] == {**ZERO_COUNTS, "succeeded": 2}

    resp = post_batch(client, [(b"text", "a.txt")])
    assert resp.status_code == 422
    assert check_spec(resp, "/v1/batches", "POST")["error"]["code"] == "batch_no_audio"
    resp = client.post("/v1/batches", data={}, content_type="multipart/form-data")
    assert check_spec(resp, "/v1/batches", "POST")["error"]["code"] == "file_missing"


def test_unsafe_archives(client, settings, unique_wav, tmp_path):  # noqa: ANN001
    # a traversal entry is skipped (listed), the rest of the archive is processed
    members = {"../escape.wav": unique_wav().read_bytes(), "ok.wav": unique_wav().read_bytes()}
    resp = post_batch(client, [(zip_of(members), "x.zip")])
    batch = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202
    assert [j["source_name"] for j in batch["jobs"]] == ["ok.wav"]
    assert batch["rejected"][0]["name"] == "../escape.wav"
    assert "escapes the archive" in batch["rejected"][0]["reason"]
    storage = Path(settings.storage_dir)
    assert not (storage.parent / "escape.wav").exists()

    # a symlink in a tar is skipped, never followed
    tar_path = tmp_path / "links.tar"
    with tarfile.open(tar_path, "w") as tf:
        link = tarfile.TarInfo("passwd.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
        tf.add(unique_wav(), arcname="real.wav")
    resp = post_batch(client, [(tar_path.read_bytes(), "links.tar")])
    batch = check_spec(resp, "/v1/batches", "POST")
    assert [j["source_name"] for j in batch["jobs"]] == ["real.wav"]
    assert batch["rejected"] == [{"name": "passwd.wav",
                                  "reason": "not a regular file (link or device)"}]

    # a decompression bomb: 20 MB of zeros in a few KB -> 422, nothing created
    before = job_count(settings)
    bomb = zip_of({"big.wav": bytes(20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    resp = post_batch(client, [(bomb, "bomb.zip")])
    assert resp.status_code == 422
    assert check_spec(resp, "/v1/batches", "POST")["error"]["code"] == "archive_bomb"
    assert job_count(settings) == before
    resp = post_batch(client, [(b"PK\x03\x04" + b"\x00" * 100, "broken.zip")])
    assert check_spec(resp, "/v1/batches", "POST")["error"]["code"] == "archive_corrupt"
    # nothing extracted stays behind in storage (no file, no scratch directory)
    assert not any((storage / "incoming").iterdir())


def test_dedupe_reuses_a_finished_result(client, settings, unique_wav):  # noqa: ANN001
    wav = unique_wav()
    first = wait_done(client, check_spec(submit(client, wav), "/v1/jobs", "POST")["id"])
    assert first["status"] == "succeeded" and first["deduplicated_from"] is None

    resp = submit(client, wav, dedupe="true")
    again = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 202
    # succeeded at once, no attempt, no worker: the pipeline did not run again
    assert again["status"] == "succeeded" and again["deduplicated_from"] == first["id"]
    assert again["attempts"] == 0 and again["worker"] is None and again["progress"] == 1.0
    assert own_result_rows(settings, again["id"]) == 0
    original = client.get(f"/v1/jobs/{first['id']}/result").get_json()
    copy = check_spec(client.get(f"/v1/jobs/{again['id']}/result"),
                      "/v1/jobs/{id}/result", "GET")
    assert copy["job_id"] == again["id"]
    assert {**copy, "job_id": None} == {**original, "job_id": None}

    # off per request: a new run
    fresh = check_spec(submit(client, wav, dedupe="false"), "/v1/jobs", "POST")
    assert fresh["status"] == "queued" and fresh["deduplicated_from"] is None
    assert wait_done(client, fresh["id"])["attempts"] == 1
    # other options: a new run
    other = check_spec(submit(client, wav, num_speakers="2"), "/v1/jobs", "POST")
    assert other["status"] == "queued"
    wait_done(client, other["id"])
    resp = submit(client, wav, dedupe="maybe")
    assert check_spec(resp, "/v1/jobs", "POST")["error"]["code"] == "invalid_options"

    # deleting the original keeps the copy's result (its row is copied first)
    assert client.delete(f"/v1/jobs/{first['id']}").status_code == 204
    assert own_result_rows(settings, again["id"]) == 1
    kept = client.get(f"/v1/jobs/{again['id']}/result")
    assert kept.status_code == 200 and kept.get_json() == copy
    # later submits reuse a job that still exists (the oldest one left)
    third = check_spec(submit(client, wav, dedupe="true"), "/v1/jobs", "POST")
    assert third["deduplicated_from"] in {again["id"], fresh["id"]}


def test_a_dedupe_submit_racing_a_delete_keeps_its_result(client, settings, unique_wav):  # noqa: ANN001
    """A submit that reuses a result and a DELETE of the job owning it serialise on that
    job's row: the DELETE waits for the copy to commit, then gives it its own result."""
    wav = unique_wav()
    first = wait_done(client, check_spec(submit(client, wav), "/v1/jobs", "POST")["id"])
    copy_id = str(uuid.uuid4())
    answers: list[int] = []
    delete = threading.Thread(
        target=lambda: answers.append(client.delete(f"/v1/jobs/{first['id']}").status_code))
    # a dedupe submit between its lookup and its commit (what api/submit.py does)
    with session_scope(settings) as s:
        row = s.get(Job, first["id"])
        original = find_reusable(s, api_key_id=row.api_key_id, audio_sha256=row.audio_sha256,
                                 options_hash=row.options_sha256)
        assert original is not None and original.id == first["id"]
        columns = {a.key: getattr(row, a.key) for a in Job.__mapper__.column_attrs}
        s.add(Job(**{**columns, "id": copy_id, "result_job_id": original.id,
                     "idempotency_key": None, "request_sha256": None, "worker": None,
                     "attempts": 0}))
        s.flush()
        delete.start()
        delete.join(1.5)
        assert delete.is_alive(), "the DELETE did not wait for the submit holding the row"
    delete.join(30)
    assert answers == [204]
    assert own_result_rows(settings, copy_id) == 1
    kept = client.get(f"/v1/jobs/{copy_id}/result")
    assert kept.status_code == 200 and kept.get_json()["job_id"] == copy_id


def test_dedupe_is_on_by_default(app, settings, api_key, unique_wav, workers):  # noqa: ANN001
    """The shipped default (DIARQ_DEDUPE unset) reuses results without any form field;
    the suite's other tests run with it off because they resubmit one recording."""
    from diarq.api import create_app
    from diarq.shared.settings import Settings
    from tests.integration.keys import use_key

    assert Settings.model_fields["dedupe"].default is True
    default_app = create_app({"DIARQ_SETTINGS": settings.model_copy(update={"dedupe": True}),
                              "TESTING": True})
    c = use_key(default_app, api_key).test_client()
    wav = unique_wav()
    first = wait_done(c, submit(c, wav).get_json()["id"])
    again = check_spec(submit(c, wav), "/v1/jobs", "POST")
    assert again["status"] == "succeeded" and again["deduplicated_from"] == first["id"]


def test_dedupe_in_a_batch(client, unique_wav):  # noqa: ANN001
    known, new = unique_wav(), unique_wav()
    first = wait_done(client, submit(client, known).get_json()["id"])
    resp = post_batch(client, [(known.read_bytes(), "known.wav"), (new.read_bytes(), "new.wav")],
                      dedupe="true")
    batch = check_spec(resp, "/v1/batches", "POST")
    jobs = {j["source_name"]: j for j in batch["jobs"]}
    assert jobs["known.wav"]["status"] == "succeeded"
    assert jobs["known.wav"]["deduplicated_from"] == first["id"]
    assert jobs["new.wav"]["deduplicated_from"] is None
    assert batch["counts"]["succeeded"] == 1
    done = wait_batch(client, batch["id"])
    assert done["counts"] == {**ZERO_COUNTS, "succeeded": 2}
    resp = client.get(f"/v1/batches/{batch['id']}/results.zip?formats=json")
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        assert sorted(zf.namelist()) == ["known.json", "new.json"]
    resp = post_batch(client, [(known.read_bytes(), "known.wav")], dedupe="false")
    rerun = check_spec(resp, "/v1/batches", "POST")["jobs"][0]
    assert rerun["deduplicated_from"] is None and rerun["status"] in ("queued", "running")


def test_idempotency_keys(client, settings, unique_wav):  # noqa: ANN001
    a, b = unique_wav().read_bytes(), unique_wav().read_bytes()
    headers = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    first = post_batch(client, [(a, "a.wav"), (b, "b.wav")], headers=headers, language="en")
    assert first.status_code == 202
    before = job_count(settings)
    again = post_batch(client, [(a, "a.wav"), (b, "b.wav")], headers=headers, language="en")
    assert again.status_code == 200
    assert check_spec(again, "/v1/batches", "POST")["id"] == first.get_json()["id"]
    assert job_count(settings) == before
    # the same key with another body: 409, nothing created
    for files, form in (([(a, "a.wav")], {"language": "en"}),
                        ([(a, "a.wav"), (b, "b.wav")], {"language": "de"})):
        resp = post_batch(client, files, headers=headers, **form)
        assert resp.status_code == 409
        assert check_spec(resp, "/v1/batches", "POST")["error"]["code"] == \
            "idempotency_conflict"
    assert job_count(settings) == before

    # POST /v1/jobs: the same rule
    headers = {"Idempotency-Key": f"job-{uuid.uuid4()}"}
    wav = unique_wav()
    with open(wav, "rb") as fh:
        first = client.post("/v1/jobs", data={"file": (fh, "a.wav")}, headers=headers)
    with open(wav, "rb") as fh:
        again = client.post("/v1/jobs", data={"file": (fh, "a.wav")}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    with open(wav, "rb") as fh:
        other = client.post("/v1/jobs", data={"file": (fh, "a.wav"), "num_speakers": "2"},
                            headers=headers)
    assert other.status_code == 409
    assert check_spec(other, "/v1/jobs", "POST")["error"]["code"] == "idempotency_conflict"
    # request fields count too: another priority is another request
    with open(wav, "rb") as fh:
        other = client.post("/v1/jobs", data={"file": (fh, "a.wav"), "priority": "high"},
                            headers=headers)
    assert other.status_code == 409


def test_another_key_gets_404(client, other_key, unique_wav):  # noqa: ANN001
    wav = unique_wav()
    batch = post_batch(client, [(wav.read_bytes(), "a.wav")]).get_json()
    wait_batch(client, batch["id"])
    for path in (f"/v1/batches/{batch['id']}", f"/v1/batches/{batch['id']}/results.zip"):
        resp = client.get(path, headers=bearer(other_key))
        assert resp.status_code == 404
        assert resp.get_json()["error"]["code"] == "batch_not_found"
    # and the same audio under another key is not reused across owners
    resp = post_batch(client, [(wav.read_bytes(), "a.wav")], headers=bearer(other_key),
                      dedupe="true")
    assert resp.status_code == 202
    assert resp.get_json()["jobs"][0]["deduplicated_from"] is None
    assert client.get(f"/v1/batches/{uuid.uuid4()}").status_code == 404
    assert client.get("/v1/batches/not-a-uuid").status_code == 404


def test_batch_counts_against_the_queued_quota(settings, service_env, unique_wav):  # noqa: ANN001
    """A batch adds many jobs at once: the per-key queued quota holds for all of them."""
    from diarq.api import create_app
    from tests.integration.keys import use_key

    key = create_key_with_cli(service_env, f"batch-quota-{uuid.uuid4().hex[:6]}")
    c = use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"job_queue": "idle-batches", "max_queued_per_key": 2}), "TESTING": True}),
        key).test_client()  # a queue nobody serves: jobs stay queued
    before = job_count(settings)
    three = [(unique_wav().read_bytes(), f"{i}.wav") for i in range(3)]
    resp = post_batch(c, three)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert check_spec(resp, "/v1/batches", "POST")["error"]["code"] == "queue_quota_exceeded"
    assert job_count(settings) == before
    assert post_batch(c, three[:2]).status_code == 202
    assert post_batch(c, three[2:]).status_code == 429


# --- the `diarq batch` client against a real gunicorn server ---------------------------

from tests.integration.services import DIARQ, ROOT  # noqa: E402
from tests.integration.test_security import gunicorn  # noqa: E402, F401 (fixture)


def run_batch(url: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(DIARQ + ["batch", "--server", url, *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def test_cli_batch_mirrors_the_tree_and_resumes(gunicorn, service_env, settings, api_key,  # noqa: ANN001, F811
                                                 unique_wav, tmp_path):
    src, out = tmp_path / "meetings", tmp_path / "out"
    for rel in ("a.wav", "team/b.wav", "team/deep/c.wav"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        unique_wav().rename(src / rel)
    (src / "readme.txt").write_text("agenda\n")
    url = f"http://{gunicorn}"
    env = {k: v for k, v in service_env.items() if k != "DIARQ_API_KEY"}

    # an interrupted run: uploaded (two requests of at most 2 files), not waited for
    before = job_count(settings)
    first = run_batch(url, [str(src), "--out", str(out), "--chunk-files", "2",
                            "--api-key", api_key], env)
    assert first.returncode == 0, first.stderr
    assert "rejected: readme.txt" in first.stderr
    assert job_count(settings) == before + 3
    state = json.loads((out / ".diarq-batch.json").read_text())
    assert sorted(state["files"]) == ["a.wav", "readme.txt", "team/b.wav", "team/deep/c.wav"]
    assert len({f["batch_id"] for f in state["files"].values()}) == 2

    # the second run uploads nothing, waits, and writes the results mirroring the tree
    second = run_batch(url, [str(src), "--out", str(out), "--wait", "--formats", "srt,json",
                             "--poll", "0.3"], {**env, "DIARQ_API_KEY": api_key})
    assert second.returncode == 0, second.stderr
    assert "0 to upload" in second.stderr and "3 succeeded, 0 failed, 1 rejected" in second.stderr
    assert job_count(settings) == before + 3
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [".diarq-batch.json", "a.json", "a.srt", "team/b.json", "team/b.srt",
                       "team/deep/c.json", "team/deep/c.srt"]
    state = json.loads((out / ".diarq-batch.json").read_text())
    assert json.loads((out / "team/b.json").read_text())["job_id"] == \
        state["files"]["team/b.wav"]["job_id"]

    # a new file and a third run: only that file is uploaded
    unique_wav().rename(src / "team" / "d.wav")
    third = run_batch(url, [str(src), "--out", str(out), "--wait", "--formats", "txt",
                            "--poll", "0.3"], {**env, "DIARQ_API_KEY": api_key})
    assert third.returncode == 0, third.stderr
    assert "1 to upload" in third.stderr
    assert job_count(settings) == before + 4
    # ... and the new format is written for every file, the old ones included
    assert all((out / f"{stem}.txt").exists() for stem in ("a", "team/b", "team/deep/c",
                                                           "team/d"))

    # without a key the server says so, and the CLI prints it without a traceback
    nokey = run_batch(url, [str(src), "--out", str(tmp_path / "other")], env)
    assert nokey.returncode != 0 and "unauthorized" in nokey.stderr
    assert "Traceback" not in nokey.stderr


def test_cli_batch_of_an_archive(gunicorn, service_env, settings, api_key, unique_wav,  # noqa: ANN001, F811
                                 tmp_path):
    archive = tmp_path / "week.zip"
    archive.write_bytes(zip_of({"mon/standup.wav": unique_wav().read_bytes(),
                                "tue/retro.wav": unique_wav().read_bytes(),
                                "notes.txt": b"text"}))
    url, out = f"http://{gunicorn}", tmp_path / "week-out"
    env = {**service_env, "DIARQ_API_KEY": api_key}
    before = job_count(settings)
    first = run_batch(url, [str(archive), "--out", str(out), "--wait", "--poll", "0.3"], env)
    assert first.returncode == 0, first.stderr
    assert "rejected: notes.txt" in first.stderr
    assert (out / "mon" / "standup.json").exists() and (out / "tue" / "retro.json").exists()
    assert job_count(settings) == before + 2
    again = run_batch(url, [str(archive), "--out", str(out), "--wait", "--poll", "0.3"], env)
    assert again.returncode == 0 and "0 to upload" in again.stderr
    assert job_count(settings) == before + 2


def test_cli_batch_interrupted_with_ctrl_c_resumes(gunicorn, service_env, settings, api_key,  # noqa: ANN001, F811
                                                    unique_wav, tmp_path):
    """Ctrl-C wherever it lands (mid-upload, between chunks, while waiting): the next run
    creates no second job for any file (state file, or the chunk's Idempotency-Key
    when the answer was lost) and finishes the work."""
    import signal

    src, out = tmp_path / "src", tmp_path / "out"
    for rel in ("x/1.wav", "x/2.wav", "y/3.wav", "4.wav"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        unique_wav().rename(src / rel)
    url = f"http://{gunicorn}"
    env = {**service_env, "DIARQ_API_KEY": api_key}
    args = [str(src), "--out", str(out), "--wait", "--chunk-files", "1", "--poll", "0.3"]
    before = job_count(settings)
    proc = subprocess.Popen(DIARQ + ["batch", "--server", url, *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (out / ".diarq-batch.json").exists() or proc.poll() is not None,
               timeout=60, interval=0.02, what="the first upload")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert job_count(settings) <= before + 4

    again = run_batch(url, args, env)
    assert again.returncode == 0, again.stderr
    assert job_count(settings) == before + 4
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")
                     if p.name != ".diarq-batch.json")
    assert written == ["4.json", "x/1.json", "x/2.json", "y/3.json"]


def test_list_and_delete_batches(client, app_for_queue, settings, other_key, unique_wav):  # noqa: ANN001
    # a queue no worker listens on keeps a batch's jobs queued for as long as we like
    idle = app_for_queue("idle").test_client()
    waiting = check_spec(post_batch(idle, [(unique_wav().read_bytes(), "a.wav"),
                                           (unique_wav().read_bytes(), "b.wav")]),
                         "/v1/batches", "POST")
    done = check_spec(post_batch(client, [(unique_wav().read_bytes(), "c.wav")]),
                      "/v1/batches", "POST")
    wait_batch(client, done["id"])

    # newest first, one per page, the cursor walks on; counts come from the jobs
    first = check_spec(client.get("/v1/batches?limit=1"), "/v1/batches", "GET")
    assert [b["id"] for b in first["batches"]] == [done["id"]]
    assert first["batches"][0]["finished"] is True
    assert first["batches"][0]["counts"] == {**ZERO_COUNTS, "succeeded": 1}
    second = check_spec(client.get(f"/v1/batches?limit=1&cursor={first['next_cursor']}"),
                        "/v1/batches", "GET")
    assert [b["id"] for b in second["batches"]] == [waiting["id"]]
    assert second["batches"][0]["finished"] is False
    assert second["batches"][0]["counts"] == {**ZERO_COUNTS, "queued": 2}
    resp = client.get("/v1/batches?cursor=not-a-cursor")
    assert check_spec(resp, "/v1/batches", "GET")["error"]["code"] == "invalid_request"
    # another key sees none of them, and cannot delete them
    theirs = client.get("/v1/batches", headers=bearer(other_key)).get_json()["batches"]
    assert not {b["id"] for b in theirs} & {waiting["id"], done["id"]}
    assert client.delete(f"/v1/batches/{waiting['id']}",
                         headers=bearer(other_key)).status_code == 404

    # DELETE: queued jobs cancelled, every job's audio and result gone, the batch gone
    audio = [settings.storage_dir / "audio" / j["id"][:2] / j["id"] for j in waiting["jobs"]]
    assert all(p.exists() for p in audio)
    resp = client.delete(f"/v1/batches/{waiting['id']}")
    assert resp.status_code == 204
    check_spec(resp, "/v1/batches/{id}", "DELETE")
    assert not any(p.exists() for p in audio)
    for j in waiting["jobs"]:
        job = client.get(f"/v1/jobs/{j['id']}").get_json()
        assert (job["status"], job["deleted"]) == ("canceled", True)
    assert client.delete(f"/v1/batches/{done['id']}").status_code == 204
    job_id = done["jobs"][0]["id"]
    assert own_result_rows(settings, job_id) == 0
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "succeeded"
    for gone in (waiting["id"], done["id"]):
        resp = client.get(f"/v1/batches/{gone}")
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "batch_not_found"
        assert client.delete(f"/v1/batches/{gone}").status_code == 404
    listed = {b["id"] for b in client.get("/v1/batches").get_json()["batches"]}
    assert not listed & {waiting["id"], done["id"]}

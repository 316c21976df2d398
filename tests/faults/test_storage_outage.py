"""Object storage faults, with a private S3 server (moto) behind a private TCP proxy that
can be cut or slowed: the store unreachable at submit and from a worker, and a worker
SIGKILLed while it downloads a recording."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.faults.servers import TcpProxy
from tests.integration.s3 import MotoServer
from tests.integration.services import sine_wav, wait_until


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[TcpProxy]:
    p = TcpProxy(moto.port)
    yield p
    p.close()


@pytest.fixture(scope="module")
def eight_mb_wav(tmp_path_factory) -> Path:  # noqa: ANN001
    return sine_wav(tmp_path_factory.mktemp("wav") / "long.wav", 250)


def _stack(make_stack, moto: MotoServer, endpoint: str, **overrides: str):  # noqa: ANN001, ANN202
    import tempfile

    overrides.setdefault("DIARQ_SCRATCH_DIR", tempfile.mkdtemp(prefix="diarq-scratch-"))
    stack = make_stack(DIARQ_MAX_UPLOAD_MB="40", DIARQ_S3_PART_MB="5",
                       **moto.storage_env(moto.new_bucket(), endpoint=endpoint), **overrides)
    stack.bucket = stack.settings.storage_url[len("s3://"):].split("/")[0]
    return stack


def _job_count(stack) -> int:  # noqa: ANN001
    from diarq.shared.db import session_scope
    from diarq.shared.orm import Job

    with session_scope(stack.settings) as s:
        return s.scalar(select(func.count()).select_from(Job))


def test_store_unreachable_at_submit_is_503_and_nothing_is_written(
        make_stack, moto: MotoServer, proxy: TcpProxy, speech_wav: Path,  # noqa: ANN001
        eight_mb_wav: Path) -> None:
    stack = _stack(make_stack, moto, proxy.url)
    proxy.cut()
    try:
        answers = []
        for path in (speech_wav, eight_mb_wav):  # one PUT / a multipart upload
            with path.open("rb") as fh:
                answers.append(stack.client.post("/v1/jobs", data={"file": (fh, path.name)},
                                                 content_type="multipart/form-data"))
        with speech_wav.open("rb") as fh:
            answers.append(stack.client.post("/v1/batches",
                                             data={"files": [(fh, "a/x.wav")]},
                                             content_type="multipart/form-data"))
        answers.append(stack.client.post("/v1/uploads", json={"filename": "x.wav"}))
    finally:
        proxy.restore()
    for resp in answers[:3]:
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert resp.get_json()["error"]["code"] == "storage_unavailable"
        assert int(resp.headers["Retry-After"]) > 0
    # presigning is local computation: the upload id is handed out, the PUT then goes to
    # the store (and a job only exists once the object does)
    assert answers[3].status_code == 201
    assert _job_count(stack) == 0
    assert moto.keys(stack.bucket) == []
    # store back: the same request goes through
    with speech_wav.open("rb") as fh:
        resp = stack.client.post("/v1/jobs", data={"file": (fh, "x.wav")},
                                 content_type="multipart/form-data")
    assert resp.status_code == 202


def test_store_cut_in_the_middle_of_an_upload_leaves_no_object(
        make_stack, moto: MotoServer, eight_mb_wav: Path) -> None:  # noqa: ANN001
    """The store goes away after the first part of a multipart upload: 503, no job, no
    object (the parts already sent are invisible and never become an object)."""
    slow = TcpProxy(moto.port)
    stack = _stack(make_stack, moto, slow.url)

    def cut_after_first_part() -> None:
        def first_part_sent() -> bool:
            uploads = moto.client().list_multipart_uploads(Bucket=stack.bucket)
            return bool(uploads.get("Uploads"))

        wait_until(first_part_sent, timeout=60, interval=0.02, what="a multipart upload")
        slow.cut()

    cutter = threading.Thread(target=cut_after_first_part)
    cutter.start()
    try:
        with eight_mb_wav.open("rb") as fh:
            resp = stack.client.post("/v1/jobs", data={"file": (fh, "long.wav")},
                                     content_type="multipart/form-data")
    finally:
        cutter.join()
        slow.close()
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "storage_unavailable"
    assert _job_count(stack) == 0
    assert moto.keys(stack.bucket) == []


def test_worker_retries_then_fails_with_storage_unavailable(
        make_stack, moto: MotoServer, speech_wav: Path) -> None:  # noqa: ANN001
    worker_link = TcpProxy(moto.port)
    stack = _stack(make_stack, moto, moto.url)
    try:
        worker_link.cut()
        worker = stack.worker("cut-off", DIARQ_S3_ENDPOINT_URL=worker_link.url,
                              DIARQ_STORAGE_RETRY_FOR_S="4",
                              DIARQ_BENCH_TRIVIAL_PIPELINE_S="0.1")
        job = stack.submit(speech_wav)
        row = stack.wait_all_done([job["id"]], timeout=90)[job["id"]]
        assert row.status == "failed" and row.error_code == "storage_unavailable"
        assert "DIARQ_S3_ENDPOINT_URL" in row.error_message
        assert "retried for 4 s" in row.error_message
        assert "retrying in" in worker.log()  # backoff, logged
        # the link is back: the same worker runs the next job
        worker_link.restore()
        job2 = stack.submit(speech_wav)
        assert stack.wait_all_done([job2["id"]], timeout=60)[job2["id"]].status == "succeeded"
    finally:
        worker_link.close()
    assert not list(stack.settings.scratch_path.rglob("*.part"))


def test_sigkill_mid_download_finishes_once_and_leaves_no_scratch_file(
        make_stack, moto: MotoServer, eight_mb_wav: Path, tmp_path: Path) -> None:  # noqa: ANN001
    slow = TcpProxy(moto.port, rate=1_000_000)  # 8 MB at 1 MB/s: a download of ~8 s
    scratch = tmp_path / "machine-scratch"
    stack = _stack(make_stack, moto, moto.url, DIARQ_SCRATCH_DIR=str(scratch),
                   DIARQ_MAX_ATTEMPTS="3")
    try:
        victim = stack.worker("victim", DIARQ_S3_ENDPOINT_URL=slow.url,
                              DIARQ_BENCH_TRIVIAL_PIPELINE_S="0.1")
        job = stack.submit(eight_mb_wav)

        def partial_download() -> list[Path]:
            files = [p for p in (scratch / "audio").glob("*.part") if p.stat().st_size > 0]
            return files if files else []

        partial = wait_until(partial_download, timeout=60, interval=0.05,
                             what="the victim to start downloading")
        assert stack.rows([job["id"]])[job["id"]].status == "running"
        victim.kill()
        size = partial[0].stat().st_size
        assert 0 < size < eight_mb_wav.stat().st_size  # killed mid-download
        assert partial[0].exists()  # a dead process cannot clean up after itself
        rescuer = stack.worker("rescuer", DIARQ_BENCH_TRIVIAL_PIPELINE_S="0.1")
        # the rescuer's start swept the file nobody holds any more
        wait_until(lambda: not partial[0].exists(), timeout=30, what="the sweep")
        row = stack.wait_all_done([job["id"]], timeout=120)[job["id"]]
    finally:
        slow.close()
    assert row.status == "succeeded", rescuer.log()[-2000:]
    assert row.attempts >= 2 and row.worker.startswith("rescuer@")
    assert stack.result_counts([job["id"]]) == {job["id"]: 1}  # finished once
    assert list(scratch.rglob("*.part")) == []
    print(f"faults figures: killed_at_bytes={size} of {eight_mb_wav.stat().st_size} "
          f"attempts={row.attempts} results=1 scratch_left=0")

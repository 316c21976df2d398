"""The storage interface, the same tests for both backends: a local directory and S3 over
HTTP on 127.0.0.1 (moto in server mode, signed by boto3)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from diarq.shared.archive import extract_archive
from diarq.shared.media import probe_upload
from diarq.shared.s3_storage import S3Storage
from diarq.shared.storage import (
    LocalStorage,
    Storage,
    StorageUnavailable,
    UploadTooLarge,
    audio_key,
    job_prefix,
)
from tests.integration.s3 import MotoServer
from tests.integration.services import free_port

pytestmark = pytest.mark.integration

PART = 5 << 20  # the smallest part S3 accepts


@pytest.fixture(params=["local", "s3"])
def storage(request, moto: MotoServer, tmp_path: Path) -> Storage:  # noqa: ANN001
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    return S3Storage(moto.new_bucket(), "pre/fix", endpoint_url=moto.url, part_size=PART,
                     scratch_root=tmp_path / "scratch")


def _write(writer, data: bytes, chunk: int = 1 << 20) -> None:  # noqa: ANN001
    for i in range(0, len(data), chunk):
        writer.write(data[i:i + chunk])
    writer.seek(0)  # what the multipart parser does after a file part


def test_put_get_size_delete(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("jobs/j1/peaks.json", b"[1, 2]")
    assert storage.get_bytes("jobs/j1/peaks.json") == b"[1, 2]"
    assert storage.size("jobs/j1/peaks.json") == 6
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    storage.put_file("jobs/j1/copy.ogg", src)
    assert storage.size("jobs/j1/copy.ogg") == 1000
    assert storage.size("jobs/j1/nothing") is None
    storage.delete("jobs/j1/nothing")  # no error
    assert storage.delete_prefix(job_prefix("j1")) == 2
    assert storage.size("jobs/j1/peaks.json") is None
    with pytest.raises(FileNotFoundError):
        storage.open("jobs/j1/peaks.json")


def test_streamed_upload_in_parts_is_hashed_and_kept(storage: Storage, tmp_path: Path) -> None:
    data = bytes(range(256)) * (12 * 4096 + 17)  # ~12.6 MB: three parts on S3
    writer = storage.incoming(limit=len(data))
    _write(writer, data)
    assert storage.size(getattr(writer, "key", "none")) is None  # nothing before keep
    kept = storage.keep_audio(writer, "0123-job")
    assert kept.sha256 == hashlib.sha256(data).hexdigest() and kept.size == len(data)
    assert writer.head == data[:512]
    assert storage.size(kept.rel_path) == len(data)
    assert storage.sha256_of(kept.rel_path) == (kept.sha256, len(data))
    dest = tmp_path / "copy"
    assert storage.fetch(kept.rel_path, dest) == len(data)
    assert dest.read_bytes() == data
    with storage.open(kept.rel_path) as fh:  # ranged reads, anywhere in the object
        fh.seek(len(data) - 10)
        assert fh.read() == data[-10:]
        fh.seek(5 << 20)
        assert fh.read(3) == data[5 << 20:(5 << 20) + 3]
    storage.delete_job("0123-job", kept.rel_path)
    assert storage.size(kept.rel_path) is None


def test_upload_past_the_limit_stops_and_leaves_nothing(storage: Storage, moto: MotoServer) -> None:
    writer = storage.incoming(limit=6 << 20)
    with pytest.raises(UploadTooLarge):
        _write(writer, b"y" * (7 << 20))
    storage.discard(writer)
    if isinstance(storage, S3Storage):
        assert moto.keys(storage.bucket) == []
        uploads = moto.client().list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []  # the parts already sent were aborted
    else:
        assert list((storage.root / "incoming").glob("*.part")) == []


def test_unfinished_uploads_of_a_killed_api_are_aborted(moto: MotoServer) -> None:
    store = S3Storage(moto.new_bucket(), "p", endpoint_url=moto.url, part_size=PART)
    writer = store.incoming(limit=20 << 20)
    _write(writer, b"z" * (6 << 20))  # one part sent, then the API process "dies"
    listed = moto.client().list_multipart_uploads(Bucket=store.bucket)
    assert len(listed.get("Uploads", [])) == 1
    # (moto reports every upload as begun in 2010, so the age filter cannot be shown here)
    assert store.abort_stale_uploads(older_than_s=3600) == 1
    assert moto.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_probe_and_archive_read_from_the_store(storage: Storage, tmp_path: Path) -> None:
    wav = Path(__file__).resolve().parents[1] / "data" / "jfk.wav"
    storage.put_file(audio_key("probe-job"), wav)
    local = storage.local_path(audio_key("probe-job"))
    with storage.open(audio_key("probe-job")) as fh:
        probe = probe_upload(local or fh, max_seconds=None, filename="jfk.wav")
    assert 10.5 < probe.duration < 11.5 and probe.sample_rate == 16000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/one.wav", wav.read_bytes()[:4000])
        zf.writestr("two.txt", b"hello")
    storage.put_bytes("uploads/ar/chive", buf.getvalue())
    with storage.open("uploads/ar/chive") as fh:
        got = extract_archive(fh, tmp_path / "out")
    assert sorted(e.name for e in got.entries) == ["a/one.wav", "two.txt"]


def test_presigned_upload_is_a_short_lived_sigv4_put(moto: MotoServer, tmp_path: Path) -> None:
    bucket = moto.new_bucket()
    store = S3Storage(bucket, "p", endpoint_url=moto.url, part_size=PART)
    signed = store.presign_upload("uploads/ab/abc", expires_s=900)
    query = parse_qs(urlsplit(signed.url).query)
    assert signed.method == "PUT"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]  # minutes, not days
    assert "X-Amz-Signature" in query and "AWSAccessKeyId" not in query
    resp = requests.put(signed.url, data=b"abc" * 1000, headers=signed.headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert moto.keys(bucket) == ["p/uploads/ab/abc"]
    # the bucket stays private: no public ACL or policy was set by diarq
    acl = moto.client().get_bucket_acl(Bucket=bucket)
    assert not [g for g in acl["Grants"] if g["Grantee"].get("URI", "").endswith("AllUsers")]


def test_local_storage_refuses_direct_uploads(tmp_path: Path) -> None:
    from diarq.shared.storage import DirectUploadUnsupported

    with pytest.raises(DirectUploadUnsupported) as exc:
        LocalStorage(tmp_path).presign_upload("uploads/x", expires_s=60)
    assert exc.value.code == "direct_upload_unavailable"


def test_unreachable_store_is_storage_unavailable_without_secrets(tmp_path: Path) -> None:
    from tests.integration.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY

    dead = S3Storage("bucket", endpoint_url=f"http://127.0.0.1:{free_port()}", part_size=PART)
    for call in (dead.check, lambda: dead.size("k"), lambda: dead.put_bytes("k", b"1"),
                 lambda: dead.presign_upload("k", expires_s=60).url and dead.get_bytes("k")):
        with pytest.raises(StorageUnavailable) as exc:
            call()
        text = f"{exc.value.message} {exc.value!r} {exc.value.__context__!r}"
        assert "DIARQ_S3_ENDPOINT_URL" in exc.value.message
        assert ACCESS_KEY_ID not in text and SECRET_ACCESS_KEY not in text
        assert exc.value.__cause__ is None


def test_missing_bucket_says_so(moto: MotoServer) -> None:
    store = S3Storage("no-such-bucket-here", endpoint_url=moto.url, part_size=PART)
    with pytest.raises(StorageUnavailable) as exc:
        store.check()
    assert "bucket" in exc.value.message

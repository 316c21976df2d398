"""S3-compatible object storage (AWS S3, MinIO, R2, GCS's S3 API) behind the storage
interface of :mod:`diarq.shared.storage`, through boto3.

Chosen by ``DIARQ_STORAGE_URL=s3://bucket/prefix``; ``DIARQ_S3_ENDPOINT_URL`` for
endpoints other than AWS. Credentials come from boto3's standard chain only
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, instance roles): diarq
never reads, stores or prints them, and no request is signed by hand.

- Uploads through the API stream into a multipart upload, one part (``DIARQ_S3_PART_MB``)
  buffered at a time; a file smaller than one part is one PUT.
- Reads are ranged GETs behind a seekable file object (probing, archives) or one
  streamed GET resumed by range after a dropped connection (worker downloads).
- Every failure to reach or use the store becomes :class:`StorageUnavailable` with a
  message naming what to check, raised outside the ``except`` so no botocore exception
  (which may hold request details) rides along in ``__context__``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from diarq.shared.settings import Settings
from diarq.shared.storage import (
    PresignedUpload,
    Storage,
    StorageUnavailable,
    StoredFile,
    UploadWriter,
    audio_key,
)

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403",
           "ExpiredToken", "InvalidToken", "AuthorizationHeaderMalformed"}
READ_CHUNK = 1 << 20


def _plain_endpoint(url: str | None) -> str:
    """An endpoint URL fit for messages: without any user:password part."""
    if not url:
        return "AWS S3"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class S3Storage(Storage):
    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 public_endpoint_url: str | None = None, part_size: int = 8 << 20,
                 scratch_root: Path | None = None, region: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self.scratch_root = Path(scratch_root or "/tmp/diarq-scratch")
        config = Config(
            signature_version="s3v4",
            s3={
                # path-style for MinIO and other endpoints without per-bucket host names
                "addressing_style": "path" if endpoint_url else "auto",
                # bodies are not hashed a second time for the signature (as boto3 does
                # over https by default): each body carries a checksum header instead
                # (our SHA-256 on one-PUT uploads, botocore's CRC32 on parts), which is
                # signed and which the store verifies
                "payload_signing_enabled": False,
            },
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5, read_timeout=60,
            # gunicorn threads and batch uploads share one client
            max_pool_connections=32,
        )
        session = boto3.session.Session(region_name=region)
        # boto3, not obstore, although obstore costs less CPU per request
        # (bench/s3_requests.py, BENCHMARKS.md): obstore hangs in a process forked after
        # its parent used it (Celery's prefork pool forks replacement processes from the
        # main process, whose reaper thread uses the store) and cannot list unfinished
        # multipart uploads
        self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        # presigned URLs name the endpoint clients reach (it may differ from the API's)
        self.presigner = session.client("s3", endpoint_url=public_endpoint_url or endpoint_url,
                                        config=config)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        rest = settings.storage_url[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        return cls(bucket, prefix, endpoint_url=settings.s3_endpoint_url or None,
                   public_endpoint_url=settings.s3_public_endpoint_url or None,
                   part_size=settings.s3_part_mb << 20, scratch_root=settings.scratch_path)

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError("invalid storage key")
        return self.prefix + key

    def where(self) -> str:
        return f"bucket {self.bucket} at {_plain_endpoint(self.endpoint_url)}"

    def call(self, what: str, fn: Any, /, **kwargs: Any) -> Any:
        """One S3 request; FileNotFoundError for a missing object, StorageUnavailable for
        anything that says the store cannot be used now."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            problem = ("missing" if code in _MISSING or (status == 404 and code != "NoSuchBucket")
                       else "bucket" if code == "NoSuchBucket"
                       else "denied" if code in _DENIED or status == 403 else "error")
            detail = code or str(status)
        except BotoCoreError as exc:  # no connection, timeouts, no credentials
            problem, detail = "unreachable", type(exc).__name__
        if problem == "missing":
            raise FileNotFoundError(what)
        raise StorageUnavailable(self._message(what, problem, detail))

    def _message(self, what: str, problem: str, detail: str) -> str:
        where = self.where()
        if problem == "denied":
            return (f"the object store refused diarq's credentials or permissions while it "
                    f"{what} ({detail}, {where}); check the AWS credentials of this process "
                    "(AWS_ACCESS_KEY_ID / AWS_PROFILE / instance role) and the bucket policy")
        if problem == "bucket":
            return (f"the bucket does not exist ({where}); create it, or fix "
                    "DIARQ_STORAGE_URL")
        if problem == "unreachable" and detail in ("NoCredentialsError",
                                                   "PartialCredentialsError"):
            return (f"no AWS credentials were found while it {what} ({where}); set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an "
                    "instance role")
        return (f"the object store could not be reached while it {what} ({detail}, "
                f"{where}); check DIARQ_S3_ENDPOINT_URL, the network and that the store is "
                "running, then retry")

    # --- uploads through the API --------------------------------------------------------
    def incoming(self, limit: int) -> S3UploadWriter:
        return S3UploadWriter(self, audio_key(uuid.uuid4().hex), limit)

    def keep_audio(self, writer: UploadWriter, job_id: str) -> StoredFile:
        assert isinstance(writer, S3UploadWriter)
        writer.finish()
        return StoredFile(writer.key, writer.sha256, writer.size)

    def keep_file(self, path: Path, job_id: str) -> StoredFile:
        from diarq.shared.hashing import sha256_file

        digest = sha256_file(path)
        size = path.stat().st_size
        key = audio_key(job_id)
        try:
            self.put_file(key, path)
        finally:
            path.unlink(missing_ok=True)
        return StoredFile(key, digest, size)

    def discard(self, writer: UploadWriter) -> None:
        if isinstance(writer, S3UploadWriter):
            writer.abort()
        else:
            super().discard(writer)

    # --- objects by key -----------------------------------------------------------------
    def put_file(self, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(multipart_threshold=self.part_size,
                                  multipart_chunksize=self.part_size, max_concurrency=4)
        self.call("uploaded a file", self.client.upload_file, Filename=str(path),
                  Bucket=self.bucket, Key=self._key(key), Config=transfer)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.call("stored an object", self.client.put_object, Bucket=self.bucket,
                  Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        obj = self.call("read an object", self.client.get_object, Bucket=self.bucket,
                        Key=self._key(key))
        return self.call("read an object", obj["Body"].read)

    def open(self, key: str) -> BinaryIO:
        size = self.size(key)
        if size is None:
            raise FileNotFoundError(key)
        return io.BufferedReader(RangeReader(self, self._key(key), size),  # type: ignore[return-value]
                                 buffer_size=256 * 1024)

    def size(self, key: str) -> int | None:
        try:
            head = self.call("looked up an object", self.client.head_object,
                             Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        return int(head["ContentLength"])

    def fetch(self, key: str, dest: Path, *, limit: int | None = None) -> int:
        """Stream the object into ``dest`` (open for writing by the caller or not); a
        connection dropped mid-way is resumed with a ranged GET from what was written."""
        full = self._key(key)
        written = 0
        with dest.open("wb") as out:
            for _ in range(5):
                kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
                if written:
                    kwargs["Range"] = f"bytes={written}-"
                obj = self.call("downloaded the audio", self.client.get_object, **kwargs)
                total = written + int(obj["ContentLength"])
                chunks = obj["Body"].iter_chunks(READ_CHUNK)
                while True:
                    try:
                        chunk = next(chunks, None)
                    except Exception as exc:  # noqa: BLE001 - urllib3/botocore read errors
                        if type(exc).__module__.split(".")[0] not in ("urllib3", "botocore"):
                            raise
                        break  # connection dropped: resume from ``written``
                    if chunk is None:
                        break
                    out.write(chunk)  # a local error (disk full) is not retried
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise StorageUnavailable("the stored object is larger than "
                                                 "DIARQ_MAX_UPLOAD_MB allows; submit it again")
                if written >= total:
                    return written
        raise StorageUnavailable(self._message("downloaded the audio", "unreachable",
                                               "connection dropped repeatedly"))

    def sha256_of(self, key: str) -> tuple[str, int]:
        """SHA-256 and size of a stored object, streamed (bounded memory, no disk)."""
        obj = self.call("read an upload", self.client.get_object, Bucket=self.bucket,
                        Key=self._key(key))
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in obj["Body"].iter_chunks(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        except Exception as exc:  # noqa: BLE001 - a dropped connection mid-read
            detail = type(exc).__name__
        else:
            return digest.hexdigest(), size
        raise StorageUnavailable(self._message("read an upload", "unreachable", detail))

    def delete(self, key: str | None) -> None:
        if not key:
            return
        self.call("deleted an object", self.client.delete_object, Bucket=self.bucket,
                  Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix)
        count = 0
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.call("listed objects", self.client.list_objects_v2, **kwargs)
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.call("deleted objects", self.client.delete_objects, Bucket=self.bucket,
                          Delete={"Objects": keys, "Quiet": True})
                count += len(keys)
            if not page.get("IsTruncated"):
                return count
            token = page.get("NextContinuationToken")

    def abort_stale_uploads(self, older_than_s: float) -> int:
        """Abort multipart uploads under ``audio/`` begun more than ``older_than_s`` ago:
        parts of an API process that was killed mid-upload (they never become objects,
        but the store keeps and bills them)."""
        from datetime import UTC, datetime, timedelta

        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        page = self.call("listed unfinished uploads", self.client.list_multipart_uploads,
                         Bucket=self.bucket, Prefix=self._key("audio/"))
        count = 0
        for upload in page.get("Uploads", []):
            if upload["Initiated"] <= cutoff:
                try:
                    self.call("dropped an unfinished upload", self.client.abort_multipart_upload,
                              Bucket=self.bucket, Key=upload["Key"],
                              UploadId=upload["UploadId"])
                except FileNotFoundError:  # finished or aborted meanwhile
                    continue
                count += 1
        return count

    def presign_upload(self, key: str, *, expires_s: int, size: int | None = None,
                       sha256: str | None = None) -> PresignedUpload:
        """A presigned PUT (SigV4, query-string auth) for one object, valid ``expires_s``.
        The bucket stays private: the URL allows this one PUT of this one key."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        url = self.call("signed an upload URL", self.presigner.generate_presigned_url,
                        ClientMethod="put_object", Params=params, ExpiresIn=expires_s,
                        HttpMethod="PUT")
        return PresignedUpload(url=url, method="PUT", headers={}, expires_s=expires_s)

    def check(self) -> None:
        try:
            self.call("checked the bucket", self.client.head_bucket, Bucket=self.bucket)
        except FileNotFoundError:  # HEAD answers a bare 404, without NoSuchBucket
            raise StorageUnavailable(self._message("checked the bucket", "bucket",
                                                   "404")) from None


class RangeReader(io.RawIOBase):
    """A read-only, seekable view of one object; every read is a ranged GET."""

    def __init__(self, store: S3Storage, full_key: str, size: int):
        self.store = store
        self.full_key = full_key
        self.length = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.length - self.pos)
        if want <= 0:
            return 0
        obj = self.store.call("read part of an object", self.store.client.get_object,
                              Bucket=self.store.bucket, Key=self.full_key,
                              Range=f"bytes={self.pos}-{self.pos + want - 1}")
        data = self.store.call("read part of an object", obj["Body"].read)
        n = len(data)
        buffer[:n] = data
        self.pos += n
        return n


class S3UploadWriter(UploadWriter):
    """An upload streamed into the store: a multipart upload with one part buffered at a
    time, or one PUT when the whole file fits in a part. Nothing exists under ``key``
    until :meth:`finish`; :meth:`abort` drops the parts already sent."""

    def __init__(self, store: S3Storage, key: str, limit: int):
        super().__init__(limit)
        self.store = store
        self.key = key
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False
        self._small: bytes | None = None  # a one-PUT upload, kept until the probe ran

    def _write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= self.store.part_size:
            self._send_part(self.store.part_size)

    def _send_part(self, n: int) -> None:
        s = self.store
        if self._upload_id is None:
            made = s.call("started an upload", s.client.create_multipart_upload,
                          Bucket=s.bucket, Key=s._key(self.key))
            self._upload_id = made["UploadId"]
        number = len(self._parts) + 1
        body = bytes(self._buf[:n])
        del self._buf[:n]
        part = s.call("uploaded part of a file", s.client.upload_part, Bucket=s.bucket,
                      Key=s._key(self.key), UploadId=self._upload_id, PartNumber=number,
                      Body=body)
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})

    def seek(self, offset: int, whence: int = 0) -> int:
        # the parser rewinds every file part after writing it; nothing is read back here
        if (offset, whence) not in ((0, 0), (0, 1), (0, 2)):
            raise io.UnsupportedOperation("an upload to object storage cannot seek")
        return 0 if whence == 0 else self.size

    def tell(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        raise io.UnsupportedOperation("an upload to object storage is not read back")

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self._done

    def finish(self) -> None:
        """Complete the object (it exists once this returns)."""
        if self._done:
            return
        s = self.store
        try:
            if self._upload_id is None:
                self._small = bytes(self._buf)
                # the SHA-256 taken while streaming is the body's: the store checks it
                digest = base64.b64encode(bytes.fromhex(self.sha256)).decode()
                s.call("stored an upload", s.client.put_object, Bucket=s.bucket,
                       Key=s._key(self.key), Body=self._small, ChecksumSHA256=digest)
            else:
                if self._buf:
                    self._send_part(len(self._buf))
                s.call("completed an upload", s.client.complete_multipart_upload,
                       Bucket=s.bucket, Key=s._key(self.key), UploadId=self._upload_id,
                       MultipartUpload={"Parts": self._parts})
        except BaseException:
            self.abort()
            raise
        self._buf = bytearray()
        self._done = True

    def in_memory(self) -> bytes | None:
        return self._small if self._upload_id is None else None

    def abort(self) -> None:
        """Best effort: a store that is down keeps the parts until its lifecycle rule
        (AbortIncompleteMultipartUpload, docs/scaling.md) or the reaper removes them."""
        import contextlib

        self._buf = bytearray()
        self._small = None
        if self._upload_id is not None and not self._done:
            s = self.store
            with contextlib.suppress(StorageUnavailable, FileNotFoundError):
                s.call("dropped an upload", s.client.abort_multipart_upload, Bucket=s.bucket,
                       Key=s._key(self.key), UploadId=self._upload_id)
        self._done = True

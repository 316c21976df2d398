"""Where recordings live: one interface, two backends, chosen by settings.

- :class:`LocalStorage` (the default, embedded mode and one machine): a directory,
  shared between API and workers by a mounted volume when they run on several machines.
- :class:`~diarq.shared.s3_storage.S3Storage` (``DIARQ_STORAGE_URL=s3://bucket/prefix``):
  S3-compatible object storage (AWS S3, MinIO, R2, GCS's S3 API), through boto3.

Everything is addressed by *key* (``audio/...``, ``jobs/<job id>/...``): put, get, delete,
ranged reads (:meth:`Storage.open`), presigned direct uploads. Objects belonging to a job
besides its audio (a transcoded copy, waveform peaks) go under :func:`job_prefix`, so that
deleting the job deletes them too (:meth:`Storage.delete_job`). Keys are always generated
here: no name from a client is ever part of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from diarq.shared.errors import DiarqError
from diarq.shared.hashing import sha256_file

# bytes kept from the start of every upload: enough to tell an archive from audio
HEAD_BYTES = 512


class UploadTooLarge(Exception):
    def __init__(self, limit_bytes: int):
        super().__init__(f"upload larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class StorageUnavailable(DiarqError):
    """The object store cannot be reached, or refuses our credentials: retryable."""

    code = "storage_unavailable"
    http_status = 503


class DirectUploadUnsupported(DiarqError):
    code = "direct_upload_unavailable"
    http_status = 409


@dataclass(frozen=True)
class StoredFile:
    rel_path: str  # the key (local: relative to the storage directory)
    sha256: str
    size: int


@dataclass(frozen=True)
class PresignedUpload:
    """Where and how a client sends a file straight to the store."""

    url: str
    method: str
    headers: dict[str, str]
    expires_s: int


def audio_key(job_id: str) -> str:
    return f"audio/{job_id[:2]}/{job_id}"


JOBS_PREFIX = "jobs/"


def job_prefix(job_id: str) -> str:
    """Objects derived from a job's audio (transcoded copy, peaks) live under this."""
    return f"{JOBS_PREFIX}{job_id}/"


def references_prefix(job_id: str) -> str:
    """A job's voice references (user uploads): under the job's prefix, so they are
    deleted with the job's other objects."""
    return f"{job_prefix(job_id)}references/"


def reference_key(job_id: str, index: int) -> str:
    return f"{references_prefix(job_id)}{index}"


def media_key(job_id: str, attempt: str, suffix: str) -> str:
    """An object one attempt derives from the job's audio for the web page (its playback
    copy ``.webm``, its waveform peaks ``.peaks``): under the job's prefix, so it goes
    with the job; named per attempt, so an attempt that lost the job (cancelled, taken
    over) deletes only its own."""
    return f"{job_prefix(job_id)}media/{attempt}{suffix}"


def upload_key(upload_id: str) -> str:
    """Key of a direct upload (POST /v1/uploads); it becomes the job's audio as is."""
    return f"uploads/{upload_id[:2]}/{upload_id}"


class UploadWriter(ABC):
    """A writable sink for one uploaded file part that hashes and counts what is written,
    keeps its first bytes and refuses to grow past ``limit``. The multipart parser writes
    the upload into it chunk by chunk (then seeks to 0), so nothing is spooled elsewhere."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadTooLarge(self.limit)
        if len(self.head) < HEAD_BYTES:
            self.head += bytes(data[:HEAD_BYTES - len(self.head)])
        self._hash.update(data)
        self._write(data)
        return len(data)

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    def in_memory(self) -> bytes | None:
        """The whole upload, when the sink holds it in memory anyway (an object-storage
        upload smaller than one part): probing it then needs no request to the store."""
        return None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def flush(self) -> None:  # noqa: B027 - nothing buffered by default
        return None

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class HashingWriter(UploadWriter):
    """An upload written to a local file (storage's ``incoming/``, or the API's spool)."""

    def __init__(self, path: Path, limit: int):
        super().__init__(limit)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: BinaryIO = open(path, "w+b")  # noqa: SIM115 (closed by close())

    def _write(self, data: bytes) -> None:
        self._fh.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def readable(self) -> bool:
        return True

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def discard(self) -> None:
        try:
            self.close()
        finally:
            self.path.unlink(missing_ok=True)


class Storage(ABC):
    """The storage interface every part of diarq uses (keys, never client names)."""

    kind: str

    # --- uploads through the API ------------------------------------------------------
    @abstractmethod
    def incoming(self, limit: int) -> UploadWriter:
        """A new upload sink under a generated key."""

    @abstractmethod
    def keep_audio(self, writer: UploadWriter, job_id: str) -> StoredFile:
        """Make a finished upload the audio of ``job_id``: after this the object exists."""

    @abstractmethod
    def keep_file(self, path: Path, job_id: str) -> StoredFile:
        """Like keep_audio for a local file (an extracted archive entry, a spooled part);
        the local file is gone afterwards."""

    def discard(self, writer: UploadWriter) -> None:
        """Drop an upload that will not be kept (error, extra field)."""
        if isinstance(writer, HashingWriter):
            writer.discard()

    # --- objects by key ---------------------------------------------------------------
    @abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader (ranged reads on S3); FileNotFoundError if absent."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, None when it does not exist."""

    @abstractmethod
    def delete(self, key: str | None) -> None:
        """Delete one object; a missing one is no error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""

    def local_path(self, key: str) -> Path | None:
        """The object as a local file, when the backend is a directory (no copy needed)."""
        return None

    def fetch(self, key: str, dest: Path, *, limit: int | None = None) -> int:
        """Copy the object into the local file ``dest``; returns its size."""
        with self.open(key) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            return out.tell()

    def sha256_of(self, key: str) -> tuple[str, int]:
        """SHA-256 and size of a stored object, read once in chunks (bounded memory)."""
        digest = hashlib.sha256()
        size = 0
        with self.open(key) as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def presign_upload(self, key: str, *, expires_s: int, size: int | None = None,
                       sha256: str | None = None) -> PresignedUpload:
        raise DirectUploadUnsupported(
            "direct uploads need object storage (DIARQ_STORAGE_URL=s3://...); this server "
            "stores uploads on its own disk: send the file to POST /v1/jobs instead")

    def abort_stale_uploads(self, older_than_s: float) -> int:
        """Drop uploads through the API that an API process started and never finished
        (it was killed) more than ``older_than_s`` ago; returns how many."""
        return 0

    def delete_job(self, job_id: str, audio: str | None) -> None:
        """A job's objects: its audio and everything under :func:`job_prefix`."""
        self.delete(audio)
        self.delete_prefix(job_prefix(job_id))

    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailable when the store cannot be used (doctor, start-up)."""

    def scratch_dir(self) -> Path:
        """A new empty local directory for archive extraction (API side)."""
        path = self.scratch_root / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    scratch_root: Path


class LocalStorage(Storage):
    """A directory (``DIARQ_STORAGE_DIR``, or ``DIARQ_STORAGE_URL=file:///path``)."""

    kind = "local"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        # same filesystem as the audio: entries move into place by rename
        self.scratch_root = self.root / "incoming"

    def incoming(self, limit: int) -> HashingWriter:
        """A new upload file under a generated name in storage's ``incoming/``."""
        return HashingWriter(self.root / "incoming" / f"{uuid.uuid4().hex}.part", limit)

    def keep_audio(self, writer: UploadWriter, job_id: str) -> StoredFile:
        """Move a finished upload to its final generated name (same filesystem: a rename)."""
        assert isinstance(writer, HashingWriter)
        writer.close()
        rel = audio_key(job_id)
        self._move(writer.path, rel)
        return StoredFile(rel, writer.sha256, writer.size)

    def keep_file(self, path: Path, job_id: str) -> StoredFile:
        digest = sha256_file(path)
        size = path.stat().st_size
        rel = audio_key(job_id)
        self._move(path, rel)
        return StoredFile(rel, digest, size)

    def _move(self, src: Path, key: str) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dest)
        except OSError:  # another filesystem (a spool outside storage): copy, then remove
            shutil.move(src, dest)

    def path(self, rel_path: str) -> Path:
        full = (self.root / rel_path).resolve()
        if self.root not in full.parents:
            raise ValueError("storage path escapes the storage directory")
        return full

    def local_path(self, key: str) -> Path:
        return self.path(key)

    def put_file(self, key: str, path: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)

    def put_bytes(self, key: str, data: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def size(self, key: str) -> int | None:
        try:
            path = self.path(key)
            return path.stat().st_size if path.is_file() else None
        except (OSError, ValueError):
            return None

    def delete(self, key: str | None) -> None:
        if not key:
            return
        with contextlib.suppress(OSError, ValueError):
            self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        try:
            base = self.path(prefix.rstrip("/"))
        except ValueError:
            return 0
        if not base.is_dir():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base, ignore_errors=True)
        return count

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise OSError("not writable")
        except OSError as exc:
            raise StorageUnavailable(
                f"the storage directory cannot be used ({exc.strerror or exc}); check "
                "DIARQ_STORAGE_DIR (a writable directory, the same volume on API and "
                "workers)") from None

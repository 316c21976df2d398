"""Local storage for uploads (a directory, shared between API and workers by a
mounted volume in production). Files are stored under generated names only."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from diarq.shared.hashing import sha256_file
from diarq.shared.settings import Settings


class UploadTooLarge(Exception):
    def __init__(self, limit_bytes: int):
        super().__init__(f"upload larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


@dataclass(frozen=True)
class StoredFile:
    rel_path: str
    sha256: str
    size: int


class HashingWriter:
    """A writable (then readable) file in storage that hashes and counts what is
    written and refuses to grow past ``limit`` bytes. Werkzeug's multipart parser
    writes the upload into it chunk by chunk, so nothing is spooled elsewhere."""

    def __init__(self, path: Path, limit: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._fh: BinaryIO = open(path, "w+b")  # noqa: SIM115 (closed by close())

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadTooLarge(self.limit)
        self._hash.update(data)
        return self._fh.write(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class Storage:
    def __init__(self, settings: Settings):
        self.root = Path(settings.storage_dir).resolve()

    def incoming(self, limit: int) -> HashingWriter:
        """A new upload file under a generated name in storage's ``incoming/``."""
        return HashingWriter(self.root / "incoming" / f"{uuid.uuid4().hex}.part", limit)

    def keep_audio(self, writer: HashingWriter, job_id: str) -> StoredFile:
        """Move a finished upload to its final generated name (same filesystem: a rename)."""
        writer.close()
        rel = f"audio/{job_id[:2]}/{job_id}"
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, dest)
        return StoredFile(rel, writer.sha256, writer.size)

    def keep_file(self, path: Path, job_id: str) -> StoredFile:
        """Like keep_audio for a file already under storage (an extracted archive entry):
        hash it, then move it to its final generated name."""
        digest = sha256_file(path)
        size = path.stat().st_size
        rel = f"audio/{job_id[:2]}/{job_id}"
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        return StoredFile(rel, digest, size)

    def scratch_dir(self) -> Path:
        """A new empty directory under storage (same filesystem: entries move by rename)."""
        path = self.root / "incoming" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def derived_name(self, job_id: str, kind: str) -> str:
        """Where a file the worker derives from a job's audio is kept (``kind``: a
        suffix such as ``.webm`` or ``.peaks``), next to the uploads."""
        return f"media/{job_id[:2]}/{job_id}{kind}"

    def temp_path(self, suffix: str = "") -> Path:
        """A new, not yet existing file name in ``incoming/`` (same filesystem as the
        final names, so :meth:`keep_temp` is a rename)."""
        folder = self.root / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{uuid.uuid4().hex}{suffix}"

    def keep_temp(self, tmp: Path, rel_path: str) -> str:
        """Move a finished temporary file to ``rel_path`` (atomic: readers see the whole
        file or none)."""
        dest = self.path(rel_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        return rel_path

    def write_bytes(self, rel_path: str, data: bytes) -> str:
        tmp = self.temp_path()
        tmp.write_bytes(data)
        return self.keep_temp(tmp, rel_path)

    def exists(self, rel_path: str | None) -> bool:
        if not rel_path:
            return False
        try:
            return self.path(rel_path).is_file()
        except ValueError:
            return False

    def path(self, rel_path: str) -> Path:
        full = (self.root / rel_path).resolve()
        if self.root not in full.parents:
            raise ValueError("storage path escapes the storage directory")
        return full

    def delete(self, rel_path: str | None) -> None:
        if not rel_path:
            return
        with contextlib.suppress(OSError, ValueError):
            self.path(rel_path).unlink(missing_ok=True)

    @staticmethod
    def discard(writer: HashingWriter) -> None:
        try:
            writer.close()
        finally:
            writer.path.unlink(missing_ok=True)

"""The recording as a local file for the pipeline (ffmpeg reads files).

Local storage: the stored file itself, no copy. Object storage: the object is streamed
into a scratch file of this machine (``DIARQ_SCRATCH_DIR``, default ``<data dir>/scratch``),
retried with backoff while the store is unreachable, checked against the SHA-256 taken at
upload, and deleted when the job ends. The file is ``flock``-ed by its process for its
whole life, so a file whose lock can be taken belongs to a process that died (SIGKILL,
out of memory) and is deleted by the next :func:`sweep` (every download, every worker
start).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diarq.shared.errors import DiarqError
from diarq.shared.hashing import sha256_file
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, StorageUnavailable

log = logging.getLogger(__name__)

SUFFIX = ".part"
# free space kept on the scratch filesystem beyond the recording itself
FREE_MARGIN = 64 << 20


def scratch_audio_dir(settings: Settings) -> Path:
    return settings.scratch_path / "audio"


def sweep(directory: Path) -> int:
    """Delete scratch files no live process holds (their owner died); returns how many."""
    removed = 0
    if not directory.is_dir():
        return 0
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: a running download or pipeline
        try:
            path.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d scratch files of stopped workers", removed)
    return removed


@contextmanager
def local_audio(storage: Storage, key: str, settings: Settings, *, job_id: str,
                sha256: str | None = None, size: int | None = None) -> Iterator[tuple[Path, float]]:
    """Yield (local path of the job's audio, seconds spent downloading it)."""
    local = storage.local_path(key)
    if local is not None:
        if not local.is_file() or not os.access(local, os.R_OK):
            raise _missing()
        yield local, 0.0
        return
    directory = scratch_audio_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    sweep(directory)
    free = shutil.disk_usage(directory).free
    if size is not None and size + FREE_MARGIN > free:
        raise DiarqError(
            f"the worker's scratch directory has {free >> 20} MB free and this recording "
            f"needs {size >> 20} MB; free space there or point DIARQ_SCRATCH_DIR at a larger "
            "disk, then submit the file again", code="scratch_full")
    with _held_file(directory, job_id) as path:
        t0 = time.perf_counter()
        _download(storage, key, path, settings)
        seconds = time.perf_counter() - t0
        if sha256 is not None and sha256_file(path) != sha256:
            raise DiarqError("the recording in storage is not the one uploaded (its SHA-256 "
                             "differs): it was changed or damaged there; submit it again",
                             code="audio_corrupt")
        yield path, seconds


@contextmanager
def scratch_file(settings: Settings, stem: str) -> Iterator[Path]:
    """A new empty file in this machine's scratch directory for something the worker
    makes before storing it (the playback copy): swept like a download if the process
    dies, deleted when the block ends."""
    directory = scratch_audio_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    with _held_file(directory, stem) as path:
        yield path


@contextmanager
def _held_file(directory: Path, stem: str) -> Iterator[Path]:
    path = directory / f"{stem}-{uuid.uuid4().hex[:8]}{SUFFIX}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, or by the kernel when we die
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _download(storage: Storage, key: str, dest: Path, settings: Settings) -> None:
    """Fetch with backoff while the store is unavailable, up to DIARQ_STORAGE_RETRY_FOR_S."""
    deadline = time.monotonic() + settings.storage_retry_for_s
    delay = 1.0
    while True:
        try:
            storage.fetch(key, dest, limit=settings.max_upload_bytes)
            return
        except FileNotFoundError:
            raise _missing() from None
        except StorageUnavailable as exc:
            if time.monotonic() + delay > deadline:
                message = (f"{exc.message} (the worker retried for "
                           f"{settings.storage_retry_for_s:.0f} s)")
                break
            log.warning("storage unavailable, retrying in %.0f s: %s", delay, exc.message)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
    raise DiarqError(message, code="storage_unavailable")


def _missing() -> DiarqError:
    return DiarqError("the uploaded audio is missing or unreadable in storage; check that API "
                      "and workers share the same storage (DIARQ_STORAGE_URL, or "
                      "DIARQ_STORAGE_DIR on the same volume, readable by the worker), then "
                      "submit the file again", code="audio_missing")

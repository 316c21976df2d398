"""Choosing the storage backend from settings (kept apart from the interface in
shared/storage.py, which the S3 backend builds on)."""

from __future__ import annotations

from pathlib import Path

from diarq.shared.s3_storage import S3Storage
from diarq.shared.settings import Settings
from diarq.shared.storage import LocalStorage, Storage


def open_storage(settings: Settings) -> Storage:
    """The backend ``settings`` choose: ``DIARQ_STORAGE_URL`` (s3:// or file://), else
    the local directory ``DIARQ_STORAGE_DIR`` (default ``<data dir>/storage``)."""
    url = settings.storage_url
    if url.startswith("s3://"):
        return S3Storage.from_settings(settings)
    if url.startswith("file://"):
        return LocalStorage(Path(url[len("file://"):]))
    return LocalStorage(Path(settings.storage_dir))

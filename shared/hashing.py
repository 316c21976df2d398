"""SHA-256 of files: uploads, archive entries, model weights, batch resume state."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # bytes per read: large enough that hashing runs at disk speed


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's contents, read in 1 MiB chunks (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

"""Safe extraction of uploaded meeting archives (.zip, .tar, .tar.gz).

Archives come from users, so nothing in them is trusted: entry names are only
used as display names (files are written under generated names), links and
special files are skipped, and limits on entry count, total size and
compression ratio stop decompression bombs while extracting, not after.
"""

from __future__ import annotations

import gzip
import posixpath
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from diarq.shared.errors import DiarqError

CHUNK = 1 << 20


class ArchiveError(DiarqError):
    code = "archive_invalid"
    http_status = 422


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 2000
    max_total_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0  # uncompressed / compressed, for the whole archive


@dataclass
class ExtractedEntry:
    name: str  # cleaned relative path inside the archive (display only)
    path: Path  # where it was written (generated name)
    size: int


@dataclass
class Extraction:
    entries: list[ExtractedEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def clean_entry_name(name: str) -> str | None:
    """Normalise an archive member name; None when it escapes the archive root."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name)
    if norm in ("", ".") or norm.startswith("../") or norm == "..":
        return None
    return norm


def archive_kind(head: bytes) -> str | None:
    """'zip' or 'tar' from the first bytes; the file name is not trusted."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":
        return "tar"
    return None


def _copy_limited(src: BinaryIO, dest: Path, budget: int, over: ArchiveError) -> int:
    """Copy at most ``budget`` bytes; raise ``over`` as soon as the stream has more."""
    written = 0
    with dest.open("wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise over
            out.write(chunk)
    return written


def _members(path: Path | BinaryIO,
             kind: str) -> Iterator[tuple[str, bool, str | None, BinaryIO | None]]:
    """Yield (name, is_regular_file, skip_reason, stream) for each member."""
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                mode = (info.external_attr >> 16) & 0o170000
                if mode and mode != 0o100000:
                    yield info.filename, False, "not a regular file (link or device)", None
                    continue
                if info.flag_bits & 0x1:
                    yield info.filename, False, "encrypted entry", None
                    continue
                with zf.open(info) as stream:
                    yield info.filename, True, None, stream
    else:
        source = {"name": path} if isinstance(path, Path) else {"fileobj": path}
        with tarfile.open(mode="r:*", **source) as tf:
            for member in tf:
                if member.isdir():
                    continue
                if not member.isreg():
                    yield member.name, False, "not a regular file (link or device)", None
                    continue
                stream = tf.extractfile(member)
                if stream is None:
                    yield member.name, False, "unreadable entry", None
                    continue
                with stream:
                    yield member.name, True, None, stream


def extract_archive(
    path: Path | BinaryIO, dest_dir: Path, *, limits: ArchiveLimits | None = None
) -> Extraction:
    """Extract regular files of an archive into ``dest_dir`` under generated names.
    ``path``: a local file, or a seekable binary file object (an object in storage)."""
    limits = limits or ArchiveLimits()
    if isinstance(path, Path):
        with path.open("rb") as fh:
            kind = archive_kind(fh.read(512))
        compressed = max(path.stat().st_size, 1)
    else:
        kind = archive_kind(path.read(512))
        compressed = max(path.seek(0, 2), 1)
        path.seek(0)
    if kind is None:
        raise ArchiveError("not a .zip, .tar or .tar.gz archive", code="archive_unsupported")
    ratio_budget = int(compressed * limits.max_ratio)
    budget = min(limits.max_total_bytes, ratio_budget)
    if ratio_budget < limits.max_total_bytes:
        over = ArchiveError(
            "the archive expands far more than recordings do "
            f"(over {limits.max_ratio:.0f}x its size); it was refused",
            code="archive_bomb",
        )
    else:
        over = ArchiveError(
            f"the archive expands to more than {limits.max_total_bytes // 1024**2} MB; "
            "split it into smaller archives",
            code="archive_too_large",
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    result = Extraction()
    total = 0
    count = 0
    try:
        for name, regular, reason, stream in _members(path, kind):
            count += 1
            if count > limits.max_entries:
                raise ArchiveError(
                    f"the archive has more than {limits.max_entries} entries; split it",
                    code="archive_too_many_entries",
                )
            clean = clean_entry_name(name)
            if clean is None:
                result.skipped.append((name, "path escapes the archive (absolute or ..)"))
                continue
            if not regular or stream is None:
                result.skipped.append((clean, reason or "skipped"))
                continue
            target = dest_dir / f"{uuid.uuid4().hex}{Path(clean).suffix.lower()[:10]}"
            try:
                size = _copy_limited(stream, target, budget - total, over)
            except ArchiveError:
                target.unlink(missing_ok=True)
                raise
            total += size
            result.entries.append(ExtractedEntry(name=clean, path=target, size=size))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        raise ArchiveError(
            "the archive is damaged or truncated; upload it again", code="archive_corrupt"
        ) from None
    return result

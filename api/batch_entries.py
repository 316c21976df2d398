"""The recordings of a POST /v1/batches request: several uploaded files, or the entries of
one uploaded archive (extracted safely by shared/archive.py under generated names).

Names of entries are display names only (the path inside the archive, or the uploaded
file name with its folders); nothing is ever written under a name from the client.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from diarq.api.errors import ApiError
from diarq.shared.archive import (
    ArchiveError,
    ArchiveLimits,
    archive_kind,
    clean_entry_name,
    extract_archive,
)
from diarq.shared.orm import Upload
from diarq.shared.storage import HashingWriter, Storage, UploadWriter


@dataclass
class Entry:
    name: str  # source_name: relative path inside the upload (display, results.zip names)
    path: Path | None = None  # an extracted archive entry (local file, generated name)
    writer: UploadWriter | None = None  # an uploaded part (already hashed while streaming)
    upload: Upload | None = None  # a direct upload (POST /v1/uploads), already in the store


@dataclass
class Entries:
    entries: list[Entry] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)  # {"name", "reason"}
    scratch: list[Path] = field(default_factory=list)  # extraction dirs to remove after

    def reject(self, name: str, reason: str) -> None:
        self.rejected.append({"name": name, "reason": reason})


def source_name(name: str | None, fallback: str) -> str:
    """A client-given path as a safe relative display name (folders kept, no '..',
    no absolute paths, printable characters only, at most 1000 characters)."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    clean = clean_entry_name(text) if text else None
    if clean is None:  # escaping or empty: keep only its last component
        last = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        clean = last if last not in ("", ".", "..") else fallback
    return clean[-1000:]


def collect(parts: list[tuple[str | None, UploadWriter]], storage: Storage,
            limits: ArchiveLimits, uploads: tuple[Upload, ...] = ()) -> Entries:
    """Entries from the uploaded parts: one archive is extracted; several parts are
    taken as recordings each (an archive among several is rejected, not unpacked).
    Direct uploads are recordings each (an archive is not unpacked from the store)."""
    out = Entries()
    for i, upload in enumerate(uploads, start=1):
        out.entries.append(Entry(source_name(upload.filename, f"upload-{i}"), upload=upload))
    if len(parts) == 1 and not uploads and _is_archive(parts[0][1]):
        name, writer = parts[0]
        _extract(name, writer, storage, limits, out)
        return out
    for i, (name, writer) in enumerate(parts, start=1):
        shown = source_name(name, f"file-{i}")
        if writer.size == 0:
            out.reject(shown, "empty file (0 bytes)")
        elif _is_archive(writer):
            out.reject(shown, "an archive among several files; send an archive alone, "
                       "as the only file of its batch")
        else:
            out.entries.append(Entry(shown, writer=writer))
    return out


def _is_archive(writer: UploadWriter) -> bool:
    return archive_kind(writer.head) is not None


def _extract(name: str | None, writer: UploadWriter, storage: Storage,
             limits: ArchiveLimits, out: Entries) -> None:
    dest = storage.scratch_dir()
    out.scratch.append(dest)
    try:
        if isinstance(writer, HashingWriter):
            writer.close()
            extraction = extract_archive(writer.path, dest, limits=limits)
        else:  # in object storage: members are read with ranged GETs
            kept = storage.keep_audio(writer, "archive")
            try:
                with storage.open(kept.rel_path) as source:
                    extraction = extract_archive(source, dest, limits=limits)
            finally:
                storage.delete(kept.rel_path)
    except ArchiveError as exc:
        shutil.rmtree(dest, ignore_errors=True)  # partial extraction of a refused archive
        shown = source_name(name, "the archive")
        raise ApiError(f"{shown}: {exc.message}", code=exc.code, http_status=422) from None
    finally:
        storage.discard(writer)  # the archive itself is not kept
    for entry_name, reason in extraction.skipped:
        # the name as found (printable part): "../x.wav" must show why it was skipped
        shown = "".join(ch for ch in entry_name if ch.isprintable())[:1000] or "entry"
        out.reject(shown, reason)
    for entry in extraction.entries:
        if entry.size == 0:
            out.reject(entry.name, "empty file (0 bytes)")
            entry.path.unlink(missing_ok=True)
        else:
            out.entries.append(Entry(entry.name, entry.path))

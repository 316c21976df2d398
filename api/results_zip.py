"""results.zip of a batch, written while it is sent: zipfile writes into a pipe that the
response generator drains after each entry, so only one rendered result is in memory
at a time (a batch of thousands of recordings streams in constant memory)."""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from diarq.shared.archive import clean_entry_name
from diarq.shared.renderers import EXTENSIONS, render
from diarq.shared.result import Result


class _Pipe(io.RawIOBase):
    """A write-only, unseekable file: zipfile then writes data descriptors instead of
    seeking back, and what it wrote so far is taken with drain()."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def result_stem(source: str | None, fallback: str, used: set[str]) -> str:
    """``meetings/mon.wav`` -> ``meetings/mon``: folders kept, extension dropped, safe
    (no absolute or '..' paths), and unique in the archive (``mon (2)`` on a clash)."""
    clean = clean_entry_name(source or "") or fallback
    root, ext = posixpath.splitext(clean)
    stem = root if ext and posixpath.basename(root) else clean
    candidate, n = stem, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem} ({n})"
    used.add(candidate.lower())
    return candidate


def stream_results(items: Iterable[tuple[str, str | None]],
                   load: Callable[[str], dict[str, Any] | None],
                   formats: list[str]) -> Iterator[bytes]:
    """Yield the bytes of a zip holding, for each (job id, source name) whose ``load``
    gives a result, one file per format named after the source."""
    pipe = _Pipe()
    used: set[str] = set()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for job_id, source in items:
            data = load(job_id)
            if data is None:  # deleted or vanished since the listing
                continue
            result = Result.from_dict(data)
            stem = result_stem(source, job_id, used)
            for fmt in formats:
                zf.writestr(f"{stem}.{EXTENSIONS[fmt]}", render(result, fmt))
            yield pipe.drain()
    yield pipe.drain()  # the central directory, written on close

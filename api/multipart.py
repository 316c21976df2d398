"""Streaming ``multipart/form-data`` parser for uploads.

A drop-in for werkzeug's ``MultiPartParser`` (same ``parse(stream, boundary,
content_length)``, same stream factory call, same limits and exceptions), cheaper on
large file parts:

* the body is read into one reused per-thread buffer, 1 MiB at a time (werkzeug reads
  64 KiB at a time, and gunicorn copies its remaining read-ahead again on each read);
* delimiters are found with ``bytearray.find`` on ``CRLF--boundary`` instead of a
  regular expression compiled for each request and run over every byte of the file;
* file data goes to the stream factory's file as slices of that buffer, without
  intermediate ``bytes`` copies.

Part headers are read like werkzeug reads them (continuation lines joined, strict UTF-8,
``Content-Disposition`` required and parsed by werkzeug's ``parse_options_header``), so
names, file names and errors stay the same. RFC 7578 line breaks (CRLF) are required
inside the body; a body whose first delimiter line ends with a bare LF or CR (some old
clients) is handed to werkzeug's lenient parser unchanged. Malformed bodies raise
``ValueError`` (the caller answers 400); limits raise ``RequestEntityTooLarge`` (413).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import IO, Any

from werkzeug.datastructures import FileStorage, Headers, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser as WerkzeugMultiPartParser
from werkzeug.http import parse_options_header

CHUNK_SIZE = 1 << 20
_HEADROOM = 64 * 1024
# a line break followed by a space or tab continues the previous header line
_CONTINUATION = re.compile(rb"(?:\r\n|\n|\r)[ \t]")
_SAFE_CHARSETS = frozenset({"ascii", "us-ascii", "utf-8", "iso-8859-1"})
_WS = b" \t"
# whitespace allowed between a delimiter and its line break (werkzeug's [^\S\n\r])
_PAD = b" \t\x0b\x0c"
_BLANK_LINES = (b"\r\n\r\n", b"\n\n", b"\r\r")

_local = threading.local()


def _thread_buffer(size: int) -> bytearray:
    """A buffer of at least ``size`` bytes, reused by later requests on this thread."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        _local.buf = buf
    return buf


class _Prefixed:
    """``prefix`` then the rest of ``stream``: replays what was read before a fallback."""

    def __init__(self, prefix: bytes, stream: IO[bytes]):
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix, b""
            return out
        return self._stream.read(size)


class _Fallback(Exception):
    """The body does not use CRLF line breaks: parse it with werkzeug's parser."""


class StreamingMultipartParser:
    def __init__(
        self,
        stream_factory: Callable[..., IO[bytes]],
        max_form_memory_size: int | None = None,
        max_form_parts: int | None = None,
        cls: type[MultiDict] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.stream_factory = stream_factory
        self.max_form_memory_size = max_form_memory_size
        self.max_form_parts = max_form_parts
        self.cls = cls or MultiDict
        self.chunk_size = chunk_size

    def parse(self, stream: IO[bytes], boundary: bytes,
              content_length: int | None) -> tuple[MultiDict, MultiDict]:
        if not boundary:
            raise ValueError("Missing boundary")
        run = _Run(self, stream, boundary, content_length)
        try:
            fields, files = run.parse()
        except _Fallback:
            parser = WerkzeugMultiPartParser(
                stream_factory=self.stream_factory,
                max_form_memory_size=self.max_form_memory_size,
                max_form_parts=self.max_form_parts, cls=self.cls)
            return parser.parse(_Prefixed(run.replay, stream), boundary,  # type: ignore[arg-type]
                                content_length)
        return self.cls(fields), self.cls(files)


class _Run:
    """One parse: the buffer holds unconsumed body bytes in ``buf[pos:end]``."""

    def __init__(self, opts: StreamingMultipartParser, stream: IO[bytes], boundary: bytes,
                 content_length: int | None):
        self.opts = opts
        self.stream = stream
        self.content_length = content_length
        self.delim = b"--" + boundary
        # room for a chunk after a kept tail (a partial delimiter, a short header block)
        self.buf = _thread_buffer(opts.chunk_size + _HEADROOM)
        self.pos = self.end = 0
        self.eof = False
        self.replay = b""
        self.parts = 0

    # -- reading -------------------------------------------------------------------

    def fill(self) -> None:
        """Keep ``buf[pos:end]`` (moved to the front), read up to one more chunk after it."""
        rest = self.end - self.pos
        limit = self.opts.max_form_memory_size
        if limit is not None and rest > limit:
            raise RequestEntityTooLarge()  # a pending header block or preamble (as werkzeug)
        if self.pos:
            if rest:
                self.buf[:rest] = self.buf[self.pos:self.end]
            self.pos, self.end = 0, rest
        chunk = self.opts.chunk_size
        if len(self.buf) - self.end < chunk // 2:
            # only while a large header block or preamble is pending; not kept afterwards
            self.buf = self.buf[:self.end] + bytearray(chunk)
        stop = min(len(self.buf), self.end + chunk)
        with memoryview(self.buf) as view:
            n = self.stream.readinto(view[self.end:stop])  # type: ignore[attr-defined]
        if not n:
            self.eof = True
        else:
            self.end += n

    def after_delimiter(self, j: int) -> tuple[str, int] | None:
        """What follows a delimiter ending at ``j``: ("close", j+2), ("open", start of the
        next line) with the kind of line break, ("data", 0) when it is no delimiter, or
        None when more bytes are needed to tell."""
        buf, end = self.buf, self.end
        if end - j < 2 and not self.eof and (end == j or buf[j] == 0x2D):
            return None  # "-" could start "--"
        # (never look past ``end``: the reused buffer holds older bytes there)
        if end - j >= 2 and buf[j] == 0x2D and buf[j + 1] == 0x2D:
            return ("close", j + 2)
        k = j
        while k < end and buf[k] in _PAD:
            k += 1
        if k == end:
            return ("data", 0) if self.eof else None
        if buf[k] == 0x0A:
            return ("open-lf", k + 1)
        if buf[k] == 0x0D:
            if k + 1 == end and not self.eof:
                return None
            if k + 1 < end and buf[k + 1] == 0x0A:
                return ("open", k + 2)
            return ("open-lf", k + 1)
        return ("data", 0)

    # -- parsing -------------------------------------------------------------------

    def parse(self) -> tuple[list[tuple[Any, str]], list[tuple[Any, FileStorage]]]:
        fields: list[tuple[Any, str]] = []
        files: list[tuple[Any, FileStorage]] = []
        start = self.preamble()
        while start is not None:
            start = self.part(start, fields, files)
        self.drain()
        return fields, files

    def preamble(self) -> int | None:
        """Skip to after the first delimiter line: its end, or None for an empty form."""
        search = 0
        while True:
            i = self.buf.find(self.delim, search, self.end)
            if i >= 0:
                kind = self.after_delimiter(i + len(self.delim))
                if kind is not None:
                    what, nxt = kind
                    if what == "close":
                        return None
                    if what == "open":
                        return nxt
                    if what == "open-lf":
                        self.replay = bytes(self.buf[:self.end])
                        raise _Fallback()
                    search = i + 1
                    continue
            elif self.end >= len(self.delim):
                search = self.end - len(self.delim) + 1
            if self.eof:
                raise ValueError("Invalid form-data: no boundary line found")
            # the preamble is kept (never consumed) so a fallback can replay it
            self.fill()

    def part(self, start: int, fields: list, files: list) -> int | None:
        """Parse one part whose headers start at ``start``; return where the next part's
        headers start, or None after the closing delimiter."""
        headers = self.headers(start)
        self.parts += 1
        if self.opts.max_form_parts is not None and self.parts > self.opts.max_form_parts:
            raise RequestEntityTooLarge()
        if "content-disposition" not in headers:
            raise ValueError("Missing Content-Disposition header")
        _disposition, extra = parse_options_header(headers["content-disposition"])
        name = extra.get("name")
        filename = extra.get("filename")
        if filename is not None:
            content_type = headers.get("content-type")
            try:
                part_length = int(headers["content-length"])
            except (KeyError, ValueError):
                part_length = 0
            container = self.opts.stream_factory(
                total_content_length=self.content_length, filename=filename,
                content_type=content_type, content_length=part_length)
            nxt = self.data(container.write)
            container.seek(0)
            files.append((name, FileStorage(container, filename, name, headers=headers)))
        else:
            chunks: list[bytes] = []
            limit = self.opts.max_form_memory_size
            size = 0

            def collect(piece: memoryview) -> None:
                nonlocal size
                size += len(piece)
                if limit is not None and size > limit:
                    raise RequestEntityTooLarge()
                chunks.append(bytes(piece))

            nxt = self.data(collect)
            fields.append((name, b"".join(chunks).decode(_charset(headers), "replace")))
        return nxt

    def headers(self, start: int) -> Headers:
        """The header block from ``start`` to the first blank line (CRLF CRLF, or LF LF
        or CR CR as werkzeug also accepts); data starts after it."""
        self.pos = search = start
        while True:
            best, size, stop = -1, 0, self.end
            for blank in _BLANK_LINES:
                # only before a blank line already found: not through the file data
                i = self.buf.find(blank, search, stop)
                if i >= 0:
                    best, size, stop = i, len(blank), i + 1
            # after CR CR, werkzeug takes a following LF into the blank line: wait for it
            if best >= 0 and not (size == 2 and best + 2 == self.end and not self.eof
                                  and self.buf[best] == 0x0D):
                block = bytes(self.buf[self.pos:best])
                # data starts after the line break that begins in the middle of the match
                mid = best + size // 2
                crlf = self.end - mid >= 2 and self.buf[mid + 1] == 0x0A
                self.pos = mid + (2 if self.buf[mid] == 0x0D and crlf else 1)
                return _parse_headers(block)
            if self.eof:
                raise ValueError("Invalid form-data: part headers do not end")
            rescan = max(0, self.end - 3 - self.pos)  # a blank line may straddle the chunks
            self.fill()
            search = rescan

    def data(self, write: Callable[[memoryview], Any]) -> int | None:
        """Pass the part's data to ``write``; return where the next part's headers start,
        or None after the closing delimiter. The delimiter is ``--boundary`` after a line
        break (CRLF, or a bare LF or CR as werkzeug also accepts), which is not data."""
        buf, delim = self.buf, self.delim
        # a kept tail holds a partial delimiter and the two bytes before it
        keep = len(delim) + 1
        start = self.pos  # first data byte
        search = start
        while True:
            buf = self.buf
            i = buf.find(delim, search, self.end)
            while i >= 0:
                # i >= 2: a first search starts after the part's headers, later ones at 2
                before = buf[i - 1]
                if before == 0x0A or before == 0x0D:
                    kind = self.after_delimiter(i + len(delim))
                    if kind is None:
                        break  # fill, then look at this delimiter again
                    what, nxt = kind
                    if what != "data":
                        stop = i - 2 if before == 0x0A and buf[i - 2] == 0x0D else i - 1
                        self.emit(write, start, stop)
                        self.pos = nxt
                        return None if what == "close" else nxt
                i = buf.find(delim, i + 1, self.end)
            if self.eof:
                raise ValueError("Invalid form-data: the body ended inside a part")
            # everything before a possible (partial) delimiter and its line break is data;
            # the two bytes before the data stay too (a delimiter's line break at its start)
            cut = i - 2 if i >= 0 else max(start - 2, self.end - keep)
            self.emit(write, start, cut)
            self.pos = cut
            self.fill()
            start = max(start - cut, 0)
            # the kept tail's first two bytes are only the look-behind of a delimiter at
            # 2; one starting at 0 or 1 was already seen (and refused) before the fill
            search = 2

    def emit(self, write: Callable[[memoryview], Any], a: int, b: int) -> None:
        if b > a:
            with memoryview(self.buf) as view, view[a:b] as piece:
                write(piece)

    def drain(self) -> None:
        """Read the epilogue to the end (ignored), like werkzeug."""
        while not self.eof:
            self.pos = self.end
            self.fill()


def _parse_headers(block: bytes) -> Headers:
    block = _CONTINUATION.sub(b" ", block)
    headers: list[tuple[str, str]] = []
    for line in block.splitlines():
        line = line.strip(_WS)
        if line:
            # strict UTF-8: undecodable part headers are a malformed body (ValueError)
            name, _, value = line.decode().partition(":")
            headers.append((name.strip(" \t"), value.strip(" \t")))
    return Headers(headers)


def _charset(headers: Headers) -> str:
    content_type = headers.get("content-type")
    if content_type:
        charset = parse_options_header(content_type)[1].get("charset", "").lower()
        if charset in _SAFE_CHARSETS:
            return charset
    return "utf-8"

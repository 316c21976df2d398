"""Uploads stream straight into storage while being hashed and size-checked.

The multipart parser (api/multipart.py, a streaming drop-in for werkzeug's parser, kept
by measurement: see UploadFormDataParser) asks the request for a stream per file part;
ours is the storage's upload sink (a file in the storage directory, or a multipart
upload to object storage holding one part in memory), so the upload is never spooled
elsewhere and a too-large upload stops at the limit (413) instead of after the whole body.
"""

from __future__ import annotations

from typing import IO, Any

from flask import Request, current_app, g
from werkzeug.formparser import FormDataParser

from diarq.api.multipart import StreamingMultipartParser
from diarq.shared.storage import UploadWriter


class UploadFormDataParser(FormDataParser):
    """werkzeug's form parser (limits, url-encoded forms, errors) with the streaming
    multipart parser for multipart bodies, plugged in through the public ``parse``.

    Why not werkzeug's own MultiPartParser: it appends a stray CR to a part whose
    closing delimiter a read splits one dash short (pallets/werkzeug#3285, open; with its
    default 64 KiB reads about one upload size in 64 Ki is corrupted, deterministically),
    and the multipart package refuses bodies werkzeug and RFC 7578 accept (RFC 2231 file
    names, padding after a delimiter, LF line breaks). Neither is faster here
    (bench/queue_load.py --parsers; BENCHMARKS.md)."""

    def parse(self, stream: IO[bytes], mimetype: str, content_length: int | None,
              options: dict[str, str] | None = None) -> Any:
        if mimetype != "multipart/form-data":
            return super().parse(stream, mimetype, content_length, options)
        boundary = (options or {}).get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        try:
            form, files = self.multipart_parser().parse(stream, boundary, content_length)
        except ValueError:
            if not self.silent:  # as werkzeug's parse: silent parsers answer empty forms
                raise
            return stream, self.cls(), self.cls()
        return stream, form, files

    def multipart_parser(self) -> Any:
        """The parser of multipart bodies, with this form parser's limits (a bench swaps
        in others: bench/upload_parsers.py)."""
        return StreamingMultipartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts, cls=self.cls)


class UploadRequest(Request):
    form_data_parser_class = UploadFormDataParser

    def make_form_data_parser(self) -> FormDataParser:
        parser = super().make_form_data_parser()
        # a malformed body (e.g. part headers that are not UTF-8) is a 400 that says so,
        # not an empty form answered with a misleading "no file"
        parser.silent = False
        return parser

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except ValueError:
            from diarq.api.errors import ApiError

            raise ApiError(
                "the multipart/form-data body could not be parsed (part headers must be UTF-8, "
                "parts must be complete); send the file with a standard HTTP client",
                code="malformed_upload", http_status=400) from None

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        diarq = current_app.extensions["diarq"]
        writer = diarq.storage.incoming(diarq.settings.max_upload_bytes)
        g.setdefault("diarq_uploads", []).append(writer)
        return writer  # type: ignore[return-value]


def discard_unclaimed_uploads(_exc: BaseException | None = None) -> None:
    """Delete uploads the request did not keep (errors, extra file fields)."""
    storage = current_app.extensions["diarq"].storage
    for writer in g.pop("diarq_uploads", []):
        storage.discard(writer)


def uploaded(field: str) -> UploadWriter | None:
    from flask import request

    storage = request.files.get(field)
    if storage is None:
        return None
    stream = storage.stream
    return stream if isinstance(stream, UploadWriter) else None

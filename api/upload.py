"""Uploads stream straight into storage while being hashed and size-checked.

Werkzeug's multipart parser asks the request for a stream per file part; ours is a
HashingWriter in the storage directory, so the upload is never spooled elsewhere
and a too-large upload stops at the limit (413) instead of after the whole body.
"""

from __future__ import annotations

from typing import IO

from flask import Request, current_app, g
from werkzeug.formparser import FormDataParser

from shared.storage import HashingWriter, Storage


class UploadRequest(Request):
    def make_form_data_parser(self) -> FormDataParser:
        parser = super().make_form_data_parser()
        # 1 MiB reads instead of 64 KiB: a quarter of the per-upload CPU went into
        # the parser's and server's per-chunk Python overhead (bench/queue.py)
        parser.buffer_size = 1 << 20
        # a malformed body (e.g. part headers that are not UTF-8) is a 400 that says so,
        # not an empty form answered with a misleading "no file"
        parser.silent = False
        return parser

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except ValueError:
            from api.errors import ApiError

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
        writer = Storage(diarq.settings).incoming(diarq.settings.max_upload_bytes)
        g.setdefault("diarq_uploads", []).append(writer)
        return writer  # type: ignore[return-value]


def discard_unclaimed_uploads(_exc: BaseException | None = None) -> None:
    """Delete upload files the request did not keep (errors, extra file fields)."""
    for writer in g.pop("diarq_uploads", []):
        Storage.discard(writer)


def uploaded(field: str) -> HashingWriter | None:
    from flask import request

    storage = request.files.get(field)
    if storage is None:
        return None
    stream = storage.stream
    return stream if isinstance(stream, HashingWriter) else None

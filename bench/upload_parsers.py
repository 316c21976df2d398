"""The diarq API with one of three multipart parsers, for bench/queue_load.py --parsers.

    gunicorn --chdir bench upload_parsers:app     (BENCH_UPLOAD_PARSER=one of VARIANTS)

- ``diarq``: the app as shipped;
- ``werkzeug``: werkzeug's own ``MultiPartParser`` with a 1 MiB read buffer (its default
  is 64 KiB), plugged in through the public ``FormDataParser.parse`` (its text-field
  memory limit raised to 2 MiB: the decoder refuses reads larger than that limit);
- ``werkzeug448k``, ``werkzeug64k``: the same with 448 KiB reads (under Flask's 500 kB
  text-field limit, which then stays) and with werkzeug's default 64 KiB;
- ``multipart``: the ``multipart`` 2.x package's incremental ``PushMultipartParser`` fed
  1 MiB reads, its events turned into werkzeug's form and files.

Each variant writes file parts to the same stream factory (the API's hashing storage
writer), so only the parsing differs.
"""

from __future__ import annotations

import os
from typing import IO, Any

from werkzeug.datastructures import FileStorage, Headers, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser

from diarq.api import create_app
from diarq.api.upload import UploadFormDataParser, UploadRequest

READ_SIZE = 1 << 20


class WerkzeugFormParser(UploadFormDataParser):
    read_size = READ_SIZE

    def multipart_parser(self) -> Any:
        # werkzeug's decoder refuses any read larger than max_form_memory_size (Flask's
        # default 500 kB, meant for text fields), so 1 MiB reads need it raised
        memory = max(self.max_form_memory_size or 0, 2 * self.read_size)
        return MultiPartParser(stream_factory=self.stream_factory,
                               max_form_memory_size=memory,
                               max_form_parts=self.max_form_parts, cls=self.cls,
                               buffer_size=self.read_size)


class MultipartPkgFormParser(FormDataParser):
    def parse(self, stream: IO[bytes], mimetype: str, content_length: int | None,
              options: dict[str, str] | None = None) -> Any:
        import multipart

        if mimetype != "multipart/form-data":
            return super().parse(stream, mimetype, content_length, options)
        boundary = (options or {}).get("boundary", "")
        if not boundary:
            raise ValueError("Missing boundary")
        form: MultiDict[str, str] = MultiDict()
        files: MultiDict[str, FileStorage] = MultiDict()
        limit = self.max_form_memory_size
        parser = multipart.PushMultipartParser(
            boundary, content_length=content_length if content_length is not None else -1,
            max_segment_count=self.max_form_parts or float("inf"))
        segment = sink = None
        size = 0
        with parser:
            while True:
                chunk = stream.read(READ_SIZE)
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        segment, size = event, 0
                        if event.filename is not None:
                            sink = self.stream_factory(
                                total_content_length=content_length,
                                filename=event.filename, content_type=event.content_type,
                                content_length=0)
                        else:
                            sink = []
                    elif event is None:  # the segment is complete
                        if isinstance(sink, list):
                            form.add(segment.name, b"".join(sink).decode(
                                segment.charset or "utf-8", "replace"))
                        else:
                            sink.seek(0)
                            files.add(segment.name, FileStorage(
                                sink, segment.filename, segment.name,
                                headers=Headers(segment.headerlist)))
                    elif isinstance(sink, list):
                        size += len(event)
                        if limit is not None and size > limit:
                            raise RequestEntityTooLarge()
                        sink.append(event)
                    else:
                        sink.write(event)
                if not chunk or parser.closed:
                    break
        return stream, form, files


def _werkzeug(read_size: int) -> type[UploadRequest]:
    parser = type("Parser", (WerkzeugFormParser,), {"read_size": read_size})
    return type("Request", (UploadRequest,), {"form_data_parser_class": parser})


class MultipartPkgRequest(UploadRequest):
    form_data_parser_class = MultipartPkgFormParser


VARIANTS = {"diarq": UploadRequest, "werkzeug": _werkzeug(READ_SIZE),
            "werkzeug448k": _werkzeug(448 << 10), "werkzeug64k": _werkzeug(64 << 10),
            "multipart": MultipartPkgRequest}

app = create_app()
app.request_class = VARIANTS[os.environ.get("BENCH_UPLOAD_PARSER", "diarq")]

"""Direct uploads (object storage only): ``POST /v1/uploads`` answers a short-lived
presigned URL for one generated key; the client sends the file straight to the store
(``PUT``), then creates the job with ``POST /v1/jobs`` (or a batch with
``POST /v1/batches``) naming the ``upload_id``. The API then checks the object as it
checks an upload through it: size limit, probe (ranged reads of the headers), SHA-256
(read once in chunks: bounded memory, nothing on the API's disk).

An upload id belongs to the API key that made it and is used by one job at most (a
compare-and-set in the job's transaction). Unused uploads are deleted by the reaper
once their URL has expired and
:data:`~diarq.shared.retention.UPLOAD_USE_WINDOW_S` has passed.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import update
from sqlalchemy.orm import Session

from diarq.api.errors import ApiError
from diarq.api.probe import probe_error_response, probe_file
from diarq.shared.db import session_scope
from diarq.shared.errors import AudioError
from diarq.shared.jobs import as_utc
from diarq.shared.orm import Upload, utcnow
from diarq.shared.retention import UPLOAD_USE_WINDOW_S
from diarq.shared.serialize import iso
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, StoredFile, upload_key

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads")



@bp.post("")
def create_upload():  # noqa: ANN201
    diarq = current_app.extensions["diarq"]
    settings: Settings = diarq.settings
    storage: Storage = diarq.storage
    body = request.get_json(silent=True)
    if body is None:
        body = request.form.to_dict()
    if not isinstance(body, dict):
        raise ApiError("send a JSON object: {\"filename\": ..., \"size\": ...}",
                       code="invalid_request", http_status=422)
    filename = body.get("filename")
    if filename is not None and not isinstance(filename, str):
        raise ApiError("filename must be a string", code="invalid_request", http_status=422)
    size = body.get("size")
    if size is not None:
        try:
            size = int(size)
        except (TypeError, ValueError):
            size = -1
        if size < 0:
            raise ApiError("size must be the file's size in bytes", code="invalid_request",
                           http_status=422)
        if size > settings.max_upload_bytes:
            raise ApiError(f"the file is larger than {settings.max_upload_mb} MB; send a "
                           "smaller file (or raise DIARQ_MAX_UPLOAD_MB on the server)",
                           code="upload_too_large", http_status=413)
    sha256 = body.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str)
                               or not re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise ApiError("sha256 must be the file's SHA-256 as 64 lowercase hex digits",
                       code="invalid_request", http_status=422)
    upload_id = str(uuid.uuid4())
    key = upload_key(upload_id)
    presigned = storage.presign_upload(key, expires_s=settings.direct_upload_expires_s)
    now = utcnow()
    row = Upload(id=upload_id, api_key_id=g.get("api_key_id"), object_key=key,
                 filename=_printable(filename)[:1000] if filename else None,
                 declared_bytes=size, declared_sha256=sha256, created_at=now,
                 expires_at=now + timedelta(seconds=presigned.expires_s))
    with session_scope(settings) as session:
        session.add(row)
    resp = jsonify({"id": upload_id, "url": presigned.url, "method": presigned.method,
                    "headers": presigned.headers, "expires_at": iso(row.expires_at),
                    "max_bytes": settings.max_upload_bytes})
    resp.status_code = 201
    return resp


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable()).strip()


def find_upload(upload_id: Any) -> Upload:
    """The caller's unused upload; 404 for another key's or an unknown one, 409 when a
    job already used it, 410 once it is past its use window."""
    row = owned_upload(upload_id)
    check_usable(row)
    return row


def owned_upload(upload_id: Any) -> Upload:
    """The caller's upload, used or not; 404 for another key's or an unknown one."""
    text = str(upload_id or "").strip().lower()
    try:
        valid = str(uuid.UUID(text)) == text
    except ValueError:
        valid = False
    settings = current_app.extensions["diarq"].settings
    with session_scope(settings) as session:
        row = session.get(Upload, text) if valid else None
        if row is not None:
            session.expunge(row)
    if row is None or row.api_key_id != g.get("api_key_id"):
        raise ApiError(f"no upload with id {upload_id}; create one with POST /v1/uploads",
                       code="upload_not_found", http_status=404)
    return row


def check_usable(row: Upload) -> None:
    """409 when a job already used the upload, 410 past its use window."""
    if row.job_id is not None:
        raise ApiError(f"upload {row.id} was already used by job {row.job_id}; create a new "
                       "upload for another job", code="upload_used", http_status=409)
    if utcnow() > as_utc(row.expires_at) + timedelta(seconds=UPLOAD_USE_WINDOW_S):
        raise ApiError(f"upload {row.id} has expired; create a new one with POST /v1/uploads "
                       "and send the file again", code="upload_expired", http_status=410)


def stored_upload(storage: Storage, settings: Settings,
                  upload: Upload) -> tuple[StoredFile, Any]:
    """Check a direct upload's object like an upload through the API: present, within the
    size limit, audio (probe), hashed. A refused object is deleted."""
    key = upload.object_key
    size = storage.size(key)
    if size is None:
        raise ApiError(f"nothing has been uploaded for upload {upload.id} yet; send the file "
                       "to the URL from POST /v1/uploads first (PUT), then create the job",
                       code="upload_incomplete", http_status=409)
    if size == 0:
        storage.delete(key)
        raise ApiError("the uploaded file is empty (0 bytes); send the complete recording",
                       code="audio_empty", http_status=400)
    if size > settings.max_upload_bytes:
        storage.delete(key)
        raise ApiError(f"the upload is larger than {settings.max_upload_mb} MB; send a "
                       "smaller file (or raise DIARQ_MAX_UPLOAD_MB on the server)",
                       code="upload_too_large", http_status=413)
    try:
        probe = probe_file(storage, key, settings, upload.filename)
    except AudioError as exc:
        storage.delete(key)
        raise probe_error_response(exc) from None
    sha256, read = storage.sha256_of(key)
    if read > settings.max_upload_bytes:  # replaced by a bigger file since the HEAD
        storage.delete(key)
        raise ApiError(f"the upload is larger than {settings.max_upload_mb} MB",
                       code="upload_too_large", http_status=413)
    if upload.declared_sha256 and sha256 != upload.declared_sha256:
        storage.delete(key)
        raise ApiError("the uploaded file is not the one announced (its SHA-256 differs from "
                       "the sha256 given to POST /v1/uploads); send it again",
                       code="upload_checksum_mismatch", http_status=422)
    return StoredFile(key, sha256, read), probe


def consume_upload(session: Session, upload_id: str, job_id: str) -> None:
    """Mark the upload used by ``job_id`` in the job's transaction (compare-and-set)."""
    res = session.execute(update(Upload).where(Upload.id == upload_id,
                                               Upload.job_id.is_(None))
                          .values(job_id=job_id).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        raise ApiError(f"upload {upload_id} was already used by another job; create a new "
                       "upload for another job", code="upload_used", http_status=409)

"""Creating a job from an upload; shared by POST /v1/jobs and POST /api/diarize."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import current_app, g, jsonify, request
from sqlalchemy.exc import IntegrityError

from api.errors import ApiError
from api.serialize import job_to_dict
from api.upload import uploaded
from shared.db import session_scope
from shared.errors import AudioError
from shared.models import QUEUED, Job, utcnow
from shared.options import parse_options
from shared.storage import Storage

log = logging.getLogger(__name__)

# AudioError codes from probing that mean "this is not audio at all"
_NOT_AUDIO = {"audio_not_audio"}


def submit(file_field: str, raw_options: dict[str, Any]):  # noqa: ANN201 (flask response)
    diarq = current_app.extensions["diarq"]
    settings = diarq.settings
    storage = Storage(settings)

    writer = uploaded(file_field)
    if writer is None:
        raise ApiError(f"no file: send the recording as multipart/form-data field "
                       f"'{file_field}'", code="file_missing", http_status=400)
    options = parse_options(raw_options)  # 422 invalid_options
    if writer.size == 0:
        raise ApiError("the uploaded file is empty (0 bytes); send the complete recording",
                       code="audio_empty", http_status=400)

    key = _scoped_idempotency_key(request.headers.get("Idempotency-Key", ""))
    if key:
        existing = _by_key(key)
        if existing is not None:
            return _answer(existing, 200)

    job_id = str(uuid.uuid4())
    stored = storage.keep_audio(writer, job_id)
    path = storage.path(stored.rel_path)
    filename = display_filename(request.files[file_field].filename)
    from api.probe import probe_upload

    try:
        probe = probe_upload(path, max_seconds=settings.max_audio_seconds, filename=filename)
    except AudioError as exc:
        storage.delete(stored.rel_path)
        status = 415 if exc.code in _NOT_AUDIO else exc.http_status
        if exc.code == "audio_too_long":
            status = 422  # the bytes were acceptable (413 is for size); the duration is not
        raise ApiError(exc.message, code=exc.code, http_status=status) from None

    now = utcnow()
    job = Job(
        id=job_id, status=QUEUED, progress=0.0, options=options.model_dump(exclude_none=True),
        queue=settings.job_queue, idempotency_key=key,
        audio_path=stored.rel_path, audio_filename=filename,
        audio_sha256=stored.sha256, audio_bytes=stored.size, audio_duration=probe.duration,
        audio_codec=probe.codec, audio_sample_rate=probe.sample_rate,
        audio_channels=probe.channels, attempts=0, created_at=now, updated_at=now,
        enqueued_at=now, api_key_id=g.get("api_key_id"),
    )
    try:
        with session_scope(settings) as session:
            session.add(job)
    except IntegrityError:
        # the same Idempotency-Key raced in from another request: answer with that job
        storage.delete(stored.rel_path)
        existing = _by_key(key) if key else None
        if existing is None:
            raise
        return _answer(existing, 200)

    # committed first, then enqueued: a worker never sees an id the DB does not have
    from worker.celery_app import enqueue_job

    try:
        enqueue_job(diarq.celery, settings, job_id, queue=job.queue,
                    audio_seconds=probe.duration)
    except Exception:
        # the row is queued; the reaper enqueues it again once the broker is back
        log.warning("enqueue failed; the reaper will retry job_id=%s", job_id, exc_info=True)
    return _answer(job, 202)


def display_filename(name: str | None) -> str | None:
    """The client's file name, for display only (storage uses generated names): its last
    path component, without control characters (PostgreSQL refuses NUL) or undecodable
    bytes, at most 200 characters."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.encode("utf-8", "replace").decode("utf-8", "replace")
    name = "".join(ch for ch in name if ch.isprintable())
    return name.strip()[:200] or None


def _scoped_idempotency_key(header: str) -> str | None:
    """Idempotency keys are per API key: another key sending the same value gets its
    own job, never someone else's (stored as "<key id>:<value>")."""
    # printable characters only: PostgreSQL refuses NUL, and the value is stored
    value = "".join(ch for ch in header if ch.isprintable()).strip()[:160]
    if not value:
        return None
    return f"{g.get('api_key_id') or '-'}:{value}"


def _by_key(key: str) -> Job | None:
    with session_scope(current_app.extensions["diarq"].settings) as session:
        return session.query(Job).filter(Job.idempotency_key == key).one_or_none()


def _answer(job: Job, status: int):  # noqa: ANN202
    resp = jsonify(job_to_dict(job))
    resp.status_code = status
    resp.headers["Location"] = f"/v1/jobs/{job.id}"
    return resp


def form_options(exclude: set[str]) -> dict[str, Any]:
    """Multipart form fields -> raw options (repeated fields become lists)."""
    out: dict[str, Any] = {}
    for name in request.form:
        if not isinstance(name, str) or not name:
            # a part whose Content-Disposition has no parseable name (found by fuzzing)
            raise ApiError("a form field has no name; send each option as a named "
                           "multipart/form-data field", code="invalid_options",
                           http_status=422)
        if name in exclude:
            continue
        values = request.form.getlist(name)
        out[name] = values if len(values) > 1 else values[0]
    return out

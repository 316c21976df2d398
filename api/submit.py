"""Creating jobs from uploads; shared by POST /v1/jobs, POST /api/diarize and
POST /v1/batches (api/batches.py), which all build, dedupe and enqueue jobs here."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, g, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from diarq.api.errors import ApiError
from diarq.api.job_json import job_json
from diarq.api.probe import probe_error_response, probe_file
from diarq.api.upload import uploaded
from diarq.api.uploads import check_usable, consume_upload, owned_upload, stored_upload
from diarq.shared.db import session_scope
from diarq.shared.dedupe import (
    canonical_json,
    find_active,
    find_reusable,
    options_sha256,
    share_files,
)
from diarq.shared.errors import AudioError
from diarq.shared.options import JobOptions, check_job_model, check_multichannel, parse_options
from diarq.shared.orm import QUEUED, SUCCEEDED, Job, utcnow
from diarq.shared.settings import Settings
from diarq.shared.storage import (
    Storage,
    StorageUnavailable,
    StoredFile,
    reference_key,
    references_prefix,
)

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def submit(file_field: str, raw_options: dict[str, Any]):  # noqa: ANN201 (flask response)
    """Create the job and answer with it (202 new, 200 an Idempotency-Key retry)."""
    return answer(*create_job_from_form(file_field, raw_options))


def _no_file(file_field: str) -> ApiError:
    return ApiError(f"no file: send the recording as multipart/form-data field "
                    f"'{file_field}' (or upload it first with POST /v1/uploads and send "
                    "its upload_id)", code="file_missing", http_status=400)


def create_job_from_form(file_field: str, raw_options: dict[str, Any]) -> tuple[Job, int]:
    """POST /v1/jobs and /api/diarize: the upload in ``file_field``, or the direct upload
    ``upload_id`` names, with the options of the form -> (job, status), as create_job."""
    writer = uploaded(file_field)
    upload_id = raw_options.pop("upload_id", None)
    if upload_id is not None:
        if writer is not None:
            raise ApiError(f"send either a file ('{file_field}') or an upload_id, not both",
                           code="invalid_options", http_status=422)
        return create_direct_job(upload_id, read_intake(raw_options))
    if writer is None:
        raise _no_file(file_field)
    return create_job(file_field, read_intake(raw_options))


def create_job(file_field: str, intake: Intake, *, references: Sequence[Path] = (),
               join_active: bool = False) -> tuple[Job, int]:
    """The job for the upload in ``file_field``: (job, 202) when created now, (job, 200)
    for the job an Idempotency-Key retry names or, with ``join_active``, an identical
    request (same key, audio and options) still queued or running.

    ``references``: local voice reference files (``intake.options`` lists them); they are
    stored with the new job, and nothing is kept when no job is created."""
    diarq = current_app.extensions["diarq"]
    settings = diarq.settings
    storage: Storage = diarq.storage

    writer = uploaded(file_field)
    if writer is None:
        raise _no_file(file_field)
    if writer.size == 0:
        raise ApiError("the uploaded file is empty (0 bytes); send the complete recording",
                       code="audio_empty", http_status=400)

    # a retry with the same Idempotency-Key is answered before anything is stored
    key = intake.idempotency_key
    if key:
        existing = _by_key(key)
        if existing is not None:
            check_same_request(existing.request_sha256, intake.request_hash([writer.sha256]))
            return existing, 200
    if join_active:
        running = _active_twin(writer.sha256, intake.options)
        if running is not None:
            return running, 200

    job_id = str(uuid.uuid4())
    # the object exists once this returns (object storage: the upload is completed)
    stored = storage.keep_audio(writer, job_id)
    filename = display_filename(request.files[file_field].filename)
    try:
        probe = probe_file(storage, stored.rel_path, settings, filename, writer)
        check_multichannel(intake.options, probe.channels, filename or "the upload")
    except BaseException as exc:
        storage.delete(stored.rel_path)
        if isinstance(exc, AudioError):
            raise probe_error_response(exc) from None
        raise
    return insert_job(settings, storage, intake, stored, probe, filename=filename,
                      job_id=job_id, references=references)


def create_direct_job(upload_id: Any, intake: Intake) -> tuple[Job, int]:
    """POST /v1/jobs with ``upload_id``: the file is already in the store (a direct
    upload); it is checked like an upload through the API (size, probe, hash)."""
    diarq = current_app.extensions["diarq"]
    settings, storage = diarq.settings, diarq.storage
    upload = owned_upload(upload_id)
    if upload.job_id is not None and intake.idempotency_key:
        # a retry of the request that made the job: answered with it (200)
        existing = _by_key(intake.idempotency_key)
        if existing is not None and existing.id == upload.job_id:
            return existing, 200
    check_usable(upload)
    stored, probe = stored_upload(storage, settings, upload)
    filename = display_filename(upload.filename)
    check_multichannel(intake.options, probe.channels, filename or "the upload")
    return insert_job(settings, storage, intake, stored, probe, filename=filename,
                      job_id=str(uuid.uuid4()),
                      consume=lambda session, job: consume_upload(session, upload.id, job.id))


def insert_job(settings: Settings, storage: Storage, intake: Intake, stored: StoredFile,
               probe: Any, *, filename: str | None, job_id: str, consume: Any = None,
               references: Sequence[Path] = ()) -> tuple[Job, int]:
    """Insert the job for a stored, probed recording (its object exists), commit, enqueue.
    ``consume(session, job)`` runs in the job's transaction (a direct upload is used);
    ``references`` (local files) are stored under the job's prefix first."""
    key = intake.idempotency_key
    request_hash = intake.request_hash([stored.sha256])
    direct = consume is not None
    # a direct upload's object is never deleted here: on a retry it is the audio of the
    # job the Idempotency-Key already made (an upload id is used by one job at most)
    if key and direct:  # uploads through the API were checked before they were stored
        existing = _by_key(key)
        if existing is not None:
            check_same_request(existing.request_sha256, request_hash)
            return existing, 200
    job = new_job(settings, job_id, stored, probe, intake.options, filename=filename,
                  idempotency_key=key, request_hash=request_hash)
    job.webhook_url, job.priority = intake.webhook_url, intake.priority

    def forget() -> None:  # no job: nothing of this request stays in the store
        if not direct:
            storage.delete(stored.rel_path)
        storage.delete_prefix(references_prefix(job_id))

    try:
        for index, path in enumerate(references):
            storage.put_file(reference_key(job_id, index), path)
        with session_scope(settings) as session:
            if consume is not None:
                consume(session, job)
            if intake.dedupe:
                reuse_result(session, job)
            session.add(job)
    except IntegrityError:
        # the same Idempotency-Key raced in from another request: answer with that job
        forget()
        existing = _by_key(key) if key else None
        if existing is None:
            raise
        check_same_request(existing.request_sha256, request_hash)
        return existing, 200
    except BaseException:
        forget()
        raise
    after_commit(settings, [job], stored=[stored])
    return job, 202


@dataclass(frozen=True)
class Intake:
    """What a submit asks for besides its files (POST /v1/jobs, /api/diarize and
    /v1/batches read it the same way): pipeline options and request fields."""

    options: JobOptions
    dedupe: bool
    webhook_url: str | None
    priority: int
    idempotency_key: str | None

    def request_hash(self, audio: list[str]) -> str:
        """The request's fingerprint over ``audio`` (one entry per file)."""
        return request_sha256(audio, self.options, self.dedupe,
                              webhook_url=self.webhook_url, priority=self.priority)


def read_intake(raw_options: dict[str, Any]) -> Intake:
    """Form fields -> Intake; 422 for invalid options or a model this profile refuses.
    ``raw_options`` loses the request fields (dedupe, webhook_url, priority)."""
    settings = current_app.extensions["diarq"].settings
    dedupe = pop_dedupe_flag(raw_options)
    webhook_url, priority = pop_delivery_fields(raw_options)
    options = parse_options(raw_options)  # 422 invalid_options
    check_job_model(options.asr_model, settings.profile)  # 422 asr_model_not_allowed
    key = scoped_idempotency_key(request.headers.get("Idempotency-Key", ""))
    return Intake(options, dedupe, webhook_url, priority, key)


def pop_dedupe_flag(raw_options: dict[str, Any]) -> bool:
    """The ``dedupe`` form field is a request flag, not a job option; absent, the
    server's default applies (DIARQ_DEDUPE, on unless an operator turned it off)."""
    value = raw_options.pop("dedupe", None)
    if value is None or value == "":
        return bool(current_app.extensions["diarq"].settings.dedupe)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ApiError("dedupe must be true or false", code="invalid_options", http_status=422)


def pop_delivery_fields(raw_options: dict[str, Any]) -> tuple[str | None, int]:
    """``webhook_url`` and ``priority`` form fields (request fields, not pipeline options):
    the URL is checked against private targets now (422), and again before each delivery."""
    from diarq.shared.celery_app import PRIORITIES
    from diarq.shared.webhooks import validate_webhook_url

    settings = current_app.extensions["diarq"].settings
    url = str(raw_options.pop("webhook_url", "") or "").strip() or None
    if url is not None:
        validate_webhook_url(url, allow_private=settings.webhook_allow_private)
        if g.get("api_key_id") is None and settings.webhook_secret is None:
            raise ApiError("webhooks need a signing secret: with DIARQ_AUTH=off set "
                           "DIARQ_WEBHOOK_SECRET on the server", code="webhook_secret_missing",
                           http_status=422)
    name = str(raw_options.pop("priority", "") or "normal").strip().lower()
    if name not in PRIORITIES:
        raise ApiError("priority must be high, normal or low", code="invalid_options",
                       http_status=422)
    return url, PRIORITIES[name]


def request_sha256(audio_hashes: list[str], options: JobOptions, dedupe: bool, *,
                   webhook_url: str | None = None, priority: int | None = None) -> str:
    """Fingerprint of a submit request (audio contents, options, request fields): a retry
    with the same Idempotency-Key must carry the same one."""
    body = {"audio": audio_hashes, "options": options.fingerprint(),
            "dedupe": dedupe, "webhook_url": webhook_url, "priority": priority}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def check_same_request(stored_hash: str | None, request_hash: str) -> None:
    # rows from before request hashes were recorded (NULL) keep the old rule: same key wins
    if stored_hash is not None and stored_hash != request_hash:
        raise ApiError("this Idempotency-Key was already used for a different request "
                       "(other files or options); use a new key for a new request",
                       code="idempotency_conflict", http_status=409)


def new_job(settings: Settings, job_id: str, stored: StoredFile, probe: Any,
            options: JobOptions, *, filename: str | None, idempotency_key: str | None = None,
            request_hash: str | None = None, batch_id: str | None = None,
            source_name: str | None = None) -> Job:
    """A queued job row (not yet added to a session) owned by the caller's key."""
    now = utcnow()
    return Job(
        id=job_id, status=QUEUED, progress=0.0, options=options.stored(),
        options_sha256=options_sha256(options), queue=settings.job_queue,
        idempotency_key=idempotency_key, request_sha256=request_hash,
        batch_id=batch_id, source_name=source_name,
        audio_path=stored.rel_path, audio_filename=filename,
        audio_sha256=stored.sha256, audio_bytes=stored.size, audio_duration=probe.duration,
        audio_codec=probe.codec, audio_sample_rate=probe.sample_rate,
        audio_channels=probe.channels, attempts=0, created_at=now, updated_at=now,
        enqueued_at=now, api_key_id=g.get("api_key_id"),
    )


def reuse_result(session: Session, job: Job) -> bool:
    """Dedupe: when the owner already has a succeeded job for the same audio and options,
    ``job`` becomes a succeeded copy pointing at that result (no pipeline run)."""
    original = find_reusable(session, api_key_id=job.api_key_id,
                             audio_sha256=job.audio_sha256, options_hash=job.options_sha256)
    if original is None:
        return False
    now = utcnow()
    share_files(job, original)
    job.status, job.progress, job.result_job_id = SUCCEEDED, 1.0, original.id
    job.started_at = job.finished_at = now
    job.enqueued_at = None
    return True


def after_commit(settings: Settings, created: list[Job], *, stored: list[StoredFile]) -> None:
    """Committed first, then enqueued: a worker never sees an id the DB does not have.
    Dedupe copies are not enqueued, and their uploaded audio is not kept."""
    from diarq.shared.celery_app import enqueue_job
    from diarq.shared.webhook_queue import notify_terminal

    storage: Storage = current_app.extensions["diarq"].storage
    celery = current_app.extensions["diarq"].celery
    for job, file in zip(created, stored, strict=True):
        if job.result_job_id:
            try:
                if job.audio_path != file.rel_path:  # it serves its original's audio
                    storage.delete(file.rel_path)
                storage.delete_prefix(references_prefix(job.id))
            except StorageUnavailable:
                # committed already: the answer is the job, not a 503 inviting a retry
                log.warning("could not delete the unneeded upload of dedupe copy job_id=%s",
                            job.id)
            # finished at submit: its (or its batch's) webhook is due now
            notify_terminal(celery, settings, job.id)
            continue
        try:
            enqueue_job(celery, settings, job.id, queue=job.queue,
                        audio_seconds=job.audio_duration, priority=job.priority)
        except Exception:
            # the row is queued; the reaper enqueues it again once the broker is back
            log.warning("enqueue failed; the reaper will retry job_id=%s", job.id,
                        exc_info=True)


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


def scoped_idempotency_key(header: str) -> str | None:
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


def _active_twin(audio_sha256: str, options: JobOptions) -> Job | None:
    with session_scope(current_app.extensions["diarq"].settings) as session:
        return find_active(session, api_key_id=g.get("api_key_id"), audio_sha256=audio_sha256,
                           options_hash=options_sha256(options))


def answer(job: Job, status: int):  # noqa: ANN201 (flask response)
    """The job as JSON with ``status`` and its Location."""
    with session_scope(current_app.extensions["diarq"].settings) as session:
        body = job_json(session, job)
    resp = jsonify(body)
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

"""/v1/batches: many recordings in one request (files or one archive), their counts and
progress, and all their results as one streamed results.zip."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from diarq.api.auth import QUOTA_RETRY_AFTER_S, owner_filter, too_many
from diarq.api.batch_entries import Entries, collect
from diarq.api.errors import ApiError
from diarq.api.jobs import after_delete, delete_job_row
from diarq.api.pagination import newest_first, page_limit, split_page
from diarq.api.probe import probe_file
from diarq.api.results_zip import stream_results
from diarq.api.submit import (
    after_commit,
    check_same_request,
    form_options,
    new_job,
    read_intake,
    reuse_result,
)
from diarq.api.uploads import check_usable, consume_upload, owned_upload, stored_upload
from diarq.shared.archive import ArchiveLimits
from diarq.shared.db import session_scope
from diarq.shared.dedupe import result_data
from diarq.shared.errors import AudioError, InvalidOptions
from diarq.shared.options import check_multichannel
from diarq.shared.orm import ACTIVE, QUEUED, STATUSES, SUCCEEDED, Batch, Job, utcnow
from diarq.shared.renderers import FORMATS
from diarq.shared.serialize import batch_links, batch_to_dict, iso
from diarq.shared.storage import Storage, StoredFile, UploadWriter

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")

FILES_FIELD = "files"
# the field POST /v1/jobs takes: a first try with it must not be answered "no files"
FILE_FIELD = "file"
UPLOADS_FIELD = "upload_id"  # repeated: direct uploads (POST /v1/uploads) of this batch


def _settings():  # noqa: ANN202
    return current_app.extensions["diarq"].settings


def _owner_filter():  # noqa: ANN202 (SQL expression)
    key_id = g.get("api_key_id")
    return Batch.api_key_id.is_(None) if key_id is None else Batch.api_key_id == key_id


@bp.post("")
def create_batch():  # noqa: ANN201
    settings = _settings()
    storage: Storage = current_app.extensions["diarq"].storage
    parts = [(f.filename, f.stream) for field in (FILES_FIELD, FILE_FIELD)
             for f in request.files.getlist(field) if isinstance(f.stream, UploadWriter)]
    upload_ids = [u for u in request.form.getlist(UPLOADS_FIELD) if u.strip()]
    if not parts and not upload_ids:
        raise ApiError(f"no files: send the recordings as repeated multipart/form-data "
                       f"field '{FILES_FIELD}' (or '{FILE_FIELD}'), or one .zip/.tar/.tar.gz "
                       f"archive in it (or direct uploads as repeated '{UPLOADS_FIELD}' "
                       "fields)", code="file_missing", http_status=400)
    # one for every entry
    intake = read_intake(form_options(exclude={FILES_FIELD, FILE_FIELD, UPLOADS_FIELD}))
    options, key = intake.options, intake.idempotency_key
    uploads = tuple(owned_upload(u) for u in dict.fromkeys(upload_ids))
    # a direct upload counts by the file it announced (a retry sends new uploads of the
    # same files), else by its id
    request_hash = intake.request_hash(
        [f"{name}:{w.sha256}" for name, w in parts]
        + [f"{u.filename}:{u.declared_sha256 or 'upload ' + u.id}" for u in uploads])
    if key:
        existing = _batch_by_key(key)
        if existing is not None:
            check_same_request(existing.request_sha256, request_hash)
            return _answer(existing.id, 200)
    for upload in uploads:
        check_usable(upload)
    found = collect(parts, storage, ArchiveLimits(max_total_bytes=_max_total_bytes(settings)),
                    uploads)
    try:
        batch_id = str(uuid.uuid4())
        created, stored, used = _jobs_for(found, settings, storage, options, batch_id)
        if not created:
            for s in stored:
                if s.rel_path not in used.values():  # a direct upload may be used again
                    storage.delete(s.rel_path)
            names = "; ".join(f"{r['name']}: {r['reason']}" for r in found.rejected[:5])
            raise ApiError(f"no recording in this batch is usable audio ({names})",
                           code="batch_no_audio", http_status=422)
        refused = _over_queue_quota(settings, len(created))
        if refused is not None:
            for s in stored:
                if s.rel_path not in used.values():
                    storage.delete(s.rel_path)
            return refused
        for job in created:
            job.priority = intake.priority
        batch = Batch(id=batch_id, api_key_id=g.get("api_key_id"),
                      webhook_url=intake.webhook_url,
                      options=options.stored(), idempotency_key=key,
                      request_sha256=request_hash, rejected=found.rejected,
                      created_at=utcnow())
        try:
            with session_scope(settings) as session:
                session.add(batch)
                session.flush()  # the batch row first: jobs reference it
                for job in created:
                    if job.id in used:
                        consume_upload(session, used[job.id], job.id)
                    if intake.dedupe:
                        reuse_result(session, job)
                    session.add(job)
        except IntegrityError:
            for s in stored:
                if s.rel_path not in used.values():
                    storage.delete(s.rel_path)
            existing = _batch_by_key(key) if key else None
            if existing is None:
                raise
            check_same_request(existing.request_sha256, request_hash)
            return _answer(existing.id, 200)
    finally:
        for d in found.scratch:
            shutil.rmtree(d, ignore_errors=True)
    after_commit(settings, created, stored=stored)
    return _answer(batch_id, 202)


def _over_queue_quota(settings: Any, adding: int):  # noqa: ANN202 (None or a response)
    """The per-key queued quota (checked before the body for every submit) also holds
    for the jobs a batch adds at once: 429 when they would exceed it."""
    limit = settings.max_queued_per_key
    if not limit:
        return None
    key_id = g.get("api_key_id")
    with session_scope(settings) as session:
        queued = session.scalar(select(func.count()).select_from(Job).where(
            owner_filter(key_id), Job.status == QUEUED, Job.deleted_at.is_(None)))
    if queued + adding <= limit:
        return None
    return too_many("queue_quota_exceeded",
                    f"this batch adds {adding} jobs to the {queued} this key has waiting "
                    f"(limit {limit}, DIARQ_MAX_QUEUED_PER_KEY); send fewer files per batch "
                    "or wait for some to finish", QUOTA_RETRY_AFTER_S)


def _max_total_bytes(settings: Any) -> int:
    # an archive may hold at most what the same number of uploads could: 20x the upload
    # limit, bounded by the archive module's own default
    return min(ArchiveLimits().max_total_bytes, 20 * settings.max_upload_bytes)


def _jobs_for(found: Entries, settings: Any, storage: Storage, options: Any,
              batch_id: str) -> tuple[list[Job], list[StoredFile], dict[str, str]]:
    """Probe each entry; audio becomes a queued job (not yet added), the rest rejected.
    Also returns the direct uploads used: job id -> upload id."""
    created: list[Job] = []
    stored: list[StoredFile] = []
    used: dict[str, str] = {}
    for entry in found.entries:
        job_id = str(uuid.uuid4())
        if entry.upload is not None:
            try:
                kept, probe = stored_upload(storage, settings, entry.upload)
                check_multichannel(options, probe.channels, entry.name)
            except (ApiError, InvalidOptions) as exc:
                found.reject(entry.name, exc.message)
                continue
            used[job_id] = entry.upload.id
        else:
            kept = (storage.keep_audio(entry.writer, job_id) if entry.writer is not None
                    else storage.keep_file(entry.path, job_id))
            try:
                probe = probe_file(storage, kept.rel_path, settings, entry.name, entry.writer)
                check_multichannel(options, probe.channels, entry.name)
            except (AudioError, InvalidOptions) as exc:
                storage.delete(kept.rel_path)
                found.reject(entry.name, exc.message)
                continue
        filename = entry.name.rsplit("/", 1)[-1][:200]
        created.append(new_job(settings, job_id, kept, probe, options, filename=filename,
                               batch_id=batch_id, source_name=entry.name))
        stored.append(kept)
    return created, stored, used


def _batch_by_key(key: str) -> Batch | None:
    with session_scope(_settings()) as session:
        return session.scalars(select(Batch).where(_owner_filter(),
                                                   Batch.idempotency_key == key)).first()


def _answer(batch_id: str, status: int):  # noqa: ANN202
    with session_scope(_settings()) as session:
        body = batch_to_dict(session, owned_batch(session, batch_id))
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Location"] = f"/v1/batches/{batch_id}"
    return resp


def owned_batch(session, batch_id: str) -> Batch:  # noqa: ANN001
    try:
        valid = str(uuid.UUID(batch_id)) == batch_id.lower()
    except ValueError:
        valid = False
    batch = session.get(Batch, batch_id.lower()) if valid else None
    # another key's batch is answered exactly like a batch that does not exist
    if batch is None or batch.api_key_id != g.get("api_key_id") or batch.deleted_at:
        raise ApiError(f"no batch with id {batch_id}", code="batch_not_found", http_status=404)
    return batch


@bp.get("")
def list_batches():  # noqa: ANN201
    """The caller's batches, newest first: counts per status and whether each finished
    (progress and the jobs themselves: GET /v1/batches/{id})."""
    limit = page_limit()
    query = newest_first(select(Batch).where(_owner_filter(), Batch.deleted_at.is_(None)),
                         Batch, limit)
    with session_scope(_settings()) as session:
        batches, next_cursor = split_page(list(session.scalars(query)), limit)
        counts: dict[str, dict[str, int]] = {b.id: dict.fromkeys(STATUSES, 0) for b in batches}
        # one grouped count for the whole page (ix_jobs_batch_id), not a query per batch
        for batch_id, status, n in session.execute(
                select(Job.batch_id, Job.status, func.count())
                .where(Job.batch_id.in_(list(counts)))
                .group_by(Job.batch_id, Job.status)):
            counts[batch_id][status] = n
        body = [{
            "id": b.id,
            "finished": not any(counts[b.id][status] for status in ACTIVE),
            "counts": counts[b.id],
            "created_at": iso(b.created_at),
            "links": batch_links(b.id),
        } for b in batches]
    return jsonify({"batches": body, "next_cursor": next_cursor})


@bp.delete("/<batch_id>")
def delete_batch(batch_id: str):  # noqa: ANN201
    """Cancel the batch's queued and running jobs and delete all of them (audio and
    results, as DELETE /v1/jobs/{id} does for each), then the batch itself."""
    settings = _settings()
    with session_scope(settings) as session:
        batch = owned_batch(session, batch_id)
        ids = list(session.scalars(select(Job.id).where(Job.batch_id == batch.id,
                                                        Job.deleted_at.is_(None))))
        # one transaction per job, as a single DELETE does: a failure part way leaves the
        # batch in place with the rest of its jobs, and the DELETE can be repeated
        deleted = [(job_id, *delete_job_row(session, job_id)) for job_id in ids]
        batch = owned_batch(session, batch_id)
        batch.deleted_at = utcnow()
    for job_id, release, canceled in deleted:
        after_delete(settings, job_id, release, canceled)
    return Response(status=204)


@bp.get("/<batch_id>")
def get_batch(batch_id: str):  # noqa: ANN201
    with session_scope(_settings()) as session:
        return jsonify(batch_to_dict(session, owned_batch(session, batch_id)))


@bp.get("/<batch_id>/results.zip")
def get_results_zip(batch_id: str):  # noqa: ANN201
    formats = [f.strip() for f in request.args.get("formats", "json").split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ApiError(f"formats must be a comma-separated list of: {', '.join(FORMATS)}",
                       code="invalid_format", http_status=422)
    formats = list(dict.fromkeys(formats))
    settings = _settings()
    with session_scope(settings) as session:
        batch = owned_batch(session, batch_id)
        items = [(r.id, r.source_name) for r in session.execute(
            select(Job.id, Job.source_name)
            .where(Job.batch_id == batch.id, Job.status == SUCCEEDED, Job.deleted_at.is_(None))
            .order_by(Job.source_name, Job.id))]

    def load(job_id: str) -> dict[str, Any] | None:
        # one short session per result: nothing is held open while the client reads
        with session_scope(settings) as session:
            job = session.get(Job, job_id)
            if job is None or job.deleted_at is not None:
                return None
            return result_data(session, job)

    resp = Response(stream_with_context(stream_results(items, load, formats)),
                    content_type="application/zip")
    resp.headers["Content-Disposition"] = f'attachment; filename="batch-{batch.id}.zip"'
    return resp

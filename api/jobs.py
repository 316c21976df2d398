"""/v1/jobs: submit, status, list, result, delete."""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select

from diarq.api.auth import owner_filter
from diarq.api.errors import ApiError
from diarq.api.job_json import job_json, jobs_json
from diarq.api.pagination import newest_first, page_limit, split_page
from diarq.api.result_wait import answer_when_done, wait_seconds
from diarq.api.submit import answer, create_job_from_form, form_options
from diarq.shared import jobs
from diarq.shared.db import session_scope
from diarq.shared.dedupe import detach_copies, lock_for_delete, result_data
from diarq.shared.job_files import Release, delete_objects, plan_release
from diarq.shared.orm import ACTIVE, CANCELED, FAILED, STATUSES, SUCCEEDED, Job

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
log = logging.getLogger(__name__)


def _settings():  # noqa: ANN202
    return current_app.extensions["diarq"].settings


@bp.post("")
def create_job():  # noqa: ANN201
    """202 with the job; with ``Prefer: wait=N`` the answer waits until the job ends (200)
    or N seconds pass (202)."""
    job, status = create_job_from_form("file", form_options(exclude={"file"}))
    seconds, asked = wait_seconds(request.headers.get("Prefer"), _settings(), default=0)
    if not asked:
        return answer(job, status)
    return answer_when_done(job, status, seconds, asked=asked, with_result=False)


def _is_job_id(value: str) -> bool:
    # ids are UUIDs; anything else (NUL bytes included, which PostgreSQL refuses in a
    # query parameter) is answered 404 without asking the database
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def owned_job(session, job_id: str) -> Job:  # noqa: ANN001
    """The caller's job ``job_id``; 404 ``job_not_found`` otherwise."""
    job = session.get(Job, job_id.lower()) if _is_job_id(job_id) else None
    # another key's job is answered exactly like a job that does not exist
    if job is None or not _owned(job):
        raise ApiError(f"no job with id {job_id}", code="job_not_found", http_status=404)
    return job


def _owned(job: Job) -> bool:
    return job.api_key_id == g.get("api_key_id")


@bp.get("/<job_id>")
def get_job(job_id: str):  # noqa: ANN201
    """The job; with ``Prefer: wait=N`` once it has ended or N seconds passed (a long
    poll instead of many short ones)."""
    with session_scope(_settings()) as session:
        job = owned_job(session, job_id)
        body = job_json(session, job)
    seconds, asked = wait_seconds(request.headers.get("Prefer"), _settings(), default=0)
    if not asked or body["status"] in ("succeeded", "failed", "canceled"):
        return jsonify(body)
    return answer_when_done(job, 200, seconds, asked=asked, with_result=False)


@bp.get("")
def list_jobs():  # noqa: ANN201
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(f"status must be one of {', '.join(STATUSES)}", code="invalid_request",
                       http_status=422)
    limit = page_limit()
    query = newest_first(select(Job).where(owner_filter(g.get("api_key_id"))), Job, limit)
    if status:
        query = query.where(Job.status == status)
    batch_id = request.args.get("batch_id")
    if batch_id is not None:
        if not _is_job_id(batch_id):  # batch ids are UUIDs too
            raise ApiError("batch_id must be a batch id (UUID)", code="invalid_request",
                           http_status=422)
        query = query.where(Job.batch_id == batch_id.lower())
    with session_scope(_settings()) as session:
        rows, next_cursor = split_page(list(session.scalars(query)), limit)
        body = jobs_json(session, rows)
    return jsonify({"jobs": body, "next_cursor": next_cursor})


@bp.get("/<job_id>/result")
def get_result(job_id: str):  # noqa: ANN201
    from diarq.shared.renderers import CONTENT_TYPES, FORMATS, render
    from diarq.shared.result import Result

    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}",
                       code="invalid_format", http_status=422)
    with session_scope(_settings()) as session:
        job = owned_job(session, job_id)
        if job.deleted_at is not None:
            raise ApiError("this job was deleted, and its result with it",
                           code="result_deleted", http_status=404)
        if job.result_purged_at is not None:
            raise ApiError("this job's result was deleted by the server's retention policy "
                           "(DIARQ_RETENTION_DAYS with DIARQ_RETENTION_RESULTS); submit the "
                           "recording again", code="result_expired", http_status=404)
        if job.status != SUCCEEDED:
            detail = ""
            if job.status == FAILED and job.error_code:
                detail = f" ({job.error_code}: {job.error_message})"
            raise ApiError(f"the job is {job.status}{detail}; a result exists once it has "
                           "succeeded", code="job_not_succeeded", http_status=409)
        data = result_data(session, job)  # its own row, or the one it reuses (dedupe)
        if data is None:
            raise ApiError("the result is missing", code="result_missing", http_status=500)
        stem = download_stem(job)
    body = render(Result.from_dict(data), fmt)
    resp = Response(body, content_type=CONTENT_TYPES[fmt])
    if fmt != "json":
        resp.headers["Content-Disposition"] = content_disposition(f"{stem}.{fmt}")
    return resp


def download_stem(job: Job) -> str:
    """A saved result is named after the recording (``meeting.m4a`` -> ``meeting.srt``),
    or the job id when the upload had no name."""
    name = (job.audio_filename or "").rsplit(".", 1)[0].strip()
    return name or job.id


def content_disposition(filename: str) -> str:
    """``inline`` with the file name: ASCII for every client, and UTF-8 (RFC 6266
    ``filename*``) when the name has other characters."""
    from urllib.parse import quote

    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_"
                         for ch in filename)
    header = f'inline; filename="{ascii_name}"'
    if ascii_name != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


@bp.delete("/<job_id>")
def delete_job(job_id: str):  # noqa: ANN201
    settings = _settings()
    with session_scope(settings) as session:
        owned_job(session, job_id)  # 404 unless it exists and is the caller's
        release, canceled = delete_job_row(session, job_id.lower())
    after_delete(settings, job_id.lower(), release, canceled)
    return Response(status=204)


def delete_job_row(session, job_id: str) -> tuple[Release | None, bool]:  # noqa: ANN001
    """Cancel (when queued or running) and delete one job in its own transaction; returns
    what of its objects to delete after the commit (what no dedupe copy still names) and
    whether it was cancelled."""
    job = session.get(Job, job_id)
    # first, in one statement: the job and the jobs sharing its objects, locked in id order
    release = plan_release(session, job) if job is not None else None
    # locked, so that no dedupe submit adds a copy between detaching and deleting
    locked = lock_for_delete(session, job_id)
    was_active = locked is not None and locked.status in ACTIVE
    # jobs reusing this result (dedupe) get their own copy of it first
    detach_copies(session, job_id)
    job = jobs.cancel_and_delete(session, job_id)
    return (release if job else None), was_active and job is not None and job.status == CANCELED


def after_delete(settings, job_id: str, release: Release | None, canceled: bool) -> None:  # noqa: ANN001
    """After the commit: the job's objects go (its audio, and anything derived from it,
    unless a dedupe copy still names them), and a cancelled job's webhook is told. A
    store that is down now is no error: the row still names its audio, and the workers'
    reaper deletes it later."""
    from diarq.shared.retention import forget_audio
    from diarq.shared.storage import StorageUnavailable

    # a running worker sees `canceled` at its next check and stops; its writes are no-ops
    # (and it deletes the objects it was making: worker/job_media.py)
    if release is not None:
        try:
            delete_objects(current_app.extensions["diarq"].storage, release)
        except StorageUnavailable as exc:
            log.warning("job deleted, its objects stay until the store is back job_id=%s: %s",
                        job_id, exc.message)
        else:
            if release.audio_path:
                with session_scope(settings) as session:
                    forget_audio(session, job_id, release.audio_path, purged=False)
    if canceled:
        from diarq.shared.webhook_queue import notify_terminal

        notify_terminal(current_app.extensions["diarq"].celery, settings, job_id)

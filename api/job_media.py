"""What the web page of a job needs besides its result: the recording (HTTP Range, so a
browser can seek), its waveform peaks, and speaker names given after the fact.

Objects are read through the storage interface (shared/storage.py), by the keys the
job names: the worker derived the playback copy and the peaks (worker/job_media.py).
Either backend is served through this route, with the same validators and ranges:

- local directory: ``send_file`` on the file (werkzeug answers Range, If-None-Match and
  HEAD; gunicorn may use sendfile);
- object store: one ranged GET for the bytes a request asks for, streamed through. Not
  a presigned redirect: the page's CSP allows media only from this origin, the store
  need not be reachable from browsers (``DIARQ_S3_PUBLIC_ENDPOINT_URL`` is optional), a
  URL that expires would break seeking in a long meeting left open, and every request
  (each seek is one) is checked against the session's key like the rest of the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from diarq.api.errors import ApiError
from diarq.api.jobs import owned_job
from diarq.shared.db import session_scope
from diarq.shared.dedupe import result_data
from diarq.shared.media import guess_type
from diarq.shared.orm import SUCCEEDED, Job
from diarq.shared.speakers import merge_renames, parse_renames
from diarq.shared.storage import Storage

bp = Blueprint("job_media", __name__, url_prefix="/v1/jobs")
WAVEFORM_TYPE = "application/octet-stream"
# bytes per ranged GET from an object store: a seek costs one request, and a long
# stream few enough requests
STREAM_CHUNK = 1 << 20


def _storage() -> Storage:
    return current_app.extensions["diarq"].storage


def _live_job(session, job_id: str) -> Job:  # noqa: ANN001
    job = owned_job(session, job_id)
    if job.deleted_at is not None:
        raise ApiError("this job was deleted, and its recording with it",
                       code="result_deleted", http_status=404)
    return job


def _send(key: str, size: int, mimetype: str):  # noqa: ANN202 (flask response)
    storage = _storage()
    local = storage.local_path(key)
    if local is not None:
        # conditional: werkzeug answers Range (206, Content-Range), If-None-Match and HEAD
        resp = send_file(local, mimetype=mimetype, conditional=True, etag=True, max_age=0)
    else:
        resp = _send_object(storage, key, size, mimetype)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


def _send_object(storage: Storage, key: str, size: int, mimetype: str) -> Response:
    """An object of the store, answered like send_file answers a file: werkzeug decides
    200/206/304/416 from the request's headers, then the body is the bytes asked for."""
    resp = Response(mimetype=mimetype, direct_passthrough=True)
    # keys are written once (generated, per job or attempt): key and size identify the bytes
    resp.set_etag(hashlib.sha256(f"{key}\0{size}".encode()).hexdigest()[:32])
    resp.make_conditional(request.environ, accept_ranges=True, complete_length=size)
    if resp.status_code == 304:
        return resp
    start, stop = 0, size
    if resp.status_code == 206 and resp.content_range and resp.content_range.stop:
        start, stop = resp.content_range.start or 0, resp.content_range.stop
    resp.response = _read_range(storage, key, start, stop)
    resp.content_length = stop - start
    return resp


def _read_range(storage: Storage, key: str, start: int, stop: int) -> Iterator[bytes]:
    """Bytes ``start``..``stop`` of an object, a ranged GET per chunk; nothing is asked of
    the store before the first chunk is wanted (a HEAD request reads none)."""
    with storage.open(key) as fh:
        fh.seek(start)
        left = stop - start
        while left > 0:
            chunk = fh.read(min(STREAM_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@bp.get("/<job_id>/audio")
def get_audio(job_id: str):  # noqa: ANN201
    with session_scope(current_app.extensions["diarq"].settings) as session:
        job = _live_job(session, job_id)
        playback, mime = job.playback_path, job.playback_type
        upload, codec = job.audio_path, job.audio_codec
    storage = _storage()
    size = storage.size(playback) if playback else None
    if playback and size is not None:
        return _send(playback, size, mime or "audio/webm")
    size = storage.size(upload) if upload else None
    if upload is None or size is None:
        raise ApiError("the recording of this job is no longer stored (the retention policy "
                       "may have deleted it); submit it again", code="audio_unavailable",
                       http_status=404)
    # the upload itself: browsers play it (the worker found no copy was needed), or the
    # worker has not looked at it yet
    return _send(upload, size, mime if mime and not playback else guess_type(codec))


@bp.get("/<job_id>/waveform")
def get_waveform(job_id: str):  # noqa: ANN201
    with session_scope(current_app.extensions["diarq"].settings) as session:
        job = _live_job(session, job_id)
        status, key = job.status, job.waveform_path
    if status != SUCCEEDED:
        raise ApiError(f"the job is {status}; its waveform exists once it has succeeded",
                       code="job_not_succeeded", http_status=409)
    size = _storage().size(key) if key else None
    if key is None or size is None:
        raise ApiError("this job has no waveform (it was processed before waveforms "
                       "existed, computing it failed, or the retention policy deleted "
                       "it with the recording)", code="waveform_unavailable",
                       http_status=404)
    return _send(key, size, WAVEFORM_TYPE)


@bp.patch("/<job_id>/speakers")
def rename_speakers(job_id: str):  # noqa: ANN201
    body = request.get_json(silent=True) if request.is_json else None
    if body is None:
        raise ApiError('send a JSON body (Content-Type: application/json), e.g. '
                       '{"SPEAKER_00": "Anna"}', code="unsupported_media_type",
                       http_status=415)
    with session_scope(current_app.extensions["diarq"].settings) as session:
        job = _live_job(session, job_id)
        if job.status != SUCCEEDED:
            raise ApiError(f"the job is {job.status}; speakers can be named once it has "
                           "succeeded", code="job_not_succeeded", http_status=409)
        # locked: two renames at once both land (the second merges into the first)
        session.refresh(job, with_for_update=True)
        data = result_data(session, job) or {}
        labels = [s["id"] for s in data.get("speakers") or []]
        renames = parse_renames(body, labels)  # 422 invalid_speakers
        job.speaker_names = merge_renames(job.speaker_names, renames)
        speakers = (result_data(session, job) or {}).get("speakers") or []
    return jsonify({"job_id": job_id.lower(), "speakers": speakers})

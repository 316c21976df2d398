"""What the web page of a job needs besides its result: the recording (HTTP Range, so a
browser can seek), its waveform peaks, and speaker names given after the fact.

Files are reached through shared/storage.py (generated names only; the worker derived
the playback copy and the peaks: worker/job_media.py).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file

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


def _storage() -> Storage:
    return current_app.extensions["diarq"].storage


def _live_job(session, job_id: str) -> Job:  # noqa: ANN001
    job = owned_job(session, job_id)
    if job.deleted_at is not None:
        raise ApiError("this job was deleted, and its recording with it",
                       code="result_deleted", http_status=404)
    return job


def _send(rel_path: str, mimetype: str):  # noqa: ANN202 (flask response)
    # conditional: werkzeug answers Range (206, Content-Range), If-None-Match and HEAD
    resp = send_file(_storage().path(rel_path), mimetype=mimetype, conditional=True,
                     etag=True, max_age=0)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


@bp.get("/<job_id>/audio")
def get_audio(job_id: str):  # noqa: ANN201
    with session_scope(current_app.extensions["diarq"].settings) as session:
        job = _live_job(session, job_id)
        playback, mime = job.playback_path, job.playback_type
        upload, codec = job.audio_path, job.audio_codec
    storage = _storage()
    if playback and storage.exists(playback):
        return _send(playback, mime or "audio/webm")
    if not storage.exists(upload):
        raise ApiError("the recording of this job is no longer stored; submit it again",
                       code="audio_unavailable", http_status=404)
    # the upload itself: browsers play it (the worker found no copy was needed), or the
    # worker has not looked at it yet
    return _send(upload, mime if mime and not playback else guess_type(codec))


@bp.get("/<job_id>/waveform")
def get_waveform(job_id: str):  # noqa: ANN201
    with session_scope(current_app.extensions["diarq"].settings) as session:
        job = _live_job(session, job_id)
        status, rel = job.status, job.waveform_path
    if status != SUCCEEDED:
        raise ApiError(f"the job is {status}; its waveform exists once it has succeeded",
                       code="job_not_succeeded", http_status=409)
    if not _storage().exists(rel):
        raise ApiError("this job has no waveform (it was processed before waveforms "
                       "existed, or computing it failed); the recording still plays",
                       code="waveform_unavailable", http_status=404)
    return _send(rel, WAVEFORM_TYPE)


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

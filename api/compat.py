"""POST /api/diarize: the original client's route (camelCase fields). Like the original
service it answers with the result: it waits for the job (up to DIARQ_WAIT_MAX_S, or
``Prefer: wait=N``) and sends the result JSON (200); past that, or when this API process
already has DIARQ_MAX_WAITERS requests waiting, it answers like POST /v1/jobs (202, the
job and its Location) and the client polls (api/result_wait.py)."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from diarq.api.result_wait import answer_when_done, wait_seconds
from diarq.api.submit import create_job_from_form, form_options

bp = Blueprint("compat", __name__)

# original field name -> v1 option
_FIELDS = {
    "minSpeakers": "min_speakers",
    "maxSpeakers": "max_speakers",
    "numSpeakers": "num_speakers",
    "participants": "participants",
    "prompt": "prompt",
    "language": "language",
}


@bp.post("/api/diarize")
def diarize():  # noqa: ANN201
    raw = form_options(exclude={"audioFile"})
    # unknown fields pass through unchanged so parse_options rejects them (422)
    options = {_FIELDS.get(k, k): v for k, v in raw.items()}
    job, status = create_job_from_form("audioFile", options)
    settings = current_app.extensions["diarq"].settings
    seconds, asked = wait_seconds(request.headers.get("Prefer"), settings,
                                  default=settings.wait_max_s)
    return answer_when_done(job, status, seconds, asked=asked, with_result=True)

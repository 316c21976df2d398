"""POST /api/diarize: the original client's route (camelCase fields), same answer as
POST /v1/jobs."""

from __future__ import annotations

from flask import Blueprint

from diarq.api.submit import form_options, submit

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
    return submit("audioFile", options)

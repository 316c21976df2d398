"""POST /v1/audio/transcriptions: OpenAI's transcription API, answered by diarq.

Clients that speak OpenAI's audio API (the official SDKs with ``base_url`` set to this
server, and the tools built on them) work unchanged: multipart ``file`` + ``model`` and
OpenAI's fields, ``Authorization: Bearer <diarq key>``, OpenAI's response formats
(api/openai_formats.py) and error shape ``{"error": {"message", "type", "param",
"code"}}``. The job goes through the same queue as every other; the request waits for
it (api/result_wait.py, at most DIARQ_OPENAI_WAIT_S) and answers with the transcript.
docs/openai.md documents the fields, the model mapping and what differs from OpenAI.

Voice references (``known_speaker_references[]``, data URLs of 2-10 s clips) are
checked here (audio, length, at most 4, a name each), stored like uploads
(shared/storage.py) and matched to the diarized speakers by the worker
(worker/voices.py); they never travel in a broker message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from diarq.api.errors import ApiError
from diarq.api.openai_formats import RESPONSE_FORMATS, render_openai
from diarq.api.openai_models import resolve_model
from diarq.api.result_wait import wait_for_job, waiter_slot
from diarq.api.submit import Intake, create_job, scoped_idempotency_key
from diarq.api.upload import uploaded
from diarq.shared.celery_app import PRIORITIES
from diarq.shared.db import session_scope
from diarq.shared.dedupe import result_data
from diarq.shared.error_codes import CATALOGUE
from diarq.shared.errors import AudioError, DiarqError, InvalidOptions
from diarq.shared.media import probe_upload
from diarq.shared.options import MAX_REFERENCES, JobOptions, SpeakerReference, parse_options
from diarq.shared.orm import SUCCEEDED, Job
from diarq.shared.redact import redact
from diarq.shared.result import Result
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage

# seconds a client told too_many_waiters should wait before trying again
RETRY_AFTER_S = 5
bp = Blueprint("openai_compat", __name__)
PATH = "/v1/audio/transcriptions"

REFERENCE_MIN_S, REFERENCE_MAX_S = 2.0, 10.0
# one data-URL form field: a 10 s clip of 48 kHz stereo 16-bit WAV is 1.9 MB, 2.6 MB as
# base64 (other fields are small). Form fields are held in memory, so the number of
# parts is capped too: at most 64 x 4 MB per request
REFERENCE_FIELD_BYTES = 4 * 1024 * 1024
MAX_FORM_PARTS = 64
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,",
                       re.ASCII)
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}

# fields OpenAI defines (list fields also as name[]), and the diarq options added here
_LIST_FIELDS = {"timestamp_granularities", "known_speaker_names", "known_speaker_references",
                "include", "keywords", "hotwords"}
_FIELDS = _LIST_FIELDS | {
    "model", "language", "prompt", "response_format", "temperature", "chunking_strategy",
    "stream", "multichannel", "num_speakers", "min_speakers", "max_speakers",
}
# diarq option -> the field a client sent it as (for "param" in errors)
_PARAM_OF = {"participants": "known_speaker_names", "speaker_references":
             "known_speaker_references", "asr_model": "model"}


class OpenAIError(ApiError):
    """An error answered in OpenAI's shape; ``param`` names the field at fault."""

    def __init__(self, message: str, *, code: str, http_status: int = 400,
                 param: str | None = None, retry: bool | None = None) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.param = param
        self.retry = retry


@dataclass
class TranscriptionRequest:
    """The fields of one request, read and checked (no files touched yet)."""

    model: str
    response_format: str = "json"
    granularities: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # data URLs
    raw_options: dict[str, Any] = field(default_factory=dict)


# --- reading the request ---------------------------------------------------------------

def form_lists() -> dict[str, list[str]]:
    """Form fields by name, ``name[]`` and ``name`` alike; ``chunking_strategy[...]``
    sub-fields (how the SDK sends an object) under ``chunking_strategy``."""
    out: dict[str, list[str]] = {}
    for raw_name in request.form:
        if not isinstance(raw_name, str) or not raw_name:
            raise OpenAIError("a form field has no name; send each field as a named "
                              "multipart/form-data part", code="unsupported_parameter")
        name = raw_name.removesuffix("[]")
        if name.startswith("chunking_strategy["):
            name = "chunking_strategy"
        out.setdefault(name, []).extend(request.form.getlist(raw_name))
    return out


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    if not values:
        return None
    if len(values) > 1 and name not in ("chunking_strategy",):
        raise OpenAIError(f"{name} was sent {len(values)} times; send it once",
                          code="invalid_value", param=name)
    return values[0].strip()


def _flag(form: dict[str, list[str]], name: str) -> bool:
    value = (_one(form, name) or "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE or value == "":
        return False
    raise OpenAIError(f"{name} must be true or false", code="invalid_value", param=name)


def read_request(form: dict[str, list[str]]) -> TranscriptionRequest:
    """Check every field that needs no file or setting; OpenAIError (400) naming it."""
    unknown = sorted(set(form) - _FIELDS - {"file"})
    if unknown:
        raise OpenAIError(f"unknown field {unknown[0]!r}; this endpoint takes "
                          f"{', '.join(sorted(_FIELDS))} (docs/openai.md)",
                          code="unsupported_parameter", param=unknown[0])
    if _flag(form, "stream"):
        raise OpenAIError("stream=true is not supported: diarq answers when the whole "
                          "transcript is ready; leave stream out (or false)",
                          code="streaming_unsupported", param="stream")
    model = _one(form, "model")
    if not model:
        raise OpenAIError("model is required: send model=whisper-1 (the configured model) "
                          "or a model name this server lists", code="invalid_value",
                          param="model")
    fmt = (_one(form, "response_format") or "json").lower()
    if fmt not in RESPONSE_FORMATS:
        raise OpenAIError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}",
                          code="invalid_value", param="response_format")
    granularities = [g.strip().lower() for g in form.get("timestamp_granularities", [])
                     if g.strip()]
    bad = [g for g in granularities if g not in ("word", "segment")]
    if bad:
        raise OpenAIError("timestamp_granularities[] takes word and segment",
                          code="invalid_value", param="timestamp_granularities")
    include = [v.strip() for v in form.get("include", []) if v.strip()]
    if include:
        raise OpenAIError(f"include[]={include[0]} is not supported (diarq returns no token "
                          "log probabilities); leave include out",
                          code="unsupported_parameter", param="include")
    _check_temperature(_one(form, "temperature"))
    _check_chunking(form)
    names = [n.strip() for n in form.get("known_speaker_names", []) if n.strip()]
    references = [r.strip() for r in form.get("known_speaker_references", []) if r.strip()]
    _check_references(names, references)
    hotwords = [w for v in form.get("keywords", []) + form.get("hotwords", [])
                for w in v.split(",") if w.strip()]
    raw = {
        "language": _one(form, "language"),
        "prompt": _one(form, "prompt"),
        "hotwords": hotwords or None,
        "multichannel": _flag(form, "multichannel"),
        "num_speakers": _one(form, "num_speakers"),
        "min_speakers": _one(form, "min_speakers"),
        "max_speakers": _one(form, "max_speakers"),
    }
    return TranscriptionRequest(model=model, response_format=fmt, granularities=granularities,
                                names=names, references=references, raw_options=raw)


def _check_temperature(value: str | None) -> None:
    # accepted for compatibility: diarq decodes with beam search and Whisper's own
    # temperature fallback, whatever is asked
    if value is None or value == "":
        return
    try:
        t = float(value)
    except ValueError:
        t = -1.0
    if not 0.0 <= t <= 1.0:
        raise OpenAIError("temperature must be a number from 0 to 1", code="invalid_value",
                          param="temperature")


def _check_chunking(form: dict[str, list[str]]) -> None:
    # accepted for compatibility: diarq always cuts the audio at pauses it detects itself
    sub = [k for k in request.form if k.startswith("chunking_strategy[")]
    value = _one(form, "chunking_strategy") if not sub else None
    if sub:
        kind = request.form.get("chunking_strategy[type]", "")
        if kind != "server_vad":
            raise OpenAIError("chunking_strategy must be \"auto\" or an object with type "
                              "server_vad", code="invalid_value", param="chunking_strategy")
    elif value not in (None, "", "auto") and not value.startswith("{"):
        raise OpenAIError("chunking_strategy must be \"auto\" or an object with type "
                          "server_vad", code="invalid_value", param="chunking_strategy")


def _check_references(names: list[str], references: list[str]) -> None:
    if len(references) > MAX_REFERENCES:
        raise OpenAIError(f"{len(references)} voice references sent; at most "
                          f"{MAX_REFERENCES} are taken (one per known speaker)",
                          code="too_many_references", param="known_speaker_references")
    if references and len(names) > len(references):
        raise OpenAIError(f"{len(names)} known_speaker_names[] but {len(references)} "
                          "known_speaker_references[]: send one reference per name (or "
                          "names alone, to name speakers in order of appearance)",
                          code="reference_names_mismatch", param="known_speaker_names")
    if len(references) > len(names):
        raise OpenAIError(f"{len(references)} known_speaker_references[] but {len(names)} "
                          "known_speaker_names[]: each reference needs the name of the "
                          "person speaking in it", code="reference_names_mismatch",
                          param="known_speaker_names")
    if any(len(n) > 100 for n in names):
        raise OpenAIError("each known speaker name must be at most 100 characters",
                          code="invalid_value", param="known_speaker_names")


def decode_data_url(url: str, index: int) -> bytes:
    """The bytes of a ``data:<type>;base64,<data>`` URL (what OpenAI takes as a voice
    reference); OpenAIError ``reference_invalid`` for anything else."""
    match = _DATA_URL.match(url)
    problem = None
    if match is None:
        problem = "is not a base64 data URL (data:audio/wav;base64,...)"
    else:
        try:
            data = base64.b64decode("".join(url[match.end():].split()), validate=True)
        except (binascii.Error, ValueError):
            problem = "does not hold valid base64 data"
        else:
            if not data:
                problem = "is empty"
    if problem is not None:
        raise OpenAIError(f"known_speaker_references[{index}] {problem}; send each reference "
                          "as a data URL of a 2-10 s recording of one person",
                          code="reference_invalid", param="known_speaker_references")
    return data


def check_reference(path: Path, index: int, name: str) -> None:
    """A stored reference must be audio of 2-10 s (OpenAIError 400 otherwise)."""
    settings = current_app.extensions["diarq"].settings
    shown = f"known_speaker_references[{index}] ({name})"
    try:
        probe = probe_upload(path, max_seconds=settings.max_audio_seconds, filename=shown)
    except AudioError as exc:
        raise OpenAIError(f"{shown} is not a recording: {exc.message}",
                          code="reference_not_audio", param="known_speaker_references") from None
    if probe.duration is None or not REFERENCE_MIN_S <= probe.duration <= REFERENCE_MAX_S:
        length = f"{probe.duration:.1f} s" if probe.duration is not None else "of unknown length"
        raise OpenAIError(f"{shown} is {length}; a voice reference must be 2-10 s of one "
                          "person speaking", code="reference_duration",
                          param="known_speaker_references")


def job_options(req: TranscriptionRequest, asr_model: str | None, diarize: bool,
                references: list[SpeakerReference]) -> JobOptions:
    """The job's options; OpenAIError (400) naming the field for invalid ones."""
    raw = {**req.raw_options, "asr_model": asr_model, "diarize": diarize,
           "speaker_references": [r.model_dump() for r in references] or None,
           # names without references name speakers in order of appearance
           "participants": None if references else (req.names or None)}
    try:
        return parse_options(raw)
    except InvalidOptions as exc:
        where = exc.fields[0] if exc.fields else None
        raise OpenAIError(exc.message, code=exc.code,
                          param=_PARAM_OF.get(where, where) if where else None) from None


# --- the route -------------------------------------------------------------------------

@bp.post(PATH)
def create_transcription():  # noqa: ANN201
    diarq = current_app.extensions["diarq"]
    settings = diarq.settings
    storage: Storage = diarq.storage
    request.max_form_memory_size = REFERENCE_FIELD_BYTES
    request.max_form_parts = MAX_FORM_PARTS
    try:
        form = form_lists()
    except RequestEntityTooLarge:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if request.content_length is not None and limit and request.content_length > limit:
            raise
        raise OpenAIError(f"a form field is larger than {REFERENCE_FIELD_BYTES >> 20} MB, or "
                          f"the form has more than {MAX_FORM_PARTS} parts; voice references "
                          "are 2-10 s clips (a few hundred kB)",
                          code="reference_too_large", http_status=413,
                          param="known_speaker_references") from None
    if uploaded("file") is None:
        raise OpenAIError("no file: send the recording as the multipart field 'file'",
                          code="file_missing", param="file")
    req = read_request(form)
    choice = resolve_model(req.model, settings)
    diarize = (choice.diarize or req.response_format == "diarized_json" or bool(req.names)
               or bool(req.raw_options.get("multichannel")))
    clips = [decode_data_url(url, i) for i, url in enumerate(req.references)]
    temporary: list[Path] = []
    scratch = storage.scratch_dir() if clips else None  # this API machine's local disk
    try:
        references = []
        # names without references name speakers by order of appearance instead
        for i, data in enumerate(clips):
            name = req.names[i]
            path = scratch / f"reference-{i}"
            path.write_bytes(data)
            temporary.append(path)
            check_reference(path, i, name)
            references.append(SpeakerReference(name=name,
                                               sha256=hashlib.sha256(data).hexdigest()))
        options = job_options(req, choice.asr_model, diarize, references)
        intake = Intake(options, dedupe=settings.dedupe, webhook_url=None,
                        priority=PRIORITIES["normal"],
                        idempotency_key=scoped_idempotency_key(
                            request.headers.get("Idempotency-Key", "")))
        with waiter_slot(current_app, pool="openai", limit=max_waiters(settings)) as free:
            if not free:
                raise ApiError(f"{max_waiters(settings)} requests are already waiting for "
                               "transcriptions in this server process; retry in a few seconds "
                               "(operators: DIARQ_OPENAI_MAX_WAITERS, DIARQ_API_THREADS, "
                               "DIARQ_API_WORKERS)", code="too_many_waiters", http_status=429)
            # a retry of this same request (the SDK retries a 504) waits for the same job
            job, _ = create_job("file", intake, references=temporary, join_active=True)
            done = wait_for_job(settings, job.id, settings.openai_wait_s)
    finally:  # stored with the job when one was created
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return _answer(job.id, done, req)


def _answer(job_id: str, job: Job | None, req: TranscriptionRequest) -> Response:
    settings = current_app.extensions["diarq"].settings
    if job is None:
        raise OpenAIError(f"the transcription did not finish within "
                          f"{settings.openai_wait_s:g} s (DIARQ_OPENAI_WAIT_S); it goes on "
                          f"as job {job_id}: send the same request again to keep waiting for "
                          f"it, or poll GET /v1/jobs/{job_id}", code="transcription_timeout",
                          http_status=504, retry=True)
    if job.status == SUCCEEDED and job.deleted_at is None:
        with session_scope(settings) as session:
            data = result_data(session, job)
        if data is None:
            raise OpenAIError("the job succeeded but its result is missing; send the "
                              "request again", code="result_missing", http_status=500)
        body, content_type = render_openai(Result.from_dict(data), req.response_format,
                                           req.granularities)
        resp = jsonify(body) if isinstance(body, dict) else Response(body,
                                                                     content_type=content_type)
        resp.headers["X-Diarq-Job-Id"] = job.id
        return resp
    if job.error_code:
        status = failed_status(job.error_code)
        raise OpenAIError(job.error_message or job.error_code, code=job.error_code,
                          http_status=status, retry=status >= 500 and job.error_code in
                          ("internal_error", "worker_lost"))
    raise OpenAIError(f"job {job.id} was canceled (deleted) before it finished; send the "
                      "request again to start over", code="job_canceled", http_status=409,
                      retry=False)


def failed_status(code: str) -> int:
    """HTTP status for a job that failed with ``code``: the catalogue's where it has one
    (as 400 for 4xx: OpenAI's status for a bad request), 400 for bad input found by the
    worker, 500 for the rest."""
    entry = CATALOGUE.get(code)
    status = entry.status if entry is not None else None
    if status is None:
        bad_input = code.startswith(("audio_", "reference_")) and code != "audio_missing"
        return 400 if bad_input else 500
    return 400 if status in (415, 422) else status


# --- OpenAI's error shape on this route ------------------------------------------------

def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(status: int, code: str, message: str, param: str | None = None,
                 retry: bool | None = None) -> Response:
    status = 400 if status in (415, 422) else status  # OpenAI answers bad input with 400
    resp = jsonify({"error": {"message": redact(message), "type": _error_type(status),
                              "param": param, "code": code}})
    resp.status_code = status
    if retry is not None:
        # the SDKs obey this header over their own retry rules
        resp.headers["x-should-retry"] = "true" if retry else "false"
    if code == "too_many_waiters":
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp


def max_waiters(settings: Settings) -> int:
    """Requests of this route waiting at once in one API process."""
    return settings.openai_max_waiters or max(1, settings.api_threads - 1)


@bp.errorhandler(DiarqError)
def _diarq_error(exc: DiarqError) -> Response:
    return openai_error(exc.http_status, exc.code, exc.message,
                        param=getattr(exc, "param", None), retry=getattr(exc, "retry", None))


@bp.after_app_request
def _reshape_errors(resp: Response) -> Response:
    """Answers on this path that other code made (authentication, rate limits, 404/405,
    413 before the view ran) get OpenAI's error shape too."""
    if request.path.rstrip("/") != PATH or resp.status_code < 400 or not resp.is_json:
        return resp
    error = (resp.get_json(silent=True) or {}).get("error")
    if not isinstance(error, dict) or "type" in error:
        return resp
    new = openai_error(resp.status_code, str(error.get("code") or "http_error"),
                       str(error.get("message") or ""))
    for name in ("Retry-After", "WWW-Authenticate", "Allow"):
        if name in resp.headers:
            new.headers[name] = resp.headers[name]
    return new

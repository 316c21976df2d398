"""SQLAlchemy models: the database is the only source of truth for job state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Status vocabulary (DESIGN §2).
QUEUED, RUNNING, SUCCEEDED = "queued", "running", "succeeded"
FAILED, CANCELED = "failed", "canceled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
ACTIVE = (QUEUED, RUNNING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key, stored only as its SHA-256 digest (shared/apikeys.py); the prefix
    (``dq_`` + 6 characters) is kept in clear so operators can tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # signing secret for webhook payloads (HMAC-SHA256); not a credential for diarq
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    # operators' keys see the machines behind the service (worker names and hosts)
    operator: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                           server_default=false())


class Batch(Base):
    """Many recordings submitted together; counts and progress derive from its jobs."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    # entries of the upload that are not audio: [{"name": ..., "reason": ...}]
    rejected: Mapped[list[dict[str, str]]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key", name="uq_batches_idempotency"),
        Index("ix_batches_api_key_created", "api_key_id", "created_at"),
    )


class WebhookDelivery(Base):
    """One attempt to deliver a webhook: the delivery log shown with the job."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE")
    )
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("batches.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_deliveries_job", "job_id", "id"),
        Index("ix_webhook_deliveries_batch", "batch_id", "id"),
    )


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=QUEUED)
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    queue: Mapped[str] = mapped_column(String(64), nullable=False, default="cpu")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # the API key that created the job; any other key gets 404 for it (NULL: auth off)
    api_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("batches.id", ondelete="SET NULL"), index=True
    )
    # path of the recording inside a batch upload (display and results.zip names)
    source_name: Mapped[str | None] = mapped_column(String(1000))
    # broker priority: high=0, normal=5, low=9 (lower runs first)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=5, server_default="5")
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # sha256 of the canonical options JSON; with audio_sha256 it is the dedupe key
    options_sha256: Mapped[str | None] = mapped_column(String(64))
    # dedupe hit: this job's result is the result row of that job
    result_job_id: Mapped[str | None] = mapped_column(String(36))
    request_sha256: Mapped[str | None] = mapped_column(String(64))

    # the upload, stored under a generated name relative to the storage directory
    audio_path: Mapped[str | None] = mapped_column(String(500))
    audio_filename: Mapped[str | None] = mapped_column(String(500))
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    audio_bytes: Mapped[int | None] = mapped_column(BigInteger)
    audio_duration: Mapped[float | None] = mapped_column(Float)
    audio_codec: Mapped[str | None] = mapped_column(String(64))
    audio_sample_rate: Mapped[int | None] = mapped_column(Integer)
    audio_channels: Mapped[int | None] = mapped_column(Integer)
    # what GET /v1/jobs/{id}/audio serves, decided by the worker: a browser-playable copy
    # made when browsers cannot play the upload (NULL: the upload itself), its MIME type,
    # and the waveform peaks (worker/waveform.py), all storage keys. Dedupe copies name
    # the objects of the job they reuse; an object is deleted with the last live job
    # naming it (shared/job_files.py).
    playback_path: Mapped[str | None] = mapped_column(String(500))
    playback_type: Mapped[str | None] = mapped_column(String(100))
    waveform_path: Mapped[str | None] = mapped_column(String(500))
    # display names given with PATCH /v1/jobs/{id}/speakers ({"SPEAKER_00": "Anna"}):
    # per job, since dedupe copies share one result row
    speaker_names: Mapped[dict[str, str] | None] = mapped_column(JSON)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    # identifies the current attempt: every write a worker makes is conditional on it,
    # so a worker that lost the job (reaped, cancelled) cannot overwrite anything
    claim_token: Mapped[str | None] = mapped_column(String(36))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # retention (DIARQ_RETENTION_DAYS): when the reaper deleted the audio / the result
    audio_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_jobs_finished", "finished_at"),
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_dedupe", "audio_sha256", "options_sha256"),
        # every delete and retention looks for the jobs sharing its objects (dedupe
        # copies name their original's: shared/job_files.py)
        Index("ix_jobs_audio_path", "audio_path"),
        Index("ix_jobs_playback_path", "playback_path"),
        Index("ix_jobs_waveform_path", "waveform_path"),
    )


class WebSession(Base):
    """A signed-in browser (api/web): the cookie holds a random token, the row only its
    SHA-256, so a database dump signs no one in. Ends at ``expires_at``, at sign-out, or
    when its API key is revoked."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class JobResult(Base):
    """One result per job: the primary key makes a second write a conflict."""

    __tablename__ = "results"

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )


class SpeakerVoice(Base):
    """One diarized speaker's voice embedding (biometric data, SECURITY.md): kept with the
    job for identifying people across recordings, never in the result JSON, deleted with
    the job."""

    __tablename__ = "speaker_voices"

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    speaker: Mapped[str] = mapped_column(String(64), primary_key=True)  # SPEAKER_00...
    # the speaker-level embedding model: vectors of different models do not compare
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    vector: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # float32, little-endian
    # the speaker's talk time in the recording (how much voice the embedding had)
    seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )


# Worker states as the worker records them (shared/workers.py derives busy and lost).
WORKER_STARTING, WORKER_READY, WORKER_STOPPED = "starting", "ready", "stopped"


class Worker(Base):
    """One ``diarq worker`` process (its Celery node name), written by its main process:
    registered at start, heart-beating while it runs, ``ready`` once its pool processes
    loaded their models, ``stopped`` when it exits, with the code and (redacted) message
    of the error that stopped it. Whether it is busy comes from the running jobs' rows."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    queues: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    concurrency: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    profile: Mapped[str] = mapped_column(String(16), nullable=False)
    # what the pool processes loaded (the same description a result's `models` gives)
    models: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    device: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=WORKER_STARTING)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    heartbeat_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_workers_heartbeat", "heartbeat_at"),)


class Upload(Base):
    """A direct upload (POST /v1/uploads): a presigned URL for one object key, owned by
    one API key, used by at most one job (``job_id``, set in the job's transaction)."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    object_key: Mapped[str] = mapped_column(String(500), nullable=False)
    filename: Mapped[str | None] = mapped_column(String(1000))
    declared_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # the client's SHA-256 of the file: checked against the object, and what an
    # Idempotency-Key retry with new upload ids is recognised by
    declared_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (Index("ix_uploads_expires", "expires_at"),)

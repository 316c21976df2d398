"""The Celery app, configured from the same Settings object as the API.

Light on purpose: the API imports it to send tasks by name, so nothing here loads
torch or models. Model loading happens in worker.tasks after fork.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from celery import Celery
from kombu import Queue
from kombu.transport import redis as kombu_redis

from diarq.shared.settings import Settings, get_settings

TASK_NAME = "diarq.process_job"
WEBHOOK_TASK = "diarq.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"
QUEUES = ("gpu", "cpu", WEBHOOK_QUEUE)
# job priority names -> broker priority (Redis transport: lower number runs first)
PRIORITIES = {"high": 0, "normal": 5, "low": 9}


class _RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel builds a new redis-py client (~75 us: its response-callback
    table) for every publish, twice per submit with the task-sent event. A client holds
    no connection of its own (each command takes one from the channel's pool), so one
    per channel is reused; a new pool (after a reconnect) gets a new client."""

    _sync_client = None

    def _create_client(self, asynchronous: bool = False):  # noqa: ANN202 (redis client)
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`_RedisChannel` (``redis://`` brokers)."""

    Channel = _RedisChannel


def filesystem_broker_dir(broker_url: str) -> Path | None:
    """``filesystem:///abs/dir`` -> that directory (None for other brokers)."""
    if not broker_url.startswith("filesystem://"):
        return None
    path = urlparse(broker_url).path
    if not path or path == "/":
        raise ValueError("DIARQ_BROKER_URL=filesystem:///path/to/dir needs a directory")
    return Path(path)


def _broker(settings: Settings) -> tuple[str, dict]:
    options: dict = {}
    folder = filesystem_broker_dir(settings.broker_url)
    if folder is not None:
        # kombu's filesystem transport: messages are files; one folder in and out so the
        # API (producer) and worker (consumer) on the same machine meet there.
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
        return "filesystem://", options
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # an unacknowledged task is redelivered after this: keep it above the longest job
        options = {
            "visibility_timeout": settings.visibility_timeout_s,
            # one Redis list per priority step (key "<queue><sep><step>"); every BRPOP
            # lists step 0 of all queues first, so high runs before normal before low.
            # Queues themselves stay round-robin: webhooks never starve behind jobs.
            "priority_steps": list(range(10)),
            "sep": ":",
        }
        if settings.broker_key_prefix:
            options["global_keyprefix"] = settings.broker_key_prefix
    return settings.broker_url, options


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    url, transport_options = _broker(settings)
    app = Celery("diarq", broker=url, set_as_current=False)
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # the DB is the only source of truth: no result backend
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        # at-least-once: ack after the task ran; a killed worker's task is redelivered
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(q, routing_key=q) for q in QUEUES],
        task_default_queue=settings.job_queue,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # events let Flower (`celery -A diarq.worker.tasks flower`) show workers and tasks
        worker_send_task_events=True,
        task_send_sent_event=True,
        # publishing must not hang an API request when the broker is down: the row is
        # already committed as queued and the reaper enqueues it again later
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.5, "interval_max": 1},
        broker_connection_timeout=3,
    )
    if settings.broker_url.startswith("redis://"):
        # (rediss:// keeps kombu's own transport: it derives its TLS defaults from the name)
        app.conf.broker_transport = f"{__name__}:RedisTransport"
    if filesystem_broker_dir(settings.broker_url) is not None:
        # remote control (pidbox) needs fanout exchanges; not needed for one embedded worker
        app.conf.worker_enable_remote_control = False
    app.conf.diarq_settings = settings
    return app


def job_time_limits(settings: Settings, audio_seconds: float | None) -> tuple[float, float]:
    """(soft, hard) time limit of one job, from its audio duration."""
    soft = settings.job_time_limit_s(audio_seconds)
    return soft, soft + 60


def enqueue_job(app: Celery, settings: Settings, job_id: str, *, queue: str,
                audio_seconds: float | None, priority: int = PRIORITIES["normal"]) -> None:
    """Send ``diarq.process_job(job_id)``: ids only, never audio bytes."""
    soft, hard = job_time_limits(settings, audio_seconds)
    app.send_task(TASK_NAME, args=[job_id], queue=queue, routing_key=queue,
                  soft_time_limit=soft, time_limit=hard, priority=priority)


def enqueue_webhook(app: Celery, kind: str, target_id: str, event: str, attempt: int = 1,
                    countdown: float = 0.0) -> None:
    """Send ``diarq.deliver_webhook`` (kind "job" or "batch") to the webhooks queue."""
    app.send_task(WEBHOOK_TASK, args=[kind, target_id, event, attempt], queue=WEBHOOK_QUEUE,
                  routing_key=WEBHOOK_QUEUE, countdown=countdown or None,
                  priority=PRIORITIES["high"])

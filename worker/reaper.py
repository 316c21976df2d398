"""The reaper: runs as a thread in every worker's main process.

- ``running`` rows whose heartbeat is older than ``stale_after_s`` (worker killed,
  machine lost) go back to ``queued`` and are enqueued again, or fail with
  ``worker_lost`` once they used ``max_attempts``;
- ``queued`` rows are enqueued again when the broker holds fewer messages for their
  queue than there are queued rows (a broker restarted without persistence, a flushed
  or failed-over Redis, an enqueue that failed at submit): the oldest ones, as many as
  are missing, once they are ``lost_message_after_s`` old, or at once when the broker
  was seen restarting (Redis ``run_id`` changed since the last pass). A broker that
  cannot count (the filesystem transport) gets every row older than
  ``requeue_queued_after_s`` again instead;
- worker rows not heard of for ``worker_forget_after_s`` are deleted.

Several workers may run reapers at once: every change is a compare-and-set, and a
duplicate message is harmless (the task's claim skips it).
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from diarq.shared import jobs, workers
from diarq.shared.celery_app import enqueue_job
from diarq.shared.db import session_scope
from diarq.shared.orm import Job
from diarq.shared.settings import Settings
from diarq.shared.webhook_queue import notify_terminal

log = logging.getLogger(__name__)


def broker_waiting(app: Celery, queue: str) -> int | None:
    """Messages the broker holds for ``queue`` (every priority level), None when it
    cannot say (then old queued rows are re-sent, as a duplicate message is harmless)."""
    try:
        with app.connection_for_write() as conn:
            # a plain (not passive) declare: idempotent on these transports, and kombu's
            # passive check misses Redis lists under a global key prefix
            return int(conn.default_channel.queue_declare(queue=queue).message_count)
    except Exception:  # noqa: BLE001 - broker down or a transport that cannot count
        log.warning("reaper could not count the broker's messages for queue %s", queue)
        return None


def broker_identity(app: Celery) -> str | None:
    """The broker server's identity (Redis ``run_id``: new at every start), None when the
    transport has none or the broker cannot be reached."""
    try:
        with app.connection_for_write() as conn:
            client = getattr(conn.default_channel, "client", None)
            if client is None or not hasattr(client, "info"):
                return None
            return str(client.info("server").get("run_id") or "") or None
    except Exception:  # noqa: BLE001 - broker down: the next pass asks again
        return None


class BrokerWatch:
    """Tells whether the broker restarted since the last look (its identity changed)."""

    def __init__(self) -> None:
        self.identity: str | None = None

    def restarted(self, app: Celery) -> bool:
        seen = broker_identity(app)
        if seen is None:
            return False  # unreachable now: compared again once it answers
        changed = self.identity is not None and seen != self.identity
        self.identity = seen
        return changed


def reap_once(app: Celery, settings: Settings,
              watch: BrokerWatch | None = None) -> dict[str, list[str]]:
    """One pass; returns what it did (ids per action)."""
    restarted = watch.restarted(app) if watch is not None else False
    if restarted:
        log.warning("reaper: the broker restarted (new run_id); re-sending the queued jobs "
                    "whose messages it lost")
    with session_scope(settings) as session:
        requeued, failed = jobs.reap_stale_running(
            session, stale_after_s=settings.stale_after_s, max_attempts=settings.max_attempts
        )
        resent = jobs.reap_old_queued(session, older_than_s=settings.requeue_queued_after_s,
                                      waiting=lambda queue: broker_waiting(app, queue),
                                      lost_after_s=settings.lost_message_after_s,
                                      broker_restarted=restarted)
        workers.forget(session, older_than_s=settings.worker_forget_after_s)
        todo = {
            row.id: (row.queue, row.audio_duration, row.priority)
            for row in session.query(Job.id, Job.queue, Job.audio_duration,
                                     Job.priority).filter(
                Job.id.in_(requeued + resent)
            )
        }
    for job_id, (queue, duration, priority) in todo.items():
        enqueue_job(app, settings, job_id, queue=queue, audio_seconds=duration,
                    priority=priority)
    for job_id in failed:
        notify_terminal(app, settings, job_id)
    for job_id in requeued:
        log.warning("reaper requeued stale running job job_id=%s", job_id)
    for job_id in failed:
        log.warning("reaper failed job out of attempts job_id=%s code=%s", job_id,
                    jobs.WORKER_LOST_CODE)
    for job_id in resent:
        log.info("reaper re-enqueued queued job whose message was missing job_id=%s", job_id)
    return {"requeued": requeued, "failed": failed, "resent": resent}


class Reaper(threading.Thread):
    """reap_once, then the storage clean-up (worker/purge.py), every reaper interval."""

    def __init__(self, app: Celery, settings: Settings):
        from diarq.shared.storage_backend import open_storage

        super().__init__(name="diarq-reaper", daemon=True)
        self.app = app
        self.settings = settings
        self.storage = open_storage(settings)
        self.stopped = threading.Event()
        self.watch = BrokerWatch()

    def run(self) -> None:
        from diarq.worker.purge import purge_once

        self.watch.restarted(self.app)  # the broker as it is now: a later change is a restart
        while not self.stopped.wait(self.settings.reaper_interval_s):
            try:
                reap_once(self.app, self.settings, self.watch)
            except Exception:  # DB or broker down: try again next round
                log.warning("reaper pass failed", exc_info=True)
            try:
                purge_once(self.settings, self.storage)
            except Exception:  # the database is down: next round
                log.warning("storage clean-up pass failed", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()

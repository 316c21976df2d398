"""GET /metrics: Prometheus text exposition, public like /healthz, aggregates only.

The API and the workers are separate processes, so every figure is derived at scrape
time from shared state instead of in-process counters:
- ``diarq_jobs{status}``: row counts from the database;
- ``diarq_queue_depth{queue}``: Redis list lengths (all priority steps) of each queue;
  absent with the filesystem broker;
- ``diarq_stage_duration_seconds{stage}`` and ``diarq_real_time_factor`` histograms:
  built from the stored timings of the most recent succeeded jobs (RECENT_JOBS), so
  they describe recent work, not all-time totals;
- ``diarq_gpu_peak_memory_bytes``: histogram of the peak GPU memory (torch's allocator)
  of the same recent jobs that ran on a GPU (a worker resets the peak at each job start and
  releases cached memory at its end);
- ``diarq_workers{queue,state}``: registered workers by queue and state (starting,
  ready, busy, stopping, stopped, lost) from the ``workers`` table, any broker.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import func, select

from diarq.shared.celery_app import QUEUES
from diarq.shared.db import session_scope
from diarq.shared.orm import STATUSES, SUCCEEDED, Job, JobResult
from diarq.shared.workers import STATES, by_queue, load_workers

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)
RECENT_JOBS = 500
STAGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RTF_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
GPU_MEMORY_BUCKETS = tuple(gib * (1 << 30) for gib in (0.5, 1, 2, 4, 8, 16, 24, 40, 80, 140))


@bp.get("/metrics")
def metrics() -> Response:
    settings = current_app.extensions["diarq"].settings
    registry = CollectorRegistry()
    with session_scope(settings) as session:
        _job_counts(session, registry)
        _recent_timings(session, registry)
        _workers(session, settings, registry)
    _queue_depths(settings, registry)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _job_counts(session: Any, registry: CollectorRegistry) -> None:
    gauge = Gauge("diarq_jobs", "Jobs by status (not deleted)", ["status"], registry=registry)
    counts = dict(session.execute(select(Job.status, func.count())
                                  .where(Job.deleted_at.is_(None))
                                  .group_by(Job.status)).all())
    for status in STATUSES:
        gauge.labels(status).set(counts.get(status, 0))


def _recent_timings(session: Any, registry: CollectorRegistry) -> None:
    stages = Histogram("diarq_stage_duration_seconds",
                       f"Pipeline stage durations of the last {RECENT_JOBS} succeeded jobs",
                       ["stage"], buckets=STAGE_BUCKETS, registry=registry)
    rtf = Histogram("diarq_real_time_factor",
                    f"Processing time / audio duration of the last {RECENT_JOBS} succeeded "
                    "jobs", buckets=RTF_BUCKETS, registry=registry)
    gpu = Histogram("diarq_gpu_peak_memory_bytes",
                    f"Peak GPU memory of the last {RECENT_JOBS} succeeded jobs that ran on a "
                    "GPU", buckets=GPU_MEMORY_BUCKETS, registry=registry)
    rows = session.execute(
        select(JobResult.data, Job.audio_duration).join(Job, Job.id == JobResult.job_id)
        .where(Job.status == SUCCEEDED, Job.result_job_id.is_(None))
        .order_by(Job.finished_at.desc()).limit(RECENT_JOBS)).all()
    for data, duration in rows:
        timings = (data or {}).get("timings") or {}
        for stage, seconds in timings.items():
            if stage != "total" and isinstance(seconds, int | float):
                stages.labels(stage).observe(seconds)
        total = timings.get("total")
        if isinstance(total, int | float) and duration:
            rtf.observe(total / duration)
        peak = (((data or {}).get("models") or {}).get("gpu") or {}).get("peak_memory_bytes")
        if isinstance(peak, int | float):
            gpu.observe(peak)


def _queue_depths(settings: Any, registry: CollectorRegistry) -> None:
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return
    import redis

    gauge = Gauge("diarq_queue_depth", "Messages waiting per queue (all priorities)",
                  ["queue"], registry=registry)
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=1,
                                  socket_connect_timeout=1)
    prefix = settings.broker_key_prefix
    try:
        for queue in QUEUES:
            # kombu keeps one list per priority step: "<queue>" (0) and "<queue>:<n>"
            keys = [f"{prefix}{queue}"] + [f"{prefix}{queue}:{n}" for n in range(1, 10)]
            with client.pipeline() as pipe:
                for key in keys:
                    pipe.llen(key)
                gauge.labels(queue).set(sum(pipe.execute()))
    except redis.RedisError:
        log.warning("metrics: broker unreachable, queue depth left out")
    finally:
        client.close()


def _workers(session: Any, settings: Any, registry: CollectorRegistry) -> None:
    gauge = Gauge("diarq_workers", "Registered workers by queue and state", ["queue", "state"],
                  registry=registry)
    views = load_workers(session, stale_after_s=settings.stale_after_s)
    for queue, group in by_queue(views, [settings.job_queue]).items():
        for state in STATES:
            gauge.labels(queue, state).set(group.count(state))

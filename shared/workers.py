"""The worker registry (``workers`` table) and what it tells about a queued job.

Writes (the worker's main process, worker/presence.py): register at start, heartbeat,
``ready`` once its pool processes loaded their models, the error that stops it,
``stopped`` at exit. Reads (API, reaper): each worker's state as clients see it, per
queue, and why a queued job waits, derived when read from these rows, the running
jobs' rows and the queue itself (no write per job):

- ``busy``: as many running jobs carry the worker's name (``<name>:<pid>``) as it has
  pool processes;
- ``lost``: no heartbeat for ``stale_after_s`` although it never said it stopped
  (SIGKILL, machine gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from diarq.shared.jobs import as_utc
from diarq.shared.orm import (
    QUEUED,
    RUNNING,
    WORKER_READY,
    WORKER_STARTING,
    WORKER_STOPPED,
    Job,
    Worker,
    utcnow,
)
from diarq.shared.redact import redact
from diarq.shared.serialize import iso, opaque_name

# states as shown (API, metrics); the first three are usable or about to be
STARTING, READY, BUSY = WORKER_STARTING, WORKER_READY, "busy"
STOPPING, STOPPED, LOST = "stopping", WORKER_STOPPED, "lost"
STATES = (STARTING, READY, BUSY, STOPPING, STOPPED, LOST)
USABLE = (READY, BUSY)

# why a queued job waits (shared/error_codes.py has each with what to do)
NO_WORKER_CODE = "no_worker"
WORKERS_UNUSABLE_CODE = "workers_unusable"
WORKERS_STARTING_CODE = "workers_starting"
QUEUE_BUSY_CODE = "queue_busy"
DISPATCHING_CODE = "dispatching"
# a worker whose heartbeat stopped without a word (shown as its error)
WORKER_UNRESPONSIVE_CODE = "worker_unresponsive"
# at most this many rows are read (newest heartbeat first): a site restarting broken
# workers in a loop keeps one row per start until the reaper forgets old ones
MAX_ROWS = 500


# --- writes (worker main process) ----------------------------------------------------

def register(session: Session, *, name: str, host: str, pid: int, queues: Sequence[str],
             concurrency: int, profile: str) -> None:
    """A worker starts: a fresh row (a name used before, e.g. a fixed --hostname,
    starts over)."""
    now = utcnow()
    session.execute(delete(Worker).where(Worker.name == name))
    session.add(Worker(name=name, host=host, pid=pid, queues=list(queues),
                       concurrency=concurrency, profile=profile, state=WORKER_STARTING,
                       started_at=now, heartbeat_at=now))
    session.commit()


def heartbeat(session: Session, name: str) -> bool:
    """Refresh the heartbeat; False when the row is gone (forgotten, or the name taken
    over by a newer start)."""
    res = session.execute(update(Worker).where(Worker.name == name, Worker.state !=
                                               WORKER_STOPPED)
                          .values(heartbeat_at=utcnow())
                          .execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def mark_ready(session: Session, name: str, *, models: dict[str, Any] | None,
               device: str | None) -> None:
    """A pool process loaded its models: the worker can run jobs."""
    session.execute(update(Worker).where(Worker.name == name, Worker.state == WORKER_STARTING,
                                         Worker.error_code.is_(None))
                    .values(state=WORKER_READY, models=models, device=device,
                            heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False))
    session.commit()


def mark_failed(session: Session, name: str, code: str, message: str) -> None:
    """A pool process could not load its models: the worker cannot run jobs and stops.
    The first error is kept (the one that stopped it)."""
    session.execute(update(Worker).where(Worker.name == name, Worker.error_code.is_(None))
                    .values(error_code=code, error_message=redact(message),
                            heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False))
    session.commit()


def mark_stopped(session: Session, name: str) -> None:
    """The worker exits (its error, if any, stays visible)."""
    now = utcnow()
    session.execute(update(Worker).where(Worker.name == name)
                    .values(state=WORKER_STOPPED, stopped_at=now, heartbeat_at=now)
                    .execution_options(synchronize_session=False))
    session.commit()


def forget(session: Session, *, older_than_s: float) -> int:
    """Delete rows of workers not heard of for ``older_than_s`` (reaper)."""
    res = session.execute(delete(Worker).where(
        Worker.heartbeat_at < utcnow() - timedelta(seconds=older_than_s)))
    session.commit()
    return res.rowcount or 0


# --- reads ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerView:
    """A worker as clients see it: state derived, hostnames still inside (``public``)."""

    name: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    profile: str
    models: dict[str, Any] | None
    device: str | None
    state: str
    running: int
    error_code: str | None
    error_message: str | None
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None

    @property
    def alive(self) -> bool:
        return self.state not in (STOPPED, LOST)

    @property
    def usable(self) -> bool:
        return self.state in USABLE

    @property
    def last_seen(self) -> datetime:
        return self.stopped_at or self.heartbeat_at

    def public(self, *, show_hosts: bool) -> dict[str, Any]:
        """The JSON of GET /v1/workers; without ``show_hosts`` the name is an opaque
        id and the host is left out (SECURITY.md)."""
        error = None
        if self.error_code:
            error = {"code": self.error_code, "message": self.error_message or ""}
        return {
            "id": self.name if show_hosts else opaque_name(self.name),
            "host": self.host if show_hosts else None,
            "queues": list(self.queues),
            "state": self.state,
            "alive": self.alive,
            "concurrency": self.concurrency,
            "running": self.running,
            "profile": self.profile,
            "device": self.device,
            "models": self.models,
            "error": error,
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "stopped_at": iso(self.stopped_at),
        }


def derive_state(row: Worker, running: int, now: datetime, stale_after_s: float) -> str:
    if row.state == WORKER_STOPPED:
        return STOPPED
    if now - as_utc(row.heartbeat_at) > timedelta(seconds=stale_after_s):
        return LOST
    if row.error_code:
        return STOPPING  # its models failed: it is on its way out
    if row.state == WORKER_STARTING:
        return STARTING
    return BUSY if running >= max(1, row.concurrency) else READY


def _running_by_worker(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (worker,) in session.execute(select(Job.worker).where(Job.status == RUNNING,
                                                               Job.worker.is_not(None))):
        name = worker.rsplit(":", 1)[0]  # rows record "<worker name>:<pool pid>"
        counts[name] = counts.get(name, 0) + 1
    return counts


def load_workers(session: Session, *, stale_after_s: float,
                 now: datetime | None = None) -> list[WorkerView]:
    """Every registered worker (newest heartbeat first, at most MAX_ROWS)."""
    now = now or utcnow()
    running = _running_by_worker(session)
    rows = session.scalars(select(Worker).order_by(Worker.heartbeat_at.desc(), Worker.name)
                           .limit(MAX_ROWS)).all()
    views = []
    for row in rows:
        state = derive_state(row, running.get(row.name, 0), now, stale_after_s)
        code, message = row.error_code, row.error_message
        if state == LOST and code is None:
            code = WORKER_UNRESPONSIVE_CODE
            message = (f"no heartbeat since {as_utc(row.heartbeat_at):%Y-%m-%d %H:%M:%S} UTC "
                       "and no word that it stopped: it was killed or its machine is "
                       "unreachable; operators: look at that machine and start the worker "
                       "again")
        views.append(WorkerView(
            name=row.name, host=row.host, pid=row.pid, queues=tuple(row.queues or ()),
            concurrency=row.concurrency, profile=row.profile, models=row.models,
            device=row.device, state=state, running=running.get(row.name, 0),
            error_code=code, error_message=message, started_at=as_utc(row.started_at),
            heartbeat_at=as_utc(row.heartbeat_at), stopped_at=as_utc(row.stopped_at)))
    return views


@dataclass(frozen=True)
class QueueWorkers:
    """The workers of one queue, summed up (GET /v1/workers, /readyz, metrics)."""

    queue: str
    workers: tuple[WorkerView, ...]

    def count(self, *states: str) -> int:
        return sum(1 for w in self.workers if w.state in states)

    @property
    def usable(self) -> int:
        return self.count(*USABLE)

    @property
    def latest_error(self) -> WorkerView | None:
        """The most recently seen worker when it could not run jobs (its error is what
        the queue's jobs wait for), else None."""
        if not self.workers:
            return None
        latest = max(self.workers, key=lambda w: w.last_seen)
        # a worker that went silent (killed) said nothing about being unable: none is alive
        real = latest.error_code not in (None, WORKER_UNRESPONSIVE_CODE)
        return latest if real and not latest.usable else None

    def summary(self) -> dict[str, Any]:
        error = self.latest_error
        return {
            "alive": sum(1 for w in self.workers if w.alive),
            "usable": self.usable,
            "states": {state: self.count(state) for state in STATES},
            "error": ({"code": error.error_code, "message": error.error_message or ""}
                      if error is not None and self.usable == 0 else None),
        }


def by_queue(views: Iterable[WorkerView], queues: Iterable[str] = ()) -> dict[str, QueueWorkers]:
    """Workers grouped by the queues they consume (``queues``: always listed)."""
    grouped: dict[str, list[WorkerView]] = {q: [] for q in queues}
    for view in views:
        for queue in view.queues:
            grouped.setdefault(queue, []).append(view)
    return {q: QueueWorkers(q, tuple(ws)) for q, ws in grouped.items()}


def waiting_reason(queue: QueueWorkers, *, position: int, since: datetime,
                   other_queues: Sequence[str] = ()) -> dict[str, Any]:
    """Why a queued job of ``queue`` waits: ``{code, message, since}`` (+ ``position`` in
    its queue, 1 = next, and the workers' ``error`` for workers_unusable). Never names a
    worker or host: every key may read it."""
    q = queue.queue
    ahead = position - 1
    where = f"position {position} in queue {q} ({ahead} job{'s' if ahead != 1 else ''} ahead)"
    usable = [w for w in queue.workers if w.usable]
    out: dict[str, Any]
    if usable:
        busy = all(w.state == BUSY for w in usable)
        n = len(usable)
        if busy:
            out = {"code": QUEUE_BUSY_CODE,
                   "message": f"{'all ' if n > 1 else ''}{n} worker{'s' if n > 1 else ''} of "
                              f"queue {q} {'are' if n > 1 else 'is'} busy; {where}"}
        else:
            out = {"code": DISPATCHING_CODE,
                   "message": f"a worker of queue {q} is free; the job starts in a moment "
                              f"({where})"}
        return {**out, "since": iso(since), "position": position}
    starting = [w for w in queue.workers if w.state == STARTING]
    error = queue.latest_error
    if starting:
        out = {"code": WORKERS_STARTING_CODE,
               "message": f"{len(starting)} worker{'s' if len(starting) > 1 else ''} of queue "
                          f"{q} {'are' if len(starting) > 1 else 'is'} loading models; the job "
                          f"starts once one is ready ({where})"}
        since = max(since, min(w.started_at for w in starting))
    elif error is not None:
        out = {"code": WORKERS_UNUSABLE_CODE,
               "message": f"the workers of queue {q} cannot run jobs: "
                          f"[{error.error_code}] {error.error_message or ''} The job stays "
                          "queued and starts when a worker that can run it is up.",
               "error": {"code": error.error_code, "message": error.error_message or ""}}
        since = max(since, error.last_seen)
    else:
        others = f"; workers are up for: {', '.join(other_queues)}" if other_queues else ""
        seen = [w.last_seen for w in queue.workers]
        last = f"; the last one was seen {max(seen):%Y-%m-%d %H:%M:%S} UTC" if seen else ""
        out = {"code": NO_WORKER_CODE,
               "message": f"no worker is running for queue {q}{last}{others}; the job starts "
                          f"when one is (operators: `diarq worker --queues {q}`)"}
        if seen:
            since = max(since, max(seen))
    return {**out, "since": iso(since), "position": position}


def queue_position(session: Session, job: Job) -> int:
    """1 + the queued jobs of the same queue that go first (priority, then time sent)."""
    sent = job.enqueued_at or job.created_at
    ahead = session.scalar(select(func.count()).select_from(Job).where(
        Job.status == QUEUED, Job.deleted_at.is_(None), Job.queue == job.queue,
        Job.id != job.id,
        or_(Job.priority < job.priority,
            and_(Job.priority == job.priority,
                 or_(Job.enqueued_at < sent, and_(Job.enqueued_at == sent, Job.id < job.id))))))
    return 1 + int(ahead or 0)


def waiting_for(session: Session, jobs: Sequence[Job], *,
                stale_after_s: float) -> dict[str, dict[str, Any]]:
    """``waiting`` of each queued job among ``jobs`` (by id); the workers are read once."""
    queued = [j for j in jobs if j.status == QUEUED and j.deleted_at is None]
    if not queued:
        return {}
    from diarq.shared.celery_app import WEBHOOK_QUEUE

    grouped = by_queue(load_workers(session, stale_after_s=stale_after_s),
                       {j.queue for j in queued})
    out = {}
    for job in queued:
        # every worker also serves the webhooks queue: not worth naming
        others = sorted(q for q, g in grouped.items()
                        if q not in (job.queue, WEBHOOK_QUEUE) and g.usable)
        since = as_utc(job.enqueued_at or job.created_at)
        out[job.id] = waiting_reason(grouped[job.queue], position=queue_position(session, job),
                                     since=since, other_queues=others)
    return out

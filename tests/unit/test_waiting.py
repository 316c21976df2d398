"""Why a queued job waits, and each worker's state as shown: derived from worker rows
and running jobs (shared/workers.py), no service needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from diarq.shared import workers as w
from diarq.shared.orm import Worker

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOST = "gpu-box-7.internal"


def _row(name: str = "diarq@gpu-box-7-1", *, state: str = "ready", age_s: float = 1,
         error: tuple[str, str] | None = None, concurrency: int = 1) -> Worker:
    return Worker(name=name, host=HOST, pid=1, queues=["cpu", "webhooks"],
                  concurrency=concurrency, profile="hub", state=state,
                  error_code=error[0] if error else None,
                  error_message=error[1] if error else None,
                  started_at=NOW - timedelta(seconds=600),
                  heartbeat_at=NOW - timedelta(seconds=age_s),
                  stopped_at=NOW - timedelta(seconds=age_s) if state == "stopped" else None)


def _view(row: Worker, running: int = 0) -> w.WorkerView:
    state = w.derive_state(row, running, NOW, stale_after_s=60)
    return w.WorkerView(name=row.name, host=row.host, pid=row.pid, queues=tuple(row.queues),
                        concurrency=row.concurrency, profile=row.profile, models=None,
                        device=None, state=state, running=running, error_code=row.error_code,
                        error_message=row.error_message, started_at=row.started_at,
                        heartbeat_at=row.heartbeat_at, stopped_at=row.stopped_at)


def _waiting(*views: w.WorkerView, position: int = 1) -> dict:
    queue = w.by_queue(views, ["cpu"])["cpu"]
    return w.waiting_reason(queue, position=position, since=NOW - timedelta(seconds=900))


@pytest.mark.parametrize("row,running,state", [
    (_row(state="starting"), 0, "starting"),
    (_row(), 0, "ready"),
    (_row(), 1, "busy"),
    (_row(concurrency=2), 1, "ready"),
    (_row(error=("hub_unreachable", "...")), 0, "stopping"),
    (_row(state="stopped"), 0, "stopped"),
    (_row(age_s=61), 0, "lost"),
    (_row(state="stopped", age_s=3600), 0, "stopped"),
])
def test_worker_state_derived_from_row_heartbeat_and_running_jobs(row, running, state):
    assert w.derive_state(row, running, NOW, stale_after_s=60) == state


def test_no_worker_at_all():
    got = _waiting()
    assert got["code"] == "no_worker" and got["position"] == 1
    assert "diarq worker --queues cpu" in got["message"]
    assert got["since"] == "2026-12-02T11:45:00Z"


def test_worker_stopped_cleanly_or_killed_is_no_worker():
    assert _waiting(_view(_row(state="stopped", age_s=30)))["code"] == "no_worker"
    killed = _waiting(_view(_row(age_s=120)))
    assert killed["code"] == "no_worker" and "last one was seen" in killed["message"]


def test_workers_unusable_carries_their_error():
    message = ("the Hugging Face hub cannot be reached; check the network, or use a local "
               "model directory or DIARQ_PROFILE=offline")
    stopped = _view(_row(state="stopped", age_s=30, error=("hub_unreachable", message)))
    got = _waiting(stopped, position=3)
    assert got["code"] == "workers_unusable"
    assert got["error"] == {"code": "hub_unreachable", "message": message}
    assert "[hub_unreachable]" in got["message"] and got["position"] == 3
    # since: when the worker stopped (after the job was queued)
    assert got["since"] == "2026-12-02T11:59:30Z"


def test_a_later_healthy_stop_hides_an_old_error():
    old = _view(_row("a", state="stopped", age_s=3000, error=("token_invalid", "x")))
    fixed = _view(_row("b", state="stopped", age_s=30))
    assert _waiting(old, fixed)["code"] == "no_worker"


def test_starting_workers():
    got = _waiting(_view(_row(state="starting")))
    assert got["code"] == "workers_starting" and "loading models" in got["message"]


@pytest.mark.parametrize("running,code", [(1, "queue_busy"), (0, "dispatching")])
def test_alive_workers_busy_or_free(running, code):
    got = _waiting(_view(_row(), running=running), position=4)
    assert got["code"] == code and got["position"] == 4
    assert "position 4 in queue cpu (3 jobs ahead)" in got["message"]


def test_one_usable_worker_is_enough_even_if_another_failed():
    broken = _view(_row("a", state="stopped", error=("token_invalid", "rejected")))
    busy = _view(_row("b"), running=1)
    assert _waiting(broken, busy)["code"] == "queue_busy"


def test_no_host_or_worker_name_in_any_reason():
    cases = [(), (_view(_row()),), (_view(_row(), running=1),),
             (_view(_row(state="starting")),),
             (_view(_row(state="stopped", error=("model_access_denied", "accept it")),),),
             (_view(_row(age_s=120)),)]
    for views in cases:
        text = str(_waiting(*views))
        assert HOST not in text and "gpu-box" not in text, text


def test_public_view_hides_names_and_hosts_from_other_keys():
    view = _view(_row())
    shown = view.public(show_hosts=False)
    assert shown["host"] is None and shown["id"].startswith("w-")
    assert "gpu-box" not in str(shown)
    assert view.public(show_hosts=True)["host"] == HOST
    assert view.public(show_hosts=True)["id"] == "diarq@gpu-box-7-1"
    # stable: the same worker is the same id on every read
    assert _view(_row()).public(show_hosts=False)["id"] == shown["id"]


def test_queue_summary_counts_states_and_names_the_error():
    views = [_view(_row("a", state="stopped", age_s=5, error=("token_invalid", "rejected"))),
             _view(_row("b", state="stopped", age_s=50))]
    summary = w.by_queue(views, ["cpu"])["cpu"].summary()
    assert summary["alive"] == 0 and summary["usable"] == 0
    assert summary["states"]["stopped"] == 2
    assert summary["error"] == {"code": "token_invalid", "message": "rejected"}
    assert w.by_queue([], ["gpu"])["gpu"].summary()["states"] == dict.fromkeys(w.STATES, 0)

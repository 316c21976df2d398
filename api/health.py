"""/healthz (liveness), /readyz (DB, broker and storage usable; the workers per queue as
a check of their own that does not make the API unready), /openapi.json."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from diarq.shared.db import check_database, session_scope
from diarq.shared.settings import Settings
from diarq.shared.workers import (
    NO_WORKER_CODE,
    STARTING,
    WORKERS_STARTING_CODE,
    WORKERS_UNUSABLE_CODE,
    by_queue,
    load_workers,
)

bp = Blueprint("health", __name__)
SPEC_PATH = Path(__file__).with_name("openapi.json")


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    diarq = current_app.extensions["diarq"]
    checks: dict[str, str] = {}
    try:
        check_database(diarq.settings)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    try:
        with diarq.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable ({type(exc).__name__})"
    from diarq.shared.storage import StorageUnavailable

    try:
        diarq.storage.check()  # local: the directory is writable; S3: HEAD bucket
        checks["storage"] = "ok"
    except StorageUnavailable:
        checks["storage"] = "unavailable (see the API log)"
    ready = all(v == "ok" for v in checks.values())
    # reported, never a reason to take the API out of a load balancer: it still accepts
    # jobs, and they say why they wait
    checks["workers"], workers = "unknown (database unreachable)", {}
    if checks["database"] == "ok":
        try:
            checks["workers"], workers = _workers_check(diarq.settings)
        except Exception as exc:  # noqa: BLE001 - a probe answers, whatever happens
            checks["workers"] = f"unknown ({type(exc).__name__})"
    if not ready:
        failing = ", ".join(k for k, v in checks.items() if v != "ok" and k != "workers")
        resp = jsonify({"error": {"code": "not_ready",
                                  "message": f"not ready: {failing} unreachable; check "
                                             "DIARQ_DATABASE_URL / DIARQ_BROKER_URL / "
                                             "DIARQ_STORAGE_URL"},
                        "checks": checks, "workers": workers})
        resp.status_code = 503
        return resp
    return jsonify({"status": "ready", "checks": checks, "workers": workers})


def _workers_check(settings: Settings) -> tuple[str, dict[str, Any]]:
    """("ok" or what is wrong with the queue jobs go to, per-queue summaries). Public:
    counts and error codes only, no names, hosts or messages."""
    with session_scope(settings) as session:
        views = load_workers(session, stale_after_s=settings.stale_after_s)
    queues = by_queue(views, [settings.job_queue])
    summary = {}
    for name, group in sorted(queues.items()):
        info = group.summary()
        summary[name] = {"usable": info["usable"], "alive": info["alive"],
                         "states": info["states"],
                         "error_code": info["error"]["code"] if info["error"] else None}
    jobs_queue = queues[settings.job_queue]
    if jobs_queue.usable:
        return "ok", summary
    error = jobs_queue.latest_error
    if error is not None:
        return f"{settings.job_queue}: {WORKERS_UNUSABLE_CODE} ({error.error_code})", summary
    if jobs_queue.count(STARTING):
        return f"{settings.job_queue}: {WORKERS_STARTING_CODE}", summary
    return f"{settings.job_queue}: {NO_WORKER_CODE}", summary


@lru_cache(maxsize=1)
def _spec_text() -> str:
    return json.dumps(json.loads(SPEC_PATH.read_text()), indent=1)


@bp.get("/openapi.json")
def openapi():  # noqa: ANN201
    return Response(_spec_text(), content_type="application/json")

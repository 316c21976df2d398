"""/healthz (liveness), /readyz (DB, broker and storage usable), /openapi.json."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify

from diarq.shared.db import check_database

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
    if not ready:
        failing = ", ".join(k for k, v in checks.items() if v != "ok")
        resp = jsonify({"error": {"code": "not_ready",
                                  "message": f"not ready: {failing} unreachable; check "
                                             "DIARQ_DATABASE_URL / DIARQ_BROKER_URL / "
                                             "DIARQ_STORAGE_URL"},
                        "checks": checks})
        resp.status_code = 503
        return resp
    return jsonify({"status": "ready", "checks": checks})


@lru_cache(maxsize=1)
def _spec_text() -> str:
    return json.dumps(json.loads(SPEC_PATH.read_text()), indent=1)


@bp.get("/openapi.json")
def openapi():  # noqa: ANN201
    return Response(_spec_text(), content_type="application/json")

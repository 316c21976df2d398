"""GET /v1/workers: the workers registered in the database, by queue (state, profile,
models, device, heartbeat, the error that stopped them). Worker names and hosts only
for operators' keys (and with auth off); other keys see an opaque id per worker."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from diarq.api.auth import is_operator
from diarq.shared.db import session_scope
from diarq.shared.workers import by_queue, load_workers

bp = Blueprint("workers", __name__, url_prefix="/v1/workers")


@bp.get("")
def list_workers():  # noqa: ANN201
    settings = current_app.extensions["diarq"].settings
    with session_scope(settings) as session:
        views = load_workers(session, stale_after_s=settings.stale_after_s)
    show = is_operator()
    queues = by_queue(views, [settings.job_queue])
    return jsonify({
        "queues": {name: group.summary() for name, group in sorted(queues.items())},
        "workers": [view.public(show_hosts=show) for view in views],
    })

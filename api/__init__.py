"""Flask API: app factory ``create_app(config=None)`` and its blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask

from api.errors import register_error_handlers
from api.upload import UploadRequest, discard_unclaimed_uploads
from shared.logging import setup_logging
from shared.settings import Settings, get_settings


class Diarq:
    """Per-app services (settings, storage, Celery producer), reached via ``current_app``."""

    def __init__(self, settings: Settings):
        from shared.storage import Storage
        from worker.celery_app import make_celery

        self.settings = settings
        # one per app: its root is resolved once, not on every request
        self.storage = Storage(settings)
        self.celery = make_celery(settings)

    def init_app(self, app: Flask) -> None:
        app.extensions["diarq"] = self


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` may hold ``DIARQ_SETTINGS`` (a Settings object) and
    any Flask config keys; settings otherwise come from the environment."""
    config = dict(config or {})
    settings: Settings = config.pop("DIARQ_SETTINGS", None) or get_settings()
    setup_logging(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.request_class = UploadRequest
    # multipart overhead on top of the file itself; the file limit is enforced exactly
    # while streaming (api/upload.py)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1024 * 1024
    app.json.sort_keys = False
    app.config.update(config)
    Diarq(settings).init_app(app)
    from api.auth import init_auth

    init_auth(app)  # refuses DIARQ_AUTH=off on a public address; Bearer keys otherwise

    from api.batches import bp as batches_bp
    from api.compat import bp as compat_bp
    from api.health import bp as health_bp
    from api.jobs import bp as jobs_bp
    from api.metrics import bp as metrics_bp
    from api.webhook_secret import bp as webhook_secret_bp

    app.register_blueprint(jobs_bp)
    app.register_blueprint(batches_bp)
    app.register_blueprint(compat_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(webhook_secret_bp)
    register_error_handlers(app)
    app.teardown_request(discard_unclaimed_uploads)
    _preload_submit_path()
    return app


def _preload_submit_path() -> None:
    """Import what a submit imports lazily (PyAV and worker.audio for the probe, the
    webhook modules) with the app, so that no client's first upload waits for it (about
    0.2 s per gunicorn process)."""
    import contextlib

    import shared.webhooks  # noqa: F401
    import worker.audio  # noqa: F401
    import worker.webhook_delivery  # noqa: F401

    with contextlib.suppress(ImportError):
        import av  # noqa: F401

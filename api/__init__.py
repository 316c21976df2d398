"""Flask API: app factory ``create_app(config=None)`` and its blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask

from diarq.api.errors import register_error_handlers
from diarq.api.upload import UploadRequest, discard_unclaimed_uploads
from diarq.shared.logging import setup_logging
from diarq.shared.settings import Settings, get_settings


class Diarq:
    """Per-app services (settings, storage, Celery producer), reached via ``current_app``."""

    def __init__(self, settings: Settings):
        from diarq.shared.celery_app import make_celery
        from diarq.shared.storage_backend import open_storage

        self.settings = settings
        # one per app: the local root is resolved once, the S3 client (its connection
        # pool, its credentials from the AWS chain) made once, not on every request
        self.storage = open_storage(settings)
        self.celery = make_celery(settings)
        # (pid, semaphore) of the requests allowed to wait for their job (api/result_wait.py)
        self.waiter_slots: tuple[int, Any] | None = None

    def init_app(self, app: Flask) -> None:
        app.extensions["diarq"] = self


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` may hold ``DIARQ_SETTINGS`` (a Settings object) and
    any Flask config keys; settings otherwise come from the environment."""
    config = dict(config or {})
    settings: Settings = config.pop("DIARQ_SETTINGS", None) or get_settings()
    setup_logging(settings.log_level, settings.log_format)

    # an explicit instance path: Flask's search for it cannot walk the diarq namespace
    # package under an editable install (and the app keeps no instance files)
    # and no app-wide /static: the web app's files are its blueprint's (api/web/static)
    app = Flask(__name__, instance_path=str(settings.data_dir / "instance"), static_folder=None)
    app.request_class = UploadRequest
    # multipart overhead on top of the file itself; the file limit is enforced exactly
    # while streaming (api/upload.py)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1024 * 1024
    app.json.sort_keys = False
    app.config.update(config)
    Diarq(settings).init_app(app)
    from diarq.api.auth import init_auth

    init_auth(app)  # refuses DIARQ_AUTH=off on a public address; Bearer keys otherwise

    from diarq.api.batches import bp as batches_bp
    from diarq.api.compat import bp as compat_bp
    from diarq.api.health import bp as health_bp
    from diarq.api.job_media import bp as job_media_bp
    from diarq.api.jobs import bp as jobs_bp
    from diarq.api.metrics import bp as metrics_bp
    from diarq.api.openai_compat import bp as openai_bp
    from diarq.api.security_headers import init_security_headers
    from diarq.api.uploads import bp as uploads_bp
    from diarq.api.web import bp as web_bp
    from diarq.api.webhook_secret import bp as webhook_secret_bp
    from diarq.api.workers import bp as workers_bp

    app.register_blueprint(jobs_bp)
    app.register_blueprint(job_media_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(batches_bp)
    app.register_blueprint(uploads_bp)
    app.register_blueprint(compat_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(openai_bp)
    app.register_blueprint(webhook_secret_bp)
    app.register_blueprint(workers_bp)
    register_error_handlers(app)
    init_security_headers(app)
    app.teardown_request(discard_unclaimed_uploads)
    _preload_submit_path()
    return app


def _preload_submit_path() -> None:
    """Import what a submit imports lazily (PyAV and the media probe, the webhook
    queueing module) with the app, so that no client's first upload waits for it (about
    0.2 s per gunicorn process)."""
    import contextlib

    import diarq.shared.media  # noqa: F401
    import diarq.shared.webhook_queue  # noqa: F401
    import diarq.shared.webhooks  # noqa: F401

    with contextlib.suppress(ImportError):
        import av  # noqa: F401

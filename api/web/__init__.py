"""The web app, served by the API process as its own blueprint: sign in, upload with
progress, the jobs list, a batch page, and a job's transcript with synced playback, a
speaker timeline and speaker renaming.

The pages are shells: their scripts (static/*.js, no inline script: the CSP forbids it)
call the same /v1 API as every client, with the session cookie instead of a key
(api/web_session.py). Everything user-supplied is put into the page as text.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from diarq.api.batches import owned_batch
from diarq.api.jobs import owned_job
from diarq.api.web_session import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    UNSAFE_METHODS,
    clear_cookie,
    csrf_passes,
    login_csrf_passes,
    new_login_csrf,
    set_cookie,
)
from diarq.shared.db import session_scope
from diarq.shared.errors import DiarqError
from diarq.shared.renderers import FORMATS
from diarq.shared.settings import Settings
from diarq.shared.websessions import csrf_token, end_session, key_for_sign_in, start_session

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")
# pages reachable without a session
OPEN_ENDPOINTS = frozenset({"web.login", "web.static"})


def _settings() -> Settings:
    return current_app.extensions["diarq"].settings


def _auth_on() -> bool:
    return _settings().auth == "on"


@bp.before_request
def _require_session() -> Any:
    if request.endpoint in OPEN_ENDPOINTS or not _auth_on():
        return None
    if g.get("api_key_id") is None:
        return redirect(url_for("web.login", next=_safe_next(request.full_path)))
    if request.method in UNSAFE_METHODS and not csrf_passes(request.form.get(CSRF_FIELD)):
        return _error_page(403, "This form has expired (its security token does not match). "
                                "Go back, reload the page and try again.")
    return None


@bp.context_processor
def _page_context() -> dict[str, Any]:
    token = g.get("web_token")
    return {"auth_on": _auth_on(), "csrf": csrf_token(token) if token else "",
            "max_upload_mb": _settings().max_upload_mb, "formats": FORMATS}


def _safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this site only (no open redirect)."""
    target = (target or "/").rstrip("?") or "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/"
    return target


def _error_page(status: int, message: str) -> Response:
    resp = make_response(render_template("error.html", status=status, message=message), status)
    return resp


@bp.errorhandler(DiarqError)
def _diarq_error(exc: DiarqError) -> Response:
    if exc.http_status == 404:
        return _error_page(404, "There is nothing here: no job or batch with this address "
                                "is visible to you.")
    return _error_page(exc.http_status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _error_page(exc.code or 500, exc.description or exc.name)


@bp.get("/")
def jobs_page() -> str:
    return render_template("jobs.html")


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> str:
    with session_scope(_settings()) as session:
        job = owned_job(session, job_id)  # another key's job: the 404 page
        if job.deleted_at is not None:
            raise DiarqError("deleted", code="job_not_found", http_status=404)
        name = job.audio_filename or job.source_name or job.id
        return render_template("job.html", job_id=job.id, name=name)


@bp.get("/batches/<batch_id>")
def batch_page(batch_id: str) -> str:
    with session_scope(_settings()) as session:
        batch = owned_batch(session, batch_id)
        return render_template("batch.html", batch_id=batch.id)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    settings = _settings()
    target = _safe_next(request.values.get("next"))
    if not _auth_on() or g.get("api_key_id") is not None:
        return redirect(target)
    error, status = None, 200
    if request.method == "POST":
        key_id = None
        if not login_csrf_passes(request.form.get(CSRF_FIELD)):
            error, status = "The sign-in form expired; try again.", 403
        else:
            key_id = key_for_sign_in(settings, request.form.get("api_key", ""))
            if key_id is None:
                error, status = "This API key is unknown or revoked.", 401
        if key_id is not None:
            resp = redirect(target)
            set_cookie(resp, settings, SESSION_COOKIE, start_session(settings, key_id),
                       int(settings.web_session_hours * 3600))
            clear_cookie(resp, settings, LOGIN_CSRF_COOKIE)
            return resp
    form_token = new_login_csrf()
    resp = make_response(render_template("login.html", login_csrf=form_token, next=target,
                                         error=error), status)
    set_cookie(resp, settings, LOGIN_CSRF_COOKIE, form_token, 3600)
    return resp


@bp.post("/logout")
def logout() -> Response:
    settings = _settings()
    end_session(settings, g.get("web_token"))
    resp = redirect(url_for("web.login") if _auth_on() else url_for("web.jobs_page"))
    clear_cookie(resp, settings, SESSION_COOKIE)
    return resp

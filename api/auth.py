"""Bearer API keys for every route except the public probes, per-key submit limits,
and the start-up check that refuses an unauthenticated API on a public address.

Browsers of the web app (api/web) send a session cookie instead of a key
(api/web_session.py); on API routes it counts like the key it was made from, and a
change (POST, PATCH, DELETE) must also carry the session's CSRF token.

``g.api_key_id`` is the caller's key id (None when DIARQ_AUTH=off); api/jobs.py scopes
every job lookup by it, so another key's job is a 404, indistinguishable from a job
that does not exist. ``g.operator``: the caller may see worker names and hosts (an
operator's key, or auth off: the single user of an embedded install).
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta

from flask import Flask, current_app, g, request
from sqlalchemy import func, select

from diarq.api.errors import error_response
from diarq.api.web_session import (
    CSRF_HEADER,
    SESSION_COOKIE,
    UNSAFE_METHODS,
    csrf_passes,
    session_from_cookie,
)
from diarq.shared.apikeys import parse_bearer
from diarq.shared.db import session_scope
from diarq.shared.errors import ConfigError
from diarq.shared.keystore import authenticate_with_role
from diarq.shared.orm import QUEUED, Job, utcnow
from diarq.shared.settings import Settings

# liveness/readiness for orchestrators, the spec for clients, and Prometheus metrics
# (aggregate counts only, nothing per key or per job): reachable without a key
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics"})
# the web app's scripts and styles (nothing in them is secret)
PUBLIC_ENDPOINTS = frozenset({"web.static"})
WEB_BLUEPRINT = "web"
# endpoints that create jobs: rate limit and queued quota apply
SUBMIT_ENDPOINTS = frozenset({"jobs.create_job", "compat.diarize", "batches.create_batch",
                              "openai_compat.create_transcription"})
QUOTA_RETRY_AFTER_S = 30


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name (or 0.0.0.0 spelled otherwise) may be reachable from outside


def check_auth_exposure(settings: Settings, host: str | None = None) -> None:
    """Refuse DIARQ_AUTH=off on a non-loopback address unless explicitly forced."""
    host = host or settings.host
    if settings.auth == "off" and not is_loopback(host) and not settings.auth_off_force:
        raise ConfigError(
            f"DIARQ_AUTH=off would let anyone who can reach {host} use the API; set "
            "DIARQ_AUTH=on and create a key (`diarq keys create --name NAME`), or bind to "
            "127.0.0.1 (DIARQ_HOST), or set DIARQ_AUTH_OFF_FORCE=true if another layer "
            "(a proxy with its own authentication) protects it"
        )


def unauthorized(message: str):  # noqa: ANN201 (flask response)
    resp = error_response(401, "unauthorized", message)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="diarq"'
    return resp


def too_many(code: str, message: str, retry_after_s: int):  # noqa: ANN201
    resp = error_response(429, code, message)
    resp.headers["Retry-After"] = str(max(1, retry_after_s))
    return resp


def _authenticate():  # noqa: ANN202 (None or a flask response)
    settings: Settings = current_app.extensions["diarq"].settings
    g.api_key_id = None
    g.operator = settings.auth == "off"
    if request.path in PUBLIC_PATHS or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.blueprint == WEB_BLUEPRINT:
        # pages: the session (if any) says who it is; a page asks to sign in itself
        if settings.auth == "on":
            _use_session(session_from_cookie(settings))
        return None
    if settings.auth == "on":
        refused = _authenticate_browser(settings)
        if refused is not None:
            return refused
    if settings.auth == "on" and g.api_key_id is None:
        key = parse_bearer(request.headers.get("Authorization"))
        if key is None:
            return unauthorized("this API needs a key: send the header "
                                "'Authorization: Bearer <key>' (an operator creates keys "
                                "with `diarq keys create --name NAME`)")
        found = authenticate_with_role(settings, key)
        if found is None:
            return unauthorized("the API key is unknown or revoked; ask the operator for "
                                "a valid key (`diarq keys list`)")
        g.api_key_id, g.operator = found
    if request.method == "POST" and request.endpoint in SUBMIT_ENDPOINTS:
        # checked before the body is read: a refused upload costs no disk or bandwidth
        return check_submit_limits(settings, g.api_key_id)
    return None


def is_operator() -> bool:
    """May the caller see worker names and hosts (SECURITY.md)?"""
    return bool(g.get("operator", False))


def _use_session(found: tuple[int, bool] | None) -> None:
    """A live browser session acts as its key, with that key's role."""
    if found is not None:
        g.api_key_id, g.operator = found


def _authenticate_browser(settings: Settings):  # noqa: ANN202 (None or a flask response)
    """The web app's session cookie on an API route (its audio element, its scripts):
    used when no Authorization header is sent; a change needs the CSRF token too."""
    if "Authorization" in request.headers or SESSION_COOKIE not in request.cookies:
        return None
    found = session_from_cookie(settings)
    if found is None:
        return None  # an ended session: answered as a request without a key
    if request.method in UNSAFE_METHODS and not csrf_passes(request.headers.get(CSRF_HEADER)):
        return error_response(403, "csrf_failed",
                              "this browser request lacks the page's CSRF token; reload the "
                              f"page and try again (scripts send the {CSRF_HEADER} header)")
    _use_session(found)
    return None


def owner_filter(key_id: int | None):  # noqa: ANN201 (SQL expression)
    """Jobs visible to the caller: its own (auth on) or the key-less ones (auth off)."""
    return Job.api_key_id.is_(None) if key_id is None else Job.api_key_id == key_id


def check_submit_limits(settings: Settings, key_id: int | None):  # noqa: ANN201
    """429 when the key created too many jobs in the last 60 s or has too many queued.

    Counted in the database, so the limits hold across gunicorn processes, API hosts
    and the embedded mode alike (no per-process counters).
    """
    per_minute, max_queued = settings.rate_limit_per_minute, settings.max_queued_per_key
    if not per_minute and not max_queued:
        return None
    now = utcnow()
    with session_scope(settings) as session:
        if per_minute:
            since = now - timedelta(seconds=60)
            recent = session.execute(
                select(func.count(), func.min(Job.created_at))
                .where(owner_filter(key_id), Job.created_at >= since)
            ).one()
            if recent[0] >= per_minute:
                oldest = recent[1]
                if oldest is not None and oldest.tzinfo is None:  # SQLite: naive UTC
                    oldest = oldest.replace(tzinfo=now.tzinfo)
                wait = 60 - (now - oldest).total_seconds() if oldest else 60
                return too_many("rate_limited",
                                f"this key created {recent[0]} jobs in the last minute (limit "
                                f"{per_minute}, DIARQ_RATE_LIMIT_PER_MINUTE); retry later",
                                math.ceil(wait))
        if max_queued:
            queued = session.scalar(select(func.count()).select_from(Job).where(
                owner_filter(key_id), Job.status == QUEUED, Job.deleted_at.is_(None)))
            if queued >= max_queued:
                return too_many("queue_quota_exceeded",
                                f"this key has {queued} jobs waiting (limit {max_queued}, "
                                "DIARQ_MAX_QUEUED_PER_KEY); wait for some to finish or "
                                "cancel some", QUOTA_RETRY_AFTER_S)
    return None


def init_auth(app: Flask) -> None:
    check_auth_exposure(app.extensions["diarq"].settings)
    app.before_request(_authenticate)

"""The web app's session cookie and CSRF checks (sessions themselves:
shared/websessions.py). The cookie is HttpOnly and SameSite=Lax, and Secure when the
page was served over HTTPS (DIARQ_WEB_COOKIE_SECURE forces it, e.g. behind a proxy that
terminates TLS). Requests a browser sends with the cookie must carry the session's CSRF
token when they change something: the ``X-CSRF-Token`` header (the page's scripts) or
the ``csrf_token`` field (its forms).
"""

from __future__ import annotations

import secrets

from flask import Response, g, request

from diarq.shared.settings import Settings
from diarq.shared.websessions import csrf_ok, session_key

SESSION_COOKIE = "diarq_session"
# sign-in happens before there is a session: its form is checked against this cookie
LOGIN_CSRF_COOKIE = "diarq_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cookie_secure(settings: Settings) -> bool:
    if settings.web_cookie_secure is not None:
        return settings.web_cookie_secure
    return request.is_secure


def set_cookie(resp: Response, settings: Settings, name: str, value: str,
               max_age_s: int | None) -> None:
    resp.set_cookie(name, value, max_age=max_age_s, path="/", httponly=True,
                    samesite="Lax", secure=cookie_secure(settings))


def clear_cookie(resp: Response, settings: Settings, name: str) -> None:
    resp.delete_cookie(name, path="/", httponly=True, samesite="Lax",
                       secure=cookie_secure(settings))


def session_from_cookie(settings: Settings) -> tuple[int, bool] | None:
    """(API key id, operator) of the request's live session (None without one); the
    token is kept in ``g.web_token`` for the CSRF check and sign-out."""
    token = request.cookies.get(SESSION_COOKIE)
    found = session_key(settings, token)
    g.web_token = token if found is not None else None
    return found


def csrf_passes(sent: str | None) -> bool:
    token = g.get("web_token")
    return token is not None and csrf_ok(token, sent)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_passes(sent: str | None) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return bool(expected and sent) and secrets.compare_digest(expected, str(sent))

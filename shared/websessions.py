"""Browser sessions of the web app: signing in with an API key gives a random session
token (the cookie); the database keeps only its SHA-256, like API keys. A session ends
at its expiry, at sign-out, or as soon as its API key is revoked (checked on every
request, as for the key itself).

The CSRF token of a session is derived from its token (HMAC), so it needs no storage and
cannot be computed without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from diarq.shared.db import session_scope
from diarq.shared.jobs import as_utc
from diarq.shared.orm import ApiKey, WebSession, utcnow
from diarq.shared.settings import Settings


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(settings: Settings, key_id: int) -> str:
    """A new session of API key ``key_id``; returns its token (for the cookie only)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope(settings) as session:
        # expired sessions of this key are cleared on its next sign-in
        session.execute(delete(WebSession).where(WebSession.api_key_id == key_id,
                                                 WebSession.expires_at < now))
        session.add(WebSession(token_hash=_digest(token), api_key_id=key_id, created_at=now,
                               expires_at=now + timedelta(hours=settings.web_session_hours)))
    return token


def session_key(settings: Settings, token: str | None) -> tuple[int, bool] | None:
    """(API key id, operator role) of a live session token, or None (unknown, expired,
    key revoked)."""
    if not token or len(token) > 100:
        return None
    with session_scope(settings) as session:
        row = session.execute(
            select(WebSession.api_key_id, WebSession.expires_at, ApiKey.revoked_at,
                   ApiKey.operator)
            .join(ApiKey, ApiKey.id == WebSession.api_key_id)
            .where(WebSession.token_hash == _digest(token))
        ).one_or_none()
    if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= utcnow():
        return None
    return int(row.api_key_id), bool(row.operator)


def end_session(settings: Settings, token: str | None) -> None:
    if not token:
        return
    with session_scope(settings) as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


def csrf_token(token: str) -> str:
    """The CSRF token of session ``token`` (sent back in forms and X-CSRF-Token)."""
    return hmac.new(token.encode(), b"diarq-csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(token), str(sent))


def key_for_sign_in(settings: Settings, key: str) -> int | None:
    """The id of the active API key ``key`` (what the sign-in form checks)."""
    from diarq.shared.keystore import authenticate

    return authenticate(settings, key.strip())

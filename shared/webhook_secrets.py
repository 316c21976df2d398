"""The secret that signs webhook payloads: one per API key, made on first use.

With DIARQ_AUTH=off there are no keys: the server-wide DIARQ_WEBHOOK_SECRET signs.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from diarq.shared.orm import ApiKey
from diarq.shared.settings import Settings


def secret_for(session: Session, settings: Settings, api_key_id: int | None) -> str | None:
    """The signing secret of ``api_key_id`` (created lazily; a conditional UPDATE so two
    processes creating it at once agree), or the server-wide one when auth is off."""
    if api_key_id is None:
        return settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    session.execute(update(ApiKey)
                    .where(ApiKey.id == api_key_id, ApiKey.webhook_secret.is_(None))
                    .values(webhook_secret=secrets.token_urlsafe(32))
                    .execution_options(synchronize_session=False))
    value = session.execute(select(ApiKey.webhook_secret)
                            .where(ApiKey.id == api_key_id)).scalar_one_or_none()
    session.commit()
    return value

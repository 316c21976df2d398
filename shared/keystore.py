"""API keys in the database: create (the key is returned once), list, revoke, look up.

Only the SHA-256 digest of a key is stored (shared/apikeys.py); a lost key cannot be
recovered, only revoked and replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from diarq.shared.apikeys import KEY_PREFIX, display_prefix, generate_key, hash_key
from diarq.shared.db import session_scope
from diarq.shared.errors import DiarqError
from diarq.shared.orm import ApiKey, utcnow
from diarq.shared.settings import Settings


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never the key itself."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    # may see the machines behind the service: worker names and hosts (SECURITY.md)
    operator: bool = False


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.prefix, row.created_at, row.revoked_at,
                   bool(row.operator))


def create_key(settings: Settings, name: str, *, operator: bool = False) -> tuple[KeyInfo, str]:
    """A new key named ``name``; returns its info and the key in clear (shown once)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise DiarqError("give the key a name of 1 to 200 characters (--name)",
                         code="invalid_key_name")
    key = generate_key()
    row = ApiKey(name=name, prefix=display_prefix(key), key_hash=hash_key(key),
                 created_at=utcnow(), operator=operator)
    with session_scope(settings) as session:
        session.add(row)
        session.flush()
        info = _info(row)
    return info, key


def list_keys(settings: Settings) -> list[KeyInfo]:
    with session_scope(settings) as session:
        return [_info(r) for r in session.scalars(select(ApiKey).order_by(ApiKey.id))]


def revoke_key(settings: Settings, id_or_prefix: str) -> KeyInfo:
    """Revoke the key with this numeric id or display prefix (``dq_xxxxxx``)."""
    ref = id_or_prefix.strip()
    cond = [ApiKey.prefix == ref]
    if ref.isdigit():
        cond.append(ApiKey.id == int(ref))
    with session_scope(settings) as session:
        rows = list(session.scalars(select(ApiKey).where(or_(*cond))))
        if not rows:
            raise DiarqError(f"no API key with id or prefix {ref!r}; see `diarq keys list`",
                             code="key_not_found")
        if len(rows) > 1:
            raise DiarqError(f"{len(rows)} keys share the prefix {ref!r}; revoke by id "
                             "(see `diarq keys list`)", code="key_ambiguous")
        row = rows[0]
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        session.flush()
        return _info(row)


def authenticate(settings: Settings, key: str) -> int | None:
    """The id of the active key ``key``, or None (unknown, revoked or malformed)."""
    found = authenticate_with_role(settings, key)
    return found[0] if found is not None else None


def authenticate_with_role(settings: Settings, key: str) -> tuple[int, bool] | None:
    """(id, operator) of the active key ``key``, or None (unknown, revoked, malformed)."""
    if not key.startswith(KEY_PREFIX):
        return None
    with session_scope(settings) as session:
        row = session.execute(
            select(ApiKey.id, ApiKey.revoked_at, ApiKey.operator)
            .where(ApiKey.key_hash == hash_key(key))
        ).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return int(row.id), bool(row.operator)

"""API keys: generated once, shown once, stored only as a SHA-256 digest.

Keys are 32 random bytes, so a fast digest is enough (no password stretching is
needed for high-entropy secrets) and lookups stay O(1) by digest. The prefix
(``dq_`` + 6 characters) is kept in clear so operators can tell keys apart.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "dq_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]


def parse_bearer(header: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 200:
        return None
    return value

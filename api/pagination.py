"""Cursor pagination shared by the list endpoints (newest first, keyed on
(created_at, id), so rows inserted meanwhile never shift a page)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from flask import request

from api.errors import ApiError
from shared.serialize import iso

MAX_LIMIT = 100


def page_limit(default: int = 20) -> int:
    """``?limit=`` (1..100), 422 otherwise."""
    try:
        limit = int(request.args.get("limit", default))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(f"limit must be an integer from 1 to {MAX_LIMIT}",
                       code="invalid_request", http_status=422)
    return limit


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([iso(created_at), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, last_id = json.loads(raw)
        return (datetime.fromisoformat(created.replace("Z", "+00:00")),
                str(uuid.UUID(str(last_id))))
    except (binascii.Error, ValueError, TypeError, AttributeError):  # e.g. [1, "x"]: fuzzing
        raise ApiError("invalid cursor; pass next_cursor from the previous page",
                       code="invalid_request", http_status=422) from None

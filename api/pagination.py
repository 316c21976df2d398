"""Cursor pagination shared by the list endpoints (newest first, keyed on
(created_at, id), so rows inserted meanwhile never shift a page)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from flask import request
from sqlalchemy import Select, and_, or_

from diarq.api.errors import ApiError
from diarq.shared.serialize import iso

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


def newest_first(query: Select, model: Any, limit: int) -> Select:
    """``query`` newest first, after ``?cursor=`` when given, one row more than ``limit``
    (so :func:`split_page` knows whether there is a next page)."""
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    cursor = request.args.get("cursor")
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created,
                                and_(model.created_at == created, model.id < last_id)))
    return query


def split_page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows and the cursor of the next page (None on the last)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id)

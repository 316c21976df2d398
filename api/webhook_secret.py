"""GET /v1/webhook-secret: the secret that signs this key's webhook payloads."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from diarq.api.errors import ApiError
from diarq.shared.db import session_scope
from diarq.shared.webhook_secrets import secret_for
from diarq.shared.webhooks import SIGNATURE_HEADER

bp = Blueprint("webhook_secret", __name__)


@bp.get("/v1/webhook-secret")
def get_webhook_secret():  # noqa: ANN201
    settings = current_app.extensions["diarq"].settings
    with session_scope(settings) as session:
        secret = secret_for(session, settings, g.get("api_key_id"))
    if secret is None:
        raise ApiError("no webhook secret: with DIARQ_AUTH=off set DIARQ_WEBHOOK_SECRET on "
                       "the server", code="webhook_secret_missing", http_status=404)
    return jsonify({"secret": secret, "header": SIGNATURE_HEADER,
                    "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"})

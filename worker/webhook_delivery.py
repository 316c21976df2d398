"""Webhook delivery: queued when a job (or a whole batch) reaches a terminal state
(diarq.shared.webhook_queue, which API and worker both call), POSTed by the
``diarq.deliver_webhook`` task on the ``webhooks`` queue, retried with the backoff of
``Settings.webhook_delays``; every attempt is a webhook_deliveries row.

Nothing here may block or fail a job: errors are logged and recorded, never raised
into the pipeline.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import requests
from celery import Celery

from diarq.shared.celery_app import enqueue_webhook
from diarq.shared.db import session_scope
from diarq.shared.errors import InvalidOptions
from diarq.shared.orm import ApiKey, Batch, Job, WebhookDelivery, utcnow
from diarq.shared.settings import Settings
from diarq.shared.webhook_secrets import secret_for
from diarq.shared.webhooks import SIGNATURE_HEADER, sign, validate_webhook_url

log = logging.getLogger(__name__)


def _payload(session: Any, kind: str, target_id: str,
             event: str) -> tuple[str, int | None, dict[str, Any]] | None:
    """(url, owner key id, JSON payload as the API shows the object), None if gone."""
    if kind == "job":
        from diarq.shared.serialize import job_to_dict

        job = session.get(Job, target_id)
        if job is None or not job.webhook_url:
            return None
        # as GET /v1/jobs/{id} shows it to the owner: worker names only to operators' keys
        owner = session.get(ApiKey, job.api_key_id) if job.api_key_id is not None else None
        operator = job.api_key_id is None or (owner is not None and bool(owner.operator))
        shown = job_to_dict(job, show_worker=operator)
        return job.webhook_url, job.api_key_id, {"event": event, "job": shown}
    from diarq.shared.serialize import batch_to_dict

    batch = session.get(Batch, target_id)
    if batch is None or not batch.webhook_url:
        return None
    return batch.webhook_url, batch.api_key_id, {"event": event,
                                                  "batch": batch_to_dict(session, batch)}


def _post(settings: Settings, url: str, body: bytes,
          secret: str | None) -> tuple[int | None, str | None]:
    """One POST; (status code, error) where error is None only for a 2xx answer."""
    if secret is None:
        return None, "no signing secret: set DIARQ_WEBHOOK_SECRET (auth is off)"
    try:
        # DNS answers change: a target valid at submit may point inside the network now
        validate_webhook_url(url, allow_private=settings.webhook_allow_private)
        resp = requests.post(url, data=body, timeout=settings.webhook_timeout_s,
                             allow_redirects=False,
                             headers={"Content-Type": "application/json",
                                      "User-Agent": "diarq-webhooks/1",
                                      SIGNATURE_HEADER: sign(secret, body)})
    except InvalidOptions as exc:
        return None, exc.message
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: could not reach the target"
    if 200 <= resp.status_code < 300:
        return resp.status_code, None
    return resp.status_code, f"the target answered HTTP {resp.status_code}"


def deliver(app: Celery, settings: Settings, kind: str, target_id: str, event: str,
            attempt: int) -> str:
    """Attempt ``attempt`` of one webhook; schedules the next one on failure."""
    with session_scope(settings) as session:
        found = _payload(session, kind, target_id, event)
        if found is None:
            return "gone"
        url, key_id, payload = found
        secret = secret_for(session, settings, key_id)
    body = json.dumps(payload, separators=(",", ":")).encode()
    t0 = time.perf_counter()
    status_code, error = _post(settings, url, body, secret)
    delays = settings.webhook_delays
    retry = error is not None and secret is not None and attempt <= len(delays)
    now = utcnow()
    with session_scope(settings) as session:
        session.add(WebhookDelivery(
            job_id=target_id if kind == "job" else None,
            batch_id=target_id if kind == "batch" else None,
            url=url, event=event, attempt=attempt, status_code=status_code, error=error,
            duration_ms=(time.perf_counter() - t0) * 1000, created_at=now,
            next_attempt_at=now + timedelta(seconds=delays[attempt - 1]) if retry else None))
    if retry:
        enqueue_webhook(app, kind, target_id, event, attempt + 1,
                        countdown=delays[attempt - 1])
    outcome = "delivered" if error is None else ("retrying" if retry else "gave_up")
    log.info("webhook %s=%s event=%s attempt=%d status=%s outcome=%s", kind, target_id,
             event, attempt, status_code, outcome)
    return outcome


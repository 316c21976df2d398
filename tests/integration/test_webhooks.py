"""Webhooks: signed delivery to a local receiver, retries after a 500, the delivery log
in the job and batch JSON, private targets refused at submit."""

from __future__ import annotations

import json

import pytest

from diarq.shared.webhooks import SIGNATURE_HEADER, verify
from tests.integration.keys import use_key
from tests.integration.services import check_spec, wait_until
from tests.integration.test_batches import post_batch, wait_batch
from tests.integration.test_jobs import submit, wait_done
from tests.integration.webhook_receiver import Receiver

pytestmark = pytest.mark.integration


def _secret(client) -> str:  # noqa: ANN001
    resp = client.get("/v1/webhook-secret")
    body = check_spec(resp, "/v1/webhook-secret", "GET")
    assert resp.status_code == 200 and body["header"] == SIGNATURE_HEADER
    return body["secret"]


def _deliveries(client, job_id: str, count: int) -> list[dict]:  # noqa: ANN001
    """The job's delivery log once it holds ``count`` attempts (recorded after the POST)."""
    def logged():  # noqa: ANN202
        job = check_spec(client.get(f"/v1/jobs/{job_id}"), "/v1/jobs/{id}", "GET")
        entries = job["webhook"]["deliveries"]
        return entries if len(entries) >= count else None

    return wait_until(logged, timeout=30, what=f"{count} webhook deliveries of {job_id}")


def test_signed_webhook_on_success(client, speech_wav):  # noqa: ANN001
    with Receiver() as hook:
        resp = submit(client, speech_wav, webhook_url=hook.url, priority="high")
        job = check_spec(resp, "/v1/jobs", "POST")
        assert resp.status_code == 202
        assert job["webhook"] == {"url": hook.url, "deliveries": []}
        assert job["priority"] == "high"
        wait_done(client, job["id"])
        wait_until(lambda: hook.requests, timeout=30, what="the webhook request")
        log = _deliveries(client, job["id"], 1)

    headers, body = hook.requests[0]
    assert verify(_secret(client), body, headers[SIGNATURE_HEADER])
    assert not verify("another-secret", body, headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["event"] == "job.succeeded"
    assert payload["job"]["id"] == job["id"] and payload["job"]["status"] == "succeeded"
    assert len(hook.requests) == 1
    assert log == [{"event": "job.succeeded", "attempt": 1, "status_code": 200, "error": None,
                    "at": log[0]["at"], "next_attempt_at": None}]


def test_webhook_retried_after_server_error(client, speech_wav):  # noqa: ANN001
    with Receiver(statuses=[500]) as hook:
        job = submit(client, speech_wav, webhook_url=hook.url).get_json()
        wait_done(client, job["id"])
        log = _deliveries(client, job["id"], 2)
    first, second = log
    assert (first["attempt"], first["status_code"]) == (1, 500)
    assert "500" in first["error"] and first["next_attempt_at"] is not None
    assert (second["attempt"], second["status_code"], second["error"]) == (2, 200, None)
    assert len(hook.requests) == 2
    # the retry is signed too, with a fresh timestamp over the same body
    secret = _secret(client)
    assert all(verify(secret, body, h[SIGNATURE_HEADER]) for h, body in hook.requests)


def test_webhook_on_cancel(client, speech_wav):  # noqa: ANN001
    with Receiver() as hook:
        job = submit(client, speech_wav, webhook_url=hook.url).get_json()
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        wait_until(lambda: hook.requests, timeout=30, what="the cancel webhook")
    payload = json.loads(hook.requests[0][1])
    assert payload["event"] == "job.canceled" and payload["job"]["status"] == "canceled"


def test_batch_webhook_once_when_all_jobs_end(client, speech_wav):  # noqa: ANN001
    audio = speech_wav.read_bytes()
    with Receiver() as hook:
        resp = post_batch(client, [(audio, "a.wav"), (audio, "b.wav")], webhook_url=hook.url)
        batch = check_spec(resp, "/v1/batches", "POST")
        assert batch["webhook"]["url"] == hook.url
        wait_batch(client, batch["id"])
        wait_until(lambda: hook.requests, timeout=30, what="the batch webhook")
        got = check_spec(client.get(f"/v1/batches/{batch['id']}"), "/v1/batches/{id}", "GET")
        wait_until(lambda: check_spec(client.get(f"/v1/batches/{batch['id']}"),
                                      "/v1/batches/{id}", "GET")["webhook"]["deliveries"],
                   timeout=30, what="the batch delivery log")
    events = [json.loads(body) for _, body in hook.requests]
    assert [e["event"] for e in events] == ["batch.finished"]
    assert events[0]["batch"]["counts"]["succeeded"] == 2 and got["finished"]


def test_private_target_refused_without_the_setting(settings, api_key, speech_wav):  # noqa: ANN001
    from diarq.api import create_app

    strict = settings.model_copy(update={"webhook_allow_private": False})
    client = use_key(create_app({"DIARQ_SETTINGS": strict, "TESTING": True}),
                     api_key).test_client()
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.7/hook", "ftp://example.com/x"):
        resp = submit(client, speech_wav, webhook_url=url)
        body = check_spec(resp, "/v1/jobs", "POST")
        assert resp.status_code == 422, url
        assert body["error"]["code"] == "invalid_options"
        assert "webhook_url" in body["error"]["message"]


def test_bad_priority_refused(client, speech_wav):  # noqa: ANN001
    resp = submit(client, speech_wav, priority="urgent")
    assert resp.status_code == 422
    assert check_spec(resp, "/v1/jobs", "POST")["error"]["code"] == "invalid_options"


def test_target_checked_again_before_each_attempt(app, client, settings, speech_wav):  # noqa: ANN001
    """A target allowed at submit but private at delivery time (DNS changed, or the
    operator turned the allowance off) is refused without a request and logged."""
    from diarq.worker.webhook_delivery import deliver

    with Receiver() as hook:
        job = submit(client, speech_wav, webhook_url=hook.url).get_json()
        wait_done(client, job["id"])
        _deliveries(client, job["id"], 1)
        strict = settings.model_copy(update={"webhook_allow_private": False})
        celery = app.extensions["diarq"].celery
        # the last attempt of the schedule: refused, and no retry is scheduled
        outcome = deliver(celery, strict, "job", job["id"], "job.succeeded", attempt=3)
        log = _deliveries(client, job["id"], 2)
    assert outcome == "gave_up" and len(hook.requests) == 1
    assert log[1]["attempt"] == 3 and log[1]["status_code"] is None
    assert "private" in log[1]["error"] and log[1]["next_attempt_at"] is None

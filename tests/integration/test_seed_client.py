"""The original client's request shape, as it sends it: `participants` as JSON, the
result in the answer of POST /api/diarize, and the field names a first try uses."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from diarq.shared.db import get_engine
from tests.integration.keys import use_key
from tests.integration.services import check_spec, wait_until

pytestmark = pytest.mark.integration

SEED_PARTICIPANTS = json.dumps([{"name": "John"}, {"name": "Jane"}])
BROKEN = '[{"name": "John"}, {"name": "Jane"}'  # cut short: starts like JSON, is not


def _post(client, route: str, field: str, path, headers=None, **form):  # noqa: ANN001, ANN202
    with open(path, "rb") as fh:
        return client.post(route, data={field: (fh, path.name), **form},
                           content_type="multipart/form-data", headers=headers or {})


ROUTES = [("/v1/jobs", "file"), ("/api/diarize", "audioFile"), ("/v1/batches", "files")]


def _options(route: str, body: dict) -> dict:
    return body["options"]


@pytest.mark.parametrize("route,field", ROUTES)
@pytest.mark.parametrize("participants", [SEED_PARTICIPANTS, '["John", "Jane"]', "John, Jane"])
def test_participants_in_every_shape_on_every_route(client, speech_wav, route, field,  # noqa: ANN001
                                                    participants) -> None:
    # /api/diarize answers at once with respond-async (it waits for the result otherwise)
    resp = _post(client, route, field, speech_wav, headers={"Prefer": "respond-async"},
                 participants=participants,
                 **({"numSpeakers": "2"} if route == "/api/diarize" else {"num_speakers": "2"}))
    body = check_spec(resp, route, "POST")
    assert resp.status_code in (200, 202), body
    assert _options(route, body)["participants"] == ["John", "Jane"]
    assert _options(route, body)["num_speakers"] == 2


@pytest.mark.parametrize("route,field", ROUTES)
def test_broken_participants_json_is_a_422_naming_the_field(client, speech_wav, route,  # noqa: ANN001
                                                            field) -> None:
    resp = _post(client, route, field, speech_wav, participants=BROKEN)
    body = check_spec(resp, route, "POST")
    assert resp.status_code == 422, body
    assert body["error"]["code"] == "invalid_options"
    assert "participants: not valid JSON" in body["error"]["message"]


def test_batch_takes_the_file_field_of_v1_jobs(client, speech_wav) -> None:  # noqa: ANN001
    resp = _post(client, "/v1/batches", "file", speech_wav, max_speakers="2")
    body = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 202, body
    assert len(body["jobs"]) == 1 and body["jobs"][0]["source_name"] == speech_wav.name
    # both fields in one request: every file counts
    with open(speech_wav, "rb") as a, open(speech_wav, "rb") as b:
        resp = client.post("/v1/batches", data={"files": (a, "a.wav"), "file": (b, "b.wav")},
                           content_type="multipart/form-data")
    body = check_spec(resp, "/v1/batches", "POST")
    assert sorted(j["source_name"] for j in body["jobs"]) == ["a.wav", "b.wav"]
    resp = client.post("/v1/batches", data={"max_speakers": "2"},
                       content_type="multipart/form-data")
    body = check_spec(resp, "/v1/batches", "POST")
    assert resp.status_code == 400 and body["error"]["code"] == "file_missing"
    assert "'files' (or 'file')" in body["error"]["message"]


# --- /api/diarize answers with the result --------------------------------------------

def _app(settings, api_key: str, queue: str, **update):  # noqa: ANN001, ANN202
    """An API on ``queue`` (no worker serves the made-up ones) with other wait settings."""
    from diarq.api import create_app

    return use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"job_queue": queue, **update}), "TESTING": True}), api_key)


def _queued_job(client, queue: str) -> str | None:  # noqa: ANN001
    jobs = client.get("/v1/jobs?status=queued&limit=100").get_json()["jobs"]
    return next((j["id"] for j in jobs if j["queue"] == queue), None)


def test_diarize_waits_and_answers_with_the_result(client, speech_wav) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    resp = _post(client, "/api/diarize", "audioFile", speech_wav, minSpeakers="1",
                 maxSpeakers="2", participants=SEED_PARTICIPANTS, prompt="Weekly meeting.")
    result = check_spec(resp, "/api/diarize", "POST")
    assert resp.status_code == 200, result
    job_id = result["job_id"]
    assert resp.headers["Location"] == f"/v1/jobs/{job_id}"
    assert "Preference-Applied" not in resp.headers  # the route's default, not asked for
    assert result == client.get(f"/v1/jobs/{job_id}/result").get_json()
    print(f"wait figures: /api/diarize answered with the result in "
          f"{time.monotonic() - t0:.2f} s (bench-trivial job of 1 s)")


def test_diarize_past_its_bound_answers_with_the_job(settings, api_key, speech_wav) -> None:  # noqa: ANN001
    client = _app(settings, api_key, "nobody-diarize", wait_max_s=1.5).test_client()
    t0 = time.monotonic()
    resp = _post(client, "/api/diarize", "audioFile", speech_wav)
    took = time.monotonic() - t0
    job = check_spec(resp, "/api/diarize", "POST")
    assert resp.status_code == 202 and resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["waiting"]["code"] == "no_worker"
    assert 1.5 <= took < 30, took  # it did wait for its bound, and no more than that


def test_waiters_beyond_the_cap_are_answered_at_once(settings, api_key, speech_wav) -> None:  # noqa: ANN001
    app = _app(settings, api_key, "nobody-cap", wait_max_s=12, max_waiters=1)
    first: dict = {}

    def wait_in_thread() -> None:
        resp = _post(app.test_client(), "/api/diarize", "audioFile", speech_wav)
        first.update(status=resp.status_code, at=time.monotonic())

    waiter = threading.Thread(target=wait_in_thread)
    start = time.monotonic()
    waiter.start()
    client = app.test_client()
    wait_until(lambda: _queued_job(client, "nobody-cap"), timeout=30,
               what="the first request's job")
    time.sleep(0.5)  # past its commit: the first request waits (its slot taken)
    t0 = time.monotonic()
    resp = _post(app.test_client(), "/api/diarize", "audioFile", speech_wav)
    took = time.monotonic() - t0
    # no slot: the job at once (a submit takes well under a second; with a slot this
    # request would wait its 12 s)
    assert resp.status_code == 202 and took < 8, took
    waiter.join(timeout=60)
    assert first["status"] == 202 and first["at"] - start >= 12  # it waited its full bound


def test_a_waiting_request_holds_no_database_connection(settings, api_key, speech_wav) -> None:  # noqa: ANN001
    wait_s = 5.0
    app = _app(settings, api_key, "nobody-conn", wait_max_s=wait_s)
    engine = get_engine(settings)
    out: dict[str, float] = {}
    held: list[float] = []
    since: dict[int, float] = {}

    def checkout(_dbapi, record, _proxy) -> None:  # noqa: ANN001
        since[id(record)] = time.monotonic()

    def checkin(_dbapi, record) -> None:  # noqa: ANN001
        if id(record) in since:
            held.append(time.monotonic() - since.pop(id(record)))

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        t0 = time.monotonic()
        resp = _post(app.test_client(), "/api/diarize", "audioFile", speech_wav)
        out["took"] = time.monotonic() - t0
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)
    assert resp.status_code == 202 and out["took"] >= wait_s
    # many short checkouts (the polls), none lasting the wait: a session kept open over
    # the wait would show one of about wait_s
    assert len(held) >= 5 and max(held) < wait_s / 2, held
    print(f"wait figures: {wait_s:.0f} s wait: {len(held)} connection checkouts, longest "
          f"{max(held) * 1000:.1f} ms, median {sorted(held)[len(held) // 2] * 1000:.1f} ms")


def test_diarize_answers_a_cancelled_job_as_an_error(settings, api_key, speech_wav) -> None:  # noqa: ANN001
    app = _app(settings, api_key, "nobody-cancel", wait_max_s=60)
    answer: dict = {}

    def wait_in_thread() -> None:
        resp = _post(app.test_client(), "/api/diarize", "audioFile", speech_wav)
        answer.update(resp=resp, body=check_spec(resp, "/api/diarize", "POST"))

    waiter = threading.Thread(target=wait_in_thread)
    waiter.start()
    client = app.test_client()
    job_id = wait_until(lambda: _queued_job(client, "nobody-cancel"), timeout=30,
                        what="the waiting request's job")
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    waiter.join(timeout=60)
    assert answer["resp"].status_code == 409
    assert answer["body"]["error"]["code"] == "job_canceled"
    assert answer["body"]["job"]["id"] == job_id and answer["body"]["job"]["status"] == "canceled"


# --- the same, opt-in, on /v1/jobs ----------------------------------------------------

def test_v1_jobs_wait_when_preferred(client, settings, api_key, speech_wav) -> None:  # noqa: ANN001
    resp = _post(client, "/v1/jobs", "file", speech_wav, headers={"Prefer": "wait=60"})
    received = datetime.now(UTC)
    job = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 200 and job["status"] == "succeeded", job
    assert resp.headers["Preference-Applied"] == "wait=60"
    assert resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    finished = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
    print(f"wait figures: Prefer wait answered {(received - finished).total_seconds():.2f} s "
          "after the job finished")
    # without Prefer: 202 at once, as before
    resp = _post(client, "/v1/jobs", "file", speech_wav)
    assert resp.status_code == 202 and "Preference-Applied" not in resp.headers

    # a long poll of GET /v1/jobs/{id}: the job on a queue nobody serves stays queued
    idle = _app(settings, api_key, "nobody-poll").test_client()
    queued = check_spec(_post(idle, "/v1/jobs", "file", speech_wav), "/v1/jobs", "POST")
    t0 = time.monotonic()
    resp = idle.get(f"/v1/jobs/{queued['id']}", headers={"Prefer": "wait=2"})
    took = time.monotonic() - t0
    body = check_spec(resp, "/v1/jobs/{id}", "GET")
    assert resp.status_code == 200 and body["status"] == "queued" and took >= 2
    assert resp.headers["Preference-Applied"] == "wait=2"
    assert body["waiting"]["code"] == "no_worker"

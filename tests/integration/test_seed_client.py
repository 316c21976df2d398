"""The original client's request shape, as it sends it: `participants` as JSON, the
result in the answer of POST /api/diarize, and the field names a first try uses."""

from __future__ import annotations

import json

import pytest

from tests.integration.services import check_spec

pytestmark = pytest.mark.integration

SEED_PARTICIPANTS = json.dumps([{"name": "John"}, {"name": "Jane"}])
BROKEN = '[{"name": "John"}, {"name": "Jane"}'  # cut short: starts like JSON, is not


def _post(client, route: str, field: str, path, **form):  # noqa: ANN001, ANN202
    with open(path, "rb") as fh:
        return client.post(route, data={field: (fh, path.name), **form},
                           content_type="multipart/form-data")


ROUTES = [("/v1/jobs", "file"), ("/api/diarize", "audioFile"), ("/v1/batches", "files")]


def _options(route: str, body: dict) -> dict:
    return body["options"]


@pytest.mark.parametrize("route,field", ROUTES)
@pytest.mark.parametrize("participants", [SEED_PARTICIPANTS, '["John", "Jane"]', "John, Jane"])
def test_participants_in_every_shape_on_every_route(client, speech_wav, route, field,  # noqa: ANN001
                                                    participants) -> None:
    # Prefer wait=0: /api/diarize answers at once (it waits for the result otherwise)
    resp = _post(client, route, field, speech_wav, participants=participants,
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

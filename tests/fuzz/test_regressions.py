"""Inputs that once made the API answer 500 (found while fuzzing), kept as fixed cases
on the same PostgreSQL-backed app as the fuzzer."""

from __future__ import annotations

import base64
import json

import pytest

pytestmark = pytest.mark.integration  # a real PostgreSQL database


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
def c(fuzz_app, fuzz_key):  # noqa: ANN001, ANN201
    client = fuzz_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {fuzz_key}"
    return client


@pytest.mark.parametrize("url", [
    "/v1/jobs/%00",                                   # NUL: PostgreSQL refuses it
    "/v1/jobs/00000000-0000-0000-0000-00000000000%00",
    "/v1/jobs/%00/result",
])
def test_nul_in_job_id_is_404(c, url: str) -> None:  # noqa: ANN001
    resp = c.get(url)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "job_not_found"
    assert c.delete(url.removesuffix("/result")).status_code == 404


@pytest.mark.parametrize("value", [[1, "x"], ["2026-01-01T00:00:00Z", "\u0000"], {"a": 1},
                                   "just text", [None, None]])
def test_malformed_cursor_is_422(c, value: object) -> None:  # noqa: ANN001
    resp = c.get(f"/v1/jobs?cursor={_cursor(value)}")
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "invalid_request"


def test_nul_in_filename_and_idempotency_key(c, wav_bytes: bytes) -> None:  # noqa: ANN001
    import io

    resp = c.post("/v1/jobs", data={"file": (io.BytesIO(wav_bytes), "a\x00b.wav")},
                  headers={"Idempotency-Key": "k\x00ey"})
    assert resp.status_code == 202, resp.data
    assert resp.get_json()["audio"]["filename"] == "ab.wav"


def test_form_field_without_a_name_is_422(c, wav_bytes: bytes) -> None:  # noqa: ANN001
    import io

    # a CR in the field name leaves werkzeug without a name (the key is None)
    resp = c.post("/api/diarize", data={"Ä\r\x93é": "1", "audioFile": (io.BytesIO(wav_bytes),
                                                                        "a.wav")})
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "invalid_options"

"""Property-based fuzzing of the HTTP API from its own OpenAPI spec (schemathesis).

Every operation gets generated requests, each sent twice: with a valid key and with
none. Checks: no 5xx, and status code, content type, headers and body conform to
/openapi.json. The app runs in-process (WSGI) on real PostgreSQL with migrations.

DIARQ_FUZZ_EXAMPLES sets the examples per operation (CI: small; bench/fuzz.sh: large);
DIARQ_FUZZ_REPORT names a JSON file that receives the request and 5xx counts.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.jsonschema import strategy as _strategy
from schemathesis.specs.openapi import negative as _negative
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SPEC = Path(__file__).resolve().parents[2] / "api" / "openapi.json"
EXAMPLES = int(os.environ.get("DIARQ_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]

pytestmark = pytest.mark.integration  # a real PostgreSQL database
schema = schemathesis.openapi.from_path(str(SPEC))


def _judging_files_as_strings() -> None:
    """Work around a crash of schemathesis 4.31-4.32 while it *generates* a negative
    multipart body: its generator's own filters validate drawn values with jsonschema-rs,
    which raises ``ValueError: Unsupported type: 'Binary'`` on a file part (CI's
    12-example run met it once; 300 examples of the upload routes meet it every time).
    Its negative-mode filters already judge a file part as "" (``_strip_binary``); the
    generator's are given the same view here. Remove when upstream does it (reproduce:
    300 examples without it)."""
    inner = _strategy._validator

    def validator(schema):  # noqa: ANN001, ANN202
        is_valid = inner(schema)
        return lambda value: is_valid(_negative._strip_binary(value))

    _strategy._validator = validator


_judging_files_as_strings()

COUNTS: Counter[str] = Counter()
UPLOADS = ("/v1/jobs", "/api/diarize")


@pytest.fixture(scope="module", autouse=True)
def _report() -> None:
    yield
    summary = {"requests": COUNTS["requests"], "server_errors_5xx": COUNTS["5xx"],
               "by_status": {k: v for k, v in sorted(COUNTS.items()) if k[0].isdigit()},
               "examples_per_operation": EXAMPLES}
    print(f"\nfuzz summary: {json.dumps(summary)}")
    if os.environ.get("DIARQ_FUZZ_REPORT"):
        Path(os.environ["DIARQ_FUZZ_REPORT"]).write_text(json.dumps(summary, indent=1))


@pytest.fixture(scope="module")
def wired(fuzz_app, fuzz_key, seeded_jobs, wav_bytes):  # noqa: ANN001, ANN201
    return {"app": fuzz_app, "key": fuzz_key, "ids": seeded_jobs, "wav": wav_bytes}


@schema.parametrize()
@hsettings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
           phases=[Phase.explicit, Phase.generate],
           suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_5xx(case, wired):  # noqa: ANN001
    n = COUNTS["requests"]
    # every third case that names a job uses a real one (own, queued, failed, another's)
    if "id" in (case.path_parameters or {}) and n % 3 == 0:
        case.path_parameters["id"] = wired["ids"][(n // 3) % len(wired["ids"])]
    # every other upload is real audio, so generated options reach parse_options (only
    # on the single-file upload routes: other bodies are JSON or forms without a file)
    if case.method == "POST" and case.path in UPLOADS and isinstance(case.body, dict) \
            and n % 2 == 0:
        field = "file" if case.path == "/v1/jobs" else "audioFile"
        case.body[field] = wired["wav"]
    for headers in ({"Authorization": f"Bearer {wired['key']}"}, {}):
        if not headers:
            # the unauthenticated twin must not inherit a generated Authorization header
            (case.headers or {}).pop("Authorization", None)
        # WSGI transport: the request goes straight into the Flask app, no server
        response = case.call(headers=headers, app=wired["app"])
        COUNTS["requests"] += 1
        COUNTS[str(response.status_code)] += 1
        if response.status_code >= 500:
            COUNTS["5xx"] += 1
        case.validate_response(response, checks=CHECKS)

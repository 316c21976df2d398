"""GET /metrics: Prometheus exposition parsed back, values checked against the database."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from diarq.shared.db import session_scope
from diarq.shared.orm import SUCCEEDED, Job
from tests.integration.services import check_spec
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration


def _succeeded(settings) -> int:  # noqa: ANN001
    with session_scope(settings) as s:
        return s.scalar(select(func.count()).select_from(Job)
                        .where(Job.status == SUCCEEDED, Job.deleted_at.is_(None)))


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_after_a_job(app, client, settings, speech_wav):  # noqa: ANN001
    job = submit(client, speech_wav).get_json()
    assert wait_done(client, job["id"])["status"] == "succeeded"

    before = _succeeded(settings)
    # public like /healthz: no API key needed
    resp = FlaskClient(app).get("/metrics")
    after = _succeeded(settings)
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    text = check_spec(resp, "/metrics", "GET")
    samples = _samples(text)

    assert before <= samples[("diarq_jobs", (("status", SUCCEEDED),))] <= after
    assert samples[("diarq_jobs", (("status", SUCCEEDED),))] >= 1
    for status in ("queued", "running", "failed", "canceled"):
        assert ("diarq_jobs", (("status", status),)) in samples
    for queue in ("cpu", "gpu", "webhooks"):
        assert samples[("diarq_queue_depth", (("queue", queue),))] >= 0
    # the mechanics workers (bench-trivial pipeline) record only a total time
    assert samples[("diarq_real_time_factor_count", ())] >= 1
    assert samples[("diarq_real_time_factor_sum", ())] > 0
    # the two mechanics workers, from the workers table (ready or busy)
    assert sum(samples[("diarq_workers", (("queue", "cpu"), ("state", state)))]
               for state in ("ready", "busy")) >= 2
    # aggregates only: no job id, file name or key leaks into the exposition
    assert job["id"] not in text and speech_wav.name not in text

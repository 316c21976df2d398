"""A private PostgreSQL cluster is stopped (immediate mode, like a crash) with jobs queued
and running, then started again: the API answers 503 JSON meanwhile, recovers by itself,
workers retry their writes, and every job finishes once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.servers import PrivatePostgres
from tests.integration.services import check_spec

JOBS = 6


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.destroy()


def _while_down(stack, job_id: str, speech_wav: Path) -> int:  # noqa: ANN001
    """Every endpoint that needs the database: a 503 JSON error, never a 500 or HTML."""
    c = stack.client
    answers = {
        "readyz": c.get("/readyz"),
        "list": c.get("/v1/jobs"),
        "get": c.get(f"/v1/jobs/{job_id}"),
        "result": c.get(f"/v1/jobs/{job_id}/result"),
        "cancel": c.delete(f"/v1/jobs/{job_id}"),
    }
    with open(speech_wav, "rb") as fh:
        answers["submit"] = c.post("/v1/jobs", data={"file": (fh, "a.wav")})
    spec = {"readyz": ("/readyz", "GET"), "list": ("/v1/jobs", "GET"),
            "get": ("/v1/jobs/{id}", "GET"), "result": ("/v1/jobs/{id}/result", "GET"),
            "cancel": ("/v1/jobs/{id}", "DELETE"), "submit": ("/v1/jobs", "POST")}
    for what, resp in answers.items():
        assert resp.status_code == 503, (what, resp.status_code, resp.get_data(as_text=True))
        assert resp.is_json, (what, resp.content_type)
        check_spec(resp, *spec[what])  # the 503 is documented, body as the spec says
        code = resp.get_json()["error"]["code"]
        assert code == ("not_ready" if what == "readyz" else "database_unavailable"), (what, code)
    assert answers["readyz"].get_json()["checks"]["database"] != "ok"
    assert c.get("/healthz").status_code == 200  # liveness does not depend on the DB
    for what in ("list", "get", "submit"):
        assert answers[what].headers.get("Retry-After"), what
    return sum(1 for r in answers.values() if r.status_code >= 500 and r.status_code != 503)


def test_postgres_restart(pg: PrivatePostgres, make_stack, speech_wav: Path):  # noqa: ANN001
    stack = make_stack(admin_url=pg.admin_url)
    ids = stack.busy(speech_wav, JOBS)
    pg.stop_immediately()
    other_5xx = _while_down(stack, ids[0], speech_wav)
    time.sleep(3)  # running jobs finish while the database is down: their writes retry
    pg.start()

    rows = stack.wait_all_done(ids, timeout=120)
    statuses = {i: r.status for i, r in rows.items()}
    assert statuses == dict.fromkeys(ids, "succeeded"), statuses
    assert stack.result_counts(ids) == dict.fromkeys(ids, 1)
    assert other_5xx == 0
    # the API recovered by itself: same client, same pooled engine
    assert stack.client.get(f"/v1/jobs/{ids[0]}").status_code == 200
    assert stack.client.get("/readyz").status_code == 200
    logs = "".join(w.log() for w in stack.workers)
    assert "database unavailable during" in logs  # a worker's write was retried
    print(f"faults figures: postgres restarts=1 jobs={JOBS} lost=0 duplicated=0 "
          f"attempts={sum(r.attempts for r in rows.values())} other_5xx={other_5xx}")

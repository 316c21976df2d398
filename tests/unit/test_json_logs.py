"""DIARQ_LOG_FORMAT=json: every line is one JSON object carrying the job id."""

from __future__ import annotations

import json
import logging

from diarq.shared.logging import JobIdFilter, JsonFormatter, job_context


def _line(message: str, *args: object, exc: bool = False) -> dict:
    record = logging.LogRecord("diarq.test", logging.INFO, __file__, 1, message, args,
                               None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    JobIdFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_job_id_on_every_line_of_a_job() -> None:
    with job_context("job-123"):
        line = _line("started attempt=%d", 1)
    assert line["job_id"] == "job-123" and line["message"] == "started attempt=1"
    assert line["level"] == "INFO" and line["logger"] == "diarq.test"
    assert _line("outside")["job_id"] is None


def test_exception_stays_inside_the_json_line() -> None:
    line = _line("failed", exc=True)
    assert "ValueError: boom" in line["exc_info"]


def test_json_log_tracebacks_are_redacted(monkeypatch) -> None:  # noqa: ANN001
    """The JSON formatter must use the redacted traceback, not format the exception anew."""
    import sys

    from diarq.shared.redact import RedactingFilter

    token = "hf_jsonLeakCanary0123456789abcdefghij"
    monkeypatch.setenv("HF_TOKEN", token)
    record = logging.LogRecord("diarq.test", logging.ERROR, __file__, 1, "boom %s", (token,),
                               None)
    try:
        raise RuntimeError(f"bad token {token}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "RuntimeError" in json.loads(line)["exc_info"]
    assert token not in line

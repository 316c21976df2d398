"""Suite-wide hooks."""

from __future__ import annotations

from diarq.worker.diarization.speechbrain_compat import forget_lazy_placeholders


def pytest_collectreport(report) -> None:  # noqa: ANN001
    # a test module just collected may have imported speechbrain (through pyannote):
    # its lazy placeholder modules make hypothesis crash (speechbrain_compat.py)
    forget_lazy_placeholders()


def pytest_runtest_setup(item) -> None:  # noqa: ANN001
    forget_lazy_placeholders()  # the same, for imports made by earlier tests

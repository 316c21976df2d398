"""The pipeline's GPU handling with real models on CPU and a faked device layer
(tests/fake_cuda.py): a CUDA out-of-memory error retries the stage with half the batch,
a second one fails the job with gpu_out_of_memory, memory is released after every job
and the job's peak memory lands in the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from diarq.shared.errors import DiarqError
from diarq.shared.options import parse_options
from diarq.shared.settings import load_settings
from diarq.worker.pipeline import run_pipeline
from tests.fake_cuda import FAKE_PEAK, FakeCuda

pytestmark = pytest.mark.slow
JFK = Path(__file__).resolve().parents[2] / "tests" / "data" / "jfk.wav"


@pytest.fixture(scope="module")
def fake() -> FakeCuda:
    return FakeCuda()


@pytest.fixture(scope="module")
def registry(fake: FakeCuda):  # type: ignore[no-untyped-def]
    from diarq.worker.registry import ModelRegistry

    return ModelRegistry(load_settings(device="cpu", batch_size=8), device=fake)


def test_oom_in_diarization_is_retried_with_half_the_batch(registry, fake) -> None:  # type: ignore[no-untyped-def]
    fake.capacity, fake.calls, fake.releases = {"diarize": 4}, [], 0
    result = run_pipeline(JFK, parse_options({}), registry=registry)
    assert [c for c in fake.calls if c[0] == "diarize"] == [("diarize", 8), ("diarize", 4)]
    assert registry.diarizer().pipeline.segmentation_batch_size == 4  # the retry's batch
    assert result.diarization and "country" in " ".join(s.text for s in result.segments)
    assert result.models["gpu_retries"] == [
        "diarize: CUDA out of memory at batch size 8, retried with 4"]
    assert result.models["gpu"]["peak_memory_bytes"] == FAKE_PEAK
    assert fake.releases == 2  # before the retry, and after the job


def test_second_oom_fails_the_job_and_the_next_job_runs(registry, fake) -> None:  # type: ignore[no-untyped-def]
    fake.capacity, fake.calls, fake.releases = {"transcribe": 0}, [], 0
    with pytest.raises(DiarqError) as info:
        run_pipeline(JFK, parse_options({}), registry=registry)
    assert info.value.code == "gpu_out_of_memory"
    assert "DIARQ_BATCH_SIZE" in info.value.message
    assert fake.releases == 3  # two failed attempts, then the end of the job
    fake.capacity = {}
    result = run_pipeline(JFK, parse_options({"diarize": "false"}), registry=registry)
    assert result.segments and "gpu_retries" not in result.models

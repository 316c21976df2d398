"""GPU policy without a GPU: out-of-memory retry, batch size and compute type per device.

The device layer is the fake of tests/fake_cuda.py, which raises torch's real
``OutOfMemoryError``; what is retried is a plain function of the batch size."""

from __future__ import annotations

import pytest

from diarq.shared.error_codes import CATALOGUE
from diarq.worker.device import Device, GpuOutOfMemory, run_with_oom_retry
from diarq.worker.runtime import resolve_batch_size, resolve_compute_type
from tests.fake_cuda import FakeCuda

GiB = 1 << 30


def test_oom_retries_once_with_half_the_batch_after_releasing() -> None:
    device = FakeCuda({"transcribe": 4})
    notes: list[str] = []
    assert run_with_oom_retry(device, "transcribe", 8, lambda b: f"ran {b}", notes) == "ran 4"
    assert device.calls == [("transcribe", 8), ("transcribe", 4)]
    assert device.releases == 1
    assert notes == ["transcribe: CUDA out of memory at batch size 8, retried with 4"]


def test_second_oom_fails_with_gpu_out_of_memory_and_what_to_change() -> None:
    device = FakeCuda({"diarize": 0})
    with pytest.raises(GpuOutOfMemory) as info:
        run_with_oom_retry(device, "diarize", 16, lambda b: b)
    err = info.value
    assert err.code == "gpu_out_of_memory" and err.code in CATALOGUE
    assert "DIARQ_BATCH_SIZE" in err.message and "diarize" in err.message
    assert device.calls == [("diarize", 16), ("diarize", 8)] and device.releases == 2
    assert err.__context__ is None  # raised outside the except: no frames kept alive


def test_other_errors_are_not_retried() -> None:
    device = FakeCuda()

    def boom(_: int) -> None:
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        run_with_oom_retry(device, "align", 1, boom)
    assert device.releases == 0 and len(device.calls) == 1


def test_ctranslate2_and_cudnn_oom_messages_count_as_oom() -> None:
    from diarq.worker.device import Cuda

    cuda = Cuda()
    assert cuda.is_out_of_memory(RuntimeError("CUDA failed with error out of memory"))
    assert cuda.is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert not cuda.is_out_of_memory(RuntimeError("CUDA error: device-side assert"))
    assert not Device().is_out_of_memory(RuntimeError("CUDA failed with error out of memory"))


@pytest.mark.parametrize(("setting", "device", "memory", "expected"), [
    (0, "cpu", None, 8),
    (0, "cuda", 80 * GiB, 32),   # H100/A100 80 GB
    (0, "cuda", 24 * GiB, 16),   # L4 / A10 / RTX 4090
    (0, "cuda", 8 * GiB, 8),
    (12, "cuda", 80 * GiB, 12),  # DIARQ_BATCH_SIZE wins
])
def test_batch_size_per_device(setting: int, device: str, memory: int | None,
                               expected: int) -> None:
    assert resolve_batch_size(setting, device, memory) == expected


@pytest.mark.parametrize(("device", "supported", "expected"), [
    ("cuda", {"float16", "int8_float16", "float32", "int8"}, "float16"),
    ("cuda", {"float32", "int8_float32", "int8"}, "int8_float32"),  # no fast fp16 (Pascal)
    ("cpu", {"float32", "int8", "int8_float32"}, "int8"),
    ("cpu", {"float32"}, "float32"),
])
def test_compute_type_per_device(device: str, supported: set[str], expected: str) -> None:
    assert resolve_compute_type("auto", device, supported) == expected
    assert resolve_compute_type("int8_float16", device, supported) == "int8_float16"


def test_compute_type_on_this_machine_asks_ctranslate2() -> None:
    import ctranslate2

    got = resolve_compute_type("auto", "cpu")
    assert got in ctranslate2.get_supported_compute_types("cpu")


def test_gpu_worker_plan_one_worker_per_gpu() -> None:
    from diarq.cli.service import gpu_worker_plan

    plan = gpu_worker_plan("0, 2", hostname="w@h", loglevel="INFO")
    assert plan == [
        (["worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "w@h-gpu0",
          "--loglevel", "INFO"], {"CUDA_VISIBLE_DEVICES": "0", "DIARQ_DEVICE": "cuda"}),
        (["worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "w@h-gpu2",
          "--loglevel", "INFO"], {"CUDA_VISIBLE_DEVICES": "2", "DIARQ_DEVICE": "cuda"}),
    ]
    assert gpu_worker_plan("1", queues="gpu,cpu")[0][0][:3] == ["worker", "--queues", "gpu,cpu"]


@pytest.mark.parametrize(("gpus", "kwargs"), [
    ("", {}), ("0,0", {}), ("0,1", {"concurrency": 2}), ("0", {"device": "cpu"}),
])
def test_gpu_worker_plan_refuses_contradictions(gpus: str, kwargs: dict) -> None:
    from diarq.cli.service import gpu_worker_plan
    from diarq.shared.errors import ConfigError

    with pytest.raises(ConfigError):
        gpu_worker_plan(gpus, **kwargs)

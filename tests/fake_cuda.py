"""A stand-in for the CUDA device layer (diarq.worker.device), for CPU machines.

The models are real and run on CPU; only the device layer is replaced: it raises a real
``torch.cuda.OutOfMemoryError`` when a stage asks for a batch larger than the "GPU"
holds, counts memory releases and reports fixed memory figures, so the out-of-memory
retry, the failure code and the memory figures of /metrics can be tested without a GPU.

In a worker process: ``DIARQ_TEST_FAKE_CUDA='{"diarize": 0}'`` and start it with
``python -c "import tests.fake_cuda as f; f.install_from_env(); from diarq.cli import
main; main()" worker ...`` (each pool process builds its registry after fork, with it).
"""

from __future__ import annotations

import json
import os
from typing import Any

from diarq.worker.device import Cuda, Device

FAKE_TOTAL = 24 << 30
FAKE_PEAK = 3 << 30


class FakeCuda(Device):
    """``capacity``: per stage, the largest batch that fits (0: nothing fits)."""

    kind = "cuda"

    def __init__(self, capacity: dict[str, int] | None = None) -> None:
        self.capacity = dict(capacity or {})
        self.calls: list[tuple[str, int]] = []
        self.releases = 0
        self.peak_resets = 0

    def run(self, stage, batch_size, call):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN201
        import torch

        self.calls.append((stage, batch_size))
        limit = self.capacity.get(stage)
        if limit is not None and batch_size > limit:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB (stage {stage}, batch "
                f"{batch_size})")
        return call(batch_size)

    # the real test of what counts as out of memory
    is_out_of_memory = Cuda.is_out_of_memory

    def release(self) -> None:
        self.releases += 1

    def reset_peak(self) -> None:
        self.peak_resets += 1

    def total_memory(self) -> int | None:
        return FAKE_TOTAL

    def memory(self) -> dict[str, Any] | None:
        return {"name": "fake CUDA device (test)", "total_memory_bytes": FAKE_TOTAL,
                "peak_memory_bytes": FAKE_PEAK}


def install(capacity: dict[str, int]) -> None:
    """Make every registry of this process use a FakeCuda with ``capacity``."""
    import diarq.worker.registry as registry

    registry.device_for = lambda kind: FakeCuda(capacity)
    registry.require_gpu = lambda kind: None


def install_from_env() -> None:
    install(json.loads(os.environ.get("DIARQ_TEST_FAKE_CUDA", "{}")))

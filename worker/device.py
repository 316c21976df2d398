"""The device layer of a worker process: what the pipeline asks of the accelerator.

Everything the pipeline needs from CUDA goes through a :class:`Device`: running a stage
(``run``), telling a CUDA out-of-memory error from other failures, giving memory back
between jobs and attempts, and the peak memory of a job. :class:`Cpu` does nothing;
:class:`Cuda` uses ``torch.cuda``. Tests replace the layer (``device_for``) with one that
raises a real ``torch.cuda.OutOfMemoryError`` to exercise the retry logic on CPU, with
the real models.

Out of memory (:func:`run_with_oom_retry`): the stage is retried once with half its
batch size after the memory is released; a second OOM fails the job with
``gpu_out_of_memory`` and a message that says what to change. The worker never dies of
it. Only the CUDA caching allocator's memory is released here; CTranslate2 (Whisper)
keeps its own pool, which its models reuse between jobs.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from diarq.shared.errors import ModelError

log = logging.getLogger(__name__)
T = TypeVar("T")

# what CUDA libraries put in the RuntimeError of an allocation failure (torch raises its
# own OutOfMemoryError; CTranslate2 and cuDNN raise RuntimeError)
_OOM_MARKERS = ("out of memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED")
GiB = 1 << 30


class GpuOutOfMemory(ModelError):
    code = "gpu_out_of_memory"


class Device:
    """CPU: no accelerator memory to manage."""

    kind = "cpu"

    def run(self, stage: str, batch_size: int, call: Callable[[int], T]) -> T:
        """Run one model stage with ``batch_size`` (the seam tests fake OOM at)."""
        return call(batch_size)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return False

    def release(self) -> None:
        """Give cached accelerator memory back (between jobs, before a retry)."""

    def reset_peak(self) -> None:
        """Start measuring a job's peak memory."""

    def total_memory(self) -> int | None:
        return None

    def memory(self) -> dict[str, Any] | None:
        """The job's memory figures for the result (``models.gpu``); None on CPU."""
        return None


class Cuda(Device):
    """``torch.cuda`` on the process's first visible GPU (``CUDA_VISIBLE_DEVICES``)."""

    kind = "cuda"

    def is_out_of_memory(self, exc: BaseException) -> bool:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
        return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MARKERS)

    def release(self) -> None:
        import torch

        gc.collect()  # tensors of a failed attempt are only freed with their frames
        torch.cuda.empty_cache()

    def reset_peak(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats()

    def total_memory(self) -> int | None:
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)

    def memory(self) -> dict[str, Any] | None:
        import torch

        return {
            "name": torch.cuda.get_device_name(0),
            "total_memory_bytes": self.total_memory(),
            # torch's allocator only: pyannote + wav2vec2 (CTranslate2 is not counted)
            "peak_memory_bytes": int(torch.cuda.max_memory_allocated()),
        }


def device_for(kind: str) -> Device:
    """The device layer of a resolved device ("cuda" or "cpu")."""
    return Cuda() if kind == "cuda" else Device()


def require_gpu(kind: str) -> None:
    """Fail at worker start (gpu_unavailable) when CUDA is asked for but not there."""
    if kind != "cuda":
        return
    import os

    import torch

    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        raise ModelError(
            f"DIARQ_DEVICE=cuda but torch sees no GPU{shown}: check the NVIDIA driver and "
            "the container's GPU reservation, or set DIARQ_DEVICE=auto or cpu",
            code="gpu_unavailable",
        )


def oom_message(stage: str, batch_size: int) -> str:
    return (f"the GPU ran out of memory during {stage}, also after a retry with batch size "
            f"{max(1, batch_size // 2)}; set DIARQ_BATCH_SIZE lower (e.g. "
            f"{max(1, batch_size // 4)}), use a smaller DIARQ_ASR_MODEL or "
            "DIARQ_COMPUTE_TYPE=int8_float16, run fewer jobs per GPU, or use a GPU with more "
            "memory")


def run_with_oom_retry(device: Device, stage: str, batch_size: int,
                       call: Callable[[int], T], notes: list[str] | None = None) -> T:
    """``call(batch_size)`` on ``device``; on CUDA OOM release memory and retry once with
    half the batch; a second OOM raises GpuOutOfMemory (the worker goes on)."""
    size = max(1, batch_size)
    for attempt in (1, 2):
        oom = False
        try:
            return device.run(stage, size, call)
        except Exception as exc:
            if not device.is_out_of_memory(exc):
                raise
            oom = True
        # outside the except block: the exception and its frames (holding tensors) are
        # gone, so release() can really free their memory
        if oom:
            device.release()
            if attempt == 2:
                raise GpuOutOfMemory(oom_message(stage, batch_size))
            log.warning("CUDA out of memory stage=%s batch_size=%d; retrying with %d", stage,
                        size, max(1, size // 2))
            if notes is not None:
                notes.append(f"{stage}: CUDA out of memory at batch size {size}, retried "
                             f"with {max(1, size // 2)}")
            size = max(1, size // 2)
    raise AssertionError("unreachable")  # pragma: no cover

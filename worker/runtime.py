"""Device and thread policy of a worker process: which device, which compute type, how
many threads each runtime gets.

Thread counts are set here, on purpose (measured on 2 cores, see bench/pipeline.py):
torch (diarization) and CTranslate2 (Whisper) each bring an OpenMP runtime, and
after a transcription the torch stage of the next job ran 1.6-1.8x slower:
with CTranslate2 at all cores, torch's OpenMP threads stop spinning and sleep on
every parallel region (~150k context switches per minute of audio); with
CTranslate2 at one thread, torch's thread count was found reset to 1. So
CTranslate2 gets half the cores (on 2 cores: 1 thread, which transcribed a
10-minute recording in 35 s against 47 s with 2 threads and 48 s with
faster-whisper's default) and torch's count is set again before every torch stage.
"""

from __future__ import annotations

import contextlib
import os


def available_cores() -> int:
    """Cores this process may run on (its affinity mask: a container's CPU set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def set_torch_threads(threads: int) -> int:
    """Set torch's intra-op thread count (0: every core this process may use) where it
    differs; returns the count. Called before every torch stage (module docstring: a
    CTranslate2 model in the same process can leave torch with another count)."""
    import torch

    n = threads or available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def set_openmp_wait_policy(concurrent_stages: bool, device: str) -> bool:
    """OMP_WAIT_POLICY=PASSIVE for a CPU worker that transcribes beside its diarization
    (settings ``concurrent_stages``), unless the environment sets a policy. OpenMP reads
    it when its library loads, so this must run before torch is imported; returns
    whether it was set. Measured on 2 cores, 10 minutes (BENCHMARKS.md): the two
    stages together took 77 s with idle OpenMP threads sleeping, 98 s with them
    spinning (they take the other stage's core), and 108 s one after the other; a
    torch stage alone is 1.6x slower with them sleeping, which is why a worker that
    runs its stages one after the other keeps the default."""
    import sys

    if not concurrent_stages or device == "cuda" or "torch" in sys.modules:
        return False
    if "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def configure_threads(threads: int) -> int:
    """Size the torch pools; returns the thread count torch stages use.

    OMP_WAIT_POLICY is left alone here: PASSIVE made diarization alone 1.6x slower and
    ACTIVE made transcription 1.5x slower (idle threads of the other runtime spin);
    ``set_openmp_wait_policy`` chooses it for workers that run both at once.
    """
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    n = set_torch_threads(threads)
    # stages are sequential: no inter-op parallelism. RuntimeError: already set, or
    # parallel work already started in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return n


def asr_threads(threads: int, device: str) -> int:
    """CTranslate2's CPU threads: half the cores on CPU (module docstring), all on GPU."""
    return threads if device == "cuda" else max(1, threads // 2)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when torch sees a GPU, else cpu; other values stand."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is always installed with the ML extra
        return "cpu"


def resolve_compute_type(compute_type: str, device: str,
                         supported: set[str] | None = None) -> str:
    """CTranslate2's compute type: float16 on a GPU that supports it (else int8_float32,
    then float32), int8 on CPU, unless configured. ``supported``: what
    ``ctranslate2.get_supported_compute_types(device)`` says (asked when not given)."""
    if compute_type != "auto":
        return compute_type
    if supported is None:
        try:
            import ctranslate2

            supported = set(ctranslate2.get_supported_compute_types(device))
        except (ImportError, RuntimeError, ValueError):  # no CUDA runtime: keep the default
            supported = set()
    preferred = ("float16", "int8_float32", "float32") if device == "cuda" else (
        "int8", "float32")
    for kind in preferred:
        if not supported or kind in supported:
            return kind
    return "default"


# auto batch size on CUDA by the GPU's memory (GiB): large-v3 fp16 with batch 16 fits in
# 16 GB (WhisperX's default batch); pyannote's segmentation/embedding batches are smaller
# than Whisper's at the same count. bench/gpu.py measures the peak.
_GPU_BATCH = ((40, 32), (14, 16), (0, 8))
CPU_BATCH = 8


def resolve_batch_size(batch_size: int, device: str, total_memory: int | None) -> int:
    """DIARQ_BATCH_SIZE when set (> 0); else per device: by GPU memory, 8 on CPU."""
    if batch_size > 0:
        return batch_size
    if device != "cuda" or not total_memory:
        return CPU_BATCH
    gib = total_memory / (1 << 30)
    return next(size for floor, size in _GPU_BATCH if gib >= floor)

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


def configure_threads(threads: int) -> int:
    """Size the torch pools; returns the thread count torch stages use.

    OMP_WAIT_POLICY is left alone: PASSIVE made diarization 1.6x slower and ACTIVE
    made transcription 1.5x slower (idle threads of the other runtime spin).
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


def resolve_compute_type(compute_type: str, device: str) -> str:
    """float16 on GPU, int8 on CPU unless configured."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"

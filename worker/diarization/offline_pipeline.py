"""The offline (tokenless) pyannote pipeline: segmentation v2 + GE2E + ECAPA speaker stage.

``diarq models prepare`` writes a ``config.yaml`` naming this class, so
``pyannote.audio.Pipeline.from_pretrained(<model_dir>/diarization/config.yaml)``
builds it like any hub pipeline. Everything but the embedding model and the
clustering is pyannote's ``SpeakerDiarization`` (sliding-window segmentation,
per-chunk local speakers, reconstruction, overlap handling).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pyannote.audio.core.inference import Inference
from pyannote.audio.core.io import Audio
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.core import SlidingWindowFeature

from diarq.worker.diarization.clustering import SpeakerClustering
from diarq.worker.diarization.ecapa import EcapaEmbedding
from diarq.worker.diarization.ge2e import GE2EEmbedding
from diarq.worker.diarization.hub_config import NoPLDA

# Segmentation post-processing for pyannote/segmentation v2 (values of pyannote's
# own speaker-diarization 2.1 recipe for this checkpoint).
SEGMENTATION_PARAMS = {"threshold": 0.4442, "min_duration_off": 0.5817}
# A powerset model (segmentation-3.0) is decoded by argmax: no threshold (pyannote
# speaker-diarization-3.1's values).
POWERSET_PARAMS = {"min_duration_off": 0.0}


def _model_file(entry: Any, name: str) -> Path:
    """config.yaml's ``$model/<sub>`` arrives expanded as {checkpoint, subfolder}."""
    if isinstance(entry, Mapping):
        base = Path(str(entry["checkpoint"]))
        if entry.get("subfolder"):
            base = base / str(entry["subfolder"])
        entry = base
    path = Path(str(entry))
    return path / name if path.is_dir() else path


def _embedding_file(embedding: Any) -> Path:
    return _model_file(embedding, "ge2e.pt")


class OfflineSpeakerDiarization(SpeakerDiarization):
    """SpeakerDiarization with the GE2E embedding and SpeakerClustering (ECAPA stage)."""

    def __init__(
        self,
        segmentation: Any,
        embedding: Any,
        speaker_embedding: Any,
        # chunk hop = 0.25 x 5 s. pyannote's default 0.1 cost 2.5x more time (the GE2E
        # LSTM dominates) and its best clustering parameters did not hold up under
        # leave-one-out (3/13 counts right vs 8/13 at 0.25; bench/quality.py)
        segmentation_step: float = 0.25,
        embedding_batch_size: int = 32,
        segmentation_batch_size: int = 32,
        token: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        # "OracleClustering" keeps the parent from building a pyannote embedding
        # model; ours and the real clustering are set right after.
        super().__init__(
            segmentation=segmentation,
            segmentation_step=segmentation_step,
            # overlapped speech gives mixed embeddings: embed clean frames when
            # there are enough of them (measured: fewer speaker-count errors)
            embedding_exclude_overlap=True,
            embedding=str(_embedding_file(embedding)),
            # SpeakerDiarization always loads a PLDA (for VBx); ours clusters without
            plda=NoPLDA(),
            clustering="OracleClustering",
            embedding_batch_size=embedding_batch_size,
            segmentation_batch_size=segmentation_batch_size,
            token=token,
            cache_dir=cache_dir,
        )
        self._embedding = GE2EEmbedding(_embedding_file(embedding))
        self._audio = Audio(sample_rate=self._embedding.sample_rate, mono="downmix")
        self.speaker_embedding = EcapaEmbedding(_model_file(speaker_embedding, "ecapa.ckpt"))
        self.klustering = "SpeakerClustering"
        self.clustering = SpeakerClustering(self.speaker_embedding, metric=self._embedding.metric)
        self._expects_num_speakers = False
        self.instantiate(self.default_parameters())

    def default_parameters(self) -> dict[str, Any]:
        powerset = self._segmentation.model.specifications.powerset
        return {"segmentation": dict(POWERSET_PARAMS if powerset else SEGMENTATION_PARAMS)}

    def reconstruct(self, segmentations: SlidingWindowFeature, hard_clusters: np.ndarray,
                    count: SlidingWindowFeature) -> SlidingWindowFeature:
        """pyannote's reconstruction, except that every speaker of the clustering keeps
        some speech: pyannote keeps, per frame, the ``count`` most active speakers, so a
        speaker who only talks alongside a louder one could vanish (and a given
        ``num_speakers`` would not be honoured). Such a speaker gets the frames where
        its own activation is at least half its maximum."""
        discrete = super().reconstruct(segmentations, hard_clusters, count)
        for k in range(int(np.max(hard_clusters)) + 1):
            if k >= discrete.data.shape[1] or discrete.data[:, k].any():
                continue
            act = _activation(segmentations, hard_clusters, k, discrete)
            if act is not None:
                discrete.data[:, k] = act >= 0.5 * act.max()
        return discrete


def _activation(segmentations: SlidingWindowFeature, hard_clusters: np.ndarray, k: int,
                grid: SlidingWindowFeature) -> np.ndarray | None:
    """Activation of cluster k on the frames of ``grid`` (None: never active)."""
    member = hard_clusters == k  # (chunks, local speakers)
    if not member.any():
        return None
    data = np.where(member[:, None, :], segmentations.data, 0.0).max(axis=2, keepdims=True)
    act = Inference.aggregate(SlidingWindowFeature(data, segmentations.sliding_window),
                              grid.sliding_window, hamming=False, missing=0.0,
                              skip_average=True)
    start = int(round((act.sliding_window.start - grid.sliding_window.start)
                      / grid.sliding_window.step))
    out = np.zeros(grid.data.shape[0])
    values = act.data[:, 0]
    lo, hi = max(0, start), min(len(out), start + len(values))
    if hi <= lo:
        return None
    out[lo:hi] = values[lo - start:hi - start]
    return out if out.max() > 0 else None

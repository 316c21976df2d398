"""The offline (tokenless) pyannote pipeline: pyannote/segmentation v2 + GE2E + our clustering.

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

from pyannote.audio.core.io import Audio
from pyannote.audio.pipelines import SpeakerDiarization

from diarq.worker.diarization.clustering import SpeakerCountClustering
from diarq.worker.diarization.ge2e import GE2EEmbedding
from diarq.worker.diarization.hub_config import NoPLDA

# Segmentation post-processing for pyannote/segmentation v2 (values of pyannote's
# own speaker-diarization 2.1 recipe for this checkpoint).
SEGMENTATION_PARAMS = {"threshold": 0.4442, "min_duration_off": 0.5817}


def _embedding_file(embedding: Any) -> Path:
    """config.yaml's ``$model/embedding`` arrives expanded as {checkpoint, subfolder}."""
    if isinstance(embedding, Mapping):
        base = Path(str(embedding["checkpoint"]))
        if embedding.get("subfolder"):
            base = base / str(embedding["subfolder"])
        embedding = base
    path = Path(str(embedding))
    return path / "ge2e.pt" if path.is_dir() else path


class OfflineSpeakerDiarization(SpeakerDiarization):
    """SpeakerDiarization with the GE2E embedding and SpeakerCountClustering."""

    def __init__(
        self,
        segmentation: Any,
        embedding: Any,
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
        self.klustering = "SpeakerCountClustering"
        self.clustering = SpeakerCountClustering(metric=self._embedding.metric)
        self._expects_num_speakers = False
        self.instantiate({"segmentation": dict(SEGMENTATION_PARAMS)})

    def default_parameters(self) -> dict[str, Any]:
        return {"segmentation": dict(SEGMENTATION_PARAMS)}

"""The offline (tokenless) pyannote pipeline: segmentation v2 + GE2E + ECAPA speaker stage.

``diarq models prepare`` writes a ``config.yaml`` naming this class, so
``pyannote.audio.Pipeline.from_pretrained(<model_dir>/diarization/config.yaml)``
builds it like any hub pipeline. Everything but the embedding model, the
clustering and the overlap count is pyannote's ``SpeakerDiarization``
(sliding-window segmentation, per-chunk local speakers, reconstruction).

Overlap: segmentation v2 rarely shows two local speakers at once, so pyannote's
frame-level speaker count misses most overlapped speech (12 of the 20.6 points of
DER on the eval files). With ``overlap_segmentation`` (segmentation-3.0, a powerset
model trained with overlap classes) a second, cheap segmentation pass counts the
speakers too, and each frame takes the larger of the two counts; who speaks in the
extra slot is still decided by v2's clusters (reconstruction ranks them by
activation). Figures: docs/diarization-experiments.md, round 6.

On CPU every network runs in ONNX Runtime: both segmentation passes
(``onnx_inference``; pyannote's sliding window around them), GE2E and ECAPA.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pyannote.audio.core.inference import Inference
from pyannote.audio.core.io import Audio
from pyannote.audio.core.model import Model
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarq.worker.diarization.clustering import SpeakerClustering
from diarq.worker.diarization.ecapa import shared_ecapa
from diarq.worker.diarization.ge2e import GE2EEmbedding
from diarq.worker.diarization.hub_config import NoPLDA
from diarq.worker.diarization.onnx_inference import OnnxInference

# Segmentation post-processing for pyannote/segmentation v2 (values of pyannote's
# own speaker-diarization 2.1 recipe for this checkpoint).
SEGMENTATION_PARAMS = {"threshold": 0.4442, "min_duration_off": 0.5817}
# A powerset model (segmentation-3.0) is decoded by argmax: no threshold (pyannote
# speaker-diarization-3.1's values).
POWERSET_PARAMS = {"min_duration_off": 0.0}
# hop of the overlap-counting pass, as a share of its 10 s chunk (0.1 gave the same
# DER within 0.1 point for 2.5x the cost)
OVERLAP_STEP = 0.25
# seconds per step of a profiled 10-minute diarization on 2 cores (30.4 s; the rest is
# reconstruction): the speaker-level ECAPA embeddings are half of it, so the job's
# progress has to move while they run, not only during pyannote's own steps
STEP_SECONDS = {"overlap_segmentation": 5.2, "segmentation": 5.2, "embeddings": 4.3,
                "speaker_embeddings": 14.4}
REST_SECONDS = 1.3


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
        overlap_segmentation: Any = None,
        token: str | None = None,
        cache_dir: str | Path | None = None,
        onnx: bool = True,
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
        if onnx:  # the same sliding window, its forward pass in ONNX Runtime on CPU
            seg = self._segmentation
            self._segmentation = OnnxInference(
                seg.model, _model_file(segmentation, "pytorch_model.bin"),
                duration=seg.duration, step=seg.step, skip_aggregation=True,
                batch_size=segmentation_batch_size)
        self._embedding = GE2EEmbedding(_embedding_file(embedding), onnx=onnx)
        self._audio = Audio(sample_rate=self._embedding.sample_rate, mono="downmix")
        self.speaker_embedding = shared_ecapa(_model_file(speaker_embedding, "ecapa.ckpt"))
        self.klustering = "SpeakerClustering"
        self.clustering = SpeakerClustering(self.speaker_embedding, metric=self._embedding.metric)
        self._expects_num_speakers = False
        self.instantiate(self.default_parameters())
        self._overlap: Inference | None = None
        self._overlap_segmentations: SlidingWindowFeature | None = None
        if overlap_segmentation is not None:
            weights = _model_file(overlap_segmentation, "pytorch_model.bin")
            model = Model.from_pretrained(str(weights))
            duration = model.specifications.duration
            kw = {"duration": duration, "step": OVERLAP_STEP * duration,
                  "skip_aggregation": True, "batch_size": segmentation_batch_size}
            self._overlap = (OnnxInference(model, weights, **kw) if onnx
                             else Inference(model, **kw))

    @property
    def counts_overlap(self) -> bool:
        """Whether an overlap model counts speakers per frame too."""
        return self._overlap is not None

    @property
    def progress_spans(self) -> dict[str, tuple[float, float]]:
        """Each step's share of the whole diarization (0..1, in order), by the time it
        takes (``STEP_SECONDS``); read by the worker's progress hook."""
        seconds = {k: v for k, v in STEP_SECONDS.items()
                   if k != "overlap_segmentation" or self._overlap is not None}
        total = sum(seconds.values()) + REST_SECONDS
        spans, start = {}, 0.0
        for name, s in seconds.items():
            spans[name] = (start / total, (start + s) / total)
            start += s
        return spans

    def get_overlap_segmentations(self, file: Any, hook: Callable[..., Any] | None = None
                                  ) -> SlidingWindowFeature | None:
        """The overlap model's binarized local speakers per chunk (None without one);
        ``hook(completed=, total=)`` as pyannote's sliding window calls it."""
        return None if self._overlap is None else self._overlap(file, hook=hook)

    def apply(self, file: Any, **kwargs: Any) -> Any:
        hook = kwargs.get("hook")

        def step(name: str) -> Callable[..., Any] | None:
            # pyannote's hook signature: (step name, artefact, file=, total=, completed=)
            return None if hook is None else functools.partial(hook, name, None, file=file)

        self._overlap_segmentations = self.get_overlap_segmentations(
            file, hook=step("overlap_segmentation"))
        self.clustering.progress = step("speaker_embeddings")
        try:
            return super().apply(file, **kwargs)
        finally:
            self._overlap_segmentations = None
            self.clustering.progress = None

    def speaker_count(self, binarized_segmentations: SlidingWindowFeature,
                      frames: SlidingWindow, warm_up: tuple[float, float] = (0.1, 0.1)
                      ) -> SlidingWindowFeature:
        """pyannote's frame-level count, raised where the overlap model hears more."""
        count = super().speaker_count(binarized_segmentations, frames, warm_up=warm_up)
        if self._overlap_segmentations is not None:
            other = super().speaker_count(self._overlap_segmentations, frames, warm_up=warm_up)
            count.data = np.maximum(count.data, _on_grid(other, count).astype(count.data.dtype))
        return count

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


def _on_grid(feature: SlidingWindowFeature, grid: SlidingWindowFeature) -> np.ndarray:
    """``feature``'s values on ``grid``'s frames (same step; zeros where it has none)."""
    values = feature.data
    out = np.zeros((grid.data.shape[0], *values.shape[1:]), dtype=values.dtype)
    start = int(round((feature.sliding_window.start - grid.sliding_window.start)
                      / grid.sliding_window.step))
    lo, hi = max(0, start), min(len(out), start + len(values))
    if hi > lo:
        out[lo:hi] = values[lo - start:hi - start]
    return out


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
    out = _on_grid(act, grid)[:, 0]
    return out if out.max() > 0 else None

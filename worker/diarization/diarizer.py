"""A loaded diarization pipeline and what it returns: speaker turns, numbered in order of
first appearance, with progress reported from pyannote's hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diarq.shared.errors import AudioError
from diarq.shared.media import SAMPLE_RATE
from diarq.shared.result import Turn
from diarq.shared.voices import VoiceSet
from diarq.worker.runtime import set_torch_threads
from diarq.worker.turns import SpeakerTurns, exclusive_from_overlapping

# share of the diarize stage's progress per pyannote step, for a pipeline that does not
# give its own ``progress_spans`` (pyannote's: segmentation is the sliding-window model,
# embeddings the WeSpeaker pass; its clustering is quick)
DEFAULT_SPANS = {"segmentation": (0.0, 0.35), "embeddings": (0.35, 0.95)}


class _Progress:
    """pyannote hook -> monotonic fraction 0..1 of the whole diarization; ``spans``: each
    step's (start, end) share."""

    def __init__(self, callback: Callable[[float], None] | None,
                 spans: dict[str, tuple[float, float]] | None = None) -> None:
        self.callback = callback
        self.spans = spans or DEFAULT_SPANS
        self.last = 0.0

    def report(self, fraction: float) -> None:
        fraction = min(1.0, max(self.last, fraction))
        if self.callback is not None and fraction > self.last:
            self.last = fraction
            self.callback(fraction)

    def __call__(self, step_name: str, step_artifact: Any, file: Any = None,
                 total: float | None = None, completed: float | None = None) -> None:
        span = self.spans.get(step_name)
        if span is None:
            return
        lo, hi = span
        if total and completed is not None:
            self.report(lo + (hi - lo) * min(1.0, completed / total))
        elif total is None and completed is None and step_artifact is not None:
            self.report(hi)  # the step's final artefact


class Diarizer:
    """A loaded pyannote diarization pipeline (kept per process by the registry)."""

    def __init__(self, pipeline: Any, *, info: dict[str, Any], threads: int = 0,
                 voice_model: str | None = None) -> None:
        self.pipeline = pipeline
        self.info = info
        self.threads = threads
        # what the speakers' voice embeddings are (None: this pipeline gives none)
        self.voice_model = voice_model

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    @property
    def batch_size(self) -> int:
        """The pipeline's own batch size (its config.yaml's, 32 for 3.1/community-1)."""
        return int(getattr(self.pipeline, "segmentation_batch_size", 0) or 1)

    def diarize(self, waveform: np.ndarray, **options: Any) -> list[Turn]:
        """Speaker turns (overlapping where people talk at once), SPEAKER_00.. in order of
        first appearance. ``waveform``: float32 mono 16 kHz; ``options`` as for
        :meth:`run`."""
        return self.run(waveform, **options).turns

    def run(
        self,
        waveform: np.ndarray,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
        batch_size: int | None = None,
    ) -> SpeakerTurns:
        """Overlapping and exclusive turns of one recording (see :class:`SpeakerTurns`).
        ``batch_size``: chunks per segmentation / embedding batch (the pipeline's own when
        None)."""
        import torch

        audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise AudioError("the audio is empty: nothing to diarize", code="audio_empty")
        set_torch_threads(self.threads)
        if batch_size:
            self.pipeline.segmentation_batch_size = batch_size
            self.pipeline.embedding_batch_size = batch_size
        hook = _Progress(progress, getattr(self.pipeline, "progress_spans", None))
        output = self.pipeline(
            {"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE,
             "uri": "audio"},
            num_speakers=num_speakers,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            hook=hook,
        )
        annotation = getattr(output, "speaker_diarization", output)
        names: dict[str, str] = {}
        turns = _to_turns(annotation, names)
        # pyannote >= 4 returns the exclusive diarization with the overlapping one (same
        # labels); a pipeline that does not gets one derived from the overlapping turns
        exclusive_annotation = getattr(output, "exclusive_speaker_diarization", None)
        if exclusive_annotation is not None:
            exclusive = _to_turns(exclusive_annotation, names)
        else:
            exclusive = exclusive_from_overlapping(turns)
        hook.report(1.0)
        return SpeakerTurns(turns=turns, exclusive=exclusive,
                            voices=_voices(output, annotation, names, self.voice_model, turns))


def _to_turns(annotation: Any, names: dict[str, str]) -> list[Turn]:
    """Turns sorted by time; pyannote labels become SPEAKER_xx through ``names`` (filled
    in order of first appearance, shared by the overlapping and exclusive annotations)."""
    tracks = sorted(
        (
            (seg.start, seg.end, str(label))
            for seg, _, label in annotation.itertracks(yield_label=True)
        ),
        key=lambda t: (t[0], t[1]),
    )
    turns = []
    for start, end, label in tracks:
        if end - start <= 0:
            continue
        name = names.setdefault(label, f"SPEAKER_{len(names):02d}")
        turns.append(Turn(start=round(start, 3), end=round(end, 3), speaker=name))
    return turns


def _voices(output: Any, annotation: Any, names: dict[str, str], model: str | None,
            turns: list[Turn]) -> VoiceSet | None:
    """One L2-normalised voice embedding per output speaker: pyannote's
    ``speaker_embeddings`` (the clustering's centroids; offline: ECAPA vectors of each
    speaker's pooled clean speech), whose rows follow the annotation's sorted labels."""
    rows = getattr(output, "speaker_embeddings", None)
    if rows is None or model is None:
        return None
    rows = np.asarray(rows, dtype=np.float32)
    voices = VoiceSet(model=model)
    for i, label in enumerate(annotation.labels()):
        name = names.get(str(label))
        if name is None or i >= len(rows):
            continue
        norm = float(np.linalg.norm(rows[i]))
        if norm > 0 and np.all(np.isfinite(rows[i])):
            voices.vectors[name] = rows[i] / norm
            voices.seconds[name] = round(sum(t.end - t.start for t in turns
                                             if t.speaker == name), 3)
    return voices if voices.vectors else None
